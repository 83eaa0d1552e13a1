"""The resolution sweep's recipes and the seed soup (studies/grocery/resolution_sweep.py,
seed_soup.py), the soup on the session's tiny real run."""

from __future__ import annotations

import json

import numpy as np
import pytest


def test_resolution_sweep_scales_the_training_side_and_retrains_other_recipes(tmp_path):
    from resolution_sweep import same_recipe, sweep_recipe

    recipe = {"image_size": 288, "train_image_size": 256, "epochs": 12, "select_best_epoch": False}
    assert sweep_recipe(recipe, 144) == {**recipe, "image_size": 144, "train_image_size": 128}
    assert sweep_recipe({"image_size": 288, "epochs": 10}, 160) == {"image_size": 160, "epochs": 10}
    run = tmp_path / "run"
    run.mkdir()
    # A run saved before train_image_size / select_best_epoch existed: the old recipe.
    (run / "config.json").write_text(json.dumps({"data": "d", "out": "o", "image_size": 144, "epochs": 12}))
    assert not same_recipe(run, sweep_recipe(recipe, 144))
    assert same_recipe(run, {"image_size": 144, "epochs": 12})
    assert same_recipe(run, {"image_size": 144, "epochs": 12, "select_best_epoch": True})


def test_seed_soup_averages_runs_of_one_recipe_and_resumes_into_qat(pipeline, tmp_path):
    import shutil

    from seed_soup import make_soup

    from edgeshop import EdgeshopError
    from edgeshop.train import read_arrays, resume, write_arrays

    a, b = tmp_path / "a", tmp_path / "b"
    for run in (a, b):
        shutil.copytree(pipeline["run"], run, ignore=shutil.ignore_patterns("checkpoints", "tensorboard"))
    config = json.loads((b / "config.json").read_text())
    (b / "config.json").write_text(json.dumps({**config, "seed": 7}))
    original = read_arrays(a / "stages" / "train.weights.npz")[0]
    write_arrays(b / "stages" / "train.weights.npz", [w + 1 for w in original])

    assert make_soup([a, b], tmp_path / "soup") == len(original)
    soup = read_arrays(tmp_path / "soup" / "stages" / "train.weights.npz")[0]
    assert all(np.allclose(s, w + 0.5) for s, w in zip(soup, original, strict=True))
    with pytest.raises(EdgeshopError, match="soup exists; choose another --out"):
        make_soup([a, b], tmp_path / "soup")
    assert json.loads((tmp_path / "soup" / "state.json").read_text())["seconds"] == {}  # not run a's times
    (b / "config.json").write_text(json.dumps({**config, "epochs": 99}))
    with pytest.raises(EdgeshopError, match=r"differs .* beyond the seed \(schedule.epochs\)"):
        make_soup([a, b], tmp_path / "other")

    # the soup run continues with the recipe's later phases (prune, QAT) from the average
    metrics = resume(tmp_path / "soup", log=lambda *_: None)
    assert metrics["phases"] == ["train", "prune", "qat"]
    assert (tmp_path / "soup" / "stages" / "qat.weights.npz").is_file()
