"""Where the grocery study's files live, for its scripts (run as `python studies/grocery/X.py`, so
this folder is on sys.path): the repository root, the shipped model's folder and the study's own
figures. Importing it also puts the repository root (edgeshop from this checkout) and tools/ (the
documentation block writer, readme_block.py) on sys.path."""

from __future__ import annotations

import sys
from pathlib import Path

STUDY = Path(__file__).resolve().parent
ROOT = STUDY.parents[1]
SHIPPED = ROOT / "models" / "grocery"  # the shipped files, their figures file and the short card
FIGURES = STUDY / "figures"  # everything measured by the study and not shipped
CONFIGS = STUDY / "configs"  # recipe variants tried and not shipped (configs/ keeps the shipped recipes)

for path in (ROOT / "tools", ROOT):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
