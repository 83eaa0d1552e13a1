"""Calibrate a finished model on labelled images: its softmax temperature and its unknown threshold.

No training run and no TensorFlow: the images go through the model file itself.
1. The logits of every image (a probe of the model, `edgeshop.adapt.probe`).
2. beta = 1 / T minimising the NLL (`edgeshop.adapt.temperature.fit_beta`), written into
   the model's SOFTMAX (`edgeshop.tflite.tflite_head`): every client then gets
   calibrated probabilities, and top-1 cannot change (one positive factor on all logits).
3. Honest figures: the images are split in two halves (stratified, fixed seed); each half
   is scored by a copy of the model whose temperature was fitted on the other half, so
   the "after" ECE is measured on images its temperature never saw. The temperature
   shipped is then fitted on all the images.
4. What enrolment imprints new products with (`edgeshop.adapt.imprint.imprint_statistics`): the
   mean embedding of the images and the imprint norm (models whose head is not a dense
   layer have none), and one representative embedding per class (its mean direction at
   its images' median length; float16, base64) that keeps the old classes in enrolment's
   refit of the new rows.
5. The unknown threshold: the top score that keeps ``tpr`` (95%) of the known images,
   chosen on the calibrated model's scores; stored in the card, where `Classifier` reads it.
The records go into the card (`extra["calibration"]`, `extra["unknown"]`, `extra["embedding"]`); the archive
and the standard metadata are kept. Used by edgeshop-calibrate and by edgeshop-export.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edgeshop._io import check_output_file
from edgeshop.adapt.imprint import imprint_statistics
from edgeshop.adapt.probe import HeadProbe, loaded, model_scores
from edgeshop.adapt.temperature import BETA_RANGE, fit_beta, negative_log_likelihood
from edgeshop.data import LoadedImages, discover, load_images
from edgeshop.errors import DataError, EdgeshopError
from edgeshop.report.calibration import ece_of_a_calibrated_model
from edgeshop.report.metrics import expected_calibration_error
from edgeshop.report.openset import DEFAULT_TPR, threshold_at_tpr
from edgeshop.runtime.classifier import _read_model_file
from edgeshop.runtime.unknown_score import class_prototypes, encode_rows, fits_card
from edgeshop.tflite.head_weights import read_head_weights
from edgeshop.tflite.modelcard import ModelCard, embed_card, read_card
from edgeshop.tflite.tflite_head import with_softmax_beta
from edgeshop.utils import write_bytes_atomic

MIN_IMAGES = 10  # fewer cannot be split in two halves that each say anything
SPLIT_SEED = 0


def halves(truth: np.ndarray, seed: int = SPLIT_SEED) -> np.ndarray:
    """0/1 per image: a stratified split in two (each class alternates between the halves after a shuffle)."""
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(truth), dtype=np.int64)
    for label in np.unique(truth):
        members = np.flatnonzero(truth == label)
        fold[rng.permutation(members)[1::2]] = 1
    return fold


def _figures(truth: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    return {"ece": expected_calibration_error(truth, scores), "top1": float(np.mean(scores.argmax(1) == truth))}


def calibrate_content(content: bytes, images: LoadedImages, *, source: str = "model", data: str = "",
                      tpr: float = DEFAULT_TPR) -> tuple[bytes, dict[str, Any]]:
    """``content`` with its temperature and unknown threshold fitted on ``images``; and the record."""
    card = read_card(content, source=source)
    if card is None:
        raise EdgeshopError(f"{source}: has no edgeshop model card, so its labels are unknown; "
                            "export it with edgeshop-export")
    truth, pixels = images.labels.astype(np.int64), images.pixels
    if len(truth) < MIN_IMAGES:
        raise DataError(f"{data or source}: {len(truth)} readable labelled images; calibration needs at least "
                        f"{MIN_IMAGES} (the validation images of the model's classes)")
    base = with_softmax_beta(content, 1.0, source)
    with loaded(base) as classifier:
        outputs = HeadProbe(classifier).run_many(pixels, "calibration: logits")
    logits, before = outputs["logits"], outputs["scores"]
    fold = halves(truth)
    crossfit = np.zeros_like(before)
    betas, nll_after = [], 0.0
    for half in (0, 1):
        fit, test = fold != half, fold == half
        if not test.any():
            continue
        beta_half = fit_beta(logits[fit], truth[fit]) if fit.any() else 1.0
        betas.append(beta_half)
        crossfit[test] = model_scores(with_softmax_beta(base, beta_half, source), pixels[test])
        nll_after += test.sum() * negative_log_likelihood(logits[test], truth[test], beta_half)
    beta = fit_beta(logits, truth)
    calibrated = with_softmax_beta(base, beta, source)
    after = model_scores(calibrated, pixels)
    top = after.max(1)
    threshold = threshold_at_tpr(top, tpr)
    kept = [float(np.mean(top[fold == 1 - h] >= threshold_at_tpr(top[fold == h], tpr)))
            for h in (0, 1) if (fold == h).any() and (fold == 1 - h).any()]
    calibration = {
        "method": "temperature", "beta": beta, "temperature": 1.0 / beta,
        # at a bound: the images cannot pin the temperature (e.g. all correct with a margin)
        "at_bound": bool(beta <= BETA_RANGE[0] * 1.001 or beta >= BETA_RANGE[1] * 0.999),
        "data": data, "images": int(len(truth)), "skipped": len(images.skipped), "halves": 2,
        "before": {**_figures(truth, before), "nll": negative_log_likelihood(logits, truth, 1.0)},
        "after_crossfit": {**_figures(truth, crossfit), "nll": nll_after / len(truth), "betas": betas,
                           "ece_of_a_calibrated_model": ece_of_a_calibrated_model(crossfit.max(1))},
        "after_in_sample": _figures(truth, after),
        "top1_changed": int(np.sum(after.argmax(1) != before.argmax(1))),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    unknown = {"method": "max_score", "threshold": threshold, "known_tpr": tpr, "data": data,
               "images": int(len(truth)), "known_kept_other_half": float(np.mean(kept)) if kept else float("nan")}
    extra = {**card.extra, "calibration": calibration, "unknown": unknown}
    if "embedding" in outputs:  # what new products are imprinted with (edgeshop.adapt.enroll)
        head = read_head_weights(content, source)
        extra["embedding"] = imprint_statistics(outputs["embedding"], truth, head.weights, head.bias, data)
        if np.all(np.bincount(truth, minlength=len(card.labels)) > 0):  # enrolment's refit keeps these classes
            samples = class_prototypes(outputs["embedding"], truth, np.zeros(outputs["embedding"].shape[1]),
                                       unit=False, count=len(card.labels))
            if fits_card(samples):
                extra["embedding"]["class_samples"] = encode_rows(samples)
    return embed_card(calibrated, replace(card, extra=extra)), {"calibration": calibration, "unknown": unknown}


def with_class_samples(content: bytes, embeddings: np.ndarray, truth: np.ndarray, *, source: str = "model",
                       data: str = "") -> bytes:
    """``content`` whose card keeps one representative embedding per class, computed from
    ``embeddings`` of labelled images (``truth``: label indices), e.g. the training photos, so
    that calibration images stay out of what enrolment is measured with."""
    card = read_card(content, source=source)
    record = card.extra.get("embedding") if card is not None else None
    if not isinstance(record, dict):
        raise EdgeshopError(f"{source}: its card has no embedding record; run edgeshop-calibrate first")
    counts = np.bincount(truth, minlength=len(card.labels))
    if len(counts) != len(card.labels) or not np.all(counts > 0):
        raise DataError(f"{data or source}: every one of the model's {len(card.labels)} classes needs images")
    samples = class_prototypes(embeddings, truth, np.zeros(embeddings.shape[1]), unit=False, count=len(card.labels))
    if not fits_card(samples):
        raise DataError(f"{source}: {samples.shape[0]} classes x {samples.shape[1]} numbers do not fit in the card")
    extra = {**card.extra, "embedding": {**record, "class_samples": encode_rows(samples), "class_samples_data": data}}
    return embed_card(content, replace(card, extra=extra))


def load_labelled(data: str | Path, card: ModelCard, classes_csv: str | Path | None = None) -> LoadedImages:
    """The labelled images under ``data`` preprocessed for ``card``'s model (unreadable ones skipped)."""
    return load_images(discover(data, classes_csv), card.labels, card.input)


def calibrate_file(model: str | Path, data: str | Path, out: str | Path, *, classes_csv: str | Path | None = None,
                   tpr: float = DEFAULT_TPR, force: bool = False) -> dict[str, Any]:
    """edgeshop-calibrate: read ``model``, calibrate it on ``data``, write ``out``; returns the record."""
    model, out = Path(model), Path(out)
    check_output_file(out, force=force, kind="model", inputs=[model, data, classes_csv])
    content = _read_model_file(model)
    card = read_card(content, source=str(model))
    if card is None:
        raise EdgeshopError(f"{model}: has no edgeshop model card, so its labels are unknown; "
                            "export it with edgeshop-export (or edgeshop-export --reexport MODEL)")
    images = load_labelled(data, card, classes_csv)
    result, record = calibrate_content(content, images, source=str(model), data=str(data), tpr=tpr)
    write_bytes_atomic(out, result)
    return {**record, "path": str(out), "size_bytes": len(result),
            "skipped_files": [{"file": str(p), "reason": r} for p, r in images.skipped]}
