"""A run's images: which ones (the split, recorded in the run folder), decoded or listed for
streaming, checked, and reported in data_report.json."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgeshop import data as datasets
from edgeshop.errors import DataError
from edgeshop.tflite.modelcard import InputSpec
from edgeshop.train.config import TrainConfig
from edgeshop.train.input_pipeline import choose_pipeline
from edgeshop.train.run_dir import RunDir
from edgeshop.train.streamed_images import SkipLog
from edgeshop.utils import progress_bar


def split_samples(config: TrainConfig) -> tuple[list[datasets.Sample], list[datasets.Sample]]:
    """The run's training and validation images: ``config.data.val``, or else a stratified
    ``val_fraction`` of the training data (in whole bursts with ``val_grouping``) held out
    with the run's seed. Training records the result in the run folder (RunDir.read_split);
    this derives it again for runs made before that."""
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


def run_split(folder: RunDir, config: TrainConfig) -> tuple[list[datasets.Sample], list[datasets.Sample]]:
    """The split a run trained on: as recorded, else (runs made before split.json) derived again."""
    return folder.read_split() or split_samples(config)


class RunData:
    """The run's images and classes. Found and checked on construction (no image decoded);
    decoded or listed by ``load``."""

    def __init__(self, config: TrainConfig, folder: RunDir, spec: InputSpec, log: Callable[[str], object],
                 resume: bool = False) -> None:
        self.config, self.folder, self.spec, self.log = config, folder, spec, log
        self.pipeline: str | None = None  # memory or stream: chosen by load()
        self.train_samples, self.val_samples = run_split(folder, config) if resume else split_samples(config)
        self.class_names = datasets.class_names_of(self.train_samples)
        if config.data.val:
            log(datasets.describe(self.train_samples, config.data.path))
            log(datasets.describe(self.val_samples, config.data.val))
        else:
            log(datasets.describe(self.train_samples + self.val_samples, config.data.path))
        if len(self.class_names) < 2:
            raise DataError(
                f"{config.data.path}: found a single class {self.class_names}; a classifier needs at least two"
            )
        self.coarse_of = None
        if config.experimental.coarse_loss_weight > 0:  # the hierarchy is only read when the loss uses it
            hierarchy = datasets.read_hierarchy(Path(config.data.hierarchy))
            self.coarse_of = datasets.coarse_index(self.class_names, hierarchy, config.data.hierarchy)
        unknown = sorted({s.label for s in self.val_samples} - set(self.class_names))
        if unknown:
            raise DataError(f"{config.data.val}: validation classes absent from training data: {unknown[:5]}")

    def streamed(self) -> bool:
        """The pipeline load() chose (train/input_pipeline.py) is the streamed one."""
        return self.pipeline == "stream"

    def load(self, needs_memory: str = "") -> None:
        """Decode the images (memory pipeline) or list them (stream), and write data_report.json."""
        cfg = self.config
        train_samples, val_samples = self.train_samples, self.val_samples
        if not cfg.data.val and cfg.data.val_grouping != "none":
            self.log(
                f"validation: {cfg.data.val_fraction:g} of each class of {cfg.data.path} in whole groups of "
                "consecutive "
                f"files ({cfg.data.val_grouping}), so a burst of one shelf stays on one side"
            )
        elif not cfg.data.val:
            self.log(
                f"validation: a random {cfg.data.val_fraction:g} of each class of {cfg.data.path}; "
                "photos taken in bursts "
                "of one shelf leak across such a split (figures come out optimistic): pass --val with "
                "photos from other days or stores for honest ones"
            )
        if self.coarse_of is not None:
            self.log(
                f"class hierarchy: {len(self.class_names)} fine -> {self.coarse_of.max() + 1} coarse classes, "
                f"coarse loss weight {cfg.experimental.coarse_loss_weight}"
            )
        found = datasets.find_duplicates(train_samples, val_samples)
        duplicates = found.pairs
        if duplicates:
            self.log(
                f"warning: {len(duplicates)} validation file(s) are byte-identical to training files, "
                f"e.g. {duplicates[0][1]} == {duplicates[0][0]}; validation figures will be optimistic"
            )
        if found.too_large:
            self.log(
                f"duplicate check: {len(found.too_large)} file(s) over {datasets.MAX_HASH_BYTES // 2**20} MB "
                f"not compared, e.g. {found.too_large[0]}"
            )
        self.duplicates, self.too_large_to_compare = duplicates, found.too_large
        choice = choose_pipeline(
            cfg.runtime.input_pipeline,
            len(train_samples) + len(val_samples),
            self.spec.height,
            self.spec.width,
            cfg.runtime.memory_budget_mb,
            needs_memory=needs_memory,
            needs_stream="--cache-dir" if cfg.runtime.cache_dir else "",
        )
        self.pipeline, self.pipeline_reason = choice.pipeline, choice.reason
        self.log(f"input pipeline: {choice.reason}")
        if self.streamed():
            self.train = self.val = None
            self.skips = SkipLog()
            self._refuse_unreadable_classes(datasets.unreadable_classes(train_samples, self.spec))
            self.write_streamed_report()
            self.log(
                f"{len(train_samples)} training / {len(val_samples)} validation images listed, "
                f"{len(self.class_names)} classes, streamed from disk (unreadable files are skipped and "
                "counted as the first epoch meets them)"
            )
            return
        with progress_bar(len(train_samples) + len(val_samples), "loading images") as bar:
            self.train = datasets.load_images(
                train_samples, self.class_names, self.spec, cfg.runtime.workers, bar.update
            )
            self.val = datasets.load_images(val_samples, self.class_names, self.spec, cfg.runtime.workers, bar.update)
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
        self.folder.write_json(self.folder.data_report_file, report)
        self.log(
            f"{report['train_images']} training / {report['val_images']} validation images, "
            f"{report['classes']} classes, {len(skipped)} skipped"
        )

    def load_teacher_targets(self, teachers: list[Any]) -> None:
        """The teachers' soft targets of every training and validation image (cached logits);
        an ensemble's are the mean of its teachers' softened probabilities."""
        from edgeshop.train import distill

        cfg = self.config
        soft = {}
        for name, images in (("train", self.train), ("val", self.val)):
            logits = [
                distill.teacher_logits(
                    teacher,
                    self.folder.path,
                    images.paths,
                    self.class_names,
                    images.pixels,
                    self.spec,
                    cfg.runtime.workers,
                    self.log,
                    self.folder.teacher_logits(i).name,
                )
                for i, teacher in enumerate(teachers)
            ]
            soft[name] = distill.ensemble_soft_targets(logits, cfg.distillation.distill_temperature)
        agree = float(np.mean(np.argmax(soft["train"], axis=1) == self.train.labels)) if len(self.train.labels) else 0
        who = "the teacher's" if len(teachers) == 1 else f"the {len(teachers)} teachers' mean"
        self.log(
            f"distillation: T {cfg.distillation.distill_temperature:g}, weight {cfg.distillation.distill_weight:g}; "
            f"{who} top-1 "
            f"agrees with {agree:.1%} of the training labels"
        )
        self.train_soft, self.val_soft = soft["train"], soft["val"]

    def write_streamed_report(self) -> None:
        """data_report.json of a streamed run: the files skipped so far (this invocation's
        and, after --resume, the earlier ones'), rewritten after every epoch."""
        path = self.folder.data_report_file
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
        self.folder.write_json(path, report)
        self.n_train = report["train_images"]

    def _refuse_unreadable_classes(self, unreadable: list[tuple[str, str]]) -> None:
        """A class none of whose training images can be read would train as if absent (val
        accuracy 1.0, or NaN when streamed): refused, naming it, before any training."""
        if unreadable:
            name, reason = unreadable[0]
            others = f" (and {len(unreadable) - 1} more class(es))" if len(unreadable) > 1 else ""
            raise DataError(
                f"{self.config.data.path}: the class {name!r}{others} has no readable training image, e.g. "
                f"{reason}; add readable photos of it or remove its folder"
            )

    def representative_pixels(self) -> np.ndarray:
        """Up to compression.representative_images training images at image_size: the int8
        converter's representative data (conversion ranges, QAT init)."""
        rng = np.random.default_rng(self.config.runtime.seed)
        if not self.streamed():
            take = rng.permutation(len(self.train.labels))[: self.config.compression.representative_images]
            return self.train.pixels[np.sort(take)]
        # Streamed: decode only the chosen files (a skipped one is counted like any other).
        take = np.sort(rng.permutation(len(self.train_samples))[: self.config.compression.representative_images])
        chosen = datasets.load_images(
            [self.train_samples[i] for i in take], self.class_names, self.spec, self.config.runtime.workers
        )
        for path, reason in chosen.skipped:
            self.skips.add(path, reason)
        if not len(chosen.labels):
            raise DataError(
                f"{self.config.data.path}: none of {len(take)} training images sampled as representative images "
                f"is readable, e.g. {chosen.skipped[0][1]}"
            )
        return chosen.pixels
