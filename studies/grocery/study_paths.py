"""Where the grocery study's files live, for its scripts (run as `python studies/grocery/X.py`, so
this folder is on sys.path): the repository root, the shipped model's folder and the study's own
figures, and how many figures files are kept there (variants_tried). Importing it also puts the
repository root (edgeshop from this checkout) and tools/ (the documentation block writer,
readme_block.py) on sys.path."""

from __future__ import annotations

import sys
from pathlib import Path

STUDY = Path(__file__).resolve().parent
ROOT = STUDY.parents[1]
SHIPPED = ROOT / "models" / "grocery"  # the shipped files, their figures file and the short card
# the two shipped files that calibrate_shipped.py and reexport_shipped.py rewrite in place
SHIPPED_FILES = {"int8": SHIPPED / "grocery_int8.tflite", "float16": SHIPPED / "grocery_fp16.tflite"}
FIGURES = STUDY / "figures"  # everything measured by the study and not shipped
CONFIGS = STUDY / "configs"  # recipe variants tried and not shipped (configs/ keeps the shipped recipes)


def variants_tried(shipped: Path = SHIPPED, figures: Path = FIGURES) -> dict[str, int]:
    """Every run measured on val whose figures are kept: the shipped recipe's beside the model in
    ``shipped``, the others under the study's ``figures`` (``bench/grocery_*.json``: e.g. the distilled
    baseline). The card's ``variants_tried`` (runs whose figures were not kept cannot be counted)."""
    counts = {"shipped recipe": int((shipped / "figures_efficientnet_lite0.json").exists()),
              "baseline": int((figures / "figures_seed_cnn.json").exists()),
              "teacher": int((figures / "figures_efficientnet_lite1.json").exists())}  # make grocery-teacher
    counts["earlier shipped"] = len(list((figures / "history").glob("figures_*.json")))  # round 1
    for name in ("variants", "reruns", "soups", "holdout"):
        counts[name] = len(list((figures / name).glob("figures_*.json")))
    counts["in bench/"] = len(list((figures / "bench").glob("grocery_*.json")))
    counts["open-set variants"] = len(list((figures / "open_set" / "variants").glob("figures_*.json")))
    counts["total"] = sum(counts.values())
    return counts


for path in (ROOT / "tools", ROOT):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
