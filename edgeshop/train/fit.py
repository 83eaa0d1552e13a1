"""A training run: phases (head -> fine-tune -> prune -> QAT), checkpoints, resume.

Run directory layout (everything a later ``edgeshop-export`` needs):
    config.json         the resolved configuration
    card.json           labels + input spec, later embedded in every .tflite
    labels.txt          one class name per line
    data_report.json    images used, skipped (with reasons), duplicates
    calibration.npy     preprocessed training images for int8 calibration
    training_log.csv    one row per epoch of every phase
    state.json          which phases are done, early-stopping state
    checkpoints/PHASE/  tf.train checkpoints, one per epoch (for --resume)
    stages/PHASE.weights.npz   float weights after each float phase
    stages/qat.weights.npz     the QAT model's weights (rebuilt by run_model.py)
    float_model.keras   the float model (after pruning, if any, stripped)
    metrics.json        validation figures and timings
    teacher_logits.npz  with --teacher: its logits per image (train/distill.py), reused on resume
                        (teacher_logits_1.npz, ... for the further teachers of an ensemble)
    tensorboard/        TensorBoard logs
    workers/TASK/       multi_worker only: the same files as written by each non-chief task

With ``--strategy multi_worker`` every task trains the same replicated model (TensorFlow's
MultiWorkerMirroredStrategy); the chief writes the run folder, each other task the same
files into ``workers/TASK`` (all of them must take part in saving), and each task resumes
from its own folder.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeshop import data as datasets
from edgeshop._io import check_output_folder, clear_output_folder, mark_output_folder
from edgeshop.errors import DataError, EdgeshopError
from edgeshop.report.metrics import did_not_learn, top_k_accuracy
from edgeshop.tflite.modelcard import InputSpec, ModelCard
from edgeshop.train import channels, cluster, compress, distill
from edgeshop.train._keras import keras, tf
from edgeshop.train.architectures import Architecture, find_pretrained_weights, get_architecture, load_weights_npz
from edgeshop.train.augment import AugmentConfig, make_augmenter, mix_batch
from edgeshop.train.averaging import WeightAverage
from edgeshop.train.config import TrainConfig
from edgeshop.train.cosine_head import NEW_HEAD_LAYERS
from edgeshop.train.input_pipeline import choose_pipeline
from edgeshop.train.losses import make_loss
from edgeshop.train.model_io import load_weights, save_model, save_weights
from edgeshop.train.outlier_exposure import cutmix_outliers, outlier_count, with_outliers
from edgeshop.train.run_files import write_run_metadata
from edgeshop.train.run_model import (
    CHANNEL_PLAN,
    FLOAT_STAGES,
    build_model,
    load_run_model,
    read_channel_plan,
    stage_widths,
)
from edgeshop.train.stream import SkipLog, stream_images
from edgeshop.utils import progress_bar, write_json_atomic

CHANNEL_SCORE_IMAGES = 64  # calibration images whose activations rank the channels
RECONSTRUCTION_IMAGES = 128  # calibration images the projections are refitted on (--reconstruct-channels)


@dataclass(frozen=True)
class Phase:
    name: str  # head | train | prune_channels | prune | qat
    epochs: int
    lr: float
    keep_best: bool  # restore the best-val epoch at the end (float phases)
    patience: int | None = None
    average_last: int = 0  # keep the mean weights of the last N epochs (train/averaging.py)


def plan_phases(config: TrainConfig, arch: Architecture) -> list[Phase]:
    pretrained = bool(arch.pretrained_weights and config.model.pretrained)
    phases = []
    select = config.schedule.select_best_epoch
    if pretrained and config.schedule.head_epochs > 0:
        phases.append(Phase("head", config.schedule.head_epochs, config.schedule.lr, keep_best=select))
    if config.schedule.epochs > 0:
        lr = config.schedule.fine_tune_lr if pretrained else config.schedule.lr
        phases.append(Phase("train", config.schedule.epochs, lr, keep_best=select,
                            patience=config.schedule.patience if select else None,
                            average_last=config.experimental.average_last_epochs))
    if config.compression.prune_channels or config.compression.target_latency_ratio:
        phases.append(Phase("prune_channels", config.compression.prune_channels_epochs,
                            config.compression.prune_channels_lr,
                            keep_best=False, average_last=config.experimental.prune_channels_average_last_epochs))
    if config.experimental.sparsity:
        phases.append(Phase("prune", config.experimental.sparsity_epochs, config.experimental.sparsity_lr,
                            keep_best=False))
    if config.compression.qat:
        phases.append(Phase("qat", config.compression.qat_epochs, config.compression.qat_lr, keep_best=False))
    if not phases:
        raise EdgeshopError("nothing to train: every phase has 0 epochs")
    return phases


class TrainingRun:
    def __init__(self, config: TrainConfig, resume: bool = False, force: bool = False, log=print) -> None:
        self.out = Path(config.runtime.out)
        self.log = log
        # multi_worker: this task's place in TF_CONFIG; a non-chief task writes its own folder.
        self.role, self.run_dir = _task_folder(self.out, None if resume else config.runtime.strategy)
        if resume:
            log(f"resuming {self.run_dir} with its saved configuration")
            config = saved_config(self.run_dir)
            if config.runtime.strategy != "multi_worker":
                self.role, self.run_dir = None, self.out
            elif self.role is None:
                self.role = cluster.read_tf_config()
                if not self.role.chief:
                    raise EdgeshopError(f"{self.out / 'workers' / self.role.name}: nothing to resume for task "
                                        f"{self.role.name} (no state.json there); restart every task without --resume")
        else:
            self._replaced = check_run_folder(config, self.run_dir, force, self.role)
        # Everything that can refuse the command runs before the run folder is created:
        # a refused command must leave nothing behind that blocks the corrected one.
        config.validate()
        self.config = config
        self.arch = get_architecture(self.config.model.arch)
        self.image_size = self.config.model.image_size or self.arch.default_image_size
        self.train_image_size = self.config.model.train_image_size or self.image_size
        if self.train_image_size != self.image_size and not self.arch.any_resolution:
            raise EdgeshopError(f"--train-image-size needs an architecture that runs at any input size; "
                                f"{self.arch.name} has a fixed-size layer (drop --train-image-size)")
        self.phases = plan_phases(self.config, self.arch)
        self.pipeline = None  # memory or stream: chosen when the data is loaded
        # refused up front if impossible
        if self.config.compression.prune_channels or self.config.compression.target_latency_ratio:
            channels.require_groups(build_model(self.config, 2), self.arch.name)
        self._find_samples()
        if self.config.compression.target_latency_ratio and not resume:
            self._require_reachable_latency()
        self.teachers = [distill.load_teacher(source) for source in self.config.teachers()]
        for teacher in self.teachers:
            distill.check_labels(teacher, self.class_names)
        if self.role is not None:  # before the run folder exists: an unreachable task leaves nothing behind
            cluster.wait_for_cluster(self.role, self.config.runtime.connect_timeout, log)
        if not resume:
            self._create_run_dir()
        self.state = self._read_state()

    # -- run directory -----------------------------------------------------------------
    def _create_run_dir(self) -> None:
        clear_output_folder(self._replaced)  # only a run's own files, checked in __init__
        mark_output_folder(self.run_dir)
        write_json_atomic(self.run_dir / "config.json", self.config.to_dict())

    def _read_state(self) -> dict[str, Any]:
        path = self.run_dir / "state.json"
        if path.is_file():
            return json.loads(path.read_text())
        return {"completed": [], "phase": None, "best": None, "best_epoch": None, "wait": 0, "seconds": {}}

    def _save_state(self) -> None:
        write_json_atomic(self.run_dir / "state.json", self.state)

    # -- data --------------------------------------------------------------------------
    def _input_spec(self) -> InputSpec:
        return InputSpec(
            height=self.image_size,
            width=self.image_size,
            interpolation=self.config.model.interpolation,
            mean=self.arch.mean,
            std=self.arch.std,
            normalization_in_graph=True,
        )

    def _find_samples(self) -> None:
        """The run's images and classes, checked (no image is decoded yet)."""
        cfg = self.config
        self.train_samples, self.val_samples = split_samples(cfg)
        self.class_names = datasets.class_names_of(self.train_samples)
        if cfg.data.val:
            self.log(datasets.describe(self.train_samples, cfg.data.path))
            self.log(datasets.describe(self.val_samples, cfg.data.val))
        else:
            self.log(datasets.describe(self.train_samples + self.val_samples, cfg.data.path))
        if len(self.class_names) < 2:
            raise DataError(f"{cfg.data.path}: found a single class {self.class_names}; "
                            "a classifier needs at least two")
        self.coarse_of = None
        if cfg.experimental.coarse_loss_weight > 0:  # the hierarchy is only read when the loss uses it
            hierarchy = datasets.read_hierarchy(Path(cfg.data.hierarchy))
            self.coarse_of = datasets.coarse_index(self.class_names, hierarchy, cfg.data.hierarchy)
        unknown = sorted({s.label for s in self.val_samples} - set(self.class_names))
        if unknown:
            raise DataError(f"{cfg.data.val}: validation classes absent from training data: {unknown[:5]}")

    def _load_data(self) -> None:
        cfg = self.config
        train_samples, val_samples = self.train_samples, self.val_samples
        if not cfg.data.val and cfg.data.val_grouping != "none":
            self.log(f"validation: {cfg.data.val_fraction:g} of each class of {cfg.data.path} "
                     "in whole groups of consecutive "
                     f"files ({cfg.data.val_grouping}), so a burst of one shelf stays on one side")
        elif not cfg.data.val:
            self.log(f"validation: a random {cfg.data.val_fraction:g} of each class of {cfg.data.path}; "
                     "photos taken in bursts "
                     "of one shelf leak across such a split (figures come out optimistic): pass --val with "
                     "photos from other days or stores for honest ones")
        if self.coarse_of is not None:
            self.log(f"class hierarchy: {len(self.class_names)} fine -> {self.coarse_of.max() + 1} coarse classes, "
                     f"coarse loss weight {cfg.experimental.coarse_loss_weight}")
        found = datasets.find_duplicates(train_samples, val_samples)
        duplicates = found.pairs
        if duplicates:
            self.log(f"warning: {len(duplicates)} validation file(s) are byte-identical to training files, "
                     f"e.g. {duplicates[0][1]} == {duplicates[0][0]}; validation figures will be optimistic")
        if found.too_large:
            self.log(f"duplicate check: {len(found.too_large)} file(s) over {datasets.MAX_HASH_BYTES // 2**20} MB "
                     f"not compared, e.g. {found.too_large[0]}")
        self.duplicates, self.too_large_to_compare = duplicates, found.too_large
        choice = choose_pipeline(cfg.runtime.input_pipeline, len(train_samples) + len(val_samples), self.image_size,
                                 self.image_size, cfg.runtime.memory_budget_mb,
                                 needs_memory="--teacher" if self.teachers else "",
                                 needs_stream="--cache-dir" if cfg.runtime.cache_dir else "")
        self.pipeline, self.pipeline_reason = choice.pipeline, choice.reason
        self.log(f"input pipeline: {choice.reason}")
        if self._streamed():
            self.train = self.val = None
            self.skips = SkipLog()
            self._refuse_unreadable_classes(datasets.unreadable_classes(train_samples, self._input_spec()))
            self._write_data_report()
            self.log(f"{len(train_samples)} training / {len(val_samples)} validation images listed, "
                     f"{len(self.class_names)} classes, streamed from disk (unreadable files are skipped and "
                     "counted as the first epoch meets them)")
            return
        spec = self._input_spec()
        with progress_bar(len(train_samples) + len(val_samples), "loading images") as bar:
            self.train = datasets.load_images(train_samples, self.class_names, spec, cfg.runtime.workers, bar.update)
            self.val = datasets.load_images(val_samples, self.class_names, spec, cfg.runtime.workers, bar.update)
        skipped = self.train.skipped + self.val.skipped
        if skipped:
            self.log(f"skipped {len(skipped)} unreadable file(s) (listed in data_report.json), e.g. {skipped[0][1]}")
        if len(self.train.labels) == 0:
            raise DataError(f"{cfg.data.path}: no readable training images")
        self._refuse_unreadable_classes(datasets.classes_without_images(train_samples, self.train, self.class_names))
        self.n_train = len(self.train.labels)
        report = {
            "input_pipeline": self.pipeline,
            "input_pipeline_reason": self.pipeline_reason,
            "train_images": len(self.train.labels),
            "val_images": len(self.val.labels),
            "classes": len(self.class_names),
            "skipped": [{"file": str(p), "reason": r} for p, r in skipped],
            "duplicates_train_val": [[str(a), str(b)] for a, b in duplicates],
            "duplicate_check_too_large": [str(p) for p in found.too_large],
        }
        write_json_atomic(self.run_dir / "data_report.json", report)
        self.log(f"{report['train_images']} training / {report['val_images']} validation images, "
                 f"{report['classes']} classes, {len(skipped)} skipped")
        if self.teachers:
            self._load_teacher_targets(spec)

    def _load_teacher_targets(self, spec: InputSpec) -> None:
        """The teacher's soft targets of every training and validation image (cached logits);
        an ensemble's are the mean of its teachers' softened probabilities."""
        cfg = self.config
        soft = {}
        for name, images in (("train", self.train), ("val", self.val)):
            logits = [distill.teacher_logits(teacher, self.run_dir, images.paths, self.class_names, images.pixels,
                                             spec, cfg.runtime.workers, self.log, distill.cache_file(i))
                      for i, teacher in enumerate(self.teachers)]
            soft[name] = distill.ensemble_soft_targets(logits, cfg.distillation.distill_temperature)
        agree = float(np.mean(np.argmax(soft["train"], axis=1) == self.train.labels)) if len(self.train.labels) else 0
        who = "the teacher's" if len(self.teachers) == 1 else f"the {len(self.teachers)} teachers' mean"
        self.log(f"distillation: T {cfg.distillation.distill_temperature:g}, "
                 f"weight {cfg.distillation.distill_weight:g}; {who} top-1 "
                 f"agrees with {agree:.1%} of the training labels")
        self.train_soft, self.val_soft = soft["train"], soft["val"]

    def _write_data_report(self) -> None:
        """data_report.json of a streamed run: the files skipped so far (this invocation's
        and, after --resume, the earlier ones'), rewritten after every epoch."""
        path = self.run_dir / "data_report.json"
        skipped = {}
        if path.is_file():
            skipped = {row["file"]: row["reason"] for row in json.loads(path.read_text()).get("skipped", [])}
        skipped.update({str(p): reason for p, reason in self.skips.items()})
        train_skipped = sum(str(s.path) in skipped for s in self.train_samples)
        report = {
            "input_pipeline": "stream",
            "input_pipeline_reason": self.pipeline_reason,
            "train_images": len(self.train_samples) - train_skipped,
            "val_images": len(self.val_samples) - (len(skipped) - train_skipped),
            "classes": len(self.class_names),
            "skipped": [{"file": f, "reason": r} for f, r in sorted(skipped.items())],
            "duplicates_train_val": [[str(a), str(b)] for a, b in self.duplicates],
            "duplicate_check_too_large": [str(p) for p in self.too_large_to_compare],
        }
        write_json_atomic(path, report)
        self.n_train = report["train_images"]

    def _refuse_unreadable_classes(self, unreadable: list[tuple[str, str]]) -> None:
        """A class none of whose training images can be read would train as if absent (val
        accuracy 1.0, or NaN when streamed): refused, naming it, before any training."""
        if unreadable:
            name, reason = unreadable[0]
            others = f" (and {len(unreadable) - 1} more class(es))" if len(unreadable) > 1 else ""
            raise DataError(f"{self.config.data.path}: the class {name!r}{others} has no readable training image, e.g. "
                            f"{reason}; add readable photos of it or remove its folder")

    def _streamed(self) -> bool:
        """The pipeline _load_data chose (train/input_pipeline.py) is the streamed one."""
        return self.pipeline == "stream"

    def _calibration_pixels(self) -> np.ndarray:
        """Up to calibration_images training images at image_size (int8 calibration, QAT ranges)."""
        rng = np.random.default_rng(self.config.runtime.seed)
        if not self._streamed():
            take = rng.permutation(len(self.train.labels))[: self.config.compression.calibration_images]
            return self.train.pixels[np.sort(take)]
        # Streamed: decode only the chosen files (a skipped one is counted like any other).
        take = np.sort(rng.permutation(len(self.train_samples))[: self.config.compression.calibration_images])
        chosen = datasets.load_images([self.train_samples[i] for i in take], self.class_names, self._input_spec(),
                                      self.config.runtime.workers)
        for path, reason in chosen.skipped:
            self.skips.add(path, reason)
        if not len(chosen.labels):
            raise DataError(f"{self.config.data.path}: none of {len(take)} training images sampled for calibration "
                            f"is readable, e.g. {chosen.skipped[0][1]}")
        return chosen.pixels

    def _write_metadata(self) -> None:
        card = ModelCard(
            labels=tuple(self.class_names),
            input=self._input_spec(),
            name=self.out.name,
            arch=self.arch.name,
            extra={"training": {"phases": [p.name for p in self.phases], "prune": self.config.experimental.sparsity,
                                "prune_channels": self.config.compression.prune_channels,
                                "target_latency_ratio": self.config.compression.target_latency_ratio,
                                "reconstruct_channels": self.config.experimental.reconstruct_channels,
                                "prune_channels_average_last_epochs":
                                    self.config.experimental.prune_channels_average_last_epochs,
                                "qat": self.config.compression.qat, "train_images": int(self.n_train),
                                "head": self._head_record(),
                                "train_image_size": self.train_image_size,
                                **self._distillation_record()}},
        )
        if not hasattr(self, "calibration"):
            self.calibration = self._calibration_pixels()
        write_run_metadata(self.run_dir, card, self.calibration)

    def _head_record(self) -> dict[str, Any]:
        """The classifier head, recorded in the card for the reader (enrolment reads the layer itself)."""
        if self.config.model.head == "cosine":
            return {"kind": "cosine", "scale": self.config.model.cosine_scale}
        return {"kind": "linear"}

    def _distillation_record(self) -> dict[str, Any]:
        if not self.teachers:
            return {}
        names = [Path(t.source).name for t in self.teachers]
        kinds = [t.kind for t in self.teachers]
        return {"distillation": {"teacher": names[0] if len(names) == 1 else names,
                                 "teacher_kind": kinds[0] if len(kinds) == 1 else kinds,
                                 "temperature": self.config.distillation.distill_temperature,
                                 "weight": self.config.distillation.distill_weight}}

    def _phase_image_size(self, phase: Phase) -> int:
        return self.image_size if phase.name == "qat" else self.train_image_size

    def _train_dataset(self, size: int):
        """Augmented training batches at ``size`` (the cached pixels are at image_size)."""
        n_classes = len(self.class_names)
        resize_to = None if size == self.image_size else size
        augment = (make_augmenter(AugmentConfig(), self.config.runtime.seed, resize_to)
                   if self.config.data.augment else None)

        def to_inputs(pixels, labels, seed=None, soft=None):
            images, targets = _as_inputs(pixels, labels, n_classes)
            if soft is not None:  # [hard | teacher]: mixed together below
                targets = tf.concat([targets, soft], axis=-1)
            if augment is not None and seed is not None:
                images = augment(images, seed)
                # outliers from the unmixed batch, appended after mixing
                if self.config.experimental.outlier_exposure > 0:
                    outliers = cutmix_outliers(images, labels, seed, outlier_count(self.config.schedule.batch_size))
                if self.config.data.mix > 0:
                    images, targets = mix_batch(images, targets, seed, self.config.data.mix)
                if self.config.experimental.outlier_exposure > 0:
                    return with_outliers(images, targets, *outliers, self.config.experimental.outlier_exposure,
                                         blocks=1 if soft is None else 2)
            elif resize_to is not None:
                images = tf.image.resize(images, (resize_to, resize_to), antialias=True)
            return images, targets

        train = self._train_images()
        if self._shard() is not None:
            # Shards differ by an image or two (and by skipped files): an endless stream cut into
            # epochs of `steps` batches gives every task the same number of steps, so their
            # collectives stay in step (a task that ran out first would stall the others).
            train = train.repeat()
        train = train.batch(self.config.schedule.batch_size)
        if augment is not None:
            seeds = tf.data.Dataset.random(seed=self.config.runtime.seed, rerandomize_each_iteration=True).batch(2)
            train = tf.data.Dataset.zip((train, seeds)).map(
                lambda batch, seed: to_inputs(batch[0], batch[1], seed, *batch[2:]),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
        else:
            train = train.map(lambda *batch: to_inputs(batch[0], batch[1], None, *batch[2:]),
                              num_parallel_calls=tf.data.AUTOTUNE)
        return self._with_sharding(train.prefetch(tf.data.AUTOTUNE))

    def _train_images(self):
        """(uint8 pixels, label[, teacher soft targets]) per training image, in a new order every
        epoch (the same permutation for both pipelines); with several workers, this worker's share of it."""
        shard = self._shard()
        if self._streamed():
            return stream_images(self.train_samples, self.class_names, self._input_spec(), self.skips,
                                 seed=self.config.runtime.seed, shard=shard, cache_dir=self.config.runtime.cache_dir)
        columns = (self.train.pixels, self.train.labels)
        if self.teachers:
            columns += (self.train_soft,)
        train = tf.data.Dataset.from_tensor_slices(columns)
        train = train.shuffle(len(self.train.labels), seed=self.config.runtime.seed, reshuffle_each_iteration=True)
        return train.shard(*shard) if shard else train

    def _shard(self) -> tuple[int, int] | None:
        """(tasks, this task's rank) under multi_worker: every task shuffles the list with the
        same seed and keeps every n-th image, so a streamed image is decoded by one task only."""
        if self.role is None or self.role.size < 2:
            return None
        order = [(kind, i) for kind in cluster.TASK_TYPES for i in range(len(self.role.cluster.get(kind, [])))]
        return self.role.size, order.index((self.role.task_type, self.role.index))

    def _with_sharding(self, data):
        """The batches as they are: training data is already sharded per task (tf.data's own
        auto-sharding would shard it a second time), and every task validates on all of val
        (the same steps on each; accuracy, summed over tasks, is unchanged)."""
        if self._shard() is None:
            return data
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return data.with_options(options)

    def _val_dataset(self):
        """Validation batches at image_size, the exported model's input, in every phase."""
        n_classes = len(self.class_names)
        if self._streamed():
            if not self.val_samples:
                return None
            # Not cached in memory (it would grow with the data); --cache-dir caches it on disk.
            val = stream_images(self.val_samples, self.class_names, self._input_spec(), self.skips,
                                cache_dir=self.config.runtime.cache_dir)
            return self._with_sharding(val.batch(self.config.schedule.batch_size).map(
                lambda p, y: _as_inputs(p, y, n_classes), num_parallel_calls=tf.data.AUTOTUNE).prefetch(2))
        if not len(self.val.labels):
            return None
        n_classes = len(self.class_names)
        if self.teachers:  # the same [hard | teacher] targets as training, so val_loss is comparable
            val = tf.data.Dataset.from_tensor_slices((self.val.pixels, self.val.labels, self.val_soft))

            def to_inputs(p, y, soft):
                images, targets = _as_inputs(p, y, n_classes)
                return images, tf.concat([targets, soft], axis=-1)

            return self._with_sharding(val.batch(self.config.schedule.batch_size).map(to_inputs).cache())
        val = tf.data.Dataset.from_tensor_slices((self.val.pixels, self.val.labels))
        return self._with_sharding(val.batch(self.config.schedule.batch_size)
                                   .map(lambda p, y: _as_inputs(p, y, n_classes))
                                   .cache())

    # -- models ------------------------------------------------------------------------
    def _base_model(self, phase: Phase) -> keras.Model:
        # A float phase training at another size than it validates at needs free H and W.
        any_size = self._phase_image_size(phase) != self.image_size
        # prune_channels starts from the full-width weights and narrows them (_narrow)
        widths = None if phase.name == "prune_channels" else stage_widths(self.run_dir, phase.name)
        return build_model(self.config, len(self.class_names), any_size=any_size, widths=widths)

    def _last_float_stage(self, before: str) -> Path | None:
        names = [p.name for p in self.phases]
        for name in reversed(names[: names.index(before)]):
            if name in FLOAT_STAGES:
                return self.run_dir / "stages" / f"{name}.weights.npz"
        return None

    def _phase_model(self, phase: Phase, steps_per_epoch: int) -> keras.Model:
        model = self._base_model(phase)
        previous = self._last_float_stage(phase.name)
        if previous is not None:
            load_weights(model, previous)
        elif self.arch.pretrained_weights and self.config.model.pretrained:
            source = find_pretrained_weights(self.arch, self.config.model.pretrained_weights)
            fresh = load_weights_npz(model, source)
            self.log(f"initialised from ImageNet weights ({source}); new layers: {', '.join(fresh)}")
        if phase.name == "prune_channels":
            model = self._narrow(model)
        if phase.name == "head":
            for layer in model.layers:
                layer.trainable = layer.name in NEW_HEAD_LAYERS
        elif self.config.schedule.freeze_bn:
            # Keras 2: a BatchNormalization with trainable=False runs in inference mode,
            # keeping the pretrained statistics (and tfmot keeps the flag through QAT).
            for layer in model.layers:  # the cosine head's own BatchNorm is new: it keeps learning
                if isinstance(layer, keras.layers.BatchNormalization) and layer.name not in NEW_HEAD_LAYERS:
                    layer.trainable = False
            self.log(f"[{phase.name}] BatchNorm frozen (inference mode)")
        else:
            momentum = compress.set_batchnorm_momentum(model, phase.epochs * steps_per_epoch)
            self.log(f"[{phase.name}] BatchNorm momentum {momentum:.3f}")
        if phase.name == "prune":
            total = phase.epochs * steps_per_epoch
            # reach the target at 2/3 of the phase; the last third recovers at full sparsity
            model = compress.apply_pruning(model, self.config.experimental.sparsity, 0, max(1, int(total * 2 / 3)))
        elif phase.name == "qat":
            float_model = model
            model = compress.apply_qat(float_model, preserve_sparsity=bool(self.config.experimental.sparsity))
            sample = np.load(self.run_dir / "calibration.npy", allow_pickle=False)
            count = compress.init_quantization_ranges(model, float_model, sample)
            self.log(f"[qat] {count} activation ranges initialised from {len(sample)} training images")
        return model

    def _narrow(self, model: keras.Model) -> keras.Model:
        """The trained full-width model with its lowest-ranked channels removed. The plan is
        written before fine-tuning starts and reused on resume (the checkpoints hold
        weights of the narrow model)."""
        groups = channels.require_groups(model, self.arch.name)
        plan = read_channel_plan(self.run_dir)
        if plan is None:
            sample = np.load(self.run_dir / "calibration.npy", allow_pickle=False)[:CHANNEL_SCORE_IMAGES]
            fraction, search = self.config.compression.prune_channels, None
            if self.config.compression.target_latency_ratio:
                fraction, search = self._allocate_for_latency(model, groups, sample)
            plan = channels.make_plan(model, groups, fraction, sample)
            if search is not None:
                plan["latency_target"] = search
            write_json_atomic(self.run_dir / CHANNEL_PLAN, plan)
        source = model
        # a resumed phase restores its checkpoint over these weights: no refit needed then
        resuming = tf.train.latest_checkpoint(str(self.run_dir / "checkpoints" / "prune_channels")) is not None
        if self.config.experimental.reconstruct_channels and not resuming:
            sample = np.load(self.run_dir / "calibration.npy", allow_pickle=False)[:RECONSTRUCTION_IMAGES]
            self.log(f"[prune_channels] refitting the projections on their kept channels ({len(sample)} images)")
            source, errors = channels.refitted_copy(model, groups, plan, sample)
            # projections' errors differ in scale by orders of magnitude: report the median ratio
            ratios = [e["after"] / e["before"] for e in errors.values() if e["refitted"] and e["before"] > 0]
            refitted = sum(e["refitted"] for e in errors.values())
            median = f", median held-out error ratio {float(np.median(ratios)):.3f}" if ratios else ""
            self.log(f"[prune_channels] least squares: {refitted} of {len(errors)} projections refitted{median}")
            plan["reconstruction"] = {"images": int(len(sample)), "projections": errors}
            write_json_atomic(self.run_dir / CHANNEL_PLAN, plan)
        narrow = channels.prune_channels(source, groups, plan)
        info = channels.summary(plan)
        self.log(f"[prune_channels] kept {info['kept']} of {info['channels']} channels in {info['groups']} groups "
                 f"(ranked by {info['criterion']}); parameters {model.count_params():,} -> "
                 f"{narrow.count_params():,}")
        return narrow

    def _require_reachable_latency(self) -> None:
        from edgeshop.train import latency_target

        pixels = np.random.default_rng(0).uniform(0, 255, (4, self.image_size, self.image_size, 3)).astype(np.float32)
        floor = latency_target.require_reachable(self._build_at, channels.find_groups(self._build_at(None)),
                                                 self.config.compression.target_latency_ratio, pixels)
        self.log(f"--target-latency-ratio {self.config.compression.target_latency_ratio:g}: "
                 "reachable here (the narrowest "
                 f"allowed network runs at {floor:.2f}x)")

    def _allocate_for_latency(self, model: keras.Model, groups,
                              images: np.ndarray) -> tuple[dict[str, float], dict[str, Any]]:
        from edgeshop.train import latency_target

        target = self.config.compression.target_latency_ratio
        self.log(f"[prune_channels] choosing per-group fractions for {target:g}x the int8 latency")
        return latency_target.allocate_for_latency(self._build_at, model, groups, target, images, self.log)

    def _build_at(self, widths: dict[str, int] | None) -> keras.Model:
        """The run's architecture at export size with ``widths`` (None: unpruned), as the latency search times it."""
        return build_model(self.config, len(self.class_names), widths=widths)

    def _compile(self, model: keras.Model, phase: Phase, steps_per_epoch: int) -> None:
        total = max(1, phase.epochs * steps_per_epoch)
        warmup = min(steps_per_epoch, total // 10) if phase.name in ("train", "head", "prune_channels") else 0
        schedule = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=phase.lr if warmup == 0 else phase.lr * 0.1,
            decay_steps=total - warmup,
            alpha=0.01,
            warmup_target=phase.lr if warmup else None,
            warmup_steps=warmup,
        )
        optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=self.config.schedule.weight_decay)
        n_classes = len(self.class_names)
        k = min(5, n_classes)
        loss = make_loss(self.config.schedule.label_smoothing, self.coarse_of,
                         self.config.experimental.coarse_loss_weight)
        metrics = ["accuracy", keras.metrics.TopKCategoricalAccuracy(k=k, name="top5")]
        if self.teachers:
            loss = distill.DistillationLoss(n_classes, self.config.distillation.distill_temperature,
                                            self.config.distillation.distill_weight,
                                            loss)
            metrics = [distill.HardAccuracy(n_classes), distill.HardTopK(n_classes, k)]
        model.compile(optimizer=optimizer, loss=loss, metrics=metrics)

    # -- phases ------------------------------------------------------------------------
    def _run_phase(self, phase: Phase, strategy, train_ds, val_ds, steps: int) -> None:
        ckpt_dir = self.run_dir / "checkpoints" / phase.name
        with strategy.scope():
            model = self._phase_model(phase, steps)
            self._compile(model, phase, steps)
            epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
            checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer, epoch=epoch)
            manager = tf.train.CheckpointManager(checkpoint, str(ckpt_dir), max_to_keep=2)
            if manager.latest_checkpoint:
                checkpoint.restore(manager.latest_checkpoint).expect_partial()
                self.log(f"[{phase.name}] resumed from {manager.latest_checkpoint} (epoch {int(epoch.numpy())})")
            else:
                self.state.update(phase=phase.name, best=None, best_epoch=None, wait=0)
                self._save_state()
        initial_epoch = int(epoch.numpy())
        average = WeightAverage(ckpt_dir / "average.weights.npz") if phase.average_last else None
        if initial_epoch < phase.epochs and not self._stopped_early(phase):
            callbacks = [
                _EpochEnd(self, phase, manager, epoch, ckpt_dir / "best.weights.npz", val_ds is not None, average),
                keras.callbacks.TensorBoard(str(self.run_dir / "tensorboard" / phase.name), profile_batch=0),
            ]
            if phase.name == "prune":
                callbacks += compress.pruning_callbacks()
            self.log(f"[{phase.name}] {phase.epochs} epoch(s), lr {phase.lr:g}, {steps} steps/epoch")
            started = time.time()
            model.fit(
                train_ds,
                validation_data=val_ds,
                epochs=phase.epochs,
                initial_epoch=initial_epoch,
                steps_per_epoch=steps if self._shard() is not None else None,  # multi_worker: endless stream
                callbacks=callbacks,
                verbose=1 if sys.stdout.isatty() else 2,
            )
            seconds = self.state["seconds"]
            seconds[phase.name] = seconds.get(phase.name, 0.0) + time.time() - started
        best = ckpt_dir / "best.weights.npz"
        if phase.keep_best and best.is_file():
            load_weights(model, best)
            self.log(f"[{phase.name}] kept epoch {self.state['best_epoch']} (val accuracy {self.state['best']:.4f})")
        if average is not None:
            self._use_average(phase, model, average, val_ds)
        self._finish_phase(phase, model)

    def _use_average(self, phase: Phase, model: keras.Model, average: WeightAverage, val_ds) -> None:
        model.set_weights(average.weights(model.get_weights()))
        first = average.last_epoch - average.count + 1
        message = f"[{phase.name}] kept the mean weights of epochs {first}-{average.last_epoch}"
        if val_ds is not None:
            # Reported, not used to choose anything: the recipe fixes N in advance.
            accuracy = model.evaluate(val_ds, verbose=0, return_dict=True)["accuracy"]
            self.state[_averaged_key(phase.name)] = float(accuracy)
            message += f" (val accuracy {accuracy:.4f})"
        self.log(message)

    def _stopped_early(self, phase: Phase) -> bool:
        return phase.patience is not None and self.state.get("wait", 0) >= phase.patience

    def _finish_phase(self, phase: Phase, model: keras.Model) -> None:
        stages = self.run_dir / "stages"
        stages.mkdir(exist_ok=True)
        if phase.name == "prune":
            model = compress.strip_pruning(model)
            self.state["sparsity_after_strip"] = compress.kernel_sparsity(model)
            self.log(f"[prune] kernel sparsity after strip: {self.state['sparsity_after_strip']:.3f}")
        save_weights(model, stages / f"{phase.name}.weights.npz")
        self.state["completed"].append(phase.name)
        self._save_state()

    # -- the whole run -----------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        started = time.time()
        strategy = make_strategy(self.config.runtime.strategy, self.config.runtime.cpu_devices, self.log, self.role)
        keras.utils.set_random_seed(self.config.runtime.seed)
        if self.config.runtime.deterministic:
            tf.config.experimental.enable_op_determinism()
        self._load_data()
        self._write_metadata()
        val_ds = self._val_dataset()
        # streamed: files listed minus those known unreadable
        steps = math.ceil(self.n_train / self.config.schedule.batch_size)
        for phase in self.phases:
            if phase.name in self.state["completed"]:
                self.log(f"[{phase.name}] already done, skipping")
                continue
            size = self._phase_image_size(phase)
            if size != self.image_size:
                self.log(f"[{phase.name}] training at {size} px, validating at {self.image_size} px")
            # tf.data pipelines are lazy: building one per phase costs nothing.
            self._run_phase(phase, strategy, self._train_dataset(size), val_ds, steps)
        metrics = self._finalise(val_ds)
        metrics["wall_seconds_this_invocation"] = round(time.time() - started, 1)
        write_json_atomic(self.run_dir / "metrics.json", metrics)
        return metrics

    def _finalise(self, val_ds) -> dict[str, Any]:
        if self._streamed():  # the counts are known now: every file has been met
            self._write_data_report()
            self._write_metadata()
        float_model = load_run_model(self.run_dir, final=False)
        save_model(float_model, self.run_dir / "float_model.keras")
        metrics: dict[str, Any] = {
            "arch": self.arch.name,
            "image_size": self.image_size,
            "classes": len(self.class_names),
            "phases": self.state["completed"],
            "train_seconds_per_phase": {k: round(v, 1) for k, v in self.state["seconds"].items()},
            "sparsity_after_strip": self.state.get("sparsity_after_strip"),
        }
        plan = read_channel_plan(self.run_dir)
        if plan is not None:
            metrics["channels"] = channels.summary(plan)
        for phase_name, metric in (("train", "val_top1_averaged"),
                                   ("prune_channels", "val_top1_averaged_prune_channels")):
            if _averaged_key(phase_name) in self.state:
                metrics[metric] = self.state[_averaged_key(phase_name)]
        if val_ds is not None:
            final = load_run_model(self.run_dir, final=True) if self.config.compression.qat else float_model
            for name, model in (("float", float_model), ("final", final)):
                truth, probs = self._val_predictions(model, val_ds)
                # the evaluation's own top-k (ties: lowest index first), so training and edgeshop-eval agree
                metrics[f"val_top1_{name}"] = top_k_accuracy(truth, probs, 1)
                metrics[f"val_top5_{name}"] = top_k_accuracy(truth, probs, 5)
            self.log(f"validation top-1: float {metrics['val_top1_float']:.4f}, final {metrics['val_top1_final']:.4f}")
            metrics["warnings"] = did_not_learn(truth, probs, self.class_names)  # of the final model
            for warning in metrics["warnings"]:
                self.log(f"warning: {warning}; train longer or on more/clearer photos (--arch tiny only checks "
                         "the pipeline)")
        return metrics

    def _val_predictions(self, model: keras.Model, val_ds) -> tuple[np.ndarray, np.ndarray]:
        """(true index, scores) of every readable validation image."""
        if not self._streamed():
            return self.val.labels, model.predict(self.val.pixels.astype(np.float32), batch_size=64, verbose=0)
        truth, probs = [], []
        for images, targets in val_ds:  # streamed batch by batch: memory does not grow with val
            probs.append(model(images, training=False).numpy())
            truth.append(np.argmax(targets.numpy(), axis=1))
        if not probs:
            return np.zeros(0, np.int32), np.zeros((0, len(self.class_names)), np.float32)
        return np.concatenate(truth), np.concatenate(probs)


class _EpochEnd(keras.callbacks.Callback):
    """Per epoch: log a CSV row, track the best val accuracy, early-stop, fold the
    weights into the running average, checkpoint."""

    def __init__(self, run: TrainingRun, phase: Phase, manager, epoch_var, best_path: Path, has_val: bool,
                 average: WeightAverage | None = None):
        super().__init__()
        self.run, self.phase, self.manager, self.epoch_var = run, phase, manager, epoch_var
        self.best_path, self.has_val, self.average = best_path, has_val, average
        self.started = time.time()

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        state = self.run.state
        monitor = logs.get("val_accuracy" if self.has_val else "accuracy")
        if self.phase.keep_best and monitor is not None:
            if state["best"] is None or monitor > state["best"]:
                state.update(best=float(monitor), best_epoch=epoch + 1, wait=0)
                save_weights(self.model, self.best_path)
            else:
                state["wait"] = state.get("wait", 0) + 1
                if self.phase.patience is not None and state["wait"] >= self.phase.patience:
                    self.run.log(f"[{self.phase.name}] early stop: no val improvement for {state['wait']} epochs")
                    self.model.stop_training = True
        if self.average is not None and epoch + 1 > self.phase.epochs - self.phase.average_last:
            self.average.add(self.model.get_weights(), epoch + 1)
        _append_log(self.run.run_dir / "training_log.csv", self.phase.name, epoch + 1, logs, time.time() - self.started)
        if self.run._streamed():  # the epoch met every file: its unreadable ones are counted now
            before = self.run.n_train
            self.run._write_data_report()
            if self.run.n_train < before:
                skipped = self.run.skips.items()
                self.run.log(f"skipped {len(skipped)} unreadable file(s) (listed in data_report.json), "
                             f"e.g. {skipped[0][1]}")
        # Checkpoint last, after the state it describes is on disk: a kill between the
        # two replays one epoch instead of skipping one.
        self.run._save_state()
        self.epoch_var.assign(epoch + 1)
        self.manager.save(checkpoint_number=epoch + 1)


def _averaged_key(phase: str) -> str:
    """The state key of a phase's averaged-weights val accuracy (the main phase's predates the others)."""
    return "averaged_val_accuracy" if phase == "train" else f"averaged_val_accuracy_{phase}"


def split_samples(config: TrainConfig) -> tuple[list[datasets.Sample], list[datasets.Sample]]:
    """The run's training and validation images: ``config.data.val``, or else a stratified
    ``val_fraction`` of the training data (in whole bursts with ``val_grouping``) held out
    with the run's seed (deterministic, so
    tools can list the held-out images of a finished run)."""
    samples = datasets.discover(config.data.path, config.data.classes)
    if config.data.val:
        return samples, datasets.discover(config.data.val, config.data.classes)
    similar = {}
    if config.data.val_grouping == "similarity":  # look-alikes by ImageNet embedding (train/similarity.py)
        from edgeshop.train.similarity import EMBEDDING_DISTANCE, imagenet_descriptors

        descriptors = imagenet_descriptors(samples, workers=config.runtime.workers)
        similar = {"threshold": EMBEDDING_DISTANCE, "descriptors": descriptors}
    return datasets.grouped_split(samples, config.data.val_fraction, config.runtime.seed, config.data.val_grouping,
                                  config.experimental.val_group_size, **similar)


def _as_inputs(pixels, labels, n_classes: int):
    """Model inputs from cached uint8 pixels and class indices: float32 images, one-hot targets."""
    return tf.cast(pixels, tf.float32), tf.one_hot(labels, n_classes)


LOG_COLUMNS = ("phase", "epoch", "loss", "accuracy", "top5", "val_loss", "val_accuracy", "val_top5", "seconds")


def _append_log(path: Path, phase: str, epoch: int, logs: dict, seconds: float) -> None:
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


def make_strategy(name: str, cpu_devices: int, log=print, role: cluster.Role | None = None):
    """The tf.distribute strategy: multi_worker over the machines of TF_CONFIG (checked
    reachable by the caller: cluster.wait_for_cluster), mirrored over GPUs (or logical
    CPUs), else default."""
    if name == "multi_worker":
        role = role or cluster.read_tf_config()
        strategy = tf.distribute.MultiWorkerMirroredStrategy()  # reads the same TF_CONFIG
        log(f"MultiWorkerMirroredStrategy: {role.name} ({'chief' if role.chief else 'worker'}) of {role.size} "
            f"tasks, {strategy.num_replicas_in_sync} replicas")
        return strategy
    if cpu_devices > 1:
        cpus = tf.config.list_physical_devices("CPU")
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(cpu_devices)]
        )
    gpus = tf.config.list_physical_devices("GPU")
    log(f"devices: {len(gpus)} GPU(s)" + (f" {[g.name for g in gpus]}" if gpus else ", training on CPU"))
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        devices = [d.name for d in tf.config.list_logical_devices("GPU" if gpus else "CPU")]
        log(f"MirroredStrategy over {devices}")
        return tf.distribute.MirroredStrategy(devices=devices)
    return tf.distribute.get_strategy()


def saved_config(run_dir: str | Path) -> TrainConfig:
    """The configuration a run was started with (config.json), for resuming it."""
    run_dir = Path(run_dir)
    if not (run_dir / "state.json").is_file():
        raise EdgeshopError(f"{run_dir}: nothing to resume (no state.json); start without --resume")
    return TrainConfig.from_saved(json.loads((run_dir / "config.json").read_text()))


def check_run_folder(config: TrainConfig, run_dir: Path, force: bool, role: cluster.Role | None = None) -> list[Path]:
    """What starting a run in ``run_dir`` replaces, after refusing (nothing touched) a folder that
    holds an input or anything but a run's own files (edgeshop/_io.py). A chief's ``workers/``
    belongs to the other tasks: each replaces its own."""
    keep = ("workers",) if role is not None and role.chief else ()
    return check_output_folder(run_dir, force=force, inputs=config.inputs(), keep=keep)


def train(config: TrainConfig, resume: bool = False, force: bool = False, log=print) -> dict[str, Any]:
    """Run (or, with ``resume``, continue) a training run; returns the metrics in metrics.json."""
    return TrainingRun(config, resume=resume, force=force, log=log).run()


def resume(run_dir: str | Path, log=print) -> dict[str, Any]:
    """Continue an interrupted run from its last checkpoint, with its saved settings (a
    non-chief multi_worker task: from its own folder, RUN_DIR/workers/TASK)."""
    # the saved config replaces this one
    return train(TrainConfig.from_flat(data="", out=str(run_dir)), resume=True, log=log)


def _task_folder(out: Path, strategy: str | None) -> tuple[cluster.Role | None, Path]:
    """This process's task (multi_worker) and the folder it writes: the run folder for the
    chief and single-machine runs, ``workers/TASK`` in it for the other tasks. ``strategy``
    None (resuming, settings not read yet): a task with its own folder there is a worker."""
    if strategy is None:
        if not os.environ.get("TF_CONFIG"):
            return None, out
        role = cluster.read_tf_config()
        own = out / "workers" / role.name
        return (role, own) if not role.chief and (own / "state.json").is_file() else (None, out)
    if strategy != "multi_worker":
        return None, out
    role = cluster.read_tf_config()
    return role, out if role.chief else out / "workers" / role.name
