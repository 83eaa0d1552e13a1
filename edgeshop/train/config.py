"""Training configuration in groups: defaults < config file < command-line flags; saved resolved.

Every setting (config_groups.py) has a type, a default and a one-line meaning, listed by
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
from edgeshop.train.config_groups import (
    HEADS,
    INPUT_PIPELINES,
    STRATEGIES,
    CompressionConfig,
    DataConfig,
    DistillationConfig,
    ExperimentalConfig,
    ModelConfig,
    RuntimeConfig,
    ScheduleConfig,
)

log = logging.getLogger("edgeshop.train.config")

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
FLAT_RENAMED = {"data": "data.path", "out": "runtime.out", "prune": "experimental.sparsity",
                "prune_epochs": "experimental.sparsity_epochs", "prune_lr": "experimental.sparsity_lr"}
# Every old name -> its key now ("calibration" is calibrate.py's word; the converter's images are representative).
RENAMED = {**FLAT_RENAMED, "calibration_images": "compression.representative_images",
           "compression.calibration_images": "compression.representative_images"}
# A key's field name is a flat name too, except where a pre-groups name says it ("data", not "path").
FLAT_KEYS: dict[str, str] = {**{key.split(".", 1)[1]: key for key in KEYS if key not in FLAT_RENAMED.values()},
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
