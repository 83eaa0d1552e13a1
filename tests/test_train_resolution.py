"""Training the float phases at a lower resolution than the exported model, and the
fixed-schedule mode that keeps the last epoch (edgeshop/train/fit.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeshop import Classifier
from edgeshop.data import discover
from edgeshop.errors import EdgeshopError
from edgeshop.runtime.preprocess import read_image


def test_augmenter_resizes_crops_to_the_training_size():
    from edgeshop.train._keras import tf
    from edgeshop.train.augment import AugmentConfig, make_augmenter

    images = tf.constant(np.random.default_rng(0).uniform(0, 255, (3, 48, 48, 3)).astype(np.float32))
    out = make_augmenter(AugmentConfig(), seed=0, output_size=32)(images, tf.constant([1, 2]))
    assert out.shape == (3, 32, 32, 3)
    assert make_augmenter(AugmentConfig(), seed=0)(images, tf.constant([1, 2])).shape == (3, 48, 48, 3)


def test_fixed_schedule_disables_epoch_selection_and_early_stopping():
    from edgeshop.train.architectures import get_architecture
    from edgeshop.train.config import TrainConfig
    from edgeshop.train.fit import plan_phases

    arch = get_architecture("efficientnet_lite0")
    chosen = plan_phases(TrainConfig.from_flat(data="x", out="y"), arch)
    fixed = plan_phases(TrainConfig.from_flat(data="x", out="y", select_best_epoch=False), arch)
    assert [(p.keep_best, p.patience) for p in chosen] == [(True, None), (True, 4)]
    assert [(p.keep_best, p.patience) for p in fixed] == [(False, None), (False, None)]


def test_fixed_size_architecture_refuses_a_training_size(synthetic_data, tmp_path):
    from edgeshop.train.config import TrainConfig
    from edgeshop.train.fit import TrainingRun

    config = TrainConfig.from_flat(data=str(synthetic_data["train"]), out=str(tmp_path / "run"), arch="seed_cnn",
                         image_size=48, train_image_size=32)
    with pytest.raises(EdgeshopError, match="train-image-size"):
        TrainingRun(config)


def test_train_small_then_qat_and_export_at_full_size(synthetic_data, tmp_path):
    from edgeshop.train.config import TrainConfig
    from edgeshop.train.exporter import export
    from edgeshop.train.fit import train

    run = tmp_path / "run"
    lines: list[str] = []
    config = TrainConfig.from_flat(
        data=str(synthetic_data["train"]), out=str(run), val_fraction=0.2, arch="tiny", image_size=48,
        train_image_size=32, select_best_epoch=False, epochs=6, batch_size=16, lr=3e-3, qat=True,
        qat_epochs=1, qat_lr=1e-4,
    )
    metrics = train(config, log=lambda line: lines.append(str(line)))
    assert "[train] training at 32 px, validating at 48 px" in lines
    assert not any("kept epoch" in line for line in lines)  # nothing chosen on val
    assert metrics["val_top1_final"] > 0.8  # 3 classes, chance 0.33: the 32 px weights work at 48 px
    state = json.loads((run / "state.json").read_text())
    assert state["best_epoch"] is None
    card = json.loads((run / "card.json").read_text())
    assert card["extra"]["training"]["train_image_size"] == 32
    model = tmp_path / "int8.tflite"
    export(run, model, "int8")
    classifier = Classifier(model, threads=1)
    assert (classifier.card.input.height, classifier.card.input.width) == (48, 48)
    assert classifier.info["input_shape"] == [1, 48, 48, 3]
    # the exported 48 px model classifies the held-out images, not only returns some label
    test = discover(synthetic_data["test"])
    correct = [classifier.classify(read_image(s.path), top_k=1)[0].label == s.label for s in test]
    assert np.mean(correct) > 0.8
