"""Training configuration: defaults, optional config file, CLI overrides, saved resolved."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from edgeshop.datasets import VAL_GROUPINGS
from edgeshop.errors import EdgeshopError
from edgeshop.runtime.modelcard import INTERPOLATIONS

HEADS = ("linear", "cosine")  # classifier heads (train/cosine_head.py)
DEFAULT_COSINE_SCALE = 16.0  # logits span +-16: enough for a confident softmax over ~100 classes

STRATEGIES = ("auto", "default", "mirrored", "multi_worker")
INPUT_PIPELINES = ("auto", "memory", "stream")


@dataclass
class TrainConfig:
    data: str
    out: str
    val: str | None = None  # folder / split file / manifest; else a stratified fraction
    val_fraction: float = 0.1
    # How val_fraction is drawn: "none" (random images per class), or whole bursts of
    # consecutive files per class, "file_order" (blocks of val_group_size) or "similarity"
    # (runs of look-alike neighbours): burst shots on both sides flatter validation.
    val_grouping: str = "none"
    val_group_size: int = 10
    classes: str | None = None  # classes.csv for split files (default: beside them)
    arch: str = "efficientnet_lite0"
    image_size: int | None = None  # default: the architecture's
    # Float phases (head, fine-tune, prune) train at this side instead (FixRes: training
    # crops zoom in, so a net trained a little smaller sees objects at the exported size;
    # and each step is cheaper). QAT and export run at image_size. None = image_size.
    train_image_size: int | None = None
    interpolation: str = "linear"  # resize rule written into the card (runtime/modelcard.py INTERPOLATIONS)
    pretrained: bool = True
    # ImageNet weights from this folder (the registry's file names, sha256-checked) or .npz file instead of
    # $EDGESHOP_WEIGHTS_DIR / the checkout's models/ / the user cache (train/weights.py): air-gapped machines.
    pretrained_weights: str | None = None
    epochs: int = 10  # main phase (fine-tune, or from scratch)
    head_epochs: int = 2  # pretrained nets: train the new head alone first
    batch_size: int = 32
    lr: float = 1e-3  # head phase / from-scratch
    fine_tune_lr: float = 3e-4
    weight_decay: float = 1e-5
    label_smoothing: float = 0.1
    # classes.csv mapping fine -> coarse classes (Grocery's columns), and the weight of a
    # coarse cross-entropy term (train/losses.py) meant to keep mistakes within a coarse class.
    hierarchy: str | None = None
    coarse_loss_weight: float = 0.0
    # Knowledge distillation (train/distill.py): a teacher run directory or .tflite model, or a
    # list of them (an ensemble: their softened probabilities averaged);
    # loss = (1 - weight) x CE(hard labels) + weight x T^2 x KL(teacher || student at T).
    teacher: str | list[str] | None = None
    distill_temperature: float = 4.0
    distill_weight: float = 0.5
    dropout: float | None = None  # default: the architecture's
    # Classifier head (train/cosine_head.py): linear, or cosine = scale x cos(row, embedding),
    # the head that makes enrolled products (weight imprinting) comparable with trained ones.
    head: str = "linear"
    cosine_scale: float = DEFAULT_COSINE_SCALE
    patience: int = 4  # early stopping on val accuracy (main phase; only with select_best_epoch)
    # True: keep the head/fine-tune epoch with the best val accuracy, stop early after
    # `patience` epochs without gain. False: fixed schedule, keep the last epoch, and val
    # is only reported, so its figures are not inflated by the choice of epoch.
    select_best_epoch: bool = True
    # Average the weights of the main phase's last N epochs and keep the mean (stochastic
    # weight averaging, train/averaging.py). 0 = off. Needs select_best_epoch False.
    average_last_epochs: int = 0
    augment: bool = True
    mix: float = 0.0  # probability per batch of CutMix or MixUp (needs augment)
    # Outlier exposure (train/outlier_exposure.py): weight of the cross-entropy to uniform on
    # CutMix pictures of two different classes appended to each batch. 0 = off. Needs augment.
    outlier_exposure: float = 0.0
    freeze_bn: bool = False  # BatchNorm in inference mode after the head phase (small-data fine-tuning)
    # Structured pruning (train/channels.py): remove this fraction of the channels of every
    # conv -> depthwise -> conv group (EfficientNet-Lite's expansions), then fine-tune the
    # narrower network. 0 = off. Runs after the main phase, before magnitude pruning and QAT.
    prune_channels: float = 0.0
    # ... or the fraction that makes the int8 model this much faster than the unpruned one,
    # searched by timing on this machine (train/latency_target.py). 0 = off.
    target_latency_ratio: float = 0.0
    # Refit each projection on its kept channels by least squares before fine-tuning
    # (channels.reconstruct_consumers): a far better start than plain removal.
    reconstruct_channels: bool = False
    prune_channels_epochs: int = 4
    prune_channels_lr: float = 3e-4
    # Keep the mean weights of the channel fine-tune's last N epochs (like average_last_epochs,
    # for the phase that trains the narrower network; it always keeps its last epoch otherwise). 0 = off.
    prune_channels_average_last_epochs: int = 0
    prune: float = 0.0  # target sparsity; 0 = no pruning
    prune_epochs: int = 2
    prune_lr: float = 1e-4
    qat: bool = False
    qat_epochs: int = 2
    qat_lr: float = 2e-5
    seed: int = 0
    # Deterministic TF kernels: a rerun on the same machine and versions gives identical
    # weights (slower on CPU). Process-wide and cannot be turned off again.
    deterministic: bool = False
    strategy: str = "auto"  # auto | default | mirrored | multi_worker (from TF_CONFIG, train/cluster.py)
    cpu_devices: int = 0  # split the CPU into N logical devices (to test mirrored on CPU)
    # multi_worker: seconds to wait for every task of TF_CONFIG to answer before giving up
    connect_timeout: float = 300.0
    # memory: decode every image into one array before training (memory grows with the data);
    # stream: decode each file when a batch needs it (train/stream.py; memory independent of it);
    # auto: memory when the decoded images fit memory_budget_mb, else stream (train/input_pipeline.py)
    input_pipeline: str = "auto"
    memory_budget_mb: float | None = None  # auto's budget; None: a share of the RAM available at the start
    cache_dir: str | None = None  # stream: keep decoded pixels here after the first epoch
    workers: int = 4
    calibration_images: int = 200

    @classmethod
    def from_sources(cls, file_values: dict[str, Any], overrides: dict[str, Any]) -> TrainConfig:
        """Defaults < config file < command-line flags that were actually given."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(file_values) - known)
        if unknown:
            raise EdgeshopError(f"config file has unknown keys {unknown}; known keys: {sorted(known)}")
        values = {**file_values, **{k: v for k, v in overrides.items() if v is not None}}
        missing = [k for k in ("data", "out") if not values.get(k)]
        if missing:
            raise EdgeshopError(f"missing required setting(s) {missing} (flags --data/--out or the config file)")
        return cls(**values)

    def teachers(self) -> list[str]:
        """The teacher sources, one or several (older runs saved a single string)."""
        if not self.teacher:
            return []
        return [self.teacher] if isinstance(self.teacher, str) else list(self.teacher)

    def inputs(self) -> list[str]:
        """Every path the run reads: the run folder may never be or contain one of them."""
        return [p for p in (self.data, self.val, self.classes, self.hierarchy, *self.teachers()) if p]

    def validate(self) -> None:
        if self.head not in HEADS:
            raise EdgeshopError(f"--head must be one of {', '.join(HEADS)}; got {self.head!r}")
        if not 0 < self.cosine_scale <= 100:
            raise EdgeshopError(f"--cosine-scale must be in (0, 100], e.g. 16; got {self.cosine_scale}")
        if self.prune and not 0 < self.prune < 1:
            raise EdgeshopError(f"--prune must be a sparsity in (0, 1), e.g. 0.5; got {self.prune}")
        if self.prune_channels and not 0 < self.prune_channels < 1:
            raise EdgeshopError(f"--prune-channels must be a fraction of channels in (0, 1), e.g. 0.3; "
                                f"got {self.prune_channels}")
        if self.target_latency_ratio and not 0 < self.target_latency_ratio < 1:
            raise EdgeshopError(f"--target-latency-ratio is the pruned int8 model's latency over the unpruned one's, "
                                f"in (0, 1), e.g. 0.7; got {self.target_latency_ratio}")
        if self.target_latency_ratio and self.strategy == "multi_worker":
            raise EdgeshopError("--target-latency-ratio times candidates on the machine it runs on, so every worker "
                                "could choose other channels; with --strategy multi_worker use --prune-channels "
                                "FRACTION (or the fractions a single-machine run chose)")
        if self.target_latency_ratio and self.prune_channels:
            raise EdgeshopError("--target-latency-ratio chooses the fraction of channels itself: drop --prune-channels")
        if self.reconstruct_channels and not (self.prune_channels or self.target_latency_ratio):
            raise EdgeshopError("--reconstruct-channels refits what channel pruning leaves: add --prune-channels "
                                "FRACTION or --target-latency-ratio RATIO, or drop it")
        if (self.prune_channels or self.target_latency_ratio) and self.prune_channels_epochs < 1:
            raise EdgeshopError("--prune-channels needs --prune-channels-epochs >= 1 (the narrower network "
                                "must be fine-tuned)")
        if self.prune_channels_average_last_epochs and not (self.prune_channels or self.target_latency_ratio):
            raise EdgeshopError("--prune-channels-average-last-epochs averages the channel fine-tune: add "
                                "--prune-channels FRACTION or --target-latency-ratio RATIO, or drop it")
        if not 0 <= self.prune_channels_average_last_epochs <= self.prune_channels_epochs:
            raise EdgeshopError(f"--prune-channels-average-last-epochs must be between 0 and --prune-channels-epochs "
                                f"({self.prune_channels_epochs}); got {self.prune_channels_average_last_epochs}")
        if self.epochs < 0 or self.head_epochs < 0:
            raise EdgeshopError("epoch counts must be >= 0")
        if self.interpolation not in INTERPOLATIONS:
            raise EdgeshopError(f"--interpolation must be one of {INTERPOLATIONS}; got {self.interpolation!r}")
        if not 0 <= self.mix <= 1:
            raise EdgeshopError(f"--mix is a probability in [0, 1]; got {self.mix}")
        if self.outlier_exposure < 0 or (self.outlier_exposure > 0 and not self.augment):
            raise EdgeshopError(f"outlier_exposure is a weight >= 0 and needs augment; got {self.outlier_exposure}"
                                f" with augment={self.augment}")
        if self.coarse_loss_weight < 0:
            raise EdgeshopError(f"--coarse-loss-weight must be >= 0; got {self.coarse_loss_weight}")
        if self.coarse_loss_weight > 0 and not self.hierarchy:
            raise EdgeshopError("--coarse-loss-weight needs --hierarchy CLASSES_CSV (fine name, id, coarse name)")
        if self.average_last_epochs < 0 or self.average_last_epochs > max(self.epochs, 0):
            raise EdgeshopError(f"--average-last-epochs must be between 0 and --epochs ({self.epochs}); "
                                f"got {self.average_last_epochs}")
        if self.average_last_epochs and self.select_best_epoch:
            raise EdgeshopError("--average-last-epochs replaces picking the best epoch: add --keep-last-epoch")
        if self.train_image_size is not None and self.train_image_size < 8:
            raise EdgeshopError(f"--train-image-size must be a side in pixels; got {self.train_image_size}")
        if self.val_grouping not in VAL_GROUPINGS:
            raise EdgeshopError(f"--val-grouping must be one of {VAL_GROUPINGS}; got {self.val_grouping!r}")
        if self.val_grouping != "none" and self.val:
            raise EdgeshopError("--val-grouping shapes the --val-fraction split; drop it when --val is given")
        if self.val_group_size < 1:
            raise EdgeshopError(f"--val-group-size must be >= 1 file; got {self.val_group_size}")
        if self.distill_temperature <= 0:
            raise EdgeshopError(f"--distill-temperature must be > 0, e.g. 4; got {self.distill_temperature}")
        if not 0 <= self.distill_weight <= 1:
            raise EdgeshopError(f"--distill-weight is a weight in [0, 1]; got {self.distill_weight}")
        if self.batch_size < 1:
            raise EdgeshopError("--batch-size must be >= 1")
        if self.strategy not in STRATEGIES:
            raise EdgeshopError(f"--strategy must be one of {', '.join(STRATEGIES)}; got {self.strategy!r}")
        if self.input_pipeline not in INPUT_PIPELINES:
            raise EdgeshopError(f"--input-pipeline must be one of {', '.join(INPUT_PIPELINES)}; "
                                f"got {self.input_pipeline!r}")
        if self.cache_dir and self.input_pipeline == "memory":
            raise EdgeshopError("--cache-dir caches the streamed pipeline: add --input-pipeline stream")
        if self.cache_dir and self.teacher:
            raise EdgeshopError("--cache-dir caches the streamed pipeline, which --teacher cannot use yet: "
                                "drop --cache-dir")
        if self.memory_budget_mb is not None and not self.memory_budget_mb > 0:
            raise EdgeshopError(f"--memory-budget must be a positive number of MB, e.g. 2000; "
                                f"got {self.memory_budget_mb}")
        if self.memory_budget_mb is not None and self.input_pipeline != "auto":
            raise EdgeshopError(f"--memory-budget is the budget --input-pipeline auto decides by: drop it with "
                                f"--input-pipeline {self.input_pipeline}")
        if self.teacher and self.input_pipeline == "stream":
            # the teacher's logits are computed once per decoded image and cached beside them
            raise EdgeshopError("--teacher needs --input-pipeline memory (distillation is not streamed yet)")
        if not self.connect_timeout > 0:
            raise EdgeshopError(f"--connect-timeout must be > 0 seconds; got {self.connect_timeout}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_saved(cls, values: dict[str, Any]) -> TrainConfig:
        """A run directory's config.json. Runs saved before a setting existed used its old
        behaviour, which is not always today's default."""
        return cls(**{**SAVED_BEFORE_DEFAULTS, **values})


# Behaviour of runs whose config.json predates the setting.
SAVED_BEFORE_DEFAULTS: dict[str, Any] = {"interpolation": "area"}


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
