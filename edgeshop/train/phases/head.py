"""The head phase: a pretrained network's new classifier layers trained alone first."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeshop.train._keras import keras
from edgeshop.train.cosine_head import NEW_HEAD_LAYERS
from edgeshop.train.phases.base import Phase

if TYPE_CHECKING:
    from edgeshop.train.architectures import Architecture
    from edgeshop.train.config import TrainConfig
    from edgeshop.train.trainer import TrainingRun


class Head(Phase):
    name = "head"
    warmup = True

    @classmethod
    def from_config(cls, config: TrainConfig, arch: Architecture) -> Phase | None:
        if not (arch.pretrained_weights and config.model.pretrained and config.schedule.head_epochs > 0):
            return None
        return cls(config.schedule.head_epochs, config.schedule.lr, keep_best=config.schedule.select_best_epoch)

    def set_trainable(self, model: keras.Model, run: TrainingRun, steps_per_epoch: int) -> None:
        for layer in model.layers:
            layer.trainable = layer.name in NEW_HEAD_LAYERS
