"""Reader pre/post-processing: a detected line (any rotation) → fixed-height grey crop → CTC text."""
from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

from fvi import orthography, word_frequency
from fvi.charset import ctc_beam_search, ctc_greedy_decode

# INPUT_W is the widest line; the net takes any width (multiple of STRIDE_W). A longer line is squeezed to fit, as
# the reader's training crops were (reading at 640 instead was no better on the earlier pipeline's flat cards and
# cost the widest batches a quarter more: docs/history.md).
INPUT_H, INPUT_W = 32, 512
STRIDE_W = 4
SEQ_LEN = INPUT_W // STRIDE_W
# The crops of one photo are padded to their widest line rounded up to this, not always to INPUT_W:
# reader time grows with width, and a photo whose lines are short should not pay for long ones.
WIDTH_BUCKET = 128


def batch_width(widths: list[int]) -> int:
    """The width a photo's crops are padded to: the widest, rounded up to WIDTH_BUCKET."""
    return min(INPUT_W, -(-max(widths, default=1) // WIDTH_BUCKET) * WIDTH_BUCKET)


# margins added to a detected line's quad (fvi.text_detector: DB's unclipped boxes already hold the diacritics)
QUAD_PAD_Y, QUAD_PAD_X = 0.1, 0.15


def cut_quad(gray: np.ndarray, quad: np.ndarray, pad_y: float = QUAD_PAD_Y, pad_x: float = QUAD_PAD_X) -> np.ndarray:
    """One detected line (corners TL, TR, BR, BL in reading order, any rotation) as a grey uint8 image INPUT_H
    high, at most INPUT_W wide (squeezed), grown by pad_y / pad_x line heights each side."""
    q = np.asarray(quad, np.float32)
    u, v = (q[1] - q[0] + q[2] - q[3]) / 2, (q[3] - q[0] + q[2] - q[1]) / 2
    length, h = max(1.0, float(np.hypot(*u))), max(1.0, float(np.hypot(*v)))
    du, dv = u / length * pad_x * h, v / h * pad_y * h
    src = np.array([q[0] - du - dv, q[1] + du - dv, q[2] + du + dv, q[3] - du + dv], np.float32)
    w_out = int(np.clip(round((length + 2 * pad_x * h) * INPUT_H / (h * (1 + 2 * pad_y))), 8, INPUT_W))
    dst = np.array([[0, 0], [w_out, 0], [w_out, INPUT_H], [0, INPUT_H]], np.float32)
    m = cv2.getPerspectiveTransform(src, dst)
    return cv2.warpPerspective(gray, m, (w_out, INPUT_H), flags=cv2.INTER_AREA if h > INPUT_H else cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)


def crop_quads(gray: np.ndarray, quads: list[np.ndarray], pad_y: float = QUAD_PAD_Y, pad_x: float = QUAD_PAD_X) -> np.ndarray:
    """All detected lines of one photo (grey) → (N, 1, 32, batch_width) reader input."""
    lines = [cut_quad(gray, q, pad_y, pad_x) for q in quads]
    width = batch_width([line.shape[1] for line in lines])
    return np.stack([normalize_line(line, width) for line in lines])


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
    """What a reading costs beyond its log-probability: words Vietnamese cannot spell, and rare words. Cached (a beam
    search scores the same beginnings many times), so WORD_PENALTY and FREQUENCY_WEIGHT
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
