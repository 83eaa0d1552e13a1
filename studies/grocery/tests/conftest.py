"""The grocery study's tests: its scripts' own logic, and its documents (studies/grocery/README.md,
model-card-details.md, the short card models/grocery/README.md) against the committed figures they
are rendered from. `make test` runs them (pyproject.toml's testpaths). Importable here: the study's
scripts, tools/ (readme_block) and the product tests' helpers (tests/: synthetic images, card_figures).
Constants for the test modules: `from .conftest import FIGURES, REPO`."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

STUDY = Path(__file__).resolve().parents[1]
REPO = STUDY.parents[1]
FIGURES = STUDY / "figures"
for _path in (REPO / "tests", REPO / "tools", STUDY):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

# The product tests' session fixtures (the tiny real pipeline), loaded under a name of their own:
# two folders' conftest.py cannot both be imported as `conftest`.
_spec = importlib.util.spec_from_file_location("edgeshop_product_conftest", REPO / "tests" / "conftest.py")
_product = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_product)
synthetic_data, pipeline = _product.synthetic_data, _product.pipeline
