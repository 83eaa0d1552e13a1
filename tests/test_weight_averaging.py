"""Averaging the last epochs' weights (edgeshop/train/averaging.py) and its wiring into training."""

from __future__ import annotations

import numpy as np
import pytest

from edgeshop.errors import EdgeshopError


def test_running_mean_is_exact_survives_a_restart_and_ignores_replayed_epochs(tmp_path):
    from edgeshop.train.averaging import WeightAverage

    path = tmp_path / "average.weights.npz"
    epochs = {e: [np.full((2, 3), float(e), np.float32), np.array([e * 10], np.int64)] for e in (3, 4, 5)}
    average = WeightAverage(path)
    assert average.add(epochs[3], 3) and average.add(epochs[4], 4)
    restarted = WeightAverage(path)  # a killed run re-reads the file
    assert (restarted.count, restarted.last_epoch) == (2, 4)
    assert not restarted.add(epochs[4], 4), "a replayed epoch must not count twice"
    assert restarted.add(epochs[5], 5)
    mean = restarted.weights(epochs[5])
    np.testing.assert_allclose(mean[0], np.full((2, 3), 4.0))
    assert mean[0].dtype == np.float32
    assert mean[1].tolist() == [30], "integer weights (counters) keep their first value, not a mean"


def test_unreadable_average_names_the_file(tmp_path):
    from edgeshop.errors import ModelLoadError
    from edgeshop.train.averaging import WeightAverage

    path = tmp_path / "average.weights.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(ModelLoadError, match="average.weights.npz.*delete it") as caught:
        WeightAverage(path)
    assert str(caught.value).count(str(path)) == 1, "the file is named once"

    np.savez(path, np.zeros(3))  # readable, but without count / last_epoch
    with pytest.raises(ModelLoadError, match="without 'count'.*delete it") as caught:
        WeightAverage(path)
    assert str(caught.value).count(str(path)) == 1


def test_settings_are_checked():
    from edgeshop.train.config import TrainConfig

    with pytest.raises(EdgeshopError, match="--keep-last-epoch"):
        TrainConfig.from_flat(data="x", out="y", average_last_epochs=2).validate()
    with pytest.raises(EdgeshopError, match="between 0 and schedule.epochs"):
        TrainConfig.from_flat(data="x", out="y", epochs=3, average_last_epochs=4, select_best_epoch=False).validate()


def test_training_keeps_the_mean_of_the_last_epochs(synthetic_data, tmp_path):
    from edgeshop.train.config import TrainConfig
    from edgeshop.train.fit import train

    run = tmp_path / "run"
    lines: list[str] = []
    # Six epochs: after four, the mean of epochs 3-4 scored 58-75% on val between runs (flaky).
    config = TrainConfig.from_flat(data=str(synthetic_data["train"]), out=str(run), val_fraction=0.2, arch="tiny",
                         image_size=32, epochs=6, batch_size=16, lr=3e-3, select_best_epoch=False,
                         average_last_epochs=2)
    metrics = train(config, log=lambda line: lines.append(str(line)))
    assert any(line.startswith("[train] kept the mean weights of epochs 5-6 (val accuracy") for line in lines)
    assert metrics["val_top1_averaged"] > 0.6
    # The stage the later phases and export start from is the mean, not the last epoch.
    _assert_stage_is_the_mean(run, "train", count=2, last_epoch=6)


def _assert_stage_is_the_mean(run, phase: str, count: int, last_epoch: int) -> None:
    """The weights the phase handed on are its running mean, which holds ``count`` epochs up to ``last_epoch``."""
    with np.load(run / "stages" / f"{phase}.weights.npz") as stage, \
            np.load(run / "checkpoints" / phase / "average.weights.npz") as average:
        assert int(average["count"]) == count and int(average["last_epoch"]) == last_epoch
        kernels = [k for k in stage.files if stage[k].dtype.kind == "f" and stage[k].ndim == 4]
        assert kernels
        for key in kernels:
            np.testing.assert_allclose(stage[key], average[key], rtol=1e-6)


def test_channel_fine_tune_settings_are_checked():
    from edgeshop.train.config import TrainConfig

    with pytest.raises(EdgeshopError, match="set compression.prune_channels"):
        TrainConfig.from_flat(data="x", out="y", prune_channels_average_last_epochs=2).validate()
    with pytest.raises(EdgeshopError, match="between 0 and compression.prune_channels_epochs \\(4\\)"):
        TrainConfig.from_flat(data="x", out="y", prune_channels=0.5, prune_channels_average_last_epochs=5).validate()


def test_channel_fine_tune_keeps_the_mean_of_its_last_epochs(synthetic_data, tmp_path):
    import json

    from edgeshop.train.config import TrainConfig
    from edgeshop.train.fit import train

    run = tmp_path / "run"
    lines: list[str] = []
    config = TrainConfig.from_flat(data=str(synthetic_data["train"]), out=str(run), val_fraction=0.2, arch="tiny",
                         image_size=32, epochs=2, batch_size=16, lr=3e-3, prune_channels=0.5,
                         prune_channels_epochs=3, prune_channels_average_last_epochs=2)
    metrics = train(config, log=lambda line: lines.append(str(line)))
    assert any(line.startswith("[prune_channels] kept the mean weights of epochs 2-3 (val accuracy")
               for line in lines)
    assert 0 <= metrics["val_top1_averaged_prune_channels"] <= 1
    assert "val_top1_averaged" not in metrics  # the main phase was not averaged
    # The narrow network QAT and export start from is the mean of epochs 2-3, not epoch 3.
    _assert_stage_is_the_mean(run, "prune_channels", count=2, last_epoch=3)
    training = json.loads((run / "card.json").read_text())["extra"]["training"]
    assert training["prune_channels_average_last_epochs"] == 2
