"""Reader: train / evaluate / export. Conv + BiLSTM + CTC over the full Vietnamese charset."""
from __future__ import annotations

import json

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from fvi import charset, reader
from training.common import (CACHE, MODELS, RUNS, export, initial_weights, trained_data, run_cli, seed_everything,
                             train_loop, write_model_card)
from training.make_data import MIN_SOURCE_LINE_PX
from training.nets import ReaderNet, TopClasses


# The cache files a reader trains on, reader_<kind>_<split>.npz (training.make_data): `det-<capture>` are the
# lines the served text detector finds on photographed cards (values and labels, --reader-det), `lines` rendered
# lines over the whole charset.
DEFAULT_DATA = "det-mild,det-wild,det-mild-invented,lines"


def _load(split: str, kinds: tuple[str, ...] | list[str]):
    parts = [np.load(CACHE / f"reader_{k}_{split}.npz", allow_pickle=True) for k in kinds]
    images = np.concatenate([p["images"] for p in parts])
    widths = np.concatenate([p["widths"] for p in parts])
    texts = [str(t) for p in parts for t in p["texts"]]
    return images, widths, texts


def _to_tensor(images: np.ndarray, widths: np.ndarray, rng: np.random.Generator | None = None) -> torch.Tensor:
    """Lines padded as the served pipeline pads a card's lines: to the widest, rounded up (fvi.reader.batch_width)."""
    lines = []
    for img, w in zip(images, widths):
        line = img[:, :w]
        if rng is not None and rng.random() < 0.3:  # widths the detector may produce: squeeze or stretch a little
            nw = int(np.clip(w * rng.uniform(0.85, 1.15), 8, reader.INPUT_W))
            line = cv2.resize(line, (nw, reader.INPUT_H), interpolation=cv2.INTER_AREA)
        if rng is not None and rng.random() < 0.5:
            line = _box_height_error(line, rng)
        lines.append(line)
    width = reader.batch_width([line.shape[1] for line in lines])
    out = np.stack([reader.normalize_line(line, width) for line in lines])
    if rng is not None:
        out += rng.normal(0, 0.05, out.shape).astype(np.float32)
    return torch.from_numpy(out)


def _box_height_error(line: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The line as a detector box a fifth too short or too tall cuts it: the crop is scaled to the box's height,
    so the letters come out larger or smaller (and a little higher or lower). On 2,341 served lines, 57% of
    boxes were over 10% off the line's true height, and those read 3-11 points worse; the card crops are
    cut from true boxes, jittered a few percent."""
    # not wider than the reader takes: a line cut short would be labelled with words it no longer shows
    scale = min(float(np.exp(rng.uniform(np.log(0.8), np.log(1.25)))), reader.INPUT_W / line.shape[1])
    shift = rng.normal(0, 0.04) * reader.INPUT_H
    width = max(8, round(line.shape[1] * scale))
    m = np.array([[scale, 0, 0], [0, scale, (1 - scale) * reader.INPUT_H / 2 + shift]], np.float32)
    return cv2.warpAffine(line, m, (width, reader.INPUT_H), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def width_batches(widths: np.ndarray, batch: int, rng: np.random.Generator, pool: int = 32):
    """Batches of lines of similar width, in random order: a batch costs its widest line, so mixing a
    name with an address would pay address width for both (about twice the steps per second)."""
    while True:
        order = rng.permutation(len(widths))
        groups = []
        for i in range(0, len(order) - batch * pool + 1, batch * pool):
            chunk = order[i : i + batch * pool]
            chunk = chunk[np.argsort(widths[chunk], kind="stable")]
            groups += [chunk[j : j + batch] for j in range(0, len(chunk), batch)]
        for k in rng.permutation(len(groups)):
            yield groups[k]


def cer(pred: str, truth: str) -> int:
    """Levenshtein distance in characters."""
    prev = list(range(len(truth) + 1))
    for i, a in enumerate(pred, 1):
        cur = [i]
        for j, b in enumerate(truth, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a != b)))
        prev = cur
    return prev[-1]


# Lines this short are mostly the sex value ("Nam", "Nữ"). Their figure is kept apart: a reader once misread
# "Nữ" on 29 of 99 mild validation crops (short-line accuracy 85.8% against 96.6%) while its CER and the
# field figures (the ID number implies the sex) hardly moved. Width batching (width_batches) makes this the mix's
# doing: the narrowest batches hold the sex values and the short rendered random strings (a fifth of `lines`), and a
# blurred "Nữ" is read from that company. A fine-tune on fresh batches with `lines` a quarter of the crops (near
# three times command 9's share) read 22 of 99 mild validation "Nữ" crops as random capitals (NŨ, NÚ, NI).
SHORT_LINE_CHARS = 3


def evaluate_arrays(predict, images, widths, texts) -> dict:
    edits = chars = right = 0
    short = short_right = 0
    order = np.argsort(widths, kind="stable")  # similar widths together, as in training (padding follows the widest)
    for i in range(0, len(images), 128):
        part = order[i : i + 128]
        probs = predict(images[part], widths[part])
        for (text, _), truth in zip(reader.decode(probs), [texts[k] for k in part]):
            edits += cer(text, truth)
            chars += len(truth)
            right += text == truth
            if len(truth) <= SHORT_LINE_CHARS:
                short += 1
                short_right += text == truth
    return {"lines": len(texts), "cer": round(edits / max(1, chars), 5), "line_accuracy": round(right / max(1, len(texts)), 4),
            "short_line_accuracy": round(short_right / short, 4) if short else None}


def train(a) -> None:
    seed_everything(a.seed)
    torch.set_num_threads(a.threads)
    images, widths, texts = _load("train", a.data.split(","))
    labels = [charset.encode(t) for t in texts]
    val = {kind: _load("val", (kind,)) for kind in _val_card_kinds()}
    rng = np.random.default_rng(a.seed)
    model = initial_weights(ReaderNet(), a)
    ctc = torch.nn.CTCLoss(blank=charset.BLANK, zero_infinity=True, reduction="none")
    it = width_batches(widths, a.batch, rng)

    def step(_: int) -> torch.Tensor:
        idx = next(it)
        logits = model(_to_tensor(images[idx], widths[idx], rng))
        log_probs = F.log_softmax(logits, dim=-1).permute(1, 0, 2)  # T, B, C
        targets = torch.tensor([c for i in idx for c in labels[i]], dtype=torch.long)
        target_lengths = torch.tensor([len(labels[i]) for i in idx], dtype=torch.long)
        input_lengths = torch.full((len(idx),), log_probs.shape[0], dtype=torch.long)
        losses = ctc(log_probs, targets, input_lengths, target_lengths)  # one per line, summed over its characters
        return (losses / target_lengths.clamp(min=1) if a.loss_per == "line" else losses).mean()  # "line": torch's mean

    def predict(ims, ws):
        return TopClasses(model)(_to_tensor(ims, ws)).numpy()

    train_loop("reader", model, a.steps, a.lr, step, lambda: {k: evaluate_arrays(predict, *v) for k, v in val.items()},
               a.eval_every)
    (RUNS / "reader.args.json").write_text(json.dumps(vars(a)))


def _val_card_kinds() -> list[str]:
    """The validation card crops there are: each `det-<capture>` (lines the served detector cut)."""
    return sorted(p.name.split("_")[1] for p in CACHE.glob("reader_det-*_val.npz"))


def evaluate(a) -> dict:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(a.onnx), providers=["CPUExecutionProvider"])
    predict = lambda ims, ws: sess.run(None, {"line": _to_tensor(ims, ws).numpy()})[0]  # noqa: E731
    m = {f"detected_lines{k[len('det'):].replace('-', '_')}": evaluate_arrays(predict, *_load("val", (k,)))
         for k in _val_card_kinds()} | {"rendered_lines": evaluate_arrays(predict, *_load("val", ("lines",)))}
    print(json.dumps(m, indent=2))
    return m


def export_cmd(a) -> None:
    model = ReaderNet()
    model.load_state_dict(torch.load(RUNS / "reader.pt"))
    ims, ws, _ = _load("val", _val_card_kinds()[:1])
    example = _to_tensor(ims[:8], ws[:8])
    info = export(TopClasses(model.eval()), example, MODELS / "reader.onnx", "line", "ctc_best",
                  dynamic_axes={"line": {0: "batch", 3: "width"}, "ctc_best": {0: "batch", 1: "steps"}},
                  other_examples=(example[..., : reader.WIDTH_BUCKET * 2],))
    a.onnx = MODELS / "reader.onnx"
    metrics = evaluate(a)
    args = json.loads((RUNS / "reader.args.json").read_text())
    write_model_card("reader", "Reader — one text line to Vietnamese text (CTC)", metrics, info,
                     args,
                     f"Input `line` float32 (N, 1, {reader.INPUT_H}, W), W ≤ {reader.INPUT_W} a multiple of {reader.STRIDE_W} (the card's widest line rounded up to "
                     f"{reader.WIDTH_BUCKET}): grey line crops, contrast-normalised, zero-padded right "
                     f"(fvi.reader.crop_lines). Output `ctc_best` float32 (N, W/4, {charset.TOP_K}, 2): per step the {charset.TOP_K} best "
                     f"classes of the softmax over blank + charset `{charset.CHARSET_VERSION}` ({charset.NUM_CLASSES} classes, "
                     "fvi.charset), best first, and their probabilities, decoded by fvi.reader.decode (greedy, and a "
                     "beam search over the second guesses, weighing spelling and general word frequency, for a line with a word "
                     f"Vietnamese cannot spell or read with confidence under {reader.SEARCH_BELOW:g}; the held-out metrics above are of that "
                     "decoding). "
                     "`detected_lines` are the lines the served text detector (fvi.text_detector, PP-OCRv4 DB) finds on "
                     "photographed synthetic cards, values and printed labels both, cut as the pipeline cuts them "
                     "(fvi.reader.cut_quad; `_mild`/`_wild`: capture style, `_invented`: invented names and places); "
                     "`rendered_lines` are random strings over the whole charset. Lines under "
                     f"{MIN_SOURCE_LINE_PX:g} px tall in the photo are left out of the training crops: unreadable there.",
                     data_files=tuple(f"reader_{k}_{{split}}.npz" for k in trained_data(args, DEFAULT_DATA)))


def main() -> None:
    def options(t) -> None:
        t.add_argument("--data", default=DEFAULT_DATA, help="comma-separated cache kinds to train on (reader_<kind>_train.npz), "
                                                            "e.g. det-mild,det-wild,lines (default %(default)s)")
        # how a batch's CTC loss weighs its lines: torch's mean divides each line's loss by its length, so the 2
        # letters of a sex value weigh as much as an address line's 60; summed per line (as PaddleOCR's CTC loss
        # is) every character weighs the same, and the long lines, where the misreadings are, pull harder
        t.add_argument("--loss-per", choices=("line", "char"), default="line",
                       help="weigh the CTC loss per line (torch's mean, commands 1-13) or per character")

    run_cli("reader", __doc__, train, evaluate, export_cmd, steps=2500, batch=64, lr=2e-3, eval_every=500,
            train_options=options)


if __name__ == "__main__":
    main()
