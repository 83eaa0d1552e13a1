"""Outlier exposure (edgeshop/train/outlier_exposure.py): partners, CutMix outliers and the
loss they add, on hand-checked small cases; and one real tiny training with it switched on."""

from __future__ import annotations

import math

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from edgeshop.errors import EdgeshopError  # noqa: E402
from edgeshop.train._keras import keras  # noqa: E402
from edgeshop.train.config import TrainConfig  # noqa: E402
from edgeshop.train.outlier_exposure import (  # noqa: E402
    MAX_AREA,
    MIN_AREA,
    cutmix_outliers,
    different_class_partners,
    outlier_count,
    with_outliers,
)


def test_partner_is_the_next_row_of_another_class_cyclically():
    partner, found = different_class_partners(tf.constant([0, 0, 1, 2, 2]))
    # rows 0 and 1 -> row 2 (class 1); row 2 -> row 3; rows 3 and 4 (class 2) wrap to row 0
    assert partner.numpy().tolist() == [2, 2, 3, 0, 0]
    assert found.numpy().all()


def test_a_batch_of_one_class_has_no_partner():
    _, found = different_class_partners(tf.constant([3, 3, 3]))
    assert not found.numpy().any()
    _, found = different_class_partners(tf.constant([5]))
    assert not found.numpy().any()


def test_cutmix_outlier_is_a_box_of_35_to_65_percent_from_the_other_class():
    # row i is filled with the value 10 * (i + 1): every pixel says which image it came from
    images = np.stack([np.full((20, 30, 3), 10.0 * (i + 1), np.float32) for i in range(4)])
    classes = tf.constant([0, 0, 1, 1])
    for seed in range(5):
        outliers, found = cutmix_outliers(images, classes, [seed, 1], 3)
        outliers = outliers.numpy()
        assert outliers.shape == (3, 20, 30, 3) and found.numpy().all()
        for i, partner in enumerate([2, 2, 0]):  # rows 0 and 1 take from row 2; row 2 (class 1) wraps to row 0
            pasted = outliers[i, :, :, 0] == 10.0 * (partner + 1)
            assert np.all((outliers[i] == 10.0 * (i + 1)) | pasted[..., None])  # own or partner, nothing else
            share = pasted.mean()
            assert MIN_AREA - 0.05 <= share <= MAX_AREA + 0.05
            rows, cols = np.flatnonzero(pasted.any(1)), np.flatnonzero(pasted.any(0))
            assert pasted[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all()  # one solid rectangle


def test_weighted_batch_gives_known_ce_plus_lambda_times_ce_to_uniform():
    # one known row (target class 0, p = [0.8, 0.2]) and one outlier (p = [0.9, 0.1]), lambda 0.5
    images, targets = tf.zeros([1, 2, 2, 3]), tf.constant([[1.0, 0.0]])
    images, targets, weights = with_outliers(images, targets, tf.zeros([1, 2, 2, 3]), tf.constant([True]), 0.5)
    assert targets.numpy().tolist() == [[1.0, 0.0], [0.5, 0.5]]
    predictions = tf.constant([[0.8, 0.2], [0.9, 0.1]])
    loss = keras.losses.CategoricalCrossentropy()(targets, predictions, sample_weight=weights)
    expected = -math.log(0.8) + 0.5 * -(math.log(0.9) + math.log(0.1)) / 2  # 0.2231 + 0.5 x 1.2040
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_outliers_without_partner_weigh_nothing_and_two_blocks_are_each_uniform():
    images, targets = tf.zeros([2, 2, 2, 3]), tf.constant([[1.0, 0, 0, 1], [0, 1.0, 0.5, 0.5]])
    _, targets, weights = with_outliers(images, targets, tf.zeros([2, 2, 2, 3]), tf.constant([True, False]), 0.5,
                                        blocks=2)
    assert targets.numpy()[2:].tolist() == [[0.5] * 4] * 2  # [hard | teacher], each half uniform over 2 classes
    # B = 2 known, 2 appended (1 usable): mean over 4 rows = mean_known + 0.5 x mean over the usable outlier
    assert weights.numpy().tolist() == pytest.approx([2.0, 2.0, 0.5 * 4 / 1, 0.0])


def test_outlier_count_and_config_checks(tmp_path):
    assert [outlier_count(b) for b in (1, 16, 32, 33)] == [1, 4, 8, 9]
    with pytest.raises(EdgeshopError, match="outlier_exposure"):
        TrainConfig.from_flat(data=str(tmp_path), out=str(tmp_path / "r"), outlier_exposure=-1.0).validate()
    with pytest.raises(EdgeshopError, match="augment"):
        TrainConfig.from_flat(data=str(tmp_path), out=str(tmp_path / "r"), outlier_exposure=0.5,
                              augment=False).validate()


def test_training_with_outlier_exposure_runs_and_feeds_weighted_outliers(synthetic_data, tmp_path):
    from edgeshop.train.fit import TrainingRun

    config = TrainConfig.from_flat(data=str(synthetic_data["train"]), out=str(tmp_path / "run"), val_fraction=0.2,
                                   arch="tiny", epochs=1, head_epochs=0, batch_size=8, mix=0.5,
                                   outlier_exposure=0.5)
    run = TrainingRun(config, log=lambda line: None)
    run.run()
    assert (tmp_path / "run" / "metrics.json").is_file()
    images, targets, weights = next(iter(run._train_dataset(run.train_image_size)))
    n = len(run.class_names)
    assert images.shape[0] == targets.shape[0] == weights.shape[0] == 8 + outlier_count(8)
    assert np.allclose(targets.numpy()[8:], 1.0 / n)
    assert np.allclose(weights.numpy()[:8], 10 / 8)
