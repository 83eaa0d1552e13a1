"""The QAT phase: int8 quantization-aware training, at the export size, last."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeshop.train import compress
from edgeshop.train._keras import keras
from edgeshop.train.phases.base import Phase

if TYPE_CHECKING:
    from edgeshop.train.architectures import Architecture
    from edgeshop.train.config import TrainConfig
    from edgeshop.train.trainer import TrainingRun


class Qat(Phase):
    name = "qat"
    float_stage = False  # its weights live in fake-quant wrappers (train/run_model.py rebuilds them)

    @classmethod
    def from_config(cls, config: TrainConfig, arch: Architecture) -> Phase | None:
        return (
            cls(config.compression.qat_epochs, config.compression.qat_lr, keep_best=False)
            if config.compression.qat
            else None
        )

    def image_size(self, run: TrainingRun) -> int:
        return run.image_size  # the quantisation ranges are learnt on what the device will see

    def wrap(self, model: keras.Model, run: TrainingRun, steps_per_epoch: int) -> keras.Model:
        qat = compress.apply_qat(model, preserve_sparsity=bool(run.config.experimental.sparsity))
        sample = run.folder.representative_images()
        count = compress.init_quantization_ranges(qat, model, sample)
        run.log(f"[{self.name}] {count} activation ranges initialised from {len(sample)} training images")
        return qat
