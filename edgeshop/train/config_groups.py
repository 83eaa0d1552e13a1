"""The settings, group by group: each key's type, default and one-line meaning (its ``help``,
shown by ``edgeshop-train --print-config``). How they are loaded and checked: config.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
