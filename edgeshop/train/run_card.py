"""The model card a run writes (card.json): labels, input spec and how it was trained,
embedded later in every .tflite it exports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeshop.tflite.modelcard import InputSpec, ModelCard
from edgeshop.train.architectures import Architecture
from edgeshop.train.config import TrainConfig


def input_spec(config: TrainConfig, arch: Architecture, image_size: int) -> InputSpec:
    return InputSpec(height=image_size, width=image_size, interpolation=config.model.interpolation, mean=arch.mean,
                     std=arch.std, normalization_in_graph=True)


def run_card(name: str, config: TrainConfig, arch: Architecture, spec: InputSpec, class_names: list[str],
             phases: list[str], train_images: int, train_image_size: int, teachers: list[Any]) -> ModelCard:
    training = {"phases": phases, "prune": config.experimental.sparsity,
                "prune_channels": config.compression.prune_channels,
                "target_latency_ratio": config.compression.target_latency_ratio,
                "reconstruct_channels": config.experimental.reconstruct_channels,
                "prune_channels_average_last_epochs": config.experimental.prune_channels_average_last_epochs,
                "qat": config.compression.qat, "train_images": int(train_images),
                "head": _head_record(config),
                "train_image_size": train_image_size,
                **_distillation_record(config, teachers)}
    return ModelCard(labels=tuple(class_names), input=spec, name=name, arch=arch.name, extra={"training": training})


def _head_record(config: TrainConfig) -> dict[str, Any]:
    """The classifier head, recorded in the card for the reader (enrolment reads the layer itself)."""
    if config.model.head == "cosine":
        return {"kind": "cosine", "scale": config.model.cosine_scale}
    return {"kind": "linear"}


def _distillation_record(config: TrainConfig, teachers: list[Any]) -> dict[str, Any]:
    if not teachers:
        return {}
    names = [Path(t.source).name for t in teachers]
    kinds = [t.kind for t in teachers]
    return {"distillation": {"teacher": names[0] if len(names) == 1 else names,
                             "teacher_kind": kinds[0] if len(kinds) == 1 else kinds,
                             "temperature": config.distillation.distill_temperature,
                             "weight": config.distillation.distill_weight}}
