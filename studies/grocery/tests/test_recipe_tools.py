"""Guards of the grocery study's scripts that must act before any training starts, and the open-set
benchmark's blocks against its committed figures."""

from __future__ import annotations

import subprocess
import sys

from .conftest import FIGURES, REPO


def _tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300, cwd=REPO)


def test_a_holdout_of_a_recipe_with_teachers_is_refused(tmp_path):
    """The round-2 recipe's teachers were trained on all of train: they have seen any hold-out of it."""
    done = _tool("studies/grocery/grocery_recipe.py", "--dataset", str(tmp_path), "--holdout", "0.1",
                 "--out", str(tmp_path / "run"), "--models-dir", str(tmp_path / "models"))
    assert done.returncode == 2, done.stderr[-2000:]
    assert "distils from teachers trained on all of train" in done.stderr
    assert "configs/grocery_round1.json" in done.stderr
    assert not (tmp_path / "run").exists()


def test_the_resolution_sweep_wants_its_reference_model_before_training(tmp_path):
    done = _tool("studies/grocery/resolution_sweep.py", "--dataset", str(tmp_path),
                 "--runs-dir", str(tmp_path / "runs"),
                 "--reference", str(tmp_path / "missing.tflite"), "--no-readme")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "missing.tflite: not found; `make resolution-sweep` extracts" in done.stderr
    assert not (tmp_path / "runs").exists()


def test_the_open_set_benchmark_scores_each_unseen_product_on_its_own_photos():
    import numpy as np
    from open_set_benchmark import per_class_auroc
    known = np.array([0.9, 0.8, 0.7])
    unknown = np.array([0.95, 0.1, 0.85, 0.2])  # a look-alike product scores like the known ones
    figures = per_class_auroc(known, unknown, ["look-alike", "distinct", "look-alike", "distinct"])
    assert figures["distinct"] == {"auroc": 1.0, "images": 2}
    assert figures["look-alike"]["auroc"] == (0 + 1 / 3) / 2 and figures["look-alike"]["images"] == 2


def test_the_reexport_record_is_not_overwritten_from_files_already_reexported():
    record = (FIGURES / "reexport.json").read_bytes()
    done = _tool("studies/grocery/reexport_shipped.py", "--dataset", "/nonexistent")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "already in the standard-client format" in done.stderr and "git show 26687d0" in done.stderr
    assert (FIGURES / "reexport.json").read_bytes() == record


def test_the_readme_open_set_blocks_are_what_the_committed_figures_render():
    """Edit the open-set figures by hand, or commit open_set.json without re-rendering, and this
    fails: rerun `python studies/grocery/open_set_benchmark.py --render-only`."""
    import json

    import open_set_benchmark as benchmark
    from readme_block import read_block

    shipped = json.loads((FIGURES / "open_set" / "open_set.json").read_text())
    for name, text in (("open-set", benchmark.render(shipped)), ("open-set-variants",
                                                                 benchmark.render_variants(shipped))):
        assert read_block(name).strip() == text.strip(), name


def test_the_outlier_exposure_tables_are_what_the_committed_figures_render():
    """Edit a figure of studies/grocery/outlier-exposure.md by hand, or commit a new proxy run without
    re-rendering, and this fails: rerun `python studies/grocery/outlier_exposure_proxy.py --render-only`."""
    import json

    import outlier_exposure_proxy as proxy
    from readme_block import read_block

    assert read_block("outlier-exposure-proxy") == proxy.render(json.loads(proxy.PROXY.read_text()))
    exploratory = [json.loads(p.read_text()) for p in proxy.EXPLORATORY]
    assert read_block("outlier-exposure-lambdas") == proxy.render_exploratory(exploratory)


def test_only_the_shipped_recipe_writes_its_figures_beside_the_shipped_model(tmp_path):
    """models/grocery/ keeps the shipped model's figures; the baseline, the teacher and the open-set
    model run into it keep theirs in the study's figures/; a run given its own --models-dir keeps its own."""
    from grocery_recipe import figures_dir
    from study_paths import SHIPPED

    assert figures_dir(SHIPPED, True, ship=True, excluded=False) == SHIPPED
    assert figures_dir(SHIPPED, True, ship=False, excluded=False) == FIGURES  # seed_cnn, efficientnet_lite1
    assert figures_dir(SHIPPED / "open_set", True, ship=True, excluded=True) == FIGURES / "open_set"
    own = tmp_path / "runs" / "grocery_seed1_models"
    assert figures_dir(own, False, ship=True, excluded=False) == own
    assert figures_dir(own, False, ship=False, excluded=True) == own
