"""Detector: train / evaluate / export. Per-field text-line maps on the flat card (BCE + dice) and the
card type (cross-entropy) from the same features."""
from __future__ import annotations

import json

import numpy as np
import torch
import torch.nn.functional as F

from fvi import detector
from fvi.geometry import box_iou
from fvi.schema import CARD_TYPES, FIELDS
from training.common import CACHE, MODELS, RUNS, batches, export, image_batch, initial_weights, run_cli, seed_everything, train_loop, write_model_card
from training.nets import DetectorNet, DetectorOutputs

OUTPUTS = ("line_maps", "card_type")


def _load(split: str):
    d = np.load(CACHE / f"detector_{split}.npz")
    images = d["images"]
    per_card: list[list[tuple[int, np.ndarray]]] = [[] for _ in range(len(images))]
    for c, k, b in zip(d["line_card"], d["line_class"], d["line_box"]):
        per_card[int(c)].append((int(k), b))
    return images, per_card, d["card_type"]


def evaluate_arrays(predict, images: np.ndarray, per_card: list, card_types: np.ndarray) -> dict:
    """Line-level precision / recall at IoU ≥ 0.5, matching within each field class; card type accuracy."""
    tp = fp = fn = types_right = 0
    per_field = {f: [0, 0, 0] for f in FIELDS}
    for i in range(0, len(images), 32):
        maps, types = predict(images[i : i + 32])
        types_right += int((types.argmax(1) == card_types[i : i + 32]).sum())
        for j, m in enumerate(maps):
            pred = detector.decode(m)
            gt = per_card[i + j]
            used = set()
            for line in pred:
                best, best_iou = None, 0.5
                for g, (k, box) in enumerate(gt):
                    if k == line.field_index and g not in used:
                        iou = box_iou(line.box, box)
                        if iou >= best_iou:
                            best, best_iou = g, iou
                f = per_field[line.field]
                if best is None:
                    fp += 1
                    f[1] += 1
                else:
                    used.add(best)
                    tp += 1
                    f[0] += 1
            for g, (k, _) in enumerate(gt):
                if g not in used:
                    fn += 1
                    per_field[FIELDS[k]][2] += 1
    return {
        "cards": len(images), "lines": tp + fn,
        "precision": round(tp / max(1, tp + fp), 4), "recall": round(tp / max(1, tp + fn), 4),
        "recall_by_field": {f: round(v[0] / max(1, v[0] + v[2]), 4) for f, v in per_field.items()},
        "card_type_accuracy": round(types_right / max(1, len(images)), 4),
        "cards_by_type": {t: int((card_types == k).sum()) for k, t in enumerate(CARD_TYPES)},
    }


def train(a) -> None:
    seed_everything(a.seed)
    torch.set_num_threads(a.threads)
    images, per_card, card_types = _load("train")
    val = _load("val")
    # cell coverage in 1/255ths, each card's cast before stacking: 330 MB for 4,000 cards, not 1.3 GB of float32
    targets = np.stack([np.round(detector.render_targets(c) * 255).astype(np.uint8) for c in per_card])
    rng = np.random.default_rng(a.seed)
    model = initial_weights(DetectorNet(), a)
    it = batches(len(images), a.batch, rng)

    def step(_: int) -> torch.Tensor:
        idx = next(it)
        logits, type_logits = model(image_batch(images[idx], rng))
        target = torch.from_numpy(targets[idx].astype(np.float32) / 255)
        bce = F.binary_cross_entropy_with_logits(logits, target)
        p = torch.sigmoid(logits)
        inter = (p * target).sum((2, 3))
        # a field the card type does not print has an empty target: its dice term is 0 when the map is empty too
        dice = 1 - (2 * inter + 1) / (p.sum((2, 3)) + target.sum((2, 3)) + 1)
        type_loss = F.cross_entropy(type_logits, torch.from_numpy(card_types[idx]).long())
        return bce * 5 + dice.mean() + 0.2 * type_loss

    def predict(ims):
        return [t.numpy() for t in DetectorOutputs(model)(image_batch(ims))]

    train_loop("detector", model, a.steps, a.lr, step, lambda: evaluate_arrays(predict, *val), a.eval_every)
    (RUNS / "detector.args.json").write_text(json.dumps(vars(a)))


def evaluate(a) -> dict:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(a.onnx), providers=["CPUExecutionProvider"])
    m = evaluate_arrays(lambda ims: sess.run(list(OUTPUTS), {"card": image_batch(ims).numpy()}), *_load("val"))
    print(json.dumps(m, indent=2))
    return m


def export_cmd(a) -> None:
    model = DetectorNet()
    model.load_state_dict(torch.load(RUNS / "detector.pt"))
    vimg = _load("val")[0]
    info = export(DetectorOutputs(model.eval()), image_batch(vimg[:4]), MODELS / "detector.onnx", "card", OUTPUTS)
    a.onnx = MODELS / "detector.onnx"
    metrics = evaluate(a)
    args = json.loads((RUNS / "detector.args.json").read_text())
    write_model_card("detector", "Detector — text lines per field class and the card type, on the flat card", metrics, info,
                     args,
                     "Input `card` uint8 (N, 3, 320, 512): flat card RGB pixels, normalised inside the net (fvi.detector.preprocess). "
                     f"Output `line_maps` float32 (N, {len(FIELDS)}, 80, 128): per field, how much of each cell a (shrunk) "
                     "text line covers (trained on cell coverage, so a line's height reads to a fraction of a cell), "
                     f"classes in order {', '.join(FIELDS)} (fvi.detector.decode). Output `card_type` float32 "
                     f"(N, {len(CARD_TYPES)}): probability of each card type, in order {', '.join(CARD_TYPES)}. Validation cards are "
                     "warped with corners perturbed like the cropper's error (fvi.synth.photo.flatten_like_cropper).",
                     data_files=("detector_{split}.npz",))


def main() -> None:
    run_cli("detector", __doc__, train, evaluate, export_cmd, steps=800, batch=16, lr=3e-3, eval_every=400)


if __name__ == "__main__":
    main()
