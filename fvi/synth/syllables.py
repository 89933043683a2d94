"""Vietnamese syllables built from the spelling rules, in random order: reader text with no word prior.

The card crops teach the reader the generator's names and streets as well as their letters. Where a line
wraps, the first word has no context and the reader falls back on the spelling it saw most ("Đinh Bộ |
Lĩnh" is read "Linh", "đường | số 8" is read "Số 8"). Lines of random syllables, each tone as likely as
any other, keep the letters and marks and drop the prior, so other name and address lists read as well.
"""
from __future__ import annotations

import unicodedata

import numpy as np

ONSETS = ("", "b", "c", "ch", "d", "đ", "g", "gi", "h", "kh", "l", "m", "n", "ng", "nh", "p", "ph", "qu", "r", "s",
          "t", "th", "tr", "v", "x")
# rhymes without their tone; the vowel that takes the tone is the one with a modifier, else as in tone_index
RHYMES = tuple("""a ai ao au ay am an ang anh ac ach ap at ăm ăn ăng ăc ăp ăt âu ây âm ân âng âc âp ât e eo em en eng ec
ep et ê êu êm ên ênh êch êp êt i ia iu im in inh ich ip it iêu iêm iên iêng iêc iêp iêt o oa oai oay oan oang oanh
oac oach oat oe oen oet oi om on ong oc op ot ô ôi ôm ôn ông ôc ôp ôt ơ ơi ơm ơn ơp ơt u ua uân uât uê uy uya uyên
uyêt uynh uych ui um un ung uc up ut uôi uôm uôn uông uôc uôt ư ưa ưi ưu ưng ưc ưt ươi ươu ươm ươn ương ươc ươp ươt
y yêu yên""".split())
TONES = ("", "\u0300", "\u0301", "\u0309", "\u0303", "\u0323")  # level, huyền, sắc, hỏi, ngã, nặng
STOP_TONES = ("\u0301", "\u0323")  # a rhyme ending in c, ch, p or t takes only sắc or nặng
VOWELS = set("aăâeêioôơuưy")
MODIFIED = set("ăâêôơư")
FRONT = ("i", "e", "ê", "y")


def tone_index(rhyme: str) -> int:
    """Which letter of the rhyme carries the tone mark (the older placement the cards print: hòa, thủy)."""
    vowels = [i for i, ch in enumerate(rhyme) if ch in VOWELS]
    modified = [i for i in vowels if rhyme[i] in MODIFIED]
    if modified:
        return modified[-1]  # ươ: on the ơ
    if len(vowels) == 1 or vowels[-1] < len(rhyme) - 1:
        return vowels[-1]  # one vowel, or a final consonant: the last vowel (hoàn, thuyết)
    return vowels[-2] if len(vowels) >= 2 else vowels[0]  # open rhyme: the vowel before the last (hòa, mái)


def spell_onset(onset: str, rhyme: str) -> str:
    """c/k, g/gh, ng/ngh depend on the vowel after them."""
    if rhyme.startswith(FRONT):
        return {"c": "k", "g": "gh", "ng": "ngh", "gi": "g"}.get(onset, onset)
    return onset


def syllable(rng: np.random.Generator) -> str:
    rhyme = RHYMES[int(rng.integers(len(RHYMES)))]
    onset = ONSETS[int(rng.integers(len(ONSETS)))]
    if onset == "qu" and rhyme.startswith(("u", "o")):
        onset = "c"
    if onset and rhyme.startswith("yê"):  # yên, yêu stand alone; after a consonant they are spelt iên, iêu
        rhyme = "i" + rhyme[1:]
    stop = rhyme.endswith(("c", "ch", "p", "t"))
    tone = (STOP_TONES if stop else TONES)[int(rng.integers(2 if stop else 6))]
    k = tone_index(rhyme)
    marked = rhyme[: k + 1] + tone + rhyme[k + 1 :]
    return unicodedata.normalize("NFC", spell_onset(onset, rhyme) + marked)


def syllable_line(rng: np.random.Generator) -> str:
    """1-9 syllables, cased as cards print them (Title for names and places, UPPER names, lower words),
    now and then a comma or a number between them, as in an address."""
    words = [syllable(rng) for _ in range(int(rng.integers(1, 10)))]
    case = rng.random()
    if case < 0.5:
        words = [w[:1].upper() + w[1:] for w in words]
    elif case < 0.7:
        words = [w.upper() for w in words]
    elif case < 0.8:
        words[0] = words[0][:1].upper() + words[0][1:]
    out = []
    for w in words:
        r = rng.random()
        if r < 0.08:
            out.append(str(int(rng.integers(1, 1000))) + ("/" + str(int(rng.integers(1, 100))) if rng.random() < 0.3 else ""))
        out.append(w + ("," if rng.random() < 0.12 else ""))
    return " ".join(out).rstrip(",")
