"""The main phase: the whole network fine-tuned (or, without pretrained weights, trained from scratch)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeshop.train.phases.base import Phase

if TYPE_CHECKING:
    from edgeshop.train.architectures import Architecture
    from edgeshop.train.config import TrainConfig


class Finetune(Phase):
    name = "train"
    warmup = True

    @classmethod
    def from_config(cls, config: TrainConfig, arch: Architecture) -> Phase | None:
        if config.schedule.epochs <= 0:
            return None
        pretrained = bool(arch.pretrained_weights and config.model.pretrained)
        select = config.schedule.select_best_epoch
        return cls(
            config.schedule.epochs,
            config.schedule.fine_tune_lr if pretrained else config.schedule.lr,
            keep_best=select,
            patience=config.schedule.patience if select else None,
            average_last=config.experimental.average_last_epochs,
        )

    # The main phase's figures were recorded before the other phases had any: unsuffixed names.
    averaged_state_key = "averaged_val_accuracy"
    averaged_metric = "val_top1_averaged"
