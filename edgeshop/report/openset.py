"""Saying "not one of my products": scores of how known an image looks, and how well they separate.

Every score is higher for images that look like a known product, so one threshold rule
serves all of them (accept when score >= threshold):
- ``max_score``: the model's top probability (Hendrycks & Gimpel, ICLR 2017). Needs no
  extra output, so it is what `Classifier` and every standard client can use;
- ``max_logit``: the top logit (Hendrycks et al., ICML 2022);
- ``energy``: logsumexp of the logits, i.e. minus the free energy (Liu et al., NeurIPS 2020);
- ``knn``: minus the distance of the L2-normalised embedding to its k-th nearest
  reference embedding of known images (Sun et al., ICML 2022).
The logits and the embedding come from `edgeshop.adapt.probe`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from edgeshop.report.metrics import BOOTSTRAP_RESAMPLES, percentile_interval

METHODS = ("max_score", "max_logit", "energy", "knn")
DEFAULT_TPR = 0.95  # the share of known-product frames the default threshold keeps
KNN_K = 5


def known_scores(method: str, outputs: dict[str, np.ndarray], reference: np.ndarray | None = None,
                 k: int = KNN_K) -> np.ndarray:
    """Per image, how known it looks under ``method`` (outputs: scores, logits, embedding rows)."""
    if method == "max_score":
        return outputs["scores"].max(axis=1)
    if method == "max_logit":
        return outputs["logits"].max(axis=1)
    if method == "energy":
        z = outputs["logits"].astype(np.float64)
        top = z.max(axis=1)
        return top + np.log(np.exp(z - top[:, None]).sum(axis=1))
    if method == "knn":
        if reference is None or "embedding" not in outputs:
            raise ValueError("knn needs the model's embedding and reference embeddings of known images")
        queries, refs = _normalise(outputs["embedding"]), _normalise(reference)
        distances = np.sqrt(np.maximum(2.0 - 2.0 * queries @ refs.T, 0.0))
        kth = min(k, refs.shape[0]) - 1
        return -np.partition(distances, kth, axis=1)[:, kth]
    raise ValueError(f"unknown-detection method must be one of {METHODS}, got {method!r}")


def _normalise(rows: np.ndarray) -> np.ndarray:
    rows = rows.astype(np.float64)
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


def auroc(known: np.ndarray, unknown: np.ndarray) -> float:
    """P(a known image scores higher than an unknown one), ties counting half (Mann-Whitney U)."""
    known, unknown = np.asarray(known, np.float64), np.asarray(unknown, np.float64)
    if not len(known) or not len(unknown):
        return float("nan")
    ordered = np.sort(unknown)
    below = np.searchsorted(ordered, known, side="left")
    ties = np.searchsorted(ordered, known, side="right") - below
    return float((below.sum() + 0.5 * ties.sum()) / (len(known) * len(unknown)))


def auroc_interval(known: np.ndarray, unknown: np.ndarray, level: float = 0.95,
                   resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """Bootstrap interval of the AUROC: known and unknown images resampled separately.

    Photos of one product (bursts of near-identical shots) are not independent, so the true
    uncertainty is wider than this interval; it is a floor, not a bound. Like every percentile
    bootstrap it collapses where the sample does: fully separated scores give (1.0, 1.0).
    """
    known, unknown = np.asarray(known, np.float64), np.asarray(unknown, np.float64)
    if not len(known) or not len(unknown):
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = [auroc(rng.choice(known, len(known)), rng.choice(unknown, len(unknown))) for _ in range(resamples)]
    return percentile_interval(np.array(values), level)


def threshold_at_tpr(known: np.ndarray, tpr: float = DEFAULT_TPR) -> float:
    """The highest threshold that still accepts at least ``tpr`` of ``known`` (score >= threshold)."""
    if not 0 < tpr <= 1:
        raise ValueError(f"tpr must be in (0, 1], got {tpr}")
    ordered = np.sort(np.asarray(known, np.float64))[::-1]
    if not len(ordered):
        return float("nan")
    return float(ordered[math.ceil(tpr * len(ordered) - 1e-9) - 1])


def fpr_at_tpr(known: np.ndarray, unknown: np.ndarray, tpr: float = DEFAULT_TPR) -> float:
    """Share of unknown images accepted at the threshold that keeps ``tpr`` of the known ones."""
    if not len(unknown):
        return float("nan")
    return float(np.mean(np.asarray(unknown) >= threshold_at_tpr(known, tpr)))


def separation(known: np.ndarray, unknown: np.ndarray, tpr: float = DEFAULT_TPR) -> dict[str, Any]:
    return {"auroc": auroc(known, unknown), f"fpr_at_{round(tpr * 100)}tpr": fpr_at_tpr(known, unknown, tpr)}


def unknown_figures(truth: np.ndarray, known: dict[str, np.ndarray], unknown: dict[str, np.ndarray],
                    threshold: float, tpr: float = DEFAULT_TPR, reference: np.ndarray | None = None) -> dict[str, Any]:
    """Every unknown-product figure edgeshop-eval reports.

    ``known``/``unknown``: the model's outputs (scores, logits, embedding) on images of its
    products (``truth`` their labels) and on images of other products; ``threshold``: the
    classifier's unknown threshold on the top score; ``reference``: embeddings of known
    training images, for the knn method.
    """
    methods, top_known, top_unknown = {}, known_scores("max_score", known), known_scores("max_score", unknown)
    for method in METHODS:
        if method in ("max_logit", "energy") and "logits" not in known:
            continue
        if method == "knn" and (reference is None or "embedding" not in known):
            continue
        methods[method] = separation(known_scores(method, known, reference), known_scores(method, unknown, reference),
                                     tpr)
    key = f"fpr_at_{round(tpr * 100)}tpr"
    accepted = top_known >= threshold
    correct = known["scores"].argmax(1) == truth
    return {
        "unknown_auroc": methods["max_score"]["auroc"],
        "unknown_auroc_interval": list(auroc_interval(top_known, top_unknown)),
        "interval_resamples": BOOTSTRAP_RESAMPLES,
        f"unknown_{key}": methods["max_score"][key],
        "threshold": float(threshold),
        "known_images": int(len(truth)),
        "unknown_images": int(len(unknown["scores"])),
        "known_accepted": float(accepted.mean()),
        "known_top1_at_threshold": float(np.mean(accepted & correct)),
        "known_top1_of_accepted": float(correct[accepted].mean()) if accepted.any() else float("nan"),
        "unknown_rejected": float(np.mean(top_unknown < threshold)),
        "methods": methods,
    }
