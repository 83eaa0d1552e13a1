"""Classification metrics on (truth, scores) arrays: numpy only, hand-checkable."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from edgeshop.data import coarse_index


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """counts[i, j] = images of true class i predicted as class j."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    return matrix


def per_class(matrix: np.ndarray, labels: Sequence[str]) -> list[dict[str, Any]]:
    """Precision, recall (= per-class accuracy), F1 and support for every class."""
    rows = []
    for i, label in enumerate(labels):
        tp = int(matrix[i, i])
        support = int(matrix[i].sum())
        predicted = int(matrix[:, i].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else float("nan")
        f1 = 2 * precision * recall / (precision + recall) if support and (precision + recall) > 0 else 0.0
        rows.append({"label": label, "precision": precision, "recall": recall, "f1": f1, "support": support})
    return rows


def most_confused(matrix: np.ndarray, labels: Sequence[str], top: int = 10) -> list[dict[str, Any]]:
    """The largest off-diagonal cells: (true, predicted, count), most first."""
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind="stable")[:top]
    pairs = []
    for flat in order:
        i, j = np.unravel_index(flat, off.shape)
        if off[i, j] == 0:
            break
        pairs.append({"true": labels[i], "predicted": labels[j], "count": int(off[i, j])})
    return pairs


CHANCE_MARGIN = 0.02  # top-1 this close to what always answering the commonest class scores: nothing learned
DOMINANT_SHARE = 0.90  # one class taking more of the predictions than this: the model barely looks at the image


def did_not_learn(truth: np.ndarray, scores: np.ndarray, labels: Sequence[str]) -> list[str]:
    """Warnings (empty when none) for a model whose predictions show it learned next to nothing:
    top-1 within CHANCE_MARGIN of chance (the share of the commonest true class, 1/classes when
    balanced), or one class predicted for more than DOMINANT_SHARE of the images."""
    if not len(truth):
        return []
    warnings = []
    predicted = scores.argmax(axis=1)
    top1 = float(np.mean(predicted == truth))
    chance = float(np.bincount(truth, minlength=len(labels)).max() / len(truth))
    if top1 <= chance + CHANCE_MARGIN:
        warnings.append(f"validation top-1 {top1:.1%} is within {CHANCE_MARGIN:.0%} of chance ({chance:.1%}): the "
                        "model learned next to nothing")
    counts = np.bincount(predicted, minlength=len(labels))
    if counts.max() > DOMINANT_SHARE * len(truth):
        warnings.append(f"{counts.max() / len(truth):.0%} of the validation images are predicted as "
                        f"{labels[int(counts.argmax())]!r}")
    return warnings


def reliability_bins(truth: np.ndarray, scores: np.ndarray, bins: int = 15) -> list[dict[str, float]]:
    """Per equal-width confidence bin (top score in (low, high]): images, accuracy, mean confidence."""
    confidence = scores.max(axis=1)
    correct = scores.argmax(axis=1) == truth
    edges = np.linspace(0.0, 1.0, bins + 1)
    rows = []
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        in_bin = (confidence > low) & (confidence <= high)
        count = int(in_bin.sum())
        rows.append({"low": float(low), "high": float(high), "count": count,
                     "accuracy": float(correct[in_bin].mean()) if count else float("nan"),
                     "confidence": float(confidence[in_bin].mean()) if count else float("nan")})
    return rows


def expected_calibration_error(truth: np.ndarray, scores: np.ndarray, bins: int = 15) -> float:
    """ECE: |accuracy - confidence| averaged over equal-width confidence bins, weighted by count."""
    if len(truth) == 0:
        return float("nan")
    return float(sum(row["count"] * abs(row["accuracy"] - row["confidence"])
                     for row in reliability_bins(truth, scores, bins) if row["count"]) / len(truth))


def coarse_accuracy(truth: np.ndarray, predicted: np.ndarray, labels: Sequence[str],
                    hierarchy: Mapping[str, str]) -> float:
    """Top-1 at the coarse level: the fine prediction mapped through ``hierarchy``, which
    must name a coarse class for every label (else DataError)."""
    coarse = coarse_index(labels, hierarchy, source="class hierarchy")
    return float(np.mean(coarse[truth] == coarse[predicted])) if len(truth) else float("nan")


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a proportion (95% with z=1.96): how far an accuracy measured
    on n images could be from the accuracy on all such images. Stays inside [0, 1] and
    behaves at 0% and 100%, unlike the normal approximation."""
    if n <= 0:
        return float("nan"), float("nan")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


BOOTSTRAP_RESAMPLES = 2000


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` share of bootstrap statistics (the percentile bootstrap)."""
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(np.asarray(values, np.float64), [tail, 100 - tail])
    return float(low), float(high)


def paired_difference_interval(a_correct: np.ndarray, b_correct: np.ndarray, level: float = 0.95,
                               resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """Bootstrap interval of accuracy(a) - accuracy(b) of two models on the same images.

    The images are resampled together, so what both models get right or wrong cancels and
    only their disagreements move the interval: far narrower than two separate intervals.
    Images are treated as independent; photos taken in bursts are not, so read it as a floor.
    """
    a, b = np.asarray(a_correct, np.float64), np.asarray(b_correct, np.float64)
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise ValueError(f"two equally long, non-empty per-image results are needed; got {a.shape} and {b.shape}")
    # A resample of n images is a multinomial draw of how often each per-image difference
    # (-1, 0, +1) occurs: the same distribution as drawing rows, in memory that does not grow with n.
    values, counts = np.unique(a - b, return_counts=True)
    drawn = np.random.default_rng(seed).multinomial(len(a), counts / len(a), size=resamples)
    return percentile_interval(drawn @ values / len(a), level)


def interval_text(accuracy: float, n: int) -> str:
    """`83.24%-90.82%`: the 95% Wilson interval of an accuracy over n images."""
    low, high = wilson_interval(round(accuracy * n), n)
    return f"{low:.2%}-{high:.2%}"


def top_k_accuracy(truth: np.ndarray, scores: np.ndarray, k: int = 1) -> float:
    """Fraction of rows whose true index is among the k highest scores (ties: lowest index first)."""
    if len(truth) == 0:
        return float("nan")
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float(np.mean((order == truth[:, None]).any(axis=1)))


def summarize(truth: np.ndarray, scores: np.ndarray, labels: Sequence[str],
              hierarchy: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Every figure edgeshop-eval reports, as plain JSON-able values."""
    predicted = scores.argmax(axis=1) if len(truth) else np.zeros(0, dtype=np.int64)
    matrix = confusion_matrix(truth, predicted, len(labels))
    classes = per_class(matrix, labels)
    present = [c for c in classes if c["support"] > 0]
    result: dict[str, Any] = {
        "n": int(len(truth)),
        "top1": top_k_accuracy(truth, scores, 1),
        "top5": top_k_accuracy(truth, scores, min(5, len(labels))),
        "macro_recall": float(np.mean([c["recall"] for c in present])) if present else float("nan"),
        "ece": expected_calibration_error(truth, scores),
        "per_class": classes,
        "most_confused": most_confused(matrix, labels),
        # the bins that hold images: how many each holds says how far its accuracy can be trusted
        "reliability": [row for row in reliability_bins(truth, scores) if row["count"]] if len(truth) else [],
        "confusion_matrix": matrix.tolist(),
        "labels": list(labels),
    }
    if hierarchy is not None:
        result["coarse_top1"] = coarse_accuracy(truth, predicted, labels, hierarchy)
    return result
