"""Real-data and long checks, too slow for every push: `make test-slow` (pytest -m slow).

They rerun what the README and the shipped model card publish and compare with the
committed figures: the shipped model on the Grocery val split (needs the dataset at
../shared/datasets/grocery_store or $EDGESHOP_GROCERY), and `make demo` itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from edgeshop.data import discover, read_hierarchy
from edgeshop.report.model_card_document import summary
from edgeshop.runtime.audit import audit_model
from edgeshop.runtime.bench import machine_info

pytestmark = pytest.mark.slow

GROCERY = Path(os.environ.get("EDGESHOP_GROCERY", REPO.parent / "shared" / "datasets" / "grocery_store"))


@pytest.mark.parametrize("fmt", ["int8", "float16"])
def test_shipped_model_reproduces_its_published_val_figures(fmt):
    if not (GROCERY / "val").is_dir():
        pytest.skip(f"the Grocery Store dataset is not at {GROCERY} (set EDGESHOP_GROCERY)")
    figures = json.loads((REPO / "models" / "grocery" / "figures_efficientnet_lite0.json").read_text())
    published = figures[fmt]["val"]
    measured = summary(REPO / "models" / "grocery" / figures[fmt]["file"], discover(GROCERY / "val"),
                       read_hierarchy(GROCERY / "classes.csv"))
    assert measured["n"] == published["n"]
    n = measured["n"]
    for key in ("top1", "top5", "coarse_top1"):  # the same file on the same images: at most one image apart
        assert abs(measured[key] - published[key]) * n <= 1.001, (key, measured[key], published[key])


def test_make_demo_prints_what_the_readme_publishes(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run([sys.executable, "-m", "edgeshop.cli.demo", "--out", str(out), "--json",
                             str(tmp_path / "demo.json")], capture_output=True, text=True, timeout=3600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| int8    |" in result.stdout and "| float32 |" in result.stdout
    ours = json.loads((tmp_path / "demo.json").read_text())
    published = json.loads((REPO / "bench" / "demo.json").read_text())
    models = ours["models"]
    assert audit_model((out / "model_int8.tflite").read_bytes())["fully_integer"]
    assert models["int8"]["size_bytes"] < 0.35 * models["float32"]["size_bytes"]
    assert min(m["top1"] for m in models.values()) > 0.4  # 10 classes: chance is 0.1
    assert (ours["train_images"], ours["val_images"], ours["test_images"]) == (
        published["train_images"], published["val_images"], published["test_images"])
    if machine_info()["cpu"] == published["machine"]["cpu"] and ours["settings"] == published["settings"]:
        # --deterministic: on the machine the README's figures came from, the same accuracies
        assert {k: m["top1"] for k, m in models.items()} == {k: m["top1"] for k, m in published["models"].items()}
