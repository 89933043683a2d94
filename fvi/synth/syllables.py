"""Vietnamese syllables built from the spelling rules, for names no list holds (fvi.synth.identity.invent_words).

Card crops teach the reader the generator's names and streets as well as their letters: where a line wraps,
the first word has no context and the reader falls back on the spelling it saw most ("Đinh Bộ | Lĩnh" is read
"Linh", "đường | số 8" is read "Số 8"). Random syllables, each tone as likely as another, keep the letters
and marks and drop that prior.
"""
from __future__ import annotations

import unicodedata

import numpy as np

from fvi import orthography
from fvi.charset import TONES
from fvi.orthography import COMMON_RHYMES, FRONT, STOP_TONES

ONSETS = ("", "b", "c", "ch", "d", "đ", "g", "gi", "h", "kh", "l", "m", "n", "ng", "nh", "p", "ph", "qu", "r", "s",
          "t", "th", "tr", "v", "x")
# rhymes without their tone (the common ones: fvi.orthography); the vowel that takes the tone is the one with a
# modifier, else as in tone_index
RHYMES = COMMON_RHYMES
VOWELS = set("aăâeêioôơuưy")
MODIFIED = set("ăâêôơư")


def tone_index(rhyme: str) -> int:
    """Which letter of the rhyme carries the tone mark (the older placement the cards print: hòa, thủy)."""
    vowels = [i for i, ch in enumerate(rhyme) if ch in VOWELS]
    modified = [i for i in vowels if rhyme[i] in MODIFIED]
    if modified:
        return modified[-1]  # ươ: on the ơ
    if len(vowels) == 1 or vowels[-1] < len(rhyme) - 1:
        return vowels[-1]  # one vowel, or a final consonant: the last vowel (hoàn, thoát)
    return vowels[-2]  # open rhyme: the vowel before the last (hòa, mái)


def spell_onset(onset: str, rhyme: str) -> str:
    """c/k, g/gh, ng/ngh depend on the vowel after them."""
    if rhyme.startswith(FRONT):
        return {"c": "k", "g": "gh", "ng": "ngh", "gi": "g"}.get(onset, onset)
    return onset


def syllable(rng: np.random.Generator) -> str:
    """One onset, rhyme and tone drawn uniformly, spelt (c/k, g/gh, ng/ngh) and NFC-composed."""
    rhyme = RHYMES[int(rng.integers(len(RHYMES)))]
    onset = ONSETS[int(rng.integers(len(ONSETS)))]
    if onset == "qu" and rhyme.startswith(("u", "o")):
        onset = "c"
    if onset and rhyme.startswith("yê"):  # yên, yêu stand alone; after a consonant they are spelt iên, iêu
        rhyme = "i" + rhyme[1:]
    stop = rhyme.endswith(("c", "ch", "p", "t"))
    tones = STOP_TONES if stop else TONES
    tone = tones[int(rng.integers(len(tones)))]
    k = tone_index(rhyme)
    marked = rhyme[: k + 1] + tone + rhyme[k + 1 :]
    return unicodedata.normalize("NFC", spell_onset(onset, rhyme) + marked)



def old_tone_placement(word: str) -> str:
    """"hoà" → "hòa", "Thuỷ" → "Thủy": a syllable's tone moved where the cards put it (tone_index), in the word's
    case; a word that is no single syllable comes back unchanged."""
    nfd = unicodedata.normalize("NFD", word.lower())
    marks = [c for c in nfd if c in TONES[1:]]
    if len(marks) != 1:
        return word
    bare = unicodedata.normalize("NFC", "".join(c for c in nfd if c not in TONES[1:]))
    for onset in sorted(orthography.ONSETS, key=len, reverse=True):
        rhyme = bare[len(onset):]
        if bare.startswith(onset) and rhyme in orthography.RHYMES:
            k = tone_index(rhyme)
            out = unicodedata.normalize("NFC", onset + rhyme[: k + 1] + marks[0] + rhyme[k + 1 :])
            if len(word) > 1 and word.isupper():
                return out.upper()
            return out[:1].upper() + out[1:] if word[:1].isupper() else out
    return word
