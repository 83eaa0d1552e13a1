"""How well a model's scores are calibrated: the ECE a perfectly calibrated model would still show
(the noise floor), and the reliability diagram. The temperature itself is fitted in
edgeshop.adapt.temperature. numpy only; the plot needs matplotlib (the ``report`` extra).
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping

import numpy as np

from edgeshop.errors import MissingExtraError
from edgeshop.report.metrics import expected_calibration_error, reliability_bins
from edgeshop.utils import write_bytes_atomic


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
