"""Run a Classifier over labelled images and compute accuracy figures."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeshop.datasets import Sample
from edgeshop.errors import DataError, ImageInputError
from edgeshop.runtime.classifier import Classifier
from edgeshop.runtime.preprocess import read_image
from edgeshop.utils import progress_bar


@dataclass
class Predictions:
    """Scores of one model over a labelled image set (rows align with ``paths``)."""

    labels: list[str]  # the model's label list (columns of ``scores``)
    truth: np.ndarray  # int index into ``labels`` per image
    scores: np.ndarray  # N x len(labels) probabilities
    paths: list[Path]
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def predict(classifier: Classifier, samples: Sequence[Sample], show_progress: bool = True) -> Predictions:
    labels = classifier.labels
    index = {name: i for i, name in enumerate(labels)}
    unknown = sorted({s.label for s in samples} - set(index))
    if unknown:
        raise DataError(f"the data has classes the model does not know: {unknown[:5]}")
    truth, scores, paths, skipped = [], [], [], []
    with progress_bar(len(samples) if show_progress else 0, f"classifying with {classifier.path.name}") as bar:
        for sample in samples:
            try:
                scores.append(classifier.scores(read_image(sample.path)))
            except ImageInputError as exc:
                skipped.append((sample.path, str(exc)))
            else:
                truth.append(index[sample.label])
                paths.append(sample.path)
            bar.update(1)
    matrix = np.stack(scores) if scores else np.zeros((0, len(labels)), np.float32)
    return Predictions(labels, np.asarray(truth, dtype=np.int64), matrix, paths, skipped)


def top_k_accuracy(truth: np.ndarray, scores: np.ndarray, k: int = 1) -> float:
    """Fraction of rows whose true index is among the k highest scores (ties: lowest index first)."""
    if len(truth) == 0:
        return float("nan")
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float(np.mean((order == truth[:, None]).any(axis=1)))
