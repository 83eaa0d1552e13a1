"""Rebuild a run's Keras models from its config and load their weights.

Models are never deserialised from a file's config: code builds the architecture and
only weights are read, so a model file cannot execute anything (and tfmot's QAT
wrappers, which do not round-trip through .keras files, are recreated exactly).
"""

from __future__ import annotations

import json
from pathlib import Path

from edgeshop.errors import EdgeshopError
from edgeshop.train import channels, compress
from edgeshop.train._keras import keras
from edgeshop.train.architectures import get_architecture
from edgeshop.train.config import TrainConfig
from edgeshop.train.model_io import load_weights
from edgeshop.train.run_dir import CHANNEL_PLAN, FLOAT_STAGES, PHASE_ORDER, RunDir

__all__ = ["CHANNEL_PLAN", "FLOAT_STAGES", "PHASE_ORDER", "build_model", "float_twin", "is_qat", "load_run_model",
           "read_channel_plan", "read_run", "stage_widths"]


def build_model(config: TrainConfig, num_classes: int, qat: bool = False, any_size: bool = False,
                widths: dict[str, int] | None = None) -> keras.Model:
    """The run's architecture at its export size or, with ``any_size``, with free height
    and width (training at train_image_size while validating at image_size); with
    ``widths`` (a channel plan's, train/channels.py), its narrower pruned form."""
    arch = get_architecture(config.model.arch)
    kwargs = {} if config.model.dropout is None else {"dropout": config.model.dropout}
    if config.model.head != "linear":  # only then: seed_cnn refuses the keyword's other values
        kwargs.update(head=config.model.head, cosine_scale=config.model.cosine_scale)
    size = None if any_size else config.model.image_size or arch.default_image_size
    model = arch.build(num_classes, size, **kwargs)
    if widths:
        model = channels.narrow_architecture(model, widths)
    return compress.apply_qat(model, preserve_sparsity=bool(config.experimental.sparsity)) if qat else model


def read_channel_plan(run_dir: Path) -> dict | None:
    """The run's channel plan (train/channels.py), or None if it removed no channels."""
    return RunDir(run_dir).read_channel_plan()


def stage_widths(run_dir: Path, stage: str) -> dict[str, int] | None:
    """The layer widths of weights saved after ``stage``: narrowed from prune_channels on."""
    plan = read_channel_plan(run_dir)
    if plan is None or PHASE_ORDER.index(stage) < PHASE_ORDER.index("prune_channels"):
        return None
    return channels.plan_widths(plan)


def read_run(run_dir: Path) -> tuple[TrainConfig, list[str], list[str]]:
    """(config, labels, completed phases) of a run directory."""
    run = RunDir(run_dir)
    try:
        config = TrainConfig.from_saved(run.read_config())
        labels = run.labels()
        completed = json.loads(run.state_file.read_text())["completed"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EdgeshopError(f"{run_dir}: not a complete edgeshop run directory ({exc}); run edgeshop-train") from None
    return config, labels, completed


def load_run_model(run_dir: Path, final: bool = True, as_float: bool = False) -> keras.Model:
    """The run's final model (the QAT model when it has one) or, with final=False, its float
    model before QAT. With as_float, the final weights in a plain float model (no fake-quant):
    the float reference of exactly the weights the int8 model carries."""
    if as_float and final:
        final_model = load_run_model(run_dir, final=True)
        if not is_qat(final_model):
            return final_model
        config, labels, _ = read_run(run_dir)
        return float_twin(final_model, build_model(config, len(labels), widths=stage_widths(run_dir, "qat")))
    config, labels, completed = read_run(run_dir)
    qat = final and "qat" in completed
    floats = [name for name in completed if name in FLOAT_STAGES]
    stage = "qat" if qat else (floats[-1] if floats else None)
    if stage is None:
        raise EdgeshopError(f"{run_dir}: no finished training phase to load; resume the run with --resume")
    model = build_model(config, len(labels), qat=qat, widths=stage_widths(run_dir, stage))
    load_weights(model, RunDir(run_dir).stage_weights(stage))
    return model


def is_qat(model: keras.Model) -> bool:
    return any(type(layer).__name__.startswith("Quantize") for layer in model.layers)


def float_twin(qat_model: keras.Model, float_model: keras.Model) -> keras.Model:
    """Copy a QAT model's trained weights into ``float_model`` (same architecture).

    tfmot's wrappers (``quant_<name>``) keep the wrapped layer's variables under their
    own names (``stem_conv/kernel:0``) and add quantizer state under ``quant_<name>/``,
    which a float model does not need. Weights are matched by variable name.
    """
    trained = {weight.name: weight for weight in qat_model.weights}
    missing = [weight.name for weight in float_model.weights if weight.name not in trained]
    if missing:
        raise EdgeshopError(f"QAT model lacks weights {missing[:3]} of the float model; was the architecture changed?")
    float_model.set_weights([trained[weight.name].numpy() for weight in float_model.weights])
    return float_model
