"""Guards of the Grocery recipe tools that must act before any training starts."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def _tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300, cwd=REPO)


def test_a_holdout_of_a_recipe_with_teachers_is_refused(tmp_path):
    """The round-2 recipe's teachers were trained on all of train: they have seen any hold-out of it."""
    done = _tool("tools/grocery_recipe.py", "--dataset", str(tmp_path), "--holdout", "0.1",
                 "--out", str(tmp_path / "run"), "--models-dir", str(tmp_path / "models"))
    assert done.returncode == 2, done.stderr[-2000:]
    assert "distils from teachers trained on all of train" in done.stderr
    assert "configs/grocery_round1.json" in done.stderr
    assert not (tmp_path / "run").exists()


def test_the_resolution_sweep_wants_its_reference_model_before_training(tmp_path):
    done = _tool("tools/resolution_sweep.py", "--dataset", str(tmp_path), "--runs-dir", str(tmp_path / "runs"),
                 "--reference", str(tmp_path / "missing.tflite"), "--no-readme")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "missing.tflite: not found; `make resolution-sweep` extracts" in done.stderr
    assert not (tmp_path / "runs").exists()
