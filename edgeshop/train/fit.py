"""Training's entry points: start a run, resume one, or continue one after a phase with
changed settings (``--init-from RUN --after PHASE``). The run itself is train/trainer.py;
its phases train/phases/; its folder train/run_dir.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeshop.train.config import TrainConfig
from edgeshop.train.distribute import make_strategy
from edgeshop.train.phases import Phase, plan_phases
from edgeshop.train.phases.channels import CHANNEL_SCORE_IMAGES, RECONSTRUCTION_IMAGES
from edgeshop.train.run_data import split_samples
from edgeshop.train.run_dir import RunDir
from edgeshop.train.trainer import TrainingRun, check_run_folder, saved_config

__all__ = ["CHANNEL_SCORE_IMAGES", "RECONSTRUCTION_IMAGES", "Phase", "TrainingRun", "branch", "check_run_folder",
           "make_strategy", "plan_phases", "resume", "saved_config", "split_samples", "train"]


def train(config: TrainConfig, resume: bool = False, force: bool = False, log=print) -> dict[str, Any]:
    """Run (or, with ``resume``, continue) a training run; returns the metrics in metrics.json."""
    return TrainingRun(config, resume=resume, force=force, log=log).run()


def resume(run_dir: str | Path, log=print) -> dict[str, Any]:
    """Continue an interrupted run from its last checkpoint, with its saved settings (a
    non-chief multi_worker task: from its own folder, RUN_DIR/workers/TASK)."""
    # the saved config replaces this placeholder
    return train(TrainConfig.from_flat(data="", out=str(run_dir)), resume=True, log=log)


def branch(init_from: str | Path, after: str, out: str | Path, force: bool = False, log=print,
           **overrides: Any) -> dict[str, Any]:
    """A new run in ``out`` that keeps ``init_from``'s phases up to ``after`` and trains the
    ones after it with ``overrides`` of its settings; returns the new run's metrics."""
    new = RunDir(init_from).branch(out, after=after, force=force, **overrides)
    log(f"{new.path}: {init_from}'s phases up to {after} copied; training the ones after it")
    return resume(new.path, log=log)
