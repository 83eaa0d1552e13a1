"""The sparsity phase (--prune): magnitude pruning of the kernels to a target sparsity (tfmot)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeshop.train import compress
from edgeshop.train._keras import keras
from edgeshop.train.phases.base import Phase

if TYPE_CHECKING:
    from edgeshop.train.architectures import Architecture
    from edgeshop.train.config import TrainConfig
    from edgeshop.train.trainer import TrainingRun


class Sparsity(Phase):
    name = "prune"

    @classmethod
    def from_config(cls, config: TrainConfig, arch: Architecture) -> Phase | None:
        return (
            cls(config.experimental.sparsity_epochs, config.experimental.sparsity_lr, keep_best=False)
            if config.experimental.sparsity
            else None
        )

    def wrap(self, model: keras.Model, run: TrainingRun, steps_per_epoch: int) -> keras.Model:
        total = self.epochs * steps_per_epoch
        # reach the target at 2/3 of the phase; the last third recovers at full sparsity
        return compress.apply_pruning(model, run.config.experimental.sparsity, 0, max(1, int(total * 2 / 3)))

    def callbacks(self) -> list[keras.callbacks.Callback]:
        return compress.pruning_callbacks()

    def finish(self, model: keras.Model, run: TrainingRun) -> keras.Model:
        model = compress.strip_pruning(model)
        run.state["sparsity_after_strip"] = compress.kernel_sparsity(model)
        run.log(f"[{self.name}] kernel sparsity after strip: {run.state['sparsity_after_strip']:.3f}")
        return model
