"""Detector: train / evaluate / export. Per-field text-line maps on the flat card (BCE + dice)."""
from __future__ import annotations

import json

import numpy as np
import torch
import torch.nn.functional as F

from fvi import detector
from fvi.geometry import box_iou
from fvi.schema import FIELDS
from training.common import CACHE, MODELS, RUNS, batches, export, image_batch, initial_weights, run_cli, seed_everything, train_loop, write_model_card
from training.nets import DetectorNet, WithSigmoid


def _load(split: str):
    d = np.load(CACHE / f"detector_{split}.npz")
    images = d["images"]
    per_card: list[list[tuple[int, np.ndarray]]] = [[] for _ in range(len(images))]
    for c, k, b in zip(d["line_card"], d["line_class"], d["line_box"]):
        per_card[int(c)].append((int(k), b))
    return images, per_card


def evaluate_arrays(predict, images: np.ndarray, per_card: list) -> dict:
    """Line-level precision / recall at IoU ≥ 0.5, matching within each field class."""
    tp = fp = fn = 0
    per_field = {f: [0, 0, 0] for f in FIELDS}
    for i in range(0, len(images), 32):
        maps = predict(images[i : i + 32])
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
    }


def train(a) -> None:
    seed_everything(a.seed)
    torch.set_num_threads(a.threads)
    images, per_card = _load("train")
    vimg, vcard = _load("val")
    targets = np.stack([detector.render_targets(c) for c in per_card]).astype(np.uint8)
    rng = np.random.default_rng(a.seed)
    model = initial_weights(DetectorNet(), a)
    it = batches(len(images), a.batch, rng)

    def step(_: int) -> torch.Tensor:
        idx = next(it)
        logits = model(image_batch(images[idx], rng))
        target = torch.from_numpy(targets[idx].astype(np.float32))
        bce = F.binary_cross_entropy_with_logits(logits, target)
        p = torch.sigmoid(logits)
        inter = (p * target).sum((2, 3))
        dice = 1 - (2 * inter + 1) / (p.sum((2, 3)) + target.sum((2, 3)) + 1)
        return bce * 5 + dice.mean()

    def predict(ims):
        return torch.sigmoid(model(image_batch(ims))).numpy()

    train_loop("detector", model, a.steps, a.lr, step, lambda: evaluate_arrays(predict, vimg, vcard), a.eval_every)
    (RUNS / "detector.args.json").write_text(json.dumps(vars(a)))


def evaluate(a) -> dict:
    import onnxruntime as ort

    vimg, vcard = _load("val")
    sess = ort.InferenceSession(str(a.onnx), providers=["CPUExecutionProvider"])
    m = evaluate_arrays(lambda ims: sess.run(None, {"card": image_batch(ims).numpy()})[0], vimg, vcard)
    print(json.dumps(m, indent=2))
    return m


def export_cmd(a) -> None:
    model = DetectorNet()
    model.load_state_dict(torch.load(RUNS / "detector.pt"))
    vimg, _ = _load("val")
    info = export(WithSigmoid(model.eval()), image_batch(vimg[:4]), MODELS / "detector.onnx", "card", "line_maps")
    a.onnx = MODELS / "detector.onnx"
    metrics = evaluate(a)
    args = json.loads((RUNS / "detector.args.json").read_text())
    write_model_card("detector", "Detector — text lines per field class on the flat card", metrics, info,
                     args,
                     "Input `card` uint8 (N, 3, 320, 512): flat card RGB pixels, normalised inside the net (fvi.detector.preprocess). "
                     f"Output `line_maps` float32 (N, {len(FIELDS)}, 80, 128): per-field probability of a (shrunk) "
                     f"text line, classes in order {', '.join(FIELDS)} (fvi.detector.decode). Validation cards are "
                     "warped with corners perturbed like the cropper's error (fvi.synth.photo.flatten_like_cropper).")


def main() -> None:
    run_cli("detector", __doc__, train, evaluate, export_cmd, steps=800, batch=16, lr=3e-3, eval_every=400)


if __name__ == "__main__":
    main()
