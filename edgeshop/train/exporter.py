"""Convert a training run to .tflite: float32, float16, dynamic-range or full int8.

Every file is what standard clients open as it is: full-integer models take uint8 pixels
and give uint8 scores (int8 I/O on request), and every format carries standard TFLite
Metadata plus one stored archive with labels.txt and the run's model card (labels, input
spec, provenance, audit). It is written atomically and never replaces an existing file
unless ``force``. `reexport` brings a model written by an earlier version to this form.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edgeshop import __version__
from edgeshop._io import check_output_file
from edgeshop.adapt.calibrate import MIN_IMAGES, calibrate_content
from edgeshop.adapt.probe import model_scores
from edgeshop.data import load_images
from edgeshop.errors import EdgeshopError
from edgeshop.runtime.audit import audit_model
from edgeshop.runtime.classifier import _read_model_file
from edgeshop.tflite.modelcard import (
    ModelCard,
    default_display_name,
    display_name_problem,
    embed_card,
    read_card,
    split_archive,
)
from edgeshop.train._keras import keras, tf
from edgeshop.train.channels import summary as channel_summary
from edgeshop.train.config import TrainConfig
from edgeshop.train.convert import INTEGER_IO_TYPES, convert, full_range_image
from edgeshop.train.run_data import run_split
from edgeshop.train.run_dir import RunDir, require_run_dir
from edgeshop.train.run_model import read_channel_plan, read_run
from edgeshop.train.tflite_metadata import Provenance, metadata_buffer, with_metadata
from edgeshop.train.tflite_rewrite import int8_io_to_uint8
from edgeshop.train.verify_gate import require_agreement
from edgeshop.utils import write_bytes_atomic

VERIFY_IMAGES = 64


class NotFullyIntegerError(EdgeshopError):
    pass


def verify(model_content: bytes, card: ModelCard, keras_model: keras.Model, pixels: np.ndarray) -> dict[str, float]:
    """Top-1 agreement and max score difference of the .tflite against its Keras model.

    The candidate is run through the runtime's own Classifier (its input quantisation
    and output dequantisation), so this checks what devices will execute.
    """
    lite = _tflite_scores(model_content, card, pixels)
    reference = keras_model.predict(pixels.astype(np.float32), verbose=0)
    return {
        "images": int(len(pixels)),
        "top1_agreement": float(np.mean(lite.argmax(1) == reference.argmax(1))),
        "max_abs_score_diff": float(np.abs(lite - reference).max()),
    }


def _tflite_scores(model_content: bytes, card: ModelCard, pixels: np.ndarray) -> np.ndarray:
    """Scores of ``model_content`` (card attached) through the runtime's Classifier, one row per image."""
    return model_scores(model_content, pixels, card)


def package(flatbuffer: bytes, card: ModelCard, provenance: Provenance | None = None) -> bytes:
    """A model file standard clients open: ``flatbuffer`` + standard metadata + one archive with ``card``."""
    input_dtype = audit_model(flatbuffer)["input"]["dtype"]
    described = with_metadata(split_archive(flatbuffer)[0], metadata_buffer(card, input_dtype, provenance))
    return embed_card(described, card)


def export(
    run_dir: str | Path,
    out: str | Path,
    fmt: str = "float32",
    *,
    ptq: bool = False,
    force: bool = False,
    require_integer: bool | None = None,
    check: bool = True,
    io_type: str = "uint8",
    provenance: Provenance | None = None,
    calibrate: bool = True,
    display_name: str | None = None,
) -> dict[str, Any]:
    """Convert, audit, (verify,) add metadata and the card, (calibrate,) and write ``out``; returns the report.

    ``io_type`` is the input/output type of full-integer models ("uint8" or "int8").
    ``calibrate``: fit the softmax temperature and the unknown threshold on the run's
    validation images and build them into the model (`edgeshop.adapt.calibrate`).
    ``display_name``: the name people see (the browser page); default the training data
    folder's name (never the run folder's).
    """
    run_dir, out = Path(run_dir), Path(out)
    check_output_file(out, force=force, kind="model", inputs=[run_dir])
    require_run_dir(run_dir)
    flatbuffer, how, source = convert(run_dir, fmt, ptq=ptq, io_type=io_type)
    audit = audit_model(flatbuffer)
    if require_integer is None:
        require_integer = fmt == "int8"
    if require_integer and not audit["fully_integer"]:
        raise NotFullyIntegerError(
            f"{run_dir}: the int8 export is not fully integer: float tensors {audit['float_tensors'][:5]}, "
            f"float ops {audit['float_ops']}; nothing was written"
        )
    report: dict[str, Any] = {**how, "audit": audit}
    folder = RunDir(run_dir)
    card = folder.card()
    if check:
        report["verify_vs_keras"] = verify(flatbuffer, card, source, folder.representative_images(VERIFY_IMAGES))
        require_agreement(report["verify_vs_keras"], fmt, run_dir)
    metrics_file = folder.metrics_file
    extra = dict(card.extra)
    name = _checked_display_name(display_name) if display_name is not None else _data_folder_name(run_dir)
    if name:
        extra["display_name"] = name
    extra["export"] = {
        **how,
        "edgeshop": __version__,
        "tensorflow": tf.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "fully_integer": audit["fully_integer"],
        **({"verify_vs_keras": report["verify_vs_keras"]} if check else {}),
    }
    if metrics_file.is_file():
        extra["validation"] = {k: v for k, v in json.loads(metrics_file.read_text()).items() if k.startswith("val_")}
    plan = read_channel_plan(run_dir)
    if plan is not None:  # the card says the network is narrower than its architecture's name
        extra["training"] = {**extra.get("training", {}), "channels": channel_summary(plan)}
    card = replace(card, quantization=how["method"], extra=extra)
    data = package(flatbuffer, card, provenance)
    if calibrate:
        data, report["calibration"] = _calibrate_on_validation(data, card, run_dir, out)
    write_bytes_atomic(out, data)
    report.update(path=str(out), size_bytes=len(data))
    return report


def _calibrate_on_validation(data: bytes, card: ModelCard, run_dir: Path, out: Path) -> tuple[bytes, Any]:
    """``data`` calibrated on the run's validation images, or unchanged with the reason when it cannot be."""
    config = read_run(run_dir)[0]
    val = run_split(RunDir(run_dir), config)[1]  # as recorded at training time (older runs: derived again)
    images = load_images(val, card.labels, card.input)
    if len(images.labels) < MIN_IMAGES:
        return data, f"not calibrated: the run has {len(images.labels)} validation images, fewer than {MIN_IMAGES}"
    source = config.data.val or (f"{config.data.path} (validation fraction {config.data.val_fraction:g}, "
                                 f"seed {config.runtime.seed})")
    calibrated, record = calibrate_content(data, images, source=str(out), data=str(source))
    return calibrated, record


REEXPORT_IMAGES = 16


def _probe_images(height: int, width: int, count: int = REEXPORT_IMAGES) -> np.ndarray:
    """Deterministic images spanning 0..255 (gradients and noise), to compare two models' scores."""
    rng = np.random.default_rng(0)
    images = [full_range_image(height, width).astype(np.uint8)]
    images += [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count - 1)]
    return np.stack(images)


def _checked_display_name(name: str) -> str:
    problem = display_name_problem(name)
    if problem:
        raise EdgeshopError(f"--name {name!r} {problem}")
    return name


def _data_folder_name(run_dir: Path) -> str | None:
    """The default display name: the name of the data folder the run was trained on."""
    try:
        data = TrainConfig.from_saved(RunDir(run_dir).read_config()).data.path
    except (OSError, ValueError, AttributeError, TypeError, EdgeshopError):
        return None
    return default_display_name(data) if isinstance(data, str) and data else None


def reexport(
    model: str | Path,
    out: str | Path,
    *,
    force: bool = False,
    io_type: str = "uint8",
    provenance: Provenance | None = None,
    display_name: str | None = None,
) -> dict[str, Any]:
    """Bring an edgeshop .tflite from an earlier version to the current form, without its training run.

    Full-integer models get ``io_type`` I/O (scores unchanged: the check below proves it),
    every model gets standard metadata and one stored archive with its card. Refuses a
    file without an edgeshop card and any result whose scores differ from the original's.
    ``display_name`` replaces the card's (kept otherwise).
    """
    model, out = Path(model), Path(out)
    if io_type not in INTEGER_IO_TYPES:
        raise EdgeshopError(f"integer I/O type must be one of {INTEGER_IO_TYPES}, got {io_type!r}")
    check_output_file(out, force=force, kind="model", inputs=[model])
    original = _read_model_file(model)
    card = read_card(original, source=str(model))
    if card is None:
        raise EdgeshopError(f"{model}: has no edgeshop model card, so its labels and preprocessing are unknown; "
                            "export it again from its run directory with edgeshop-export RUN_DIR")
    flatbuffer = split_archive(original, str(model))[0]
    before = audit_model(flatbuffer, source=str(model))  # checks the file before anything parses it
    if before["fully_integer"] and io_type == "uint8" and before["input"]["dtype"] == "int8":
        flatbuffer = int8_io_to_uint8(flatbuffer)
    audit = audit_model(flatbuffer)
    if before["fully_integer"] and not audit["fully_integer"]:
        raise NotFullyIntegerError(f"{model}: the rewritten model is not fully integer; nothing was written")
    extra = dict(card.extra)
    if display_name is not None:
        extra["display_name"] = _checked_display_name(display_name)
    extra["export"] = {**extra.get("export", {}), "reexported": {
        "edgeshop": __version__, "from_io": before["input"]["dtype"],
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}}
    data = package(flatbuffer, replace(card, extra=extra), provenance)
    probes = _probe_images(card.input.height, card.input.width)
    old_scores = _tflite_scores(original, card, probes)
    new_scores = _tflite_scores(data, card, probes)
    step = max(before["output"]["scale"], 1e-6)  # one output quantisation step
    diff = float(np.abs(old_scores - new_scores).max())
    if diff > step + 1e-6:
        raise EdgeshopError(f"{model}: the re-exported model's scores differ from the original's by {diff:.3g} "
                            f"(allowed: one quantisation step, {step:.3g}); nothing was written")
    write_bytes_atomic(out, data)
    return {"path": str(out), "size_bytes": len(data), "format": card.quantization, "method": "reexport",
            "audit": audit, "max_abs_score_diff_vs_original": diff, "images": len(probes)}
