"""Cropper: train / evaluate / export. Corner heatmaps with CenterNet-style focal loss."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from fvi import cropper
from fvi.geometry import Letterbox
from training.common import CACHE, MODELS, RUNS, batches, export, image_batch, initial_weights, run_cli, seed_everything, trained_data, train_loop, write_model_card
from training.nets import CropperNet, WithSigmoid

SIGMA = 1.5  # heatmap gaussian, in cells


def heatmap_targets(corners: np.ndarray, has_card: np.ndarray) -> np.ndarray:
    n = cropper.HEATMAP_SIZE
    ys, xs = np.mgrid[0:n, 0:n].astype(np.float32)
    out = np.zeros((len(corners), 4, n, n), np.float32)
    cells = cropper.corner_to_cell(corners)
    for i in np.nonzero(has_card)[0]:
        for k in range(4):
            cx, cy = cells[i, k]
            out[i, k] = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * SIGMA**2))
    return out


def focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = target.ge(0.99).float()
    pos_loss = -torch.log(p) * (1 - p) ** 2 * pos
    neg_loss = -torch.log(1 - p) * p**2 * (1 - target) ** 4 * (1 - pos)
    return (pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp(min=1.0)


def _augment(images: np.ndarray, corners: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Quarter turns keep each corner's class (it belongs to the card, not the frame); plus photometric jitter."""
    out_img, out_c = np.empty_like(images), corners.copy()
    s = cropper.INPUT_SIZE
    for i in range(len(images)):
        k = int(rng.integers(4))
        out_img[i] = np.rot90(images[i], k)
        for _ in range(k):  # rot90 (counter-clockwise): (x, y) -> (y, s - x)
            out_c[i] = np.stack([out_c[i][:, 1], s - out_c[i][:, 0]], axis=1)
    return out_img, out_c


def evaluate_arrays(predict, images: np.ndarray, corners: np.ndarray, has_card: np.ndarray) -> dict:
    """Corner error (% of card diagonal), orientation, no-card detection, on letterboxed inputs."""
    errs, oriented, found, nocard_ok = [], [], [], []
    ident = Letterbox(1.0, 0.0, 0.0)
    for i in range(0, len(images), 64):
        hm = predict(images[i : i + 64])
        for j, h in enumerate(hm):
            idx = i + j
            res = cropper.decode(h, ident, (cropper.INPUT_SIZE, cropper.INPUT_SIZE))
            if not has_card[idx]:
                nocard_ok.append(not res.found)
                continue
            found.append(res.found)
            gt = corners[idx]
            diag = float(np.linalg.norm(gt[0] - gt[2]))
            d = np.linalg.norm(res.corners - gt, axis=1) / diag
            errs.append(d)
            # orientation right: every predicted corner is nearest to its own ground-truth corner
            dist = np.linalg.norm(res.corners[:, None] - gt[None], axis=2)
            oriented.append(bool((dist.argmin(1) == np.arange(4)).all()))
    errs = np.array(errs)
    return {
        "cards": int(has_card.sum()), "card_free_images": int((~has_card).sum()),
        "mean_corner_error_pct_diag": round(float(errs.mean() * 100), 3),
        "cards_all_corners_within_3pct": round(float((errs.max(1) < 0.03).mean()), 4),
        "orientation_accuracy": round(float(np.mean(oriented)), 4),
        "card_found_rate": round(float(np.mean(found)), 4),
        "no_card_recognised_rate": round(float(np.mean(nocard_ok)), 4) if nocard_ok else None,
    }


def _load(split: str, kind: str = "cropper"):
    d = np.load(CACHE / f"{kind}_{split}.npz")
    return d["images"], d["corners"], d["has_card"]


# The cache batches a cropper trains on (`--data`): `cropper` is cropper_<split>.npz, `cropper-<tag>` a further
# batch (training.make_data --cropper-tag); each with its second-look views (cropper_refine...) when made.
DEFAULT_DATA = "cropper"


def refine_kind(kind: str) -> str:
    """The second-look views made with a batch of whole photos: cropper-mild → cropper_refine-mild."""
    return kind.replace("cropper", "cropper_refine", 1)


def _load_all(split: str, kinds: list[str]):
    """Whole-photo views, plus the second look's zoomed views where make_data made them (--cropper-refine)."""
    names = []
    for kind in kinds:
        names += [kind] + ([refine_kind(kind)] if (CACHE / f"{refine_kind(kind)}_{split}.npz").exists() else [])
    return tuple(np.concatenate(arrays) for arrays in zip(*(_load(split, n) for n in names)))


def _evaluate_views(predict) -> dict:
    m = evaluate_arrays(predict, *_load("val"))
    if (CACHE / "cropper_refine_val.npz").exists():
        second = evaluate_arrays(predict, *_load("val", "cropper_refine"))
        m["second_look"] = {k: second[k] for k in ("cards", "mean_corner_error_pct_diag", "cards_all_corners_within_3pct",
                                                   "orientation_accuracy", "card_found_rate")}
    return m


def _torch_predict(model):
    def predict(images):
        with torch.no_grad():
            return torch.sigmoid(model(image_batch(images))).numpy()
    return predict


def train(a) -> None:
    seed_everything(a.seed)
    torch.set_num_threads(a.threads)
    images, corners, has_card = _load_all("train", a.data.split(","))
    rng = np.random.default_rng(a.seed)
    model = initial_weights(CropperNet(), a)
    it = batches(len(images), a.batch, rng)

    def step(_: int) -> torch.Tensor:
        idx = next(it)
        img, cor = _augment(images[idx], corners[idx], rng)
        target = torch.from_numpy(heatmap_targets(cor, has_card[idx]))
        return focal_loss(model(image_batch(img, rng)), target)

    train_loop("cropper", model, a.steps, a.lr, step, lambda: _evaluate_views(_torch_predict(model)), a.eval_every)
    (RUNS / "cropper.args.json").write_text(json.dumps(vars(a) | {"command": None}))


def _load_trained() -> CropperNet:
    model = CropperNet()
    model.load_state_dict(torch.load(RUNS / "cropper.pt"))
    return model.eval()


def evaluate(a) -> dict:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(a.onnx), providers=["CPUExecutionProvider"])
    m = _evaluate_views(lambda ims: sess.run(None, {"image": image_batch(ims).numpy()})[0])
    print(json.dumps(m, indent=2))
    return m


def export_cmd(a) -> None:
    model = _load_trained()
    vimg, _, _ = _load("val")
    info = export(WithSigmoid(model), image_batch(vimg[:4]), MODELS / "cropper.onnx", "image", "heatmaps")
    a.onnx = MODELS / "cropper.onnx"
    metrics = evaluate(a)
    args = json.loads((RUNS / "cropper.args.json").read_text())
    write_model_card("cropper", "Cropper — card corners (4 classes) on a 256×256 letterboxed photo", metrics, info,
                     args,
                     "Input `image` uint8 (N, 3, 256, 256): RGB pixels, letterboxed, normalised inside the net (fvi.cropper.preprocess). "
                     "Output `heatmaps` float32 (N, 4, 64, 64): probability of TL, TR, BR, BL at stride 4 "
                     "(fvi.cropper.decode). The same net takes two looks at a photo: the whole photo letterboxed, then "
                     "a view zoomed on the card the first look found (fvi.cropper.refine_view); `second_look` scores "
                     "those views, cut around corners moved like a first look's error. A card is found when all four "
                     f"corners peak at least fvi.cropper.CORNER_THRESHOLD ({cropper.CORNER_THRESHOLD:g}; the found rates "
                     "above are at it), chosen with `python -m training.cropper calibrate` on photos nothing else uses. "
                     "The pipeline also takes a card the first look half saw when the second look finds it "
                     "(fvi.cropper.second_look_finds, calibrated the same way), and reads an unsure second look turned "
                     f"by quarter turns as well (fvi.cropper.TURN_BELOW, {cropper.TURN_BELOW:g}).",
                     data_files=tuple(f"{n}_{{split}}.npz" for k in trained_data(args, DEFAULT_DATA) for n in (k, refine_kind(k))))


CALIBRATION_SEED = 9100  # photos no evaluation (seed 4300) and no training cache uses


def calibrate(a) -> dict:
    """What each corner threshold (fvi.cropper.CORNER_THRESHOLD) would do, on photos nothing else uses.

    Per capture style: the first look's weakest corner peak (0 for an implausible quad) on every card and
    card-free photo of a generated set on the training wallpapers (the held-out ones stay the test set's),
    then the cards each threshold finds and the card-free photos it takes for a card. Then the pipeline's
    own decision with the second look (fvi.cropper.pick_look), at the constants in use, and the
    highest peaks card-free photos reach on what fvi.cropper.second_look_finds looks at.
    """
    from bench.evaluate import DATA_ROOT, ensure_test_set
    from fvi.pipeline import first_look_input, first_look_photo, onnx_session, second_look, work_photo
    from fvi.synth.photo import CAPTURE_STYLES

    sess = onnx_session(Path(a.onnx))

    def run(x: np.ndarray) -> np.ndarray:
        return sess.run(None, {"image": x})[0]

    report = {"onnx": str(a.onnx), "seed": a.seed, "threshold_in_use": cropper.CORNER_THRESHOLD,
              "second_look_in_use": {"alone": cropper.SECOND_LOOK_ALONE, "three_corners": cropper.THREE_CORNERS,
                                     "after_three": cropper.SECOND_LOOK_AFTER_THREE}, "captures": {}}
    for capture in a.capture.split(","):
        style = CAPTURE_STYLES[capture]
        style = replace(style, wallpaper_set="train") if style.wallpaper else style
        peaks: dict[bool, list[float]] = {True: [], False: []}
        found: dict[bool, list[bool]] = {True: [], False: []}
        free_second, free_third = [], []  # card-free: second look's weakest (plausible quads), first's third-strongest
        for item in tqdm(ensure_test_set(DATA_ROOT, a.seed, a.cards_per_type, a.card_free, style=style),
                         desc=f"two looks, {capture}", unit="photo"):
            data = item.path.read_bytes()
            photo = first_look_photo(data)  # decoded once, as stage_decode does
            d = first_look_input(photo)
            width, height = photo.size
            first = cropper.decode(run(d.cropper_input)[0], Letterbox.from_array(d.letterbox), (height, width))
            is_card = item.truth["card_type"] is not None
            peaks[is_card].append(first.confidence if first.plausible else 0.0)
            second = second_look(work_photo(data), first, run)
            found[is_card].append(cropper.pick_look(first, second).found)
            if not is_card:
                free_third.append(first.third_strongest if first.plausible else 0.0)
                free_second.append(second.confidence if second.plausible else 0.0)
        cards, free = np.array(peaks[True]), np.array(peaks[False])
        report["captures"][capture] = {
            "cards": len(cards), "card_free_images": len(free),
            "highest_card_free_peak": round(float(free.max()), 3) if len(free) else None,
            "by_threshold": [{"threshold": t, "cards_found": round(float((cards >= t).mean()), 4),
                              "card_free_taken": int((free >= t).sum())} for t in a.thresholds],
            "with_second_look": {"cards_found": round(float(np.mean(found[True])), 4),
                                 "card_free_taken": int(np.sum(found[False])),
                                 "highest_card_free_second_look": round(max(free_second, default=0.0), 3),
                                 "highest_card_free_third_corner": round(max(free_third, default=0.0), 3)}}
    for capture, r in report["captures"].items():
        print(f"{capture}: {r['cards']} cards, {r['card_free_images']} card-free (highest peak {r['highest_card_free_peak']})")
        for row in r["by_threshold"]:
            print(f"  threshold {row['threshold']:.2f}: cards found {row['cards_found']:.2%}, "
                  f"card-free taken for a card {row['card_free_taken']}")
        w = r["with_second_look"]
        print(f"  pipeline, with the second look: cards found {w['cards_found']:.2%}, card-free taken for a card "
              f"{w['card_free_taken']} (card-free highest: second look {w['highest_card_free_second_look']}, "
              f"first look's third corner {w['highest_card_free_third_corner']})")
    RUNS.mkdir(parents=True, exist_ok=True)
    (RUNS / "cropper_calibration.json").write_text(json.dumps(report, indent=1))
    return report


def _calibrate_flags(p) -> None:
    p.add_argument("--onnx", default=str(MODELS / "cropper.onnx"))
    p.add_argument("--seed", type=int, default=CALIBRATION_SEED)
    p.add_argument("--cards-per-type", type=int, default=150)
    p.add_argument("--card-free", type=int, default=600)
    p.add_argument("--capture", default="mild,wild", help="comma-separated capture styles (default %(default)s)")
    p.add_argument("--thresholds", type=lambda s: [float(t) for t in s.split(",")], default=[0.05, 0.08, 0.1, 0.12, 0.15],
                   help="comma-separated corner thresholds to try (default 0.05,0.08,0.1,0.12,0.15)")


def main() -> None:
    def options(t) -> None:
        t.add_argument("--data", default=DEFAULT_DATA, help="comma-separated cache batches to train on (<batch>_train.npz "
                                                            "and its second-look views), e.g. cropper,cropper-mild "
                                                            "(default %(default)s)")

    run_cli("cropper", __doc__, train, evaluate, export_cmd, steps=2000, batch=32, lr=3e-3, eval_every=500,
            train_options=options, more={"calibrate": (calibrate, _calibrate_flags)})


if __name__ == "__main__":
    main()
