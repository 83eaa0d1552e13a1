"""What every training phase is: a schedule, and hooks the trainer calls around its epochs.

The trainer (train/trainer.py) builds the phase's model at ``start_widths``, loads the
previous phase's weights, then calls ``prepare`` (``reshape`` -> ``set_trainable`` ->
``wrap``), trains with ``callbacks()`` added, and saves what ``finish`` returns as the
phase's stage weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from edgeshop.train import compress
from edgeshop.train._keras import keras
from edgeshop.train.cosine_head import NEW_HEAD_LAYERS
from edgeshop.train.run_model import stage_widths

if TYPE_CHECKING:
    from edgeshop.train.architectures import Architecture
    from edgeshop.train.config import TrainConfig
    from edgeshop.train.trainer import TrainingRun


@dataclass(frozen=True)
class Phase:
    epochs: int
    lr: float
    keep_best: bool  # restore the best-val epoch at the end
    patience: int | None = None  # early stopping (with keep_best)
    average_last: int = 0  # keep the mean weights of the last N epochs (train/averaging.py)

    name: ClassVar[str]  # as state.json, stages/ and checkpoints/ record it (train/run_dir.py PHASE_ORDER)
    warmup: ClassVar[bool] = False  # a linear warm-up over the first epoch (at most a tenth of the steps)
    float_stage: ClassVar[bool] = True  # its weights load into a plain float model (a later phase starts there)

    @classmethod
    def from_config(cls, config: TrainConfig, arch: Architecture) -> Phase | None:
        """This phase with its schedule when ``config`` asks for it, else None."""
        raise NotImplementedError

    @property
    def averaged_state_key(self) -> str:
        """state.json's entry for the val accuracy of the averaged weights."""
        return f"averaged_val_accuracy_{self.name}"

    @property
    def averaged_metric(self) -> str:
        """metrics.json's entry for the same figure."""
        return f"val_top1_averaged_{self.name}"

    def check(self, run: TrainingRun, resume: bool) -> None:
        """Refuse settings this phase cannot train with, before the run folder is created."""

    def image_size(self, run: TrainingRun) -> int:
        """The side the phase trains at (it always validates at the run's image size)."""
        return run.train_image_size

    def start_widths(self, run: TrainingRun) -> dict[str, int] | None:
        """Layer widths of the model the phase starts from (None: the architecture's)."""
        return stage_widths(run.run_dir, self.name)

    def prepare(self, model: keras.Model, run: TrainingRun, steps_per_epoch: int) -> keras.Model:
        """The model this phase trains, from the previous phase's weights in ``model``."""
        model = self.reshape(model, run)
        self.set_trainable(model, run, steps_per_epoch)
        return self.wrap(model, run, steps_per_epoch)

    def reshape(self, model: keras.Model, run: TrainingRun) -> keras.Model:
        return model

    def set_trainable(self, model: keras.Model, run: TrainingRun, steps_per_epoch: int) -> None:
        if run.config.schedule.freeze_bn:
            # Keras 2: a BatchNormalization with trainable=False runs in inference mode,
            # keeping the pretrained statistics (and tfmot keeps the flag through QAT).
            for layer in model.layers:  # the cosine head's own BatchNorm is new: it keeps learning
                if isinstance(layer, keras.layers.BatchNormalization) and layer.name not in NEW_HEAD_LAYERS:
                    layer.trainable = False
            run.log(f"[{self.name}] BatchNorm frozen (inference mode)")
        else:
            momentum = compress.set_batchnorm_momentum(model, self.epochs * steps_per_epoch)
            run.log(f"[{self.name}] BatchNorm momentum {momentum:.3f}")

    def wrap(self, model: keras.Model, run: TrainingRun, steps_per_epoch: int) -> keras.Model:
        return model

    def callbacks(self) -> list[keras.callbacks.Callback]:
        return []

    def finish(self, model: keras.Model, run: TrainingRun) -> keras.Model:
        """The model whose weights are saved as this phase's stage."""
        return model
