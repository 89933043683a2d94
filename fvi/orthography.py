"""Vietnamese spelling: which words can be written at all, so the reader's decoder can prefer them.

Every Vietnamese syllable is an onset, a rhyme and one tone, and rhymes ending in c, ch, p or t take only
the sắc or nặng tone. A reading like "Nghiêa", "Câau" or "Phạmm" breaks those rules, and the reader's own
second guess at the doubtful step is often the right letter (fvi.reader.decode). The rules are
the language's, not any name list's: every name and place on a real card follows them, apart from words
of other languages (Pasteur, Alexandre de Rhodes) and the few highland names the province list holds
(Đắk Lắk); those are only disfavoured, never rewritten without the reader's own evidence.
"""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from fvi.charset import PUNCTUATION, TONES
from fvi.validate import PROVINCE_PHRASES

ONSETS = ("", "b", "c", "ch", "d", "đ", "g", "gh", "gi", "h", "k", "kh", "l", "m", "n", "ng", "ngh", "nh", "p", "ph",
          "qu", "r", "s", "t", "th", "tr", "v", "x")
# rhymes without their tone (fvi.synth.syllables draws names from these)
COMMON_RHYMES = tuple("""a ai ao au ay am an ang anh ac ach ap at ăm ăn ăng ăc ăp ăt âu ây âm ân âng âc âp ât e eo em en
eng ec ep et ê êu êm ên ênh êch êp êt i ia iu im in inh ich ip it iêu iêm iên iêng iêc iêp iêt o oa oai oay oan oang
oanh oac oach oat oe oen oet oi om on ong oc op ot ô ôi ôm ôn ông ôc ôp ôt ơ ơi ơm ơn ơp ơt u ua uân uât uê uy uya
uyên uyêt uynh uych ui um un ung uc up ut uôi uôm uôn uông uôc uôt ư ưa ưi ưu ưng ưc ưt ươi ươu ươm ươn ương ươc
ươp ươt y yêu yên""".split())
# rare but real (xoắn, xoong, khuỷu, huýt, thuở, khuấy, khuếch, yếm): accepted, never drawn
RARE_RHYMES = tuple("oăn oăng oăt oăc oăm oao oap oeo oong ooc uơ uâng uây uênh uêch uyt uyu yêm ưm".split())
RHYMES = frozenset(COMMON_RHYMES + RARE_RHYMES)
STOP_FINALS = ("c", "ch", "p", "t")
TONE_MARKS = frozenset(TONES) - {""}
STOP_TONES = ("\u0301", "\u0323")  # a rhyme ending in c, ch, p or t takes only sắc or nặng
FRONT = ("i", "e", "ê", "y")
_WORD = re.compile(f"[^\\s{re.escape(PUNCTUATION)}]+")  # what lies between spaces and the charset's punctuation
NUMBER = re.compile(r"\d+[A-Z]?")
# words of the 63 province names written outside the rules (Đắk Lắk, Bắc Kạn, Kon Tum): always accepted
PROVINCE_WORDS = frozenset(w.lower() for phrase in PROVINCE_PHRASES for w in _WORD.findall(phrase))


def _untoned(word: str) -> tuple[str, list[str]]:
    """Lower-case word → (the word without its tone mark, the tone marks found)."""
    parts = unicodedata.normalize("NFD", word)
    tones = [c for c in parts if c in TONE_MARKS]
    return unicodedata.normalize("NFC", "".join(c for c in parts if c not in TONE_MARKS)), tones


def _onset_fits(onset: str, rhyme: str) -> bool:
    """k, gh and ngh go before i, e, ê, y; c, g (but gi) and ng do not; qu is never followed by u or o."""
    if onset in ("k", "gh", "ngh"):
        return rhyme.startswith(FRONT)
    if onset in ("c", "ng"):
        return not rhyme.startswith(FRONT)
    if onset == "qu":
        return not rhyme.startswith(("u", "o"))
    return True


@lru_cache(maxsize=65536)
def is_syllable(word: str) -> bool:
    """One Vietnamese syllable, any case (lower, Capitalised or UPPER; not mixed), at most one tone."""
    if not (word.islower() or word.isupper() or (word[:1].isupper() and word[1:].islower())):
        return False
    lower = word.lower()
    if lower in PROVINCE_WORDS:
        return True
    bare, tones = _untoned(lower)
    if len(tones) > 1:
        return False
    for onset in ONSETS:
        if not bare.startswith(onset):
            continue
        rhyme = bare[len(onset):]
        if onset == "gi" and (rhyme == "" or rhyme not in RHYMES):
            rhyme = "i" + rhyme  # gì, giếng: the onset's i is the rhyme's
        if rhyme in RHYMES and _onset_fits(onset, rhyme):
            if rhyme.endswith(STOP_FINALS) and not (tones and tones[0] in STOP_TONES):
                continue
            return True
    return False


def words(text: str) -> list[str]:
    """What lies between spaces and the charset's punctuation."""
    return _WORD.findall(text)


def bad_words(text: str) -> int:
    """How many words of a line could not be written in Vietnamese: a word is what lies between spaces and
    punctuation, and is a syllable or a number (a house number may end in one capital: 12A); "4õ" is neither."""
    return sum(not (NUMBER.fullmatch(w) or is_syllable(w)) for w in words(text))
