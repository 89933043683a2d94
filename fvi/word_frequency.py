"""How common each Vietnamese word is in general text, so the reader's decoder can prefer the likelier of two
readings that both spell where the reader hesitated ("Văn" over "Van", "Nữ" over "Nừ").

The frequencies are wordfreq's small Vietnamese list (about 10,700 words counted in Wikipedia, news, subtitles and
web text): the language's, not a name or address list's, and nothing the synthetic cards' generator draws from.
"""
from __future__ import annotations

import math
from functools import lru_cache

import wordfreq

from fvi.orthography import NUMBER, words

# a word the list lacks counts as rare as its rarest words (1.02e-6): names and places often are
RAREST = 1e-6
# loaded with the module (a Triton model's start-up, 15 ms), not by the first request
FREQUENCIES: dict[str, float] = wordfreq.get_frequency_dict("vi", wordlist="small")


@lru_cache(maxsize=65536)
def word_cost(word: str) -> float:
    """Minus the word's log frequency (nats); a number costs nothing."""
    if NUMBER.fullmatch(word):
        return 0.0
    return -math.log(FREQUENCIES.get(word.lower(), RAREST))


def cost(text: str) -> float:
    """The text's words' costs, summed."""
    return sum(map(word_cost, words(text)))
