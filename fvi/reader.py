"""Reader pre/post-processing: a line box on the flat card → fixed-size grey crop → CTC text."""
from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import cv2
import numpy as np

from fvi import orthography, word_frequency
from fvi.charset import ctc_beam_search, ctc_greedy_decode

# INPUT_W is the widest line; the net takes any width (multiple of STRIDE_W). A chip card's long second residence
# line would be ~600 wide at 32 high (the widest of 1,134 served lines: 599) and is squeezed to fit, as the
# reader's training crops were; reading it at 640 instead was no better (in-process, 1,500 mild cards: residence
# 77.3% -> 77.5%, origin 91.3% -> 91.1%, whole card 70.7% -> 70.5%) and costs the widest batches a quarter more.
INPUT_H, INPUT_W = 32, 512
STRIDE_W = 4
SEQ_LEN = INPUT_W // STRIDE_W
# The crops of one card are padded to their widest line rounded up to this, not always to INPUT_W:
# reader time grows with width, and a card whose lines are short should not pay for long ones.
WIDTH_BUCKET = 128
PAD_Y = 0.12  # margin added above and below a line box, in line heights (diacritics sit high)
PAD_X = 0.25


def crop_line(card_rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Cut one line (with margins) out of the flat card and make it a (1, INPUT_H, INPUT_W) reader input."""
    return normalize_line(cut_line(card_rgb, box))


def batch_width(widths: list[int]) -> int:
    """The width a card's crops are padded to: the widest, rounded up to WIDTH_BUCKET."""
    return min(INPUT_W, -(-max(widths, default=1) // WIDTH_BUCKET) * WIDTH_BUCKET)


def crop_lines(card: np.ndarray, boxes: list[np.ndarray]) -> np.ndarray:
    """All lines of one card (grey, or RGB converted once here) → (N, 1, 32, batch_width) reader input."""
    gray = cv2.cvtColor(card, cv2.COLOR_RGB2GRAY) if card.ndim == 3 else card
    lines = [cut_line(gray, b) for b in boxes]
    width = batch_width([line.shape[1] for line in lines])
    return np.stack([normalize_line(line, width) for line in lines])


def cut_line(card_rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
    """One line with margins as a grey uint8 image, INPUT_H high, at most INPUT_W wide (squeezed)."""
    x0, y0, x1, y1 = [float(v) for v in box]
    h = max(1.0, y1 - y0)
    x0, x1 = x0 - PAD_X * h, x1 + PAD_X * h
    y0, y1 = y0 - PAD_Y * h, y1 + PAD_Y * h
    w_out = int(np.clip(round((x1 - x0) * INPUT_H / (y1 - y0)), 8, INPUT_W))
    src = np.array([[x0, y0], [x1, y0], [x0, y1]], np.float32)
    dst = np.array([[0, 0], [w_out, 0], [0, INPUT_H]], np.float32)
    gray = cv2.cvtColor(card_rgb, cv2.COLOR_RGB2GRAY) if card_rgb.ndim == 3 else card_rgb
    m = cv2.getAffineTransform(src, dst)
    line = cv2.warpAffine(gray, m, (w_out, INPUT_H), flags=cv2.INTER_AREA if h > INPUT_H else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    return line


def normalize_line(line_gray: np.ndarray, width: int = INPUT_W) -> np.ndarray:
    """Contrast-normalise a grey line (light and ink vary per capture) and zero-pad it to `width`."""
    f = line_gray.astype(np.float32)
    f = (f - f.mean()) / max(float(f.std()), 8.0)
    out = np.zeros((1, INPUT_H, width), np.float32)
    w = min(f.shape[1], width)
    out[0, :, :w] = f[:, :w]
    return out


# log-probability a word Vietnamese cannot spell costs a reading (fvi.orthography): a reading that spells wins
# over one that does not where it is at least exp(-WORD_PENALTY) as likely. On 400 tuning photos (seed 9300, chip
# and 2016 cards, mild capture; no evaluation uses them) every value from 2 to 12 got the same fields right.
WORD_PENALTY = 4.0
# weight of the words' general frequency (fvi.word_frequency, nats) against the reader's log-probability: where
# the reader hesitates between readings that both spell, "Văn" wins over "Van" unless the reader is surer of "Van".
# Whole cards on the tuning photos (in-process, reader command 15), without -> 0.1 -> 0.3: seed 9310 (1,500 mild)
# 90.27 -> 90.67 -> 90.60%, 9300/9301 (400 mild) 87.25 -> 87.75 -> 89.00%, 9311 (600 wild) 52.67 -> 52.83 ->
# 52.33%, 9320 (600 invented names, which no word list holds) 55.33 -> 55.50 -> 54.67%. A place or person's name
# is not always the commoner word ("Hùng" read "Hồng"), so the weight is kept low.
FREQUENCY_WEIGHT = 0.1
# a line the reader is less sure of than this is searched with both even when every word of its greedy reading
# spells (a surer line that spells is read greedily)
SEARCH_BELOW = 0.9


@lru_cache(maxsize=65536)
def reading_penalty(text: str) -> float:
    """What a reading costs beyond its log-probability: words Vietnamese cannot spell, and rare words. Cached (the
    views of one line, reread_unsure, search through the same beginnings), so WORD_PENALTY and FREQUENCY_WEIGHT
    are read once per text: change them before decoding, or call reading_penalty.cache_clear()."""
    return WORD_PENALTY * orthography.bad_words(text) + FREQUENCY_WEIGHT * word_frequency.cost(text)


def decode(top: np.ndarray) -> list[tuple[str, float]]:
    """(N, T, K, 2) best classes / probabilities per step (the reader's output) → (text, confidence) per line.

    Greedy, unless that reading holds a word Vietnamese cannot spell or the reader was unsure of it
    (SEARCH_BELOW): then the beam search over the reader's second guesses, scored with reading_penalty, which keeps
    the greedy reading when no guess spells better or is commoner by enough. A reading it changes takes the
    greedy confidence scaled by how much less probable it is than the likeliest text the search found."""
    out = []
    for line in top:
        text, conf, _ = ctc_greedy_decode(line[:, 0])
        if conf < SEARCH_BELOW or orthography.bad_words(text):
            found = ctc_beam_search(line, reading_penalty)
            best, lp = found[0]
            if best != text:
                text, conf = best, conf * math.exp(lp - max(p for _, p in found))
        out.append((text, conf))
    return out


def readings(top_line: np.ndarray) -> list[tuple[str, float]]:
    """One line's likeliest texts and their log-probabilities, likeliest first (from its (T, K, 2) reader output):
    the other readings the card rules may choose from (fvi.assemble.agree_with_card_rules)."""
    return ctc_beam_search(top_line)


# A line read less surely than this is read again from other cuts of its box (reread_unsure). On 400 tuning photos
# (seed 9300, chip 2021 and 2016, mild capture; no evaluation uses them) a fifth of the lines were under it, and the
# views' vote took whole cards from 73.5% to 76.5% (19 fields fixed, 4 broken); 0.97 changed nothing more.
REREAD_BELOW = 0.9
# Other cuts of the box: a tenth shorter and taller (the detector's boxes are often that far off the line's
# height), and shifted up and down by 8% of it. The scaled cuts alone fixed 16 fields and broke 7.
VIEW_SCALES = (0.9, 1.1)
VIEW_SHIFTS = (-0.08, 0.08)
# At most this many lines of a card are read again, the least sure first: with their four views, the reader's
# max_batch_size (64, model_repository/reader/config.pbtxt), so one BLS call holds them, and a photo the reader
# can barely read costs no more than that.
MAX_REREAD_LINES = 16


def other_views(box: np.ndarray) -> list[np.ndarray]:
    """The line's box cut a little differently: what the reader would have seen had the detector drawn it so."""
    x0, y0, x1, y1 = (float(v) for v in box)
    h, mid = y1 - y0, (y0 + y1) / 2
    scaled = [(mid - h * s / 2, mid + h * s / 2) for s in VIEW_SCALES]
    shifted = [(y0 + d * h, y1 + d * h) for d in VIEW_SHIFTS]
    return [np.array([x0, top, x1, bottom], np.float32) for top, bottom in scaled + shifted]


def reread_unsure(texts: list[tuple[str, float]], card_gray: np.ndarray, boxes: list[np.ndarray | None],
                  read: Callable[[np.ndarray], np.ndarray]) -> list[tuple[str, float]]:
    """Lines under REREAD_BELOW (the MAX_REREAD_LINES least sure) read again from other_views, in one reader call
    (`read`: crops → its output); the reading most views agree on wins (ties: the surest). Its confidence is the
    views' mean confidence in it (a view that read something else counts 0), so views that disagree lower it.
    boxes[i] None: not a line."""
    unsure = [i for i, ((_, conf), box) in enumerate(zip(texts, boxes)) if box is not None and conf < REREAD_BELOW]
    unsure = sorted(sorted(unsure, key=lambda i: texts[i][1])[:MAX_REREAD_LINES])
    if not unsure:
        return texts
    views = [other_views(boxes[i]) for i in unsure]
    again = decode(read(crop_lines(card_gray, [v for line in views for v in line])))
    out = list(texts)
    start = 0
    for i, line_views in zip(unsure, views):
        reads = [texts[i], *again[start : start + len(line_views)]]
        start += len(line_views)
        support: dict[str, list[float]] = {}
        for text, conf in reads:
            support.setdefault(text, []).append(conf)
        best = max(support, key=lambda t: (len(support[t]), max(support[t])))
        out[i] = (best, sum(support[best]) / len(reads))
    return out


# An ID number or a date read with too few digits is read again from its box widened by this many line heights on
# each side (about three digits): the detector's box had cut the number short (fvi.pipeline.read_short_numbers_wider).
WIDEN = 2.0


def wider(box: np.ndarray, card_width: int) -> np.ndarray:
    """The line's box WIDEN line heights longer on each side, within the card."""
    x0, y0, x1, y1 = (float(v) for v in box)
    grow = WIDEN * (y1 - y0)
    return np.array([max(0.0, x0 - grow), y0, min(card_width - 1.0, x1 + grow), y1], np.float32)
