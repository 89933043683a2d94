"""The reader's alphabet: every Vietnamese letter with its diacritics (NFC), digits, punctuation.

Index 0 is the CTC blank. The order is fixed by construction (not by a data file) so that an
exported reader and the code decoding it always agree; `CHARSET_VERSION` guards that in model cards.
"""
from __future__ import annotations

import math
import unicodedata
from typing import Callable

import numpy as np

CHARSET_VERSION = "vi-1"

_BASE_VOWELS = "aăâeêioôơuưy"
# the level tone (no mark) and the combining marks of the five others: huyền, sắc, hỏi, ngã, nặng
TONES = ("", "\u0300", "\u0301", "\u0309", "\u0303", "\u0323")
_CONSONANTS = "bcdđfghjklmnpqrstvwxz"
_DIGITS = "0123456789"
PUNCTUATION = " ,.-/:;()'\"&+#"


def _letters() -> list[str]:
    lower: list[str] = []
    for vowel in _BASE_VOWELS:
        for tone in TONES:
            lower.append(unicodedata.normalize("NFC", vowel + tone))
    lower.extend(_CONSONANTS)
    return lower + [c.upper() for c in lower]


CHARS: list[str] = _letters() + list(_DIGITS) + list(PUNCTUATION)
assert len(set(CHARS)) == len(CHARS)
BLANK = 0
NUM_CLASSES = len(CHARS) + 1
_INDEX = {c: i + 1 for i, c in enumerate(CHARS)}


def normalize(text: str) -> str:
    """NFC with collapsed spaces: the form every label and every output is compared in."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def encode(text: str) -> list[int]:
    """Class indices for a label; raises on a character outside the alphabet."""
    text = normalize(text)
    missing = sorted({c for c in text if c not in _INDEX})
    if missing:
        raise ValueError(f"characters outside the reader charset: {missing!r}")
    return [_INDEX[c] for c in text]


def is_encodable(text: str) -> bool:
    return all(c in _INDEX for c in normalize(text))


# The reader's output per step: its TOP_K best classes and their probabilities (training.nets.TopClasses).
# 6 numbers instead of 211 is 35x less to move between Triton steps; the first is all greedy decoding needs,
# the others are the second guesses the spelling-aware beam search chooses from (fvi.reader.decode).
TOP_K = 3


def top_classes(probs: np.ndarray, k: int = TOP_K) -> np.ndarray:
    """(…, T, C) softmax → (…, T, k, 2): the k best classes, best first, and their probabilities per step."""
    order = np.argsort(-probs, axis=-1)[..., :k]
    return np.stack([order.astype(np.float32), np.take_along_axis(probs, order, -1)], -1)


def ctc_greedy_decode(path: np.ndarray) -> tuple[str, float, list[float]]:
    """Best-path CTC decode of one line's (T, 2) best class / probability per step.

    Returns the text, the line confidence (product of the kept characters' probabilities, so one
    doubtful character makes the whole line doubtful) and the per-character probabilities.
    """
    best = np.rint(path[:, 0]).astype(np.int64)
    best_p = path[:, 1]
    chars: list[str] = []
    char_p: list[float] = []
    prev = BLANK
    for t, k in enumerate(best):
        k = int(k)
        if k != BLANK and k != prev:
            chars.append(CHARS[k - 1])
            char_p.append(float(best_p[t]))
        elif k != BLANK and k == prev and char_p:
            char_p[-1] = max(char_p[-1], float(best_p[t]))
        prev = k
    text = "".join(chars)
    # blanks carry evidence too: a position whose best guess is weak lowers confidence
    conf = float(np.prod(char_p)) if char_p else float(best_p.min(initial=1.0))
    return normalize(text), conf, char_p


def _logaddexp(a: float, b: float) -> float:
    """log(e^a + e^b) on Python floats: numpy's ufunc costs more per scalar than the whole sum here."""
    if a < b:
        a, b = b, a
    return a if b == -math.inf else a + math.log1p(math.exp(b - a))


def ctc_beam_search(top: np.ndarray, penalty: Callable[[str], float] | None = None, beam: int = 8,
                    sure: float = 0.995) -> list[tuple[str, float]]:
    """CTC prefix beam search over one line's (T, K, 2) best classes → up to `beam` texts with their log
    probabilities, best first by log probability minus penalty(text) (none: 0).

    `penalty` sees the text up to its last space or comma while searching (words still being read are
    not judged) and the whole text at the end. Steps whose best class is at least `sure` take only it,
    so the search branches only where the reader hesitated.
    """
    neg = -math.inf
    # prefix -> (its text, the penalty of its judged part); a prefix's judged part changes only where it grows by
    # a space or comma, so the penalty is computed there, once per prefix, and inherited otherwise
    texts: dict[tuple[int, ...], tuple[str, float]] = {(): ("", 0.0)}

    def grow(prefix: tuple[int, ...], c: int) -> tuple[str, float]:
        text, pen = texts[prefix]
        ch = CHARS[c - 1]
        if penalty is not None and ch in " ," and text:
            pen = penalty(text)
        return text + ch, pen

    # prefix -> [log P(ends in blank), log P(not), penalty of its judged part]
    beams: dict[tuple[int, ...], list[float]] = {(): [0.0, neg, 0.0]}
    for classes, probs in zip(np.rint(top[:, :, 0]).astype(np.int64).tolist(), top[:, :, 1].tolist()):
        if probs[0] >= sure and classes[0] == BLANK:  # a sure blank only ends every prefix in a blank
            lq = math.log(probs[0])
            beams = {prefix: [_logaddexp(lb, ln) + lq, neg, pen] for prefix, (lb, ln, pen) in beams.items()}
            continue
        choices = [(classes[0], math.log(probs[0]))] if probs[0] >= sure else \
            [(c, math.log(q)) for c, q in zip(classes, probs) if q > 1e-4]
        grown: dict[tuple[int, ...], list[float]] = {}
        for prefix, (lb, ln, pen) in beams.items():
            total = _logaddexp(lb, ln)
            for c, lq in choices:
                if c == BLANK:
                    slot = grown.setdefault(prefix, [neg, neg, pen])
                    slot[0] = _logaddexp(slot[0], total + lq)
                    continue
                longer = prefix + (c,)
                if longer not in texts:
                    texts[longer] = grow(prefix, c)
                slot = grown.setdefault(longer, [neg, neg, texts[longer][1]])
                if prefix and prefix[-1] == c:  # a repeat needs a blank between; without one it is the same letter
                    slot[1] = _logaddexp(slot[1], lb + lq)
                    same = grown.setdefault(prefix, [neg, neg, pen])
                    same[1] = _logaddexp(same[1], ln + lq)
                else:
                    slot[1] = _logaddexp(slot[1], total + lq)
        if len(grown) > beam:
            ranked = sorted(grown.items(), key=lambda kv: _logaddexp(kv[1][0], kv[1][1]) - kv[1][2], reverse=True)
            grown = dict(ranked[:beam])
        beams = grown
    found = [(normalize(texts[p][0]), _logaddexp(lb, ln)) for p, (lb, ln, _) in beams.items()]
    return sorted(found, key=lambda f: f[1] - (penalty(f[0]) if penalty else 0.0), reverse=True)


def ctc_log_prob(top: np.ndarray, text: str) -> float:
    """log P(text) under one line's (T, K, 2) best classes: the CTC forward sum over every alignment. A class
    outside a step's best K gets an equal share of what they leave, so a text the beam search never reached
    (a date the card rules imply) can still be scored; -inf for a text the alphabet cannot spell."""
    if not is_encodable(text):
        return -math.inf
    labels = encode(text)
    ext = np.array([BLANK] + [c for label in labels for c in (label, BLANK)])  # blank, l1, blank, l2, ..., blank
    classes = np.rint(top[:, :, 0]).astype(np.int64)
    probs = top[:, :, 1].astype(np.float64)
    rest = np.clip(1.0 - probs.sum(1), 1e-12, None) / max(1, NUM_CLASSES - top.shape[1])
    # log-probability of each of the text's classes at each step (T, len(ext)): only those, not all NUM_CLASSES
    logp = np.repeat(np.log(rest)[:, None], len(ext), axis=1)
    for k in range(top.shape[1]):
        logp = np.where(classes[:, k : k + 1] == ext[None], np.log(np.clip(probs[:, k : k + 1], 1e-12, None)), logp)
    if not labels:
        return float(logp[:, 0].sum())
    # a label may follow the one two back (skipping a blank) unless they are the same letter
    skip = np.zeros(len(ext), bool)
    skip[3::2] = ext[3::2] != ext[1:-2:2]
    alpha = np.full(len(ext), -np.inf)
    alpha[:2] = logp[0, :2]
    for t in range(1, top.shape[0]):
        prev1 = np.concatenate([[-np.inf], alpha[:-1]])
        prev2 = np.where(skip, np.concatenate([[-np.inf, -np.inf], alpha[:-2]]), -np.inf)
        alpha = np.logaddexp(np.logaddexp(alpha, prev1), prev2) + logp[t]
    return float(np.logaddexp(alpha[-1], alpha[-2]))
