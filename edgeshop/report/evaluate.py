"""Run a Classifier over labelled images and compute accuracy figures."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeshop.data import Sample, iter_decoded
from edgeshop.errors import DataError
from edgeshop.runtime.classifier import Classifier
from edgeshop.utils import progress_bar


@dataclass
class Predictions:
    """Scores of one model over a labelled image set (rows align with ``paths``)."""

    labels: list[str]  # the model's label list (columns of ``scores``)
    truth: np.ndarray  # int index into ``labels`` per image
    scores: np.ndarray  # N x len(labels) probabilities
    paths: list[Path]
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0  # decoding + classifying, wall time


def predict(classifier: Classifier, samples: Sequence[Sample], show_progress: bool = True,
            workers: int = 4) -> Predictions:
    """Scores of every readable sample. Images are decoded by ``workers`` threads a few dozen
    ahead of the interpreter and dropped once classified (memory holds the scores only);
    ``show_progress``: a progress bar on a terminal and a closing images/s line on stderr."""
    labels = classifier.labels
    index = {name: i for i, name in enumerate(labels)}
    unknown = sorted({s.label for s in samples} - set(index))
    if unknown:
        raise DataError(f"the data has classes the model does not know: {unknown[:5]}")
    truth, scores, paths, skipped = [], [], [], []
    started = time.perf_counter()
    with progress_bar(len(samples) if show_progress else 0, f"classifying with {classifier.path.name}") as bar:
        # decode_sample is Classifier.scores' own preprocessing (preprocess(read_image(...), the card's input))
        for sample, pixels in iter_decoded(samples, classifier.input_spec, workers):
            if isinstance(pixels, str):
                skipped.append((sample.path, pixels))
            else:
                scores.append(classifier.scores_from_pixels(pixels))
                truth.append(index[sample.label])
                paths.append(sample.path)
            bar.update(1)
    seconds = time.perf_counter() - started
    if show_progress:
        print(f"{classifier.path.name}: {len(samples)} images in {seconds:.1f} s "
              f"({len(samples) / max(seconds, 1e-9):.1f} images/s)", file=sys.stderr)
    matrix = np.stack(scores) if scores else np.zeros((0, len(labels)), np.float32)
    return Predictions(labels, np.asarray(truth, dtype=np.int64), matrix, paths, skipped, seconds)
