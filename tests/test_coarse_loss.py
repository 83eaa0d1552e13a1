"""The coarse-class loss term (edgeshop/train/losses.py) and its wiring into training."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import CLASSES

from edgeshop.errors import DataError, EdgeshopError


def _loss(weight: float, smoothing: float = 0.0):
    from edgeshop.train.losses import make_loss

    # fine classes 0 and 1 share coarse class 0; fine class 2 is coarse class 1
    return make_loss(smoothing, np.array([0, 0, 1]), weight)


def test_coarse_term_penalises_mistakes_across_coarse_classes_only():
    from edgeshop.train.losses import FineAndCoarseCrossentropy

    truth = np.array([[1.0, 0.0, 0.0]])
    near_miss = np.array([[0.2, 0.7, 0.1]])  # wrong fine class, right coarse class
    far_miss = np.array([[0.2, 0.1, 0.7]])  # wrong coarse class, same fine probability
    plain, combined = _loss(0.0), _loss(1.0)
    assert isinstance(combined, FineAndCoarseCrossentropy)
    assert float(plain(truth, near_miss)) == pytest.approx(float(plain(truth, far_miss)))
    # coarse term: -log(0.9) for the near miss, -log(0.3) for the far one
    assert float(combined(truth, near_miss)) - float(plain(truth, near_miss)) == pytest.approx(-np.log(0.9), rel=1e-4)
    assert float(combined(truth, far_miss)) - float(plain(truth, far_miss)) == pytest.approx(-np.log(0.3), rel=1e-4)


def test_coarse_term_takes_soft_targets_and_keeps_label_smoothing():
    truth = np.array([[0.5, 0.0, 0.5]])  # a MixUp target across coarse classes
    prediction = np.array([[0.25, 0.25, 0.5]])
    plain, combined = _loss(0.0, smoothing=0.1), _loss(0.5, smoothing=0.1)
    coarse = -(0.5 * np.log(0.5) + 0.5 * np.log(0.5))
    assert float(combined(truth, prediction)) == pytest.approx(float(plain(truth, prediction)) + 0.5 * coarse, rel=1e-4)


def test_hierarchy_must_cover_every_class_and_exist(tmp_path):
    from edgeshop.data import coarse_index, read_hierarchy
    from edgeshop.train.config import TrainConfig

    assert list(coarse_index(["b", "a", "c"], {"a": "X", "b": "Y", "c": "X"}, "h.csv")) == [1, 0, 0]
    with pytest.raises(DataError, match=r"h.csv: no coarse class for \['c'\]"):
        coarse_index(["a", "c"], {"a": "X"}, "h.csv")
    with pytest.raises(DataError, match="missing.csv: cannot read"):
        read_hierarchy(tmp_path / "missing.csv")
    with pytest.raises(EdgeshopError, match="needs data.hierarchy"):
        TrainConfig.from_flat(data="x", out="y", coarse_loss_weight=1.0).validate()


def test_training_with_a_coarse_loss_through_qat(synthetic_data, tmp_path):
    from edgeshop.train.config import TrainConfig
    from edgeshop.train.fit import train

    hierarchy = tmp_path / "classes.csv"
    coarse = ["first", "first"] + ["second"] * (len(CLASSES) - 2)
    hierarchy.write_text("name,id,coarse\n" + "".join(f"{c},{i},{k}\n" for i, (c, k) in
                                                     enumerate(zip(CLASSES, coarse, strict=True))))
    lines: list[str] = []
    config = TrainConfig.from_flat(data=str(synthetic_data["train"]), out=str(tmp_path / "run"), val_fraction=0.2,
                         arch="tiny", image_size=32, epochs=4, batch_size=16, lr=3e-3, qat=True, qat_epochs=1,
                         qat_lr=1e-4, hierarchy=str(hierarchy), coarse_loss_weight=1.0)
    metrics = train(config, log=lambda line: lines.append(str(line)))
    assert f"class hierarchy: {len(CLASSES)} fine -> 2 coarse classes, coarse loss weight 1.0" in lines
    # a validation split drawn at random from the training folders says that it can leak
    assert any(line.startswith("validation: a random 0.2 of each class") and "pass --val" in line for line in lines)
    assert metrics["val_top1_final"] > 0.6

    # The loss Keras trained with is the combined one: the val_loss it logged for the last QAT
    # epoch is the combined loss of the final model on the val images, not the plain one.
    import csv
    import json

    from edgeshop.data import coarse_index, load_images, read_hierarchy
    from edgeshop.tflite.modelcard import ModelCard
    from edgeshop.train.fit import split_samples
    from edgeshop.train.losses import make_loss
    from edgeshop.train.run_model import load_run_model

    run = tmp_path / "run"
    with open(run / "training_log.csv") as handle:
        logged = float([row for row in csv.DictReader(handle) if row["phase"] == "qat"][-1]["val_loss"])
    spec = ModelCard.from_json((run / "card.json").read_text()).input
    names = (run / "labels.txt").read_text().split()
    val = load_images(split_samples(config)[1], names, spec)
    truth = np.eye(len(names))[val.labels]
    predicted = load_run_model(run, final=True).predict(val.pixels.astype(np.float32), verbose=0)
    smoothing = json.loads((run / "config.json").read_text())["schedule"]["label_smoothing"]
    coarse_of = coarse_index(names, read_hierarchy(hierarchy), hierarchy)
    plain = float(make_loss(smoothing)(truth, predicted))
    combined = float(make_loss(smoothing, coarse_of, 1.0)(truth, predicted))
    assert combined - plain > 0.01  # the coarse term is not negligible here
    assert logged == pytest.approx(combined, abs=1e-3) and logged != pytest.approx(plain, abs=1e-3)
