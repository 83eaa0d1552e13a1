"""Convert a training run to .tflite: float32, float16, dynamic-range or full int8.

Every file carries the run's model card (labels, input spec, provenance, audit); it is
written atomically and never replaces an existing file unless ``force``.
"""

from __future__ import annotations

import datetime as _dt
import json
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edgeshop import __version__
from edgeshop.errors import EdgeshopError, OverwriteError
from edgeshop.runtime.audit import audit_model
from edgeshop.runtime.modelcard import ModelCard, embed_card
from edgeshop.train._keras import keras, tf
from edgeshop.train.run_model import is_qat, load_run_model
from edgeshop.utils import write_bytes_atomic

FORMATS = ("float32", "float16", "dynamic", "int8")
VERIFY_IMAGES = 64


class NotFullyIntegerError(EdgeshopError):
    pass


def _full_range_image(height: int, width: int) -> np.ndarray:
    """A smooth gradient spanning exactly 0..255 in every channel."""
    ramp = np.linspace(0.0, 255.0, width, dtype=np.float32)
    return np.repeat(np.broadcast_to(ramp, (height, width))[:, :, None], 3, axis=2)


def _representative(calibration: np.ndarray):
    def generate():
        # First a full-range gradient: pins the int8 input to scale 1, zero point -128,
        # so devices feed raw pixels with no arithmetic (see Classifier._to_input).
        yield [_full_range_image(*calibration.shape[1:3])[None]]
        for image in calibration:
            yield [image[None].astype(np.float32)]

    return generate


def convert(run_dir: Path, fmt: str, ptq: bool = False) -> tuple[bytes, dict[str, Any], keras.Model]:
    """The flatbuffer for ``fmt`` and a description of how it was made.

    int8 converts the QAT model when the run has one (unless ``ptq``), else applies
    post-training quantization to the float model, calibrated on training images.
    Also returns the Keras model that was converted, for verification.
    """
    if fmt not in FORMATS:
        raise EdgeshopError(f"format must be one of {FORMATS}, got {fmt!r}")
    run_dir = Path(run_dir)
    # int8 converts the QAT model itself; float formats and PTQ take the same final
    # weights in a plain float model, so a float reference is the int8 model's twin.
    qat_int8 = fmt == "int8" and not ptq
    model = load_run_model(run_dir, final=True, as_float=not qat_int8)
    method = fmt
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if fmt == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif fmt == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif fmt == "int8":
        method = "qat_int8" if is_qat(model) else "ptq_int8"
        calibration = np.load(run_dir / "calibration.npy", allow_pickle=False)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        # Needed even for QAT models: the converter calibrates the in-graph
        # normalisation and asks for it when the I/O types are integer.
        converter.representative_dataset = _representative(calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    try:
        flatbuffer = converter.convert()
    except Exception as exc:  # noqa: BLE001 - the converter raises many types; keep its message
        raise EdgeshopError(f"{run_dir}: TFLite conversion to {fmt} failed: {exc}") from exc
    return flatbuffer, {"format": fmt, "method": method}, model


def verify(model_content: bytes, card: ModelCard, keras_model: keras.Model, pixels: np.ndarray) -> dict[str, float]:
    """Top-1 agreement and max score difference of the .tflite against its Keras model.

    The candidate is run through the runtime's own Classifier (its input quantisation
    and output dequantisation), so this checks what devices will execute.
    """
    from edgeshop.runtime.classifier import Classifier

    with tempfile.TemporaryDirectory() as folder:
        candidate = Path(folder) / "candidate.tflite"
        candidate.write_bytes(embed_card(model_content, card))
        classifier = Classifier(candidate)
        lite = np.stack([classifier.scores_from_pixels(image) for image in pixels])
    reference = keras_model.predict(pixels.astype(np.float32), verbose=0)
    return {
        "images": int(len(pixels)),
        "top1_agreement": float(np.mean(lite.argmax(1) == reference.argmax(1))),
        "max_abs_score_diff": float(np.abs(lite - reference).max()),
    }


def export(
    run_dir: str | Path,
    out: str | Path,
    fmt: str = "float32",
    *,
    ptq: bool = False,
    force: bool = False,
    require_integer: bool | None = None,
    check: bool = True,
) -> dict[str, Any]:
    """Convert, audit, (verify,) embed the card and write ``out``; returns the report."""
    run_dir, out = Path(run_dir), Path(out)
    if out.exists() and not force:
        raise OverwriteError(out)
    if not (run_dir / "card.json").is_file():
        raise EdgeshopError(f"{run_dir}: not an edgeshop run directory (no card.json); run edgeshop-train first")
    flatbuffer, how, source = convert(run_dir, fmt, ptq=ptq)
    audit = audit_model(flatbuffer)
    if require_integer is None:
        require_integer = fmt == "int8"
    if require_integer and not audit["fully_integer"]:
        raise NotFullyIntegerError(
            f"{run_dir}: the int8 export is not fully integer: float tensors {audit['float_tensors'][:5]}, "
            f"float ops {audit['float_ops']}; nothing was written"
        )
    report: dict[str, Any] = {**how, "audit": audit}
    card = ModelCard.from_json((run_dir / "card.json").read_text(), source=str(run_dir / "card.json"))
    if check:
        calibration = np.load(run_dir / "calibration.npy", allow_pickle=False)[:VERIFY_IMAGES]
        report["verify_vs_keras"] = verify(flatbuffer, card, source, calibration)
    metrics_file = run_dir / "metrics.json"
    extra = dict(card.extra)
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
    card = replace(card, quantization=how["method"], extra=extra)
    data = embed_card(flatbuffer, card)
    write_bytes_atomic(out, data)
    report.update(path=str(out), size_bytes=len(data))
    return report
