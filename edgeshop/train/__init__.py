"""The training API: the only package that imports TensorFlow (extra ``[train]``).

``from edgeshop.train import train, export, TrainConfig`` is how scripts, studies and the
``edgeshop`` command train and export; the modules under ``edgeshop.train`` are private. Each name
is imported when first used (PEP 562), so ``import edgeshop.train`` stays cheap and TensorFlow
loads only when a training name is read. Modules here import ``edgeshop.train._keras`` first: it
pins Keras 2 for tfmot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeshop._lazy import lazy_names

if TYPE_CHECKING:  # what documentation tools and type checkers see; at run time, __getattr__ below
    from edgeshop.train._keras import keras, tf
    from edgeshop.train.architectures import (
        LITE0_MEAN,
        LITE0_STD,
        LITE_VARIANTS,
        Architecture,
        build_efficientnet_lite,
        build_efficientnet_lite0,
        find_pretrained_weights,
        get_architecture,
        lite_block_configs,
        load_weights_npz,
        save_weights_npz,
    )
    from edgeshop.train.channels import find_groups, mask_channels, refitted_copy
    from edgeshop.train.config import (
        CompressionConfig,
        DataConfig,
        DistillationConfig,
        ExperimentalConfig,
        ModelConfig,
        RuntimeConfig,
        ScheduleConfig,
        TrainConfig,
        flatten,
        print_config,
        read_config_file,
        recipe_config,
    )
    from edgeshop.train.distill import cache_file
    from edgeshop.train.exporter import export, reexport
    from edgeshop.train.fit import branch, resume, train
    from edgeshop.train.latency_target import int8_flatbuffer, interleaved_p50
    from edgeshop.train.model_io import load_weights, read_arrays, write_arrays
    from edgeshop.train.outlier_exposure import cutmix_outliers, different_class_partners
    from edgeshop.train.phases import Channels, Finetune, Head, Phase, Qat, Sparsity
    from edgeshop.train.phases.channels import RECONSTRUCTION_IMAGES
    from edgeshop.train.run_data import run_split
    from edgeshop.train.run_dir import CARD, CONFIG, DATA_REPORT, LABELS, REPRESENTATIVE_IMAGES, RunDir, require_run_dir
    from edgeshop.train.run_model import build_model, load_run_model, read_channel_plan, read_run
    from edgeshop.train.similarity import EMBEDDING_DISTANCE, EMBEDDING_SIZE, as_descriptors, imagenet_features
    from edgeshop.train.tf_data import train_images
    from edgeshop.train.tflite_metadata import Provenance
    from edgeshop.train.tflite_rewrite import (
        block_ends,
        cut_after,
        dynamic_range_weights,
        float16_to_float32,
        magnitude_prune,
        with_input_size,
    )
    from edgeshop.train.trainer import TrainingRun
    from edgeshop.train.variants import compare

# Public name -> the module that defines it, imported on first use (PEP 562).
_LAZY = {
    # training and exporting a run
    "train": "edgeshop.train.fit",
    "resume": "edgeshop.train.fit",
    "branch": "edgeshop.train.fit",
    "export": "edgeshop.train.exporter",
    "reexport": "edgeshop.train.exporter",
    "Provenance": "edgeshop.train.tflite_metadata",
    "compare": "edgeshop.train.variants",
    # the run folder
    "RunDir": "edgeshop.train.run_dir",
    "require_run_dir": "edgeshop.train.run_dir",
    "CONFIG": "edgeshop.train.run_dir",
    "CARD": "edgeshop.train.run_dir",
    "LABELS": "edgeshop.train.run_dir",
    "DATA_REPORT": "edgeshop.train.run_dir",
    "REPRESENTATIVE_IMAGES": "edgeshop.train.run_dir",
    "run_split": "edgeshop.train.run_data",
    "build_model": "edgeshop.train.run_model",
    "load_run_model": "edgeshop.train.run_model",
    "read_channel_plan": "edgeshop.train.run_model",
    "read_run": "edgeshop.train.run_model",
    "load_weights": "edgeshop.train.model_io",
    "read_arrays": "edgeshop.train.model_io",
    "write_arrays": "edgeshop.train.model_io",
    # configuration
    "TrainConfig": "edgeshop.train.config",
    "DataConfig": "edgeshop.train.config",
    "ModelConfig": "edgeshop.train.config",
    "ScheduleConfig": "edgeshop.train.config",
    "CompressionConfig": "edgeshop.train.config",
    "DistillationConfig": "edgeshop.train.config",
    "RuntimeConfig": "edgeshop.train.config",
    "ExperimentalConfig": "edgeshop.train.config",
    "flatten": "edgeshop.train.config",
    "recipe_config": "edgeshop.train.config",
    "read_config_file": "edgeshop.train.config",
    "print_config": "edgeshop.train.config",
    # the training loop and its phases
    "TrainingRun": "edgeshop.train.trainer",
    "Phase": "edgeshop.train.phases",
    "Head": "edgeshop.train.phases",
    "Finetune": "edgeshop.train.phases",
    "Channels": "edgeshop.train.phases",
    "Sparsity": "edgeshop.train.phases",
    "Qat": "edgeshop.train.phases",
    "train_images": "edgeshop.train.tf_data",
    # Keras 2 and TensorFlow, imported the one way edgeshop does
    "keras": "edgeshop.train._keras",
    "tf": "edgeshop.train._keras",
    # architectures and pretrained weights
    "Architecture": "edgeshop.train.architectures",
    "get_architecture": "edgeshop.train.architectures",
    "build_efficientnet_lite": "edgeshop.train.architectures",
    "build_efficientnet_lite0": "edgeshop.train.architectures",
    "lite_block_configs": "edgeshop.train.architectures",
    "LITE0_MEAN": "edgeshop.train.architectures",
    "LITE0_STD": "edgeshop.train.architectures",
    "LITE_VARIANTS": "edgeshop.train.architectures",
    "find_pretrained_weights": "edgeshop.train.architectures",
    "load_weights_npz": "edgeshop.train.architectures",
    "save_weights_npz": "edgeshop.train.architectures",
    # model -> model transforms
    "find_groups": "edgeshop.train.channels",
    "mask_channels": "edgeshop.train.channels",
    "refitted_copy": "edgeshop.train.channels",
    "RECONSTRUCTION_IMAGES": "edgeshop.train.phases.channels",
    "int8_flatbuffer": "edgeshop.train.latency_target",
    "interleaved_p50": "edgeshop.train.latency_target",
    "block_ends": "edgeshop.train.tflite_rewrite",
    "cut_after": "edgeshop.train.tflite_rewrite",
    "dynamic_range_weights": "edgeshop.train.tflite_rewrite",
    "float16_to_float32": "edgeshop.train.tflite_rewrite",
    "magnitude_prune": "edgeshop.train.tflite_rewrite",
    "with_input_size": "edgeshop.train.tflite_rewrite",
    # distillation, validation grouping, outlier exposure
    "cache_file": "edgeshop.train.distill",
    "EMBEDDING_DISTANCE": "edgeshop.train.similarity",
    "EMBEDDING_SIZE": "edgeshop.train.similarity",
    "as_descriptors": "edgeshop.train.similarity",
    "imagenet_features": "edgeshop.train.similarity",
    "cutmix_outliers": "edgeshop.train.outlier_exposure",
    "different_class_partners": "edgeshop.train.outlier_exposure",
}

__all__ = [
    "Architecture", "CARD", "CONFIG", "Channels", "CompressionConfig", "DATA_REPORT", "DataConfig",
    "DistillationConfig", "EMBEDDING_DISTANCE", "EMBEDDING_SIZE", "ExperimentalConfig", "Finetune", "Head",
    "LABELS", "LITE0_MEAN", "LITE0_STD", "LITE_VARIANTS", "ModelConfig", "Phase", "Provenance", "Qat",
    "RECONSTRUCTION_IMAGES", "REPRESENTATIVE_IMAGES", "RunDir", "RuntimeConfig", "ScheduleConfig", "Sparsity",
    "TrainConfig", "TrainingRun", "as_descriptors", "block_ends", "branch", "build_efficientnet_lite",
    "build_efficientnet_lite0", "build_model", "cache_file", "compare", "cut_after", "cutmix_outliers",
    "different_class_partners", "dynamic_range_weights", "export", "find_groups", "find_pretrained_weights",
    "flatten", "float16_to_float32", "get_architecture", "imagenet_features", "int8_flatbuffer", "interleaved_p50",
    "keras", "lite_block_configs", "load_run_model", "load_weights", "load_weights_npz", "magnitude_prune",
    "mask_channels", "print_config", "read_arrays", "read_channel_plan", "read_config_file", "read_run",
    "recipe_config", "reexport", "refitted_copy", "require_run_dir", "resume", "run_split", "save_weights_npz",
    "tf", "train", "train_images", "with_input_size", "write_arrays",
]

__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
