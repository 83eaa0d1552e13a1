"""The rule for class and product names taken from folder names, CSV manifests and split
files, checked before any image is read (training, evaluation, calibration, enrolment).

A name becomes a label people read on a screen and that other tools (labels.txt, MediaPipe)
match byte for byte, so:
- it is normalised to NFC (a macOS folder name arrives decomposed: "Cafe" + U+0301 is "Café");
- characters that cannot be seen or that change how text around them is shown are refused:
  control characters (the model card's own rule, ``text_problem``), line and paragraph
  separators (U+2028, U+2029), and format characters (zero-width spaces and joiners, the
  byte-order mark U+FEFF, bidi embeddings/overrides/isolates U+202A-U+202E, U+2066-U+2069);
- leading or trailing white space is refused ("Kiwi " and "Kiwi" look the same);
- two names that are equal after NFKC normalisation and case folding ("Kiwi", "kiwi",
  fullwidth "Ｋｉｗｉ") are refused together: on a screen they are one product.
Letters of other scripts that merely look alike (Cyrillic "і" in "Kіwi") are not detected.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from edgeshop.tflite.modelcard import text_problem

INVISIBLE_CATEGORIES = ("Cf", "Zl", "Zp")  # format characters, line and paragraph separators


def normal_label(name: str) -> str:
    """``name`` in Unicode NFC, the form labels are stored and compared in."""
    return unicodedata.normalize("NFC", name)


def label_problem(name: object) -> str | None:
    """Why ``name`` cannot be a class or product name, or None when it can; the reason reads
    after "the class name " / "the product name "."""
    problem = text_problem(name)
    if problem or not isinstance(name, str):
        return problem
    if not name.strip():
        return f"must contain a visible character, got {name!r}"
    hidden = sorted({c for c in name if unicodedata.category(c) in INVISIBLE_CATEGORIES})
    if hidden:
        codes = ", ".join(f"U+{ord(c):04X} {unicodedata.name(c, 'unnamed')}" for c in hidden)
        return f"must not contain invisible or direction-changing characters: found {codes} in {name!r}"
    if name != name.strip():
        return f"must not start or end with white space: {name!r}"
    return None


def lookalike_key(name: str) -> str:
    """What two names must share to look alike: NFKC, case folded (Unicode's NFKC_Casefold idea)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def lookalikes(names: Iterable[str], existing: Iterable[str] = ()) -> list[tuple[str, str]]:
    """Pairs (name, the earlier name it looks like) among ``names``, and between ``names`` and
    ``existing``; names exactly equal to an ``existing`` one are the caller's to judge."""
    first: dict[str, str] = {}
    for name in existing:
        first.setdefault(lookalike_key(name), name)
    pairs = []
    for name in names:
        earlier = first.setdefault(lookalike_key(name), name)
        if earlier != name:
            pairs.append((name, earlier))
    return pairs
