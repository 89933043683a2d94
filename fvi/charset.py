"""The reader's alphabet: every Vietnamese letter with its diacritics (NFC), digits, punctuation.

Index 0 is the CTC blank. The order is fixed by construction (not by a data file) so that an
exported reader and the code decoding it always agree; `CHARSET_VERSION` guards that in model cards.
"""
from __future__ import annotations

import unicodedata

import numpy as np

CHARSET_VERSION = "vi-1"

_BASE_VOWELS = "aăâeêioôơuưy"
# combining marks for the five tones (grave, acute, hook above, tilde, dot below)
_TONES = ["", "\u0300", "\u0301", "\u0309", "\u0303", "\u0323"]
_CONSONANTS = "bcdđfghjklmnpqrstvwxz"
_DIGITS = "0123456789"
_PUNCT = " ,.-/:;()'\"&+#"


def _letters() -> list[str]:
    lower: list[str] = []
    for vowel in _BASE_VOWELS:
        for tone in _TONES:
            lower.append(unicodedata.normalize("NFC", vowel + tone))
    lower.extend(_CONSONANTS)
    return lower + [c.upper() for c in lower]


CHARS: list[str] = _letters() + list(_DIGITS) + list(_PUNCT)
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


def best_path(probs: np.ndarray) -> np.ndarray:
    """(…, T, C) softmax → (…, T, 2): best class and its probability per step.

    This is what the exported reader outputs (training.nets.BestPath): 2 numbers per step instead
    of 211 is 100x less to move between Triton steps, and greedy decoding needs nothing else.
    """
    return np.stack([probs.argmax(-1).astype(np.float32), probs.max(-1)], -1)


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
