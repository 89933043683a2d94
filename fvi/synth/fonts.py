"""The font families a card can be set in: every one spells all of fvi.charset.CHARS, split once and for all
into the families training data may use and those kept for a held-out evaluation (fvi.synth.domain).

A reader trained and tested on the same few fonts learns their shapes, and its test figures say nothing about a
card printed in another face. The held-out families are never rendered into training data, so a test set drawn
in them measures how the reader does on letter shapes it has not seen. Debian's font packages ship the files
(scripts/setup.sh installs them); a family whose files are missing is simply not offered.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from fvi.charset import CHARS

# where Debian's font packages put their files (TeX Gyre lives in the TeX tree)
FONT_ROOTS: tuple[Path, ...] = (Path("/usr/share/fonts"), Path("/usr/share/texmf/fonts"),
                                Path("/usr/share/texlive/texmf-dist/fonts"))
KINDS = ("sans", "serif", "condensed", "mono", "slab")
FACES = ("regular", "bold", "italic", "bold_italic")


@dataclass(frozen=True)
class Family:
    """A family's faces as file names (unique on a Debian system); a face it lacks falls back to the nearest
    it has: bold italic to bold, italic to regular, bold to regular."""

    name: str
    kind: str
    regular: str
    bold: str | None = None
    italic: str | None = None
    bold_italic: str | None = None

    def file(self, face: str = "regular") -> str:
        if face not in FACES:
            raise ValueError(f"face {face!r}: expected one of {', '.join(FACES)}")
        if face == "bold_italic":
            return self.bold_italic or self.bold or self.italic or self.regular
        return getattr(self, face) or self.regular

    def files(self) -> tuple[str, ...]:
        """Every file the family names, each once."""
        return tuple(dict.fromkeys(f for f in (self.regular, self.bold, self.italic, self.bold_italic) if f))


def _f(name: str, kind: str, *files: str | None) -> Family:
    return Family(name, kind, *files)


CATALOGUE: dict[str, Family] = {f.name: f for f in (
    # the five the renderer has always used (fvi.synth.domain.TRAIN)
    _f("DejaVu Sans", "sans", "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf"),
    _f("Noto Sans", "sans", "NotoSans-Regular.ttf", "NotoSans-Bold.ttf", "NotoSans-Italic.ttf", "NotoSans-BoldItalic.ttf"),
    _f("Liberation Sans", "sans", "LiberationSans-Regular.ttf", "LiberationSans-Bold.ttf", "LiberationSans-Italic.ttf",
       "LiberationSans-BoldItalic.ttf"),
    _f("FreeSans", "sans", "FreeSans.ttf", "FreeSansBold.ttf", "FreeSansOblique.ttf", "FreeSansBoldOblique.ttf"),
    _f("Roboto", "sans", "Roboto-Regular.ttf", "Roboto-Bold.ttf", "Roboto-Italic.ttf", "Roboto-BoldItalic.ttf"),
    # more sans
    _f("Noto Sans Display", "sans", "NotoSansDisplay-Regular.ttf", "NotoSansDisplay-Bold.ttf", "NotoSansDisplay-Italic.ttf",
       "NotoSansDisplay-BoldItalic.ttf"),
    _f("Lato", "sans", "Lato-Regular.ttf", "Lato-Bold.ttf", "Lato-Italic.ttf", "Lato-BoldItalic.ttf"),
    _f("Cantarell", "sans", "Cantarell-Regular.otf", "Cantarell-Bold.otf"),
    _f("Andika", "sans", "Andika-Regular.ttf", "Andika-Bold.ttf", "Andika-Italic.ttf", "Andika-BoldItalic.ttf"),
    _f("Linux Biolinum O", "sans", "LinBiolinum_R.otf", "LinBiolinum_RB.otf", "LinBiolinum_RI.otf"),
    _f("TeX Gyre Adventor", "sans", "texgyreadventor-regular.otf", "texgyreadventor-bold.otf", "texgyreadventor-italic.otf",
       "texgyreadventor-bolditalic.otf"),
    _f("TeX Gyre Heros", "sans", "texgyreheros-regular.otf", "texgyreheros-bold.otf", "texgyreheros-italic.otf",
       "texgyreheros-bolditalic.otf"),
    _f("Open Sans", "sans", "OpenSans-Regular.ttf", "OpenSans-Bold.ttf", "OpenSans-Italic.ttf", "OpenSans-BoldItalic.ttf"),
    _f("Inter", "sans", "Inter-Regular.otf", "Inter-Bold.otf", "Inter-Italic.otf", "Inter-BoldItalic.otf"),
    _f("Carlito", "sans", "Carlito-Regular.ttf", "Carlito-Bold.ttf", "Carlito-Italic.ttf", "Carlito-BoldItalic.ttf"),
    # condensed
    _f("DejaVu Sans Condensed", "condensed", "DejaVuSansCondensed.ttf", "DejaVuSansCondensed-Bold.ttf",
       "DejaVuSansCondensed-Oblique.ttf", "DejaVuSansCondensed-BoldOblique.ttf"),
    _f("DejaVu Serif Condensed", "condensed", "DejaVuSerifCondensed.ttf", "DejaVuSerifCondensed-Bold.ttf",
       "DejaVuSerifCondensed-Italic.ttf", "DejaVuSerifCondensed-BoldItalic.ttf"),
    _f("Roboto Condensed", "condensed", "RobotoCondensed-Regular.ttf", "RobotoCondensed-Bold.ttf", "RobotoCondensed-Italic.ttf",
       "RobotoCondensed-BoldItalic.ttf"),
    _f("TeX Gyre Heros Cn", "condensed", "texgyreheroscn-regular.otf", "texgyreheroscn-bold.otf", "texgyreheroscn-italic.otf",
       "texgyreheroscn-bolditalic.otf"),
    # Open Sans Condensed ships light, light italic and bold only: light stands in for regular
    _f("Open Sans Condensed", "condensed", "OpenSans-CondLight.ttf", "OpenSans-CondBold.ttf", "OpenSans-CondLightItalic.ttf"),
    # serif
    _f("DejaVu Serif", "serif", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf"),
    _f("Noto Serif", "serif", "NotoSerif-Regular.ttf", "NotoSerif-Bold.ttf", "NotoSerif-Italic.ttf", "NotoSerif-BoldItalic.ttf"),
    _f("Noto Serif Display", "serif", "NotoSerifDisplay-Regular.ttf", "NotoSerifDisplay-Bold.ttf",
       "NotoSerifDisplay-Italic.ttf", "NotoSerifDisplay-BoldItalic.ttf"),
    _f("Liberation Serif", "serif", "LiberationSerif-Regular.ttf", "LiberationSerif-Bold.ttf", "LiberationSerif-Italic.ttf",
       "LiberationSerif-BoldItalic.ttf"),
    _f("FreeSerif", "serif", "FreeSerif.ttf", "FreeSerifBold.ttf", "FreeSerifItalic.ttf", "FreeSerifBoldItalic.ttf"),
    # Gentium (fonts-sil-gentium) has no bold: regular stands in
    _f("Gentium", "serif", "Gentium-R.ttf", None, "Gentium-I.ttf"),
    # Linux Libertine's bold italic and EB Garamond's bold lack ơ and ư, or every Vietnamese letter: not named
    _f("Linux Libertine O", "serif", "LinLibertine_R.otf", "LinLibertine_RB.otf", "LinLibertine_RI.otf"),
    _f("TeX Gyre Bonum", "serif", "texgyrebonum-regular.otf", "texgyrebonum-bold.otf", "texgyrebonum-italic.otf",
       "texgyrebonum-bolditalic.otf"),
    _f("TeX Gyre Schola", "serif", "texgyreschola-regular.otf", "texgyreschola-bold.otf", "texgyreschola-italic.otf",
       "texgyreschola-bolditalic.otf"),
    _f("TeX Gyre Termes", "serif", "texgyretermes-regular.otf", "texgyretermes-bold.otf", "texgyretermes-italic.otf",
       "texgyretermes-bolditalic.otf"),
    _f("TeX Gyre Pagella", "serif", "texgyrepagella-regular.otf", "texgyrepagella-bold.otf", "texgyrepagella-italic.otf",
       "texgyrepagella-bolditalic.otf"),
    _f("Charis SIL", "serif", "CharisSIL-Regular.ttf", "CharisSIL-Bold.ttf", "CharisSIL-Italic.ttf", "CharisSIL-BoldItalic.ttf"),
    _f("EB Garamond", "serif", "EBGaramond12-Regular.otf", None, "EBGaramond12-Italic.otf"),
    # slab and mono (DejaVu Sans Mono lacks the Vietnamese letters with a hook or tilde above a circumflex or breve)
    _f("Roboto Slab", "slab", "RobotoSlab-Regular.otf", "RobotoSlab-Bold.otf"),
    _f("Liberation Mono", "mono", "LiberationMono-Regular.ttf", "LiberationMono-Bold.ttf", "LiberationMono-Italic.ttf",
       "LiberationMono-BoldItalic.ttf"),
    _f("FreeMono", "mono", "FreeMono.ttf", "FreeMonoBold.ttf", "FreeMonoOblique.ttf", "FreeMonoBoldOblique.ttf"),
    _f("TeX Gyre Cursor", "mono", "texgyrecursor-regular.otf", "texgyrecursor-bold.otf", "texgyrecursor-italic.otf",
       "texgyrecursor-bolditalic.otf"),
)}

# Never rendered into training data: sans, condensed and serif faces of other designs than TRAIN_FAMILIES'.
# (TeX Gyre Heros and Termes are Helvetica and Times clones, as the cards' own faces are Arial- and Times-like;
# FreeSans and FreeSerif in TRAIN come from the same URW originals, so those two are the nearest pairs.)
HELD_OUT_FAMILIES: tuple[str, ...] = (
    "TeX Gyre Heros", "Open Sans", "Inter", "Carlito",
    "TeX Gyre Heros Cn", "Open Sans Condensed",
    "TeX Gyre Termes", "TeX Gyre Pagella", "Charis SIL", "EB Garamond",
)
TRAIN_FAMILIES: tuple[str, ...] = tuple(name for name in CATALOGUE if name not in HELD_OUT_FAMILIES)


@lru_cache(maxsize=1)
def font_files() -> dict[str, Path]:
    """Every installed .ttf/.otf under FONT_ROOTS by file name."""
    return {p.name: p for root in FONT_ROOTS if root.is_dir() for p in sorted(root.rglob("*"))
            if p.suffix.lower() in (".ttf", ".otf")}


def installed(family: Family) -> bool:
    return all(f in font_files() for f in family.files())


def face_path(family: Family, face: str = "regular") -> Path:
    """The file of a face (or of the face it falls back to); KeyError when the family is not installed."""
    return font_files()[family.file(face)]


def installed_families(names: tuple[str, ...] | list[str], kinds: tuple[str, ...] = KINDS) -> list[Family]:
    """The named catalogue families of those kinds whose files are all on disk, in the order given."""
    return [f for f in (CATALOGUE[n] for n in names) if f.kind in kinds and installed(f)]


def missing_chars(path: Path, chars: list[str] | str = CHARS) -> list[str]:
    """The characters of `chars` the font file has no glyph for (fontTools reads its character map)."""
    from fontTools.ttLib import TTFont

    cmap = TTFont(str(path), lazy=True).getBestCmap()
    return [c for c in dict.fromkeys(chars) if c != " " and ord(c) not in cmap]
