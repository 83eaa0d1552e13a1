"""Training configuration in groups: defaults < config file < command-line flags; saved resolved.

Every setting has a type, a default and a one-line meaning (the field's ``help``), listed by
``edgeshop-train --print-config``. Config files may be nested (``{"schedule": {"epochs": 5}}``),
use dotted keys (``schedule.epochs``) or the flat names that runs before the groups saved
(``FLAT_KEYS``). Settings under ``experimental`` are research knobs that did not help: off by
default, set from the config file, warned about when set.
"""

from __future__ import annotations

import difflib
import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from edgeshop.data import VAL_GROUPINGS
from edgeshop.errors import EdgeshopError
from edgeshop.tflite.modelcard import INTERPOLATIONS

log = logging.getLogger("edgeshop.train.config")

HEADS = ("linear", "cosine")  # classifier heads (train/cosine_head.py)
DEFAULT_COSINE_SCALE = 16.0  # logits span +-16: enough for a confident softmax over ~100 classes

STRATEGIES = ("auto", "default", "mirrored", "multi_worker")
INPUT_PIPELINES = ("auto", "memory", "stream")


def setting(default: Any, help: str) -> Any:  # noqa: A002  (the word argparse uses)
    """A config field with its one-line meaning, shown by --print-config."""
    return field(default=default, metadata={"help": help})


@dataclass
class DataConfig:
    path: str = setting("", "training images: folder of class folders, split .txt (with classes.csv) or "
                            "path,label .csv (required)")
    val: str | None = setting(None, "validation folder / split file / manifest; None: a stratified val_fraction")
    val_fraction: float = setting(0.1, "held-out fraction of each class when val is not given")
    # Burst shots on both sides of a random split flatter validation.
    val_grouping: str = setting("none", "how val_fraction is drawn: none (random images), similarity (runs of "
                                        "look-alike neighbours) or file_order (blocks of consecutive files)")
    classes: str | None = setting(None, "classes.csv for split files (default: beside them)")
    hierarchy: str | None = setting(None, "classes.csv mapping fine -> coarse classes (name, id, coarse name)")
    augment: bool = setting(True, "random resized crop, flip, rotation, colour and blur")
    mix: float = setting(0.0, "probability per batch of CutMix or MixUp (needs augment); 0 = off")


@dataclass
class ModelConfig:
    arch: str = setting("efficientnet_lite0", "efficientnet_lite0/1/2, seed_cnn, or tiny (checks the pipeline "
                                              "in seconds; not a model to deploy)")
    image_size: int | None = setting(None, "input side in pixels; None: the architecture's")
    # FixRes: training crops zoom in, so a net trained a little smaller sees objects at the
    # exported size; and each step is cheaper.
    train_image_size: int | None = setting(None, "side the float phases train at (QAT and export use image_size); "
                                                 "None: image_size")
    interpolation: str = setting("linear", "resize rule written into the card: linear (fast) or area (box filter)")
    pretrained: bool = setting(True, "start from ImageNet weights (False: random weights)")
    # For air-gapped machines (train/weights.py).
    pretrained_weights: str | None = setting(None, "ImageNet weights from this folder (sha256-checked) or .npz; "
                                                   "None: $EDGESHOP_WEIGHTS_DIR, models/, the user cache")
    dropout: float | None = setting(None, "dropout before the classifier; None: the architecture's")
    # cosine makes enrolled products (weight imprinting) comparable with trained ones.
    head: str = setting("linear", "classifier head: linear or cosine (scale x cos(row, embedding))")
    cosine_scale: float = setting(DEFAULT_COSINE_SCALE, "the cosine head's logit scale, in (0, 100]")


@dataclass
class ScheduleConfig:
    epochs: int = setting(10, "epochs of the main phase (fine-tune, or from scratch)")
    head_epochs: int = setting(2, "pretrained nets: epochs training the new head alone first")
    batch_size: int = setting(32, "images per training step")
    lr: float = setting(1e-3, "learning rate of the head phase / from-scratch training")
    fine_tune_lr: float = setting(3e-4, "learning rate of the whole-network fine-tune")
    weight_decay: float = setting(1e-5, "AdamW weight decay")
    label_smoothing: float = setting(0.1, "label smoothing of the cross-entropy")
    patience: int = setting(4, "early stopping after this many epochs without val gain (with select_best_epoch)")
    # False: val is only reported, so its figures are not inflated by the choice of epoch.
    select_best_epoch: bool = setting(True, "keep the epoch with the best val accuracy and stop early "
                                            "(False: fixed schedule, last epoch kept)")
    freeze_bn: bool = setting(False, "BatchNorm in inference mode after the head phase (small datasets)")


@dataclass
class CompressionConfig:
    # EfficientNet-Lite's expansions (train/channels.py); runs after the main phase, before QAT.
    prune_channels: float = setting(0.0, "remove this fraction of the channels of every conv -> depthwise -> conv "
                                         "group, then fine-tune the narrower network; 0 = off")
    target_latency_ratio: float = setting(0.0, "instead: remove as many channels as make the int8 model this "
                                               "fraction of the unpruned one's latency (timed here); 0 = off")
    prune_channels_epochs: int = setting(4, "fine-tuning epochs after removing channels")
    prune_channels_lr: float = setting(3e-4, "their peak learning rate")
    qat: bool = setting(False, "int8 quantization-aware training (last phase)")
    qat_epochs: int = setting(2, "epochs of quantization-aware training")
    qat_lr: float = setting(2e-5, "its learning rate")
    representative_images: int = setting(200, "training images kept as the int8 converter's representative data")


@dataclass
class DistillationConfig:
    # A list is an ensemble: the teachers' softened probabilities averaged (train/distill.py).
    teacher: str | list[str] | None = setting(None, "teacher run directory or .tflite model, or a list of them; "
                                                    "None: no distillation")
    distill_temperature: float = setting(4.0, "softening temperature T of teacher and student")
    distill_weight: float = setting(0.5, "loss = (1 - w) x CE(labels) + w x T^2 x KL(teacher, student)")


@dataclass
class RuntimeConfig:
    out: str = setting("", "run directory to create (required)")
    seed: int = setting(0, "random seed of splits, augmentation and initial weights")
    # Process-wide and cannot be turned off again.
    deterministic: bool = setting(False, "deterministic TF kernels: a rerun here gives identical weights (slower)")
    strategy: str = setting("auto", "tf.distribute strategy: auto | default | mirrored | multi_worker "
                                    "(from TF_CONFIG)")
    cpu_devices: int = setting(0, "split the CPU into N logical devices (to test mirrored on CPU); 0 = off")
    connect_timeout: float = setting(300.0, "multi_worker: seconds to wait for every task of TF_CONFIG")
    input_pipeline: str = setting("auto", "memory (decode all images first), stream (decode per batch) or auto "
                                          "(memory when it fits memory_budget_mb)")
    memory_budget_mb: float | None = setting(None, "auto's budget in MB; None: a share of the RAM available")
    cache_dir: str | None = setting(None, "stream: keep decoded pixels here after the first epoch")
    workers: int = setting(4, "image decoding threads")


@dataclass
class ExperimentalConfig:
    """Research knobs that did not help: off by default, warned about when set."""

    val_group_size: int = setting(10, "files per block for data.val_grouping file_order")
    coarse_loss_weight: float = setting(0.0, "weight of a coarse-class cross-entropy (needs data.hierarchy); 0 = off")
    average_last_epochs: int = setting(0, "keep the mean weights of the main phase's last N epochs (needs "
                                          "schedule.select_best_epoch false); 0 = off")
    # channels.reconstruct_consumers: a far better start than plain removal, no better end.
    reconstruct_channels: bool = setting(False, "refit each projection on its kept channels by least squares "
                                                "before fine-tuning")
    prune_channels_average_last_epochs: int = setting(0, "keep the mean weights of the channel fine-tune's last N "
                                                         "epochs; 0 = off")
    sparsity: float = setting(0.0, "magnitude pruning: zero this fraction of the weights (tfmot), after channel "
                                   "removal and before QAT; 0 = off")
    sparsity_epochs: int = setting(2, "epochs of magnitude pruning")
    sparsity_lr: float = setting(1e-4, "its learning rate")
    # train/outlier_exposure.py; studies/grocery/outlier-exposure.md: it did not raise unknown rejection.
    outlier_exposure: float = setting(0.0, "weight of the cross-entropy to uniform on CutMix pictures of two "
                                           "different classes appended to each batch (needs data.augment); 0 = off")


GROUPS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "schedule": ScheduleConfig,
    "compression": CompressionConfig,
    "distillation": DistillationConfig,
    "runtime": RuntimeConfig,
    "experimental": ExperimentalConfig,
}

# Every setting's key, "group.field", in print order.
KEYS: tuple[str, ...] = tuple(f"{group}.{f.name}" for group, cls in GROUPS.items() for f in fields(cls))

# The flat names of runs saved before the groups -> their key now. Also the names of the old flags.
RENAMED = {"data": "data.path", "out": "runtime.out", "prune": "experimental.sparsity",
           "prune_epochs": "experimental.sparsity_epochs", "prune_lr": "experimental.sparsity_lr",
           "calibration_images": "compression.representative_images",
           "compression.calibration_images": "compression.representative_images"}
FLAT_KEYS: dict[str, str] = {**{key.split(".", 1)[1]: key for key in KEYS if key not in RENAMED.values()},
                             **RENAMED}


def _key(name: str, source: str) -> str:
    """A setting's key from a dotted key or a flat name; an unknown one names the nearest."""
    if name in KEYS:
        return name
    if name in FLAT_KEYS:
        return FLAT_KEYS[name]
    near = difflib.get_close_matches(name, [*KEYS, *FLAT_KEYS], n=1, cutoff=0.5)
    hint = f"; did you mean {near[0]!r}?" if near else "; edgeshop-train --print-config lists every key"
    raise EdgeshopError(f"{source}: unknown key {name!r}{hint}")


def flatten(values: Mapping[str, Any], source: str = "config") -> dict[str, Any]:
    """{"group.field": value} from a nested, dotted or flat (pre-groups) mapping."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        # "data" is both a group and the old flat name of data.path: a mapping means the group
        if name in GROUPS and isinstance(value, Mapping):
            for inner, inner_value in value.items():
                key = _key(f"{name}.{inner}", source)
                out[key] = inner_value
        else:
            out[_key(str(name), source)] = value
    return out


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    compression: CompressionConfig = field(default_factory=CompressionConfig)
    distillation: DistillationConfig = field(default_factory=DistillationConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    experimental: ExperimentalConfig = field(default_factory=ExperimentalConfig)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "config") -> TrainConfig:
        """A config from a nested, dotted or flat mapping; missing keys keep their defaults."""
        grouped: dict[str, dict[str, Any]] = {group: {} for group in GROUPS}
        for key, value in flatten(values, source).items():
            group, name = key.split(".", 1)
            grouped[group][name] = value
        return cls(**{group: GROUPS[group](**grouped[group]) for group in GROUPS})

    @classmethod
    def from_flat(cls, **values: Any) -> TrainConfig:
        """Keyword form of from_dict for code that sets a run up: ``TrainConfig.from_flat(data="photos",
        out="run", epochs=3)``; experimental settings are warned about, as from the command line."""
        config = cls.from_dict(values)
        config.warn_experimental()
        return config

    @classmethod
    def from_sources(cls, file_values: Mapping[str, Any], overrides: Mapping[str, Any],
                     source: str = "config file") -> TrainConfig:
        """Defaults < config file < command-line flags that were actually given."""
        values = {**flatten(file_values, source),
                  **flatten({k: v for k, v in overrides.items() if v is not None}, "command line")}
        missing = [f"{key} ({flag})" for key, flag in (("data.path", "--data"), ("runtime.out", "--out"))
                   if not values.get(key)]
        if missing:
            raise EdgeshopError(f"missing required setting(s): {', '.join(missing)}; give the flag or set the key "
                                "in the config file")
        config = cls.from_dict(values)
        config.warn_experimental()
        return config

    def get(self, key: str) -> Any:
        """A setting by its key, e.g. ``config.get("schedule.epochs")``."""
        group, name = key.split(".", 1)
        return getattr(getattr(self, group), name)

    def to_keys(self) -> dict[str, Any]:
        """{"group.field": value} for every key: the flat view, for comparing configurations."""
        return {key: self.get(key) for key in KEYS}

    def experimental_set(self) -> list[str]:
        """The experimental keys whose value is not their default."""
        default = ExperimentalConfig()
        return [f"experimental.{f.name}" for f in fields(ExperimentalConfig)
                if getattr(self.experimental, f.name) != getattr(default, f.name)]

    def warn_experimental(self) -> None:
        for key in self.experimental_set():
            log.warning("%s = %r is an experimental setting (a research knob that did not help in our studies)",
                        key, self.get(key))

    def teachers(self) -> list[str]:
        """The teacher sources, one or several (older runs saved a single string)."""
        teacher = self.distillation.teacher
        if not teacher:
            return []
        return [teacher] if isinstance(teacher, str) else list(teacher)

    def inputs(self) -> list[str]:
        """Every path the run reads: the run folder may never be or contain one of them."""
        d = self.data
        return [p for p in (d.path, d.val, d.classes, d.hierarchy, *self.teachers()) if p]

    def validate(self) -> None:
        """Refuse settings that cannot work together; each error names its config key."""
        d, m, s, c, t, r, x = (self.data, self.model, self.schedule, self.compression, self.distillation,
                               self.runtime, self.experimental)
        channels = c.prune_channels or c.target_latency_ratio
        if m.head not in HEADS:
            raise EdgeshopError(f"model.head must be one of {', '.join(HEADS)}; got {m.head!r}")
        if not 0 < m.cosine_scale <= 100:
            raise EdgeshopError(f"model.cosine_scale must be in (0, 100], e.g. 16; got {m.cosine_scale}")
        if x.outlier_exposure < 0 or (x.outlier_exposure > 0 and not d.augment):
            raise EdgeshopError(f"experimental.outlier_exposure is a weight >= 0 and needs data.augment; got "
                                f"{x.outlier_exposure} with data.augment={d.augment}")
        if x.sparsity and not 0 < x.sparsity < 1:
            raise EdgeshopError(f"experimental.sparsity (--sparsity) must be in (0, 1), e.g. 0.5; got {x.sparsity}")
        if c.prune_channels and not 0 < c.prune_channels < 1:
            raise EdgeshopError(f"compression.prune_channels must be a fraction of channels in (0, 1), e.g. 0.3; "
                                f"got {c.prune_channels}")
        if c.target_latency_ratio and not 0 < c.target_latency_ratio < 1:
            raise EdgeshopError(f"compression.target_latency_ratio is the pruned int8 model's latency over the "
                                f"unpruned one's, in (0, 1), e.g. 0.7; got {c.target_latency_ratio}")
        if c.target_latency_ratio and r.strategy == "multi_worker":
            raise EdgeshopError("compression.target_latency_ratio times candidates on the machine it runs on, so "
                                "every worker could choose other channels; with runtime.strategy multi_worker use "
                                "compression.prune_channels FRACTION (or the fractions a single-machine run chose)")
        if c.target_latency_ratio and c.prune_channels:
            raise EdgeshopError("compression.target_latency_ratio chooses the fraction of channels itself: "
                                "drop compression.prune_channels")
        if x.reconstruct_channels and not channels:
            raise EdgeshopError("experimental.reconstruct_channels refits what channel pruning leaves: set "
                                "compression.prune_channels or compression.target_latency_ratio, or drop it")
        if channels and c.prune_channels_epochs < 1:
            raise EdgeshopError("compression.prune_channels_epochs must be >= 1 (the narrower network must be "
                                "fine-tuned)")
        if x.prune_channels_average_last_epochs and not channels:
            raise EdgeshopError("experimental.prune_channels_average_last_epochs averages the channel fine-tune: "
                                "set compression.prune_channels or compression.target_latency_ratio, or drop it")
        if not 0 <= x.prune_channels_average_last_epochs <= c.prune_channels_epochs:
            raise EdgeshopError(f"experimental.prune_channels_average_last_epochs must be between 0 and "
                                f"compression.prune_channels_epochs ({c.prune_channels_epochs}); "
                                f"got {x.prune_channels_average_last_epochs}")
        if s.epochs < 0:
            raise EdgeshopError(f"schedule.epochs must be >= 0; got {s.epochs}")
        if s.head_epochs < 0:
            raise EdgeshopError(f"schedule.head_epochs must be >= 0; got {s.head_epochs}")
        if m.interpolation not in INTERPOLATIONS:
            raise EdgeshopError(f"model.interpolation must be one of {INTERPOLATIONS}; got {m.interpolation!r}")
        if not 0 <= d.mix <= 1:
            raise EdgeshopError(f"data.mix is a probability in [0, 1]; got {d.mix}")
        if x.coarse_loss_weight < 0:
            raise EdgeshopError(f"experimental.coarse_loss_weight must be >= 0; got {x.coarse_loss_weight}")
        if x.coarse_loss_weight > 0 and not d.hierarchy:
            raise EdgeshopError("experimental.coarse_loss_weight needs data.hierarchy CLASSES_CSV "
                                "(fine name, id, coarse name)")
        if x.average_last_epochs < 0 or x.average_last_epochs > max(s.epochs, 0):
            raise EdgeshopError(f"experimental.average_last_epochs must be between 0 and schedule.epochs "
                                f"({s.epochs}); got {x.average_last_epochs}")
        if x.average_last_epochs and s.select_best_epoch:
            raise EdgeshopError("experimental.average_last_epochs replaces picking the best epoch: set "
                                "schedule.select_best_epoch false (--keep-last-epoch)")
        if m.train_image_size is not None and m.train_image_size < 8:
            raise EdgeshopError(f"model.train_image_size must be a side in pixels; got {m.train_image_size}")
        if d.val_grouping not in VAL_GROUPINGS:
            raise EdgeshopError(f"data.val_grouping must be one of {VAL_GROUPINGS}; got {d.val_grouping!r}")
        if d.val_grouping != "none" and d.val:
            raise EdgeshopError("data.val_grouping shapes the data.val_fraction split; drop it when data.val "
                                "is given")
        if x.val_group_size < 1:
            raise EdgeshopError(f"experimental.val_group_size must be >= 1 file; got {x.val_group_size}")
        if t.distill_temperature <= 0:
            raise EdgeshopError(f"distillation.distill_temperature must be > 0, e.g. 4; got {t.distill_temperature}")
        if not 0 <= t.distill_weight <= 1:
            raise EdgeshopError(f"distillation.distill_weight is a weight in [0, 1]; got {t.distill_weight}")
        if s.batch_size < 1:
            raise EdgeshopError(f"schedule.batch_size must be >= 1; got {s.batch_size}")
        if r.strategy not in STRATEGIES:
            raise EdgeshopError(f"runtime.strategy must be one of {', '.join(STRATEGIES)}; got {r.strategy!r}")
        if r.input_pipeline not in INPUT_PIPELINES:
            raise EdgeshopError(f"runtime.input_pipeline must be one of {', '.join(INPUT_PIPELINES)}; "
                                f"got {r.input_pipeline!r}")
        if r.cache_dir and r.input_pipeline == "memory":
            raise EdgeshopError("runtime.cache_dir caches the streamed pipeline: set runtime.input_pipeline stream")
        if r.cache_dir and t.teacher:
            raise EdgeshopError("runtime.cache_dir caches the streamed pipeline, which distillation.teacher cannot "
                                "use yet: drop runtime.cache_dir")
        if r.memory_budget_mb is not None and not r.memory_budget_mb > 0:
            raise EdgeshopError(f"runtime.memory_budget_mb must be a positive number of MB, e.g. 2000; "
                                f"got {r.memory_budget_mb}")
        if r.memory_budget_mb is not None and r.input_pipeline != "auto":
            raise EdgeshopError(f"runtime.memory_budget_mb is the budget runtime.input_pipeline auto decides by: "
                                f"drop it with runtime.input_pipeline {r.input_pipeline}")
        if t.teacher and r.input_pipeline == "stream":
            # the teacher's logits are computed once per decoded image and cached beside them
            raise EdgeshopError("distillation.teacher needs runtime.input_pipeline memory (distillation is not "
                                "streamed yet)")
        if not r.connect_timeout > 0:
            raise EdgeshopError(f"runtime.connect_timeout must be > 0 seconds; got {r.connect_timeout}")

    def to_dict(self) -> dict[str, Any]:
        """The nested form, as saved in a run's config.json."""
        return asdict(self)

    @classmethod
    def from_saved(cls, values: Mapping[str, Any], source: str = "config.json") -> TrainConfig:
        """A run directory's config.json, nested or flat. Runs saved before a setting existed
        used its old behaviour, which is not always today's default."""
        saved = flatten(values, source)
        return cls.from_dict({**SAVED_BEFORE_DEFAULTS, **saved}, source)


# Behaviour of runs whose config.json predates the setting.
SAVED_BEFORE_DEFAULTS: dict[str, Any] = {"model.interpolation": "area"}


def print_config(write=print) -> None:
    """Every key, grouped, with its type, default and meaning (edgeshop-train --print-config)."""
    for group, cls in GROUPS.items():
        write(f"{group}:" + ("  # research knobs: off by default, warned about when set"
                             if group == "experimental" else ""))
        default = cls()
        for f in fields(cls):
            value = json.dumps(getattr(default, f.name))  # true/null: the spelling of JSON and YAML files
            write(f"  {f.name}: {value}  # {f.type}: {f.metadata['help']}")


def read_config_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EdgeshopError(f"{path}: cannot read config file ({exc.strerror})") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise EdgeshopError(f"{path}: YAML config needs PyYAML (pip install pyyaml), or use JSON") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise EdgeshopError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    else:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise EdgeshopError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise EdgeshopError(f"{path}: config file must hold a mapping of setting -> value")
    return data


def recipe_config(recipe: dict[str, Any]) -> TrainConfig:
    """A recipe (a run's or a figures file's saved settings) as a TrainConfig, defaults filled in."""
    return TrainConfig.from_saved(recipe)
