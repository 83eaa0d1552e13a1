"""RunDir: the one place that names the files of a training run's folder.

Layout (what ``edgeshop-export``, ``--resume`` and ``--init-from`` read back):

    config.json                 the resolved configuration
    state.json                  which phases are done, early-stopping state, seconds per phase
    card.json, labels.txt       labels + input spec, later embedded in every .tflite
    data_report.json            images used, skipped (with reasons), duplicates
    split.json                  the training and validation images (path, class) the run used
    representative_images.npy   preprocessed training images: int8 conversion ranges, QAT init
    training_log.csv            one row per epoch of every phase
    checkpoints/PHASE/          tf.train checkpoints, one per epoch (for --resume)
    stages/PHASE.weights.npz    weights after each phase
    channels.json               which channels the channel-removal phase kept
    float_model.keras           the float model (after pruning, if any, stripped)
    metrics.json                validation figures and timings
    teacher_logits.npz          with --teacher: its logits per image (teacher_logits_1.npz, ... for more)
    tensorboard/PHASE/          TensorBoard logs
    workers/TASK/               multi_worker only: the same files as written by each non-chief task

Runs written before ``split.json`` existed re-derive the split from their config;
their representative images are in ``calibration.npy`` (the file's older name). No TensorFlow here: export,
compare and the command line read run folders before (or without) importing it.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from edgeshop._io import check_output_folder, clear_output_folder, mark_output_folder
from edgeshop.data import Sample
from edgeshop.errors import EdgeshopError
from edgeshop.tflite.modelcard import ModelCard
from edgeshop.utils import write_bytes_atomic, write_json_atomic

CONFIG = "config.json"
STATE = "state.json"
CARD = "card.json"
LABELS = "labels.txt"
DATA_REPORT = "data_report.json"
SPLIT = "split.json"
REPRESENTATIVE_IMAGES = "representative_images.npy"
LEGACY_REPRESENTATIVE_IMAGES = "calibration.npy"  # the same images, as runs before split.json named them
TRAINING_LOG = "training_log.csv"
CHECKPOINTS = "checkpoints"
STAGES = "stages"
CHANNEL_PLAN = "channels.json"
FLOAT_MODEL = "float_model.keras"
METRICS = "metrics.json"
TENSORBOARD = "tensorboard"
WORKERS = "workers"
TEACHER_LOGITS = "teacher_logits.npz"

# The phases' names as state.json records them, in training order (train/phases/ defines the
# phases themselves); the words a user may also say for them with --after.
PHASE_ORDER = ("head", "train", "prune_channels", "prune", "qat")
PHASE_ALIASES = {"finetune": "train", "channels": "prune_channels", "sparsity": "prune"}
FLOAT_STAGES = PHASE_ORDER[:-1]  # their weights load into a plain float model
# state.json entries a phase writes beside "completed": dropped when a branch does not keep the phase
PHASE_STATE_KEYS = {"train": ("averaged_val_accuracy",),
                    "prune_channels": ("averaged_val_accuracy_prune_channels",),
                    "prune": ("sparsity_after_strip",)}
# Settings that choose the images on either side of the split: a branch that changes one derives it again.
SPLIT_SETTINGS = ("data.path", "data.val", "data.val_fraction", "data.val_grouping", "experimental.val_group_size",
                  "data.classes", "runtime.seed")
EMPTY_STATE: dict[str, Any] = {"completed": [], "phase": None, "best": None, "best_epoch": None, "wait": 0,
                               "seconds": {}}


class RunDir:
    """A training run's folder: its file names, and reading and (atomically) writing them."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    # -- names ---------------------------------------------------------------------------------
    config_file = property(lambda self: self.path / CONFIG)
    state_file = property(lambda self: self.path / STATE)
    card_file = property(lambda self: self.path / CARD)
    labels_file = property(lambda self: self.path / LABELS)
    data_report_file = property(lambda self: self.path / DATA_REPORT)
    split_file = property(lambda self: self.path / SPLIT)
    training_log = property(lambda self: self.path / TRAINING_LOG)
    channel_plan_file = property(lambda self: self.path / CHANNEL_PLAN)
    float_model_file = property(lambda self: self.path / FLOAT_MODEL)
    metrics_file = property(lambda self: self.path / METRICS)

    def checkpoints(self, phase: str) -> Path:
        return self.path / CHECKPOINTS / phase

    def best_weights(self, phase: str) -> Path:
        """The best-val epoch's weights of a phase that keeps its best epoch."""
        return self.checkpoints(phase) / "best.weights.npz"

    def average_weights(self, phase: str) -> Path:
        """The running mean of a phase's last epochs' weights (train/averaging.py)."""
        return self.checkpoints(phase) / "average.weights.npz"

    def stage_weights(self, phase: str) -> Path:
        return self.path / STAGES / f"{phase}.weights.npz"

    def stage_files(self) -> list[Path]:
        """Every stage weights file present, sorted by name."""
        return sorted((self.path / STAGES).glob("*.weights.npz"))

    def tensorboard(self, phase: str) -> Path:
        return self.path / TENSORBOARD / phase

    def teacher_logits(self, index: int = 0) -> Path:
        """The cached logits of the run's ``index``-th teacher (train/distill.py)."""
        return self.path / (TEACHER_LOGITS if index == 0 else f"teacher_logits_{index}.npz")

    def worker(self, task: str) -> RunDir:
        """The folder a non-chief multi_worker task writes its own copy of the run into."""
        return RunDir(self.path / WORKERS / task)

    @property
    def representative_file(self) -> Path:
        """The representative images file to read: the current name, else the older one."""
        new = self.path / REPRESENTATIVE_IMAGES
        legacy = self.path / LEGACY_REPRESENTATIVE_IMAGES
        return legacy if not new.is_file() and legacy.is_file() else new

    # -- reading ---------------------------------------------------------------------------------
    def is_run(self) -> bool:
        return self.card_file.is_file()

    def require(self) -> RunDir:
        """This run folder, or the one-line refusal when it holds no training run's card."""
        if not self.is_run():
            raise EdgeshopError(f"{self.path}: not an edgeshop run directory (no {CARD}); run edgeshop-train first")
        return self

    def has_state(self) -> bool:
        return self.state_file.is_file()

    def read_config(self) -> dict[str, Any]:
        """config.json as saved (``TrainConfig.from_saved`` fills in settings added since)."""
        return json.loads(self.config_file.read_text())

    def read_state(self) -> dict[str, Any]:
        if self.state_file.is_file():
            return json.loads(self.state_file.read_text())
        return json.loads(json.dumps(EMPTY_STATE))  # a fresh copy: callers mutate it

    def completed(self) -> list[str]:
        return list(self.read_state()["completed"])

    def labels(self) -> list[str]:
        return [x for x in self.labels_file.read_text(encoding="utf-8").splitlines() if x]

    def card(self) -> ModelCard:
        return ModelCard.from_json(self.card_file.read_text(), source=str(self.card_file))

    def representative_images(self, count: int | None = None) -> np.ndarray:
        images = np.load(self.representative_file, allow_pickle=False)
        return images if count is None else images[:count]

    def read_split(self) -> tuple[list[Sample], list[Sample]] | None:
        """(training, validation) images recorded at training time; None for runs made before split.json."""
        if not self.split_file.is_file():
            return None
        try:
            record = json.loads(self.split_file.read_text())
            return tuple([Sample(Path(path), label) for path, label in record[part]] for part in ("train", "val"))
        except (ValueError, KeyError, TypeError) as exc:
            raise EdgeshopError(f"{self.split_file}: unreadable ({exc}); delete it to re-derive the split from "
                                f"{CONFIG}") from None

    def read_channel_plan(self) -> dict | None:
        """Which channels the channel-removal phase kept, or None if the run removed none."""
        if not self.channel_plan_file.is_file():
            return None
        try:
            return json.loads(self.channel_plan_file.read_text())
        except ValueError as exc:
            raise EdgeshopError(f"{self.channel_plan_file}: unreadable channel plan ({exc}); the prune_channels "
                                f"phase wrote it, rerun that phase (delete {STAGES}/prune_channels* and "
                                f"{CHECKPOINTS}/prune_channels)") from None

    def read_json(self, path: Path) -> dict[str, Any] | None:
        """One of the run's JSON files, or None when it is absent."""
        return json.loads(path.read_text()) if path.is_file() else None

    # -- writing ---------------------------------------------------------------------------------
    def create(self, replaced: list[Path], config: dict[str, Any]) -> None:
        """Empty the entries a new run replaces (checked by the caller), mark the folder, save the config."""
        clear_output_folder(replaced)
        mark_output_folder(self.path)
        write_json_atomic(self.config_file, config)

    def write_state(self, state: dict[str, Any]) -> None:
        write_json_atomic(self.state_file, state)

    def write_metadata(self, card: ModelCard, images: np.ndarray) -> None:
        """card.json, labels.txt and the representative images: each complete or not replaced at
        all (a crash or a full disk mid-write must not leave a half card that export embeds)."""
        write_bytes_atomic(self.card_file, card.to_json().encode("utf-8"))
        write_bytes_atomic(self.labels_file, ("\n".join(card.labels) + "\n").encode("utf-8"))
        buffer = io.BytesIO()
        np.save(buffer, images, allow_pickle=False)
        write_bytes_atomic(self.path / REPRESENTATIVE_IMAGES, buffer.getvalue())

    def write_split(self, train: list[Sample], val: list[Sample]) -> None:
        write_json_atomic(self.split_file, {part: [[str(s.path), s.label] for s in samples]
                                            for part, samples in (("train", train), ("val", val))},
                          compact_lists=True)

    def write_channel_plan(self, plan: dict) -> None:
        write_json_atomic(self.channel_plan_file, plan)

    def write_json(self, path: Path, data: Any) -> None:
        write_json_atomic(path, data)

    # -- branching ---------------------------------------------------------------------------------
    def branch(self, out: str | Path, *, after: str, force: bool = False, **overrides: Any) -> RunDir:
        """A new run folder at ``out`` that holds this run's phases up to and including ``after``
        and continues (``--resume``) with the phases after it, under ``overrides`` of the settings."""
        from edgeshop.train.config import TrainConfig, flatten  # TF-free; kept out of import time for the runtime

        if not (self.state_file.is_file() and self.config_file.is_file()):
            raise EdgeshopError(f"{self.path}: not an edgeshop run folder (no {STATE}/{CONFIG}); --init-from "
                                "takes the folder edgeshop-train wrote")
        phase = PHASE_ALIASES.get(after, after)
        if phase not in PHASE_ORDER:
            raise EdgeshopError(f"--after {after}: unknown phase; one of {', '.join(PHASE_ORDER)}")
        state = self.read_state()
        if phase not in state["completed"]:
            done = ", ".join(state["completed"]) or "none"
            raise EdgeshopError(f"{self.path}: phase {phase} did not finish there (finished: {done}); "
                                "choose one of those for --after, or --resume that run first")
        target = RunDir(out)
        changed = flatten(overrides, f"the run continuing {self.path}")  # unknown keys: named, with the nearest
        old = TrainConfig.from_saved(self.read_config())
        new = TrainConfig.from_dict({**old.to_keys(), **changed, "runtime.out": str(target.path)})
        new.validate()
        replaced = check_output_folder(target.path, force=force, inputs=[self.path, *new.inputs()])
        kept = state["completed"][: state["completed"].index(phase) + 1]
        target.create(replaced, new.to_dict())
        same_split = all(old.to_keys()[key] == new.to_keys()[key] for key in SPLIT_SETTINGS)
        for name in (CARD, LABELS, DATA_REPORT, SPLIT, REPRESENTATIVE_IMAGES, LEGACY_REPRESENTATIVE_IMAGES):
            if (self / name).is_file() and (same_split or name != SPLIT):
                shutil.copy2(self / name, target / name)
        if "prune_channels" in kept and self.channel_plan_file.is_file():
            shutil.copy2(self.channel_plan_file, target.channel_plan_file)
        (target / STAGES).mkdir()
        for name in kept:
            shutil.copy2(self.stage_weights(name), target.stage_weights(name))
        if old.teachers() == new.teachers():  # the same teachers on the same images: the same logits
            for i in range(len(new.teachers())):
                if self.teacher_logits(i).is_file():
                    shutil.copy2(self.teacher_logits(i), target.teacher_logits(i))
        self._copy_log_rows(target, kept)
        dropped = [key for name in PHASE_ORDER if name not in kept for key in PHASE_STATE_KEYS.get(name, ())]
        state = {key: value for key, value in state.items() if key not in dropped}
        state.update(completed=kept, phase=None, best=None, best_epoch=None, wait=0,
                     seconds={k: v for k, v in state.get("seconds", {}).items() if k in kept},
                     branched_from={"run": str(self.path), "after": phase})
        target.write_state(state)  # last: a folder with a state is one --resume continues
        return target

    def _copy_log_rows(self, target: RunDir, phases: list[str]) -> None:
        if not self.training_log.is_file():
            return
        with self.training_log.open(newline="") as source:
            reader = csv.DictReader(source)
            rows = [row for row in reader if row.get("phase") in phases]
            columns = reader.fieldnames or []
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        write_bytes_atomic(target.training_log, buffer.getvalue().encode("utf-8"))


def require_run_dir(run_dir: str | Path) -> Path:
    """``run_dir`` if it holds a training run's card, else the one-line refusal (no TensorFlow:
    the commands call this before importing it)."""
    return RunDir(run_dir).require().path
