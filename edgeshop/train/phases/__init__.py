"""Training phases as objects, in the order they run: head -> fine-tune -> channel removal ->
sparsity -> QAT. Each decides from the config whether it runs and with which schedule, and
owns how it prepares its model, its callbacks and how it finishes (train/phases/base.py)."""

from __future__ import annotations

from edgeshop.errors import EdgeshopError
from edgeshop.train.architectures import Architecture
from edgeshop.train.config import TrainConfig
from edgeshop.train.phases.base import Phase
from edgeshop.train.phases.channels import Channels
from edgeshop.train.phases.finetune import Finetune
from edgeshop.train.phases.head import Head
from edgeshop.train.phases.qat import Qat
from edgeshop.train.phases.sparsity import Sparsity

PHASES: tuple[type[Phase], ...] = (Head, Finetune, Channels, Sparsity, Qat)

__all__ = ["PHASES", "Channels", "Finetune", "Head", "Phase", "Qat", "Sparsity", "plan_phases"]


def plan_phases(config: TrainConfig, arch: Architecture) -> list[Phase]:
    """The phases ``config`` asks for, in training order."""
    phases = [phase for kind in PHASES if (phase := kind.from_config(config, arch)) is not None]
    if not phases:
        raise EdgeshopError("nothing to train: every phase has 0 epochs")
    return phases
