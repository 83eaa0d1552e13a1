"""What happens after every epoch: a row in training_log.csv, the best epoch tracked, early
stopping, the running weight average, the streamed data report, then the checkpoint."""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from edgeshop.train._keras import keras
from edgeshop.train.averaging import WeightAverage
from edgeshop.train.model_io import save_weights
from edgeshop.train.phases import Phase

if TYPE_CHECKING:
    from edgeshop.train.trainer import TrainingRun

LOG_COLUMNS = ("phase", "epoch", "loss", "accuracy", "top5", "val_loss", "val_accuracy", "val_top5", "seconds")


class EpochEnd(keras.callbacks.Callback):
    def __init__(self, run: TrainingRun, phase: Phase, manager, epoch_var, has_val: bool,
                 average: WeightAverage | None = None):
        super().__init__()
        self.run, self.phase, self.manager, self.epoch_var = run, phase, manager, epoch_var
        self.has_val, self.average = has_val, average
        self.best_path = run.folder.best_weights(phase.name)
        self.started = time.time()

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        run, state = self.run, self.run.state
        monitor = logs.get("val_accuracy" if self.has_val else "accuracy")
        if self.phase.keep_best and monitor is not None:
            if state["best"] is None or monitor > state["best"]:
                state.update(best=float(monitor), best_epoch=epoch + 1, wait=0)
                save_weights(self.model, self.best_path)
            else:
                state["wait"] = state.get("wait", 0) + 1
                if self.phase.patience is not None and state["wait"] >= self.phase.patience:
                    run.log(f"[{self.phase.name}] early stop: no val improvement for {state['wait']} epochs")
                    self.model.stop_training = True
        if self.average is not None and epoch + 1 > self.phase.epochs - self.phase.average_last:
            self.average.add(self.model.get_weights(), epoch + 1)
        append_log(run.folder.training_log, self.phase.name, epoch + 1, logs, time.time() - self.started)
        if run.data.streamed():  # the epoch met every file: its unreadable ones are counted now
            before = run.data.n_train
            run.data.write_streamed_report()
            if run.data.n_train < before:
                skipped = run.data.skips.items()
                run.log(f"skipped {len(skipped)} unreadable file(s) (listed in data_report.json), "
                        f"e.g. {skipped[0][1]}")
        # Checkpoint last, after the state it describes is on disk: a kill between the
        # two replays one epoch instead of skipping one.
        run.save_state()
        self.epoch_var.assign(epoch + 1)
        self.manager.save(checkpoint_number=epoch + 1)


def append_log(path: Path, phase: str, epoch: int, logs: dict, seconds: float) -> None:
    new = not path.exists()
    row = {"phase": phase, "epoch": epoch, "seconds": round(seconds, 1)}
    row.update({k: round(float(v), 5) for k, v in logs.items() if k in LOG_COLUMNS})
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=LOG_COLUMNS, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow(row)
        handle.flush()
        os.fsync(handle.fileno())
