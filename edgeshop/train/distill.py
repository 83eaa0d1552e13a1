"""Knowledge distillation: a bigger teacher's soft targets for the student's loss.

Hinton et al. 2015: loss = (1 - w) * CE(hard labels) + w * T^2 * KL(softmax(t / T) || softmax(s / T)),
t and s the teacher's and the student's logits, T the temperature (the T^2 keeps the
soft term's gradients at the scale of the hard one's when T changes).

The teacher is a run directory (its final weights, as a float model; ``RUN_DIR/float_model.keras``
names the same run), or an edgeshop ``.tflite`` file (any format; its logits read through
the runtime's ``HeadProbe``). Its logits are computed once per image and cached in the
student's run directory (``teacher_logits.npz``, keyed by the teacher's file digest and
its preprocessing, one row per image path), so a resumed run reuses them.

Several teachers make an ensemble teacher: each one's logits are cached in a file of its
own (``teacher_logits.npz``, ``teacher_logits_1.npz``, ...) and the soft target is the mean
of their softened probabilities. An ensemble of differently trained nets is usually more
accurate than any of them, and a student distilled from it keeps part of that gain at no
cost on the device.

Offline, not on the fly: the cached logits are of the un-augmented image (centre crop at
the teacher's input size), while the student sees an augmented crop of it. That is the
usual "offline KD" trade-off: a .tflite teacher cannot run inside the tf.data graph at all,
and on a small CPU a Lite2 teacher's forward pass in every step would cost about as much
again as the student's step, every epoch; the cache costs one pass. With CutMix/MixUp the
teacher's soft targets are mixed in the same proportion as the hard labels.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgeshop import data as datasets
from edgeshop.adapt.probe import HeadProbe
from edgeshop.errors import EdgeshopError
from edgeshop.runtime.classifier import Classifier
from edgeshop.tflite.modelcard import InputSpec
from edgeshop.train._keras import keras, tf
from edgeshop.train.run_dir import RunDir
from edgeshop.train.run_model import load_run_model, read_run
from edgeshop.utils import write_bytes_atomic

CACHE_FILE = RunDir(".").teacher_logits(0).name


def cache_file(index: int) -> str:
    """The cache of the ``index``-th teacher of an ensemble (the first keeps the single teacher's name)."""
    return RunDir(".").teacher_logits(index).name


@dataclass
class Teacher:
    source: str
    kind: str  # "run" | "tflite"
    labels: tuple[str, ...]
    input: InputSpec
    digest: str  # of the files whose weights give the logits

    def cache_key(self) -> str:
        """What the cached logits depend on besides the image file: the teacher and its preprocessing."""
        return json.dumps({"teacher": self.digest, "input": asdict(self.input)}, sort_keys=True)

    def logits(self, pixels: np.ndarray) -> np.ndarray:
        """Logits (N x classes, in ``labels`` order) of model-ready pixels at ``input``'s size."""
        if self.kind == "tflite":
            return HeadProbe(Classifier(self.source)).run_many(pixels, "teacher logits")["logits"]
        model = load_run_model(Path(self.source), final=True, as_float=True)
        head = keras.Model(model.input, model.get_layer("classifier").output)
        return head.predict(pixels.astype(np.float32), batch_size=64, verbose=0)


def _digest(paths: Sequence[Path]) -> str:
    sha = hashlib.sha256()
    for path in paths:
        sha.update(path.read_bytes())
    return sha.hexdigest()


def load_teacher(source: str | Path) -> Teacher:
    """The teacher named by ``--teacher``: labels and preprocessing read, no model built yet."""
    path = Path(source)
    if path.suffix == ".keras" and path.is_file():
        path = path.parent  # a run's float model: the run directory holds its labels and preprocessing
    if path.suffix == ".tflite" and path.is_file():
        card = Classifier(path).card
        return Teacher(str(path), "tflite", tuple(card.labels), card.input, _digest([path]))
    run = RunDir(path)
    if path.is_dir() and not run.config_file.is_file():
        raise EdgeshopError(f"--teacher {source}: not an edgeshop run directory (no config.json); expected an "
                            "edgeshop run directory, its float_model.keras, or an edgeshop .tflite model")
    if path.is_dir():
        _config, labels, completed = read_run(path)
        stages = run.stage_files()
        if not completed or not stages:
            raise EdgeshopError(f"--teacher {path}: the run has no finished phase; finish it (edgeshop-train "
                                "--resume) or pass another teacher")
        try:
            card = run.card()
        except OSError as exc:
            raise EdgeshopError(f"--teacher {path}: cannot read card.json ({exc.strerror})") from None
        return Teacher(str(path), "run", tuple(labels), card.input,
                       _digest([run.config_file, run.state_file, *stages]))
    raise EdgeshopError(f"--teacher {source}: expected an edgeshop run directory, its float_model.keras, "
                        "or an edgeshop .tflite model")


def load_teachers(sources: Sequence[str], class_names: Sequence[str]) -> list[Teacher]:
    """The run's teachers (``--teacher``), each checked to know the data's classes."""
    teachers = [load_teacher(source) for source in sources]
    for teacher in teachers:
        check_labels(teacher, class_names)
    return teachers


def check_labels(teacher: Teacher, class_names: Sequence[str]) -> None:
    """Refuse a teacher whose classes are not the data's (the order may differ)."""
    only_teacher = sorted(set(teacher.labels) - set(class_names))
    only_data = sorted(set(class_names) - set(teacher.labels))
    if only_teacher or only_data:
        raise EdgeshopError(f"--teacher {teacher.source}: its labels differ from the data's classes: only the "
                            f"teacher has {only_teacher[:5]}, only the data has {only_data[:5]}; "
                            "distil from a teacher trained on the same classes")


def teacher_logits(teacher: Teacher, run_dir: Path, paths: Sequence[Path], class_names: Sequence[str],
                   pixels: np.ndarray | None = None, spec: InputSpec | None = None, workers: int = 4,
                   log=print, cache_name: str = CACHE_FILE) -> np.ndarray:
    """The teacher's logits of each image in ``paths`` (columns in ``class_names`` order), from
    the run's cache (``run_dir / cache_name``) where it has them. ``pixels``/``spec``: the images
    as already loaded for the student, reused when the teacher's preprocessing is the same."""
    if not paths:
        return np.zeros((0, len(class_names)), np.float32)
    cache = run_dir / cache_name
    key = teacher.cache_key()
    known: dict[str, np.ndarray] = {}
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as data:
            if str(data["key"]) == key:
                known = dict(zip(data["paths"].tolist(), data["logits"], strict=True))
    names = [str(p) for p in paths]
    missing = [i for i, name in enumerate(names) if name not in known]
    if missing:
        log(f"teacher {teacher.source}: logits of {len(missing)} image(s) ({len(names) - len(missing)} cached)")
        if pixels is not None and spec == teacher.input:
            batch = pixels[missing]
        else:
            samples = [datasets.Sample(Path(names[i]), "") for i in missing]
            loaded = datasets.load_images(samples, [""], teacher.input, workers)
            if loaded.skipped:
                raise EdgeshopError(f"--teacher: cannot read {loaded.skipped[0][0]} for the teacher "
                                    f"({loaded.skipped[0][1]})")
            batch = loaded.pixels
        for i, row in zip(missing, teacher.logits(batch), strict=True):
            known[names[i]] = row.astype(np.float32)
        _write_cache(cache, key, known)
    else:
        log(f"teacher {teacher.source}: logits of {len(names)} image(s) read from {cache}")
    order = [teacher.labels.index(name) for name in class_names]  # the teacher's columns in the data's order
    return np.stack([known[name] for name in names])[:, order]


def _write_cache(cache: Path, key: str, known: dict[str, np.ndarray]) -> None:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, key=np.array(key), paths=np.array(list(known)), logits=np.stack(list(known.values())))
    write_bytes_atomic(cache, buffer.getvalue())


def soft_targets(logits: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / T), the teacher's softened probabilities."""
    scaled = logits.astype(np.float64) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


def ensemble_soft_targets(logits: Sequence[np.ndarray], temperature: float) -> np.ndarray:
    """The mean of several teachers' softened probabilities (one teacher: its own soft targets).
    Probabilities, not logits, are averaged: teachers' logits need not share a scale."""
    return np.mean([soft_targets(each, temperature) for each in logits], axis=0).astype(np.float32)


class DistillationLoss(keras.losses.Loss):
    """(1 - weight) x ``hard_loss`` + weight x T^2 x KL(teacher || student at T).

    Targets are [hard labels | teacher soft targets] side by side (2 x classes columns), so
    they travel through tf.data and CutMix/MixUp together. The model outputs probabilities;
    softmax(log(p) / T) equals softmax(s / T) for its logits s (log p = s - logsumexp(s)).
    """

    def __init__(self, num_classes: int, temperature: float, weight: float, hard_loss: keras.losses.Loss,
                 name: str = "distillation", **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.num_classes, self.temperature, self.weight = int(num_classes), float(temperature), float(weight)
        self.hard_loss = hard_loss

    def call(self, y_true, y_pred):
        y_true = tf.cast(y_true, y_pred.dtype)
        hard, teacher = y_true[:, : self.num_classes], y_true[:, self.num_classes :]
        # the hard loss' own reduction is per-sample here (call, not __call__)
        hard_term = self.hard_loss.call(hard, y_pred)
        log_p = tf.math.log(tf.clip_by_value(y_pred, 1e-30, 1.0))
        student = tf.nn.log_softmax(log_p / self.temperature, axis=-1)
        log_teacher = tf.math.log(tf.clip_by_value(teacher, 1e-30, 1.0))
        kl = tf.reduce_sum(teacher * (log_teacher - student), axis=-1)
        return (1.0 - self.weight) * hard_term + self.weight * self.temperature**2 * kl

    def get_config(self) -> dict:
        return {**super().get_config(), "num_classes": self.num_classes, "temperature": self.temperature,
                "weight": self.weight}


class _HardLabelMetric:
    """Mixin: score only the hard-label half of [hard | teacher] targets."""

    num_classes: int

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(y_true[:, : self.num_classes], y_pred, sample_weight)


class HardAccuracy(_HardLabelMetric, keras.metrics.CategoricalAccuracy):
    def __init__(self, num_classes: int, name: str = "accuracy", **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.num_classes = num_classes


class HardTopK(_HardLabelMetric, keras.metrics.TopKCategoricalAccuracy):
    def __init__(self, num_classes: int, k: int, name: str = "top5", **kwargs) -> None:
        super().__init__(k=k, name=name, **kwargs)
        self.num_classes = num_classes
