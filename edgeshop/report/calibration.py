"""Temperature scaling (Guo et al., ICML 2017) on logits, and the reliability diagram.

scores = softmax(beta * logits) with beta = 1 / T. One number, fitted by minimising the
negative log-likelihood of the true labels; it rescales every image's logits alike, so
it never changes which class scores highest. numpy only; the plot needs matplotlib
(the ``report`` extra).
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping

import numpy as np

from edgeshop.errors import MissingExtraError
from edgeshop.report.metrics import expected_calibration_error, reliability_bins
from edgeshop.utils import write_bytes_atomic

# Search range of beta. Above 10 a few hundred validation images cannot tell one value
# from another (a separable set drives the fit to the bound); below 0.1 nothing is left.
BETA_RANGE = (0.1, 10.0)


def softmax(logits: np.ndarray, beta: float = 1.0) -> np.ndarray:
    z = beta * np.asarray(logits, dtype=np.float64)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def negative_log_likelihood(logits: np.ndarray, truth: np.ndarray, beta: float = 1.0) -> float:
    """Mean -log softmax(beta * logits)[true class]."""
    z = beta * np.asarray(logits, dtype=np.float64)
    top = z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z - top).sum(axis=1)) + top[:, 0]
    return float(np.mean(log_norm - z[np.arange(len(truth)), truth]))


def fit_beta(logits: np.ndarray, truth: np.ndarray, bounds: tuple[float, float] = BETA_RANGE) -> float:
    """The beta in ``bounds`` minimising the NLL (convex in beta: golden-section search on log beta)."""
    if len(truth) == 0:
        raise ValueError("fitting a temperature needs at least one labelled image")
    low, high = np.log(bounds[0]), np.log(bounds[1])
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = (negative_log_likelihood(logits, truth, np.exp(x)) for x in (a, b))
    while high - low > 1e-5:
        if fa < fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = negative_log_likelihood(logits, truth, np.exp(a))
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = negative_log_likelihood(logits, truth, np.exp(b))
    return float(np.exp((low + high) / 2.0))


def ece_of_a_calibrated_model(confidence: np.ndarray, bins: int = 15, draws: int = 500,
                               seed: int = 0) -> dict[str, float]:
    """The ECE a perfectly calibrated model with these top scores would still show on this many
    images (each image right with probability = its confidence): the noise floor of the
    measurement, median and 5-95% range over ``draws`` simulated label sets."""
    confidence = np.asarray(confidence, dtype=np.float64)
    if not len(confidence):
        return {"median": float("nan"), "p05": float("nan"), "p95": float("nan")}
    rng = np.random.default_rng(seed)
    edges = np.linspace(0.0, 1.0, bins + 1)
    in_bin = [(confidence > low) & (confidence <= high) for low, high in zip(edges[:-1], edges[1:], strict=True)]
    in_bin = [m for m in in_bin if m.any()]
    values = []
    for _ in range(draws):
        correct = rng.random(len(confidence)) < confidence
        values.append(sum(m.mean() * abs(correct[m].mean() - confidence[m].mean()) for m in in_bin))
    low, median, high = np.percentile(values, [5, 50, 95])
    return {"median": float(median), "p05": float(low), "p95": float(high)}


def reliability_diagram(path: str | os.PathLike[str], curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
                        bins: int = 15, title: str = "Reliability") -> None:
    """A PNG: accuracy against confidence per bin for each (truth, scores) in ``curves``,
    the diagonal being perfect calibration; the legend gives each curve's ECE."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingExtraError("report", "matplotlib") from None
    figure, axis = plt.subplots(figsize=(4.5, 4.5), dpi=110)
    axis.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="perfect calibration")
    for name, (truth, scores) in curves.items():
        rows = [r for r in reliability_bins(truth, scores, bins) if r["count"]]
        ece = expected_calibration_error(truth, scores, bins)
        line, = axis.plot([r["confidence"] for r in rows], [r["accuracy"] for r in rows], marker="o", markersize=3,
                          label=f"{name} (ECE {ece:.3f}, n={len(truth)})")
        for row in rows:  # images per bin: a bin of 2 says little
            axis.annotate(str(row["count"]), (row["confidence"], row["accuracy"]), textcoords="offset points",
                          xytext=(3, -8), fontsize=6, color=line.get_color())
    axis.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top score)", ylabel="accuracy", title=title)
    axis.legend(loc="lower right", fontsize=7)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    write_bytes_atomic(path, buffer.getvalue())
