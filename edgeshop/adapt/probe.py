"""Run a model and read its head: scores, logits and embedding of each image.

For calibration and unknown-product figures (`edgeshop-calibrate`, `edgeshop-eval
--unknown`): the model's own scores are not enough there (an int8 model's uint8 output
has steps of 1/256 and no logits). Runtime only; the probe is an in-memory copy of the
model with the head's tensors as extra outputs (`tflite_head.with_head_outputs`).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeshop.data import Sample, iter_decoded
from edgeshop.runtime.backend import make_interpreter, run_failures
from edgeshop.runtime.classifier import Classifier
from edgeshop.runtime.quantization import tensor_quantization
from edgeshop.tflite.modelcard import ModelCard, embed_card
from edgeshop.tflite.tflite_head import with_head_outputs, with_softmax_beta
from edgeshop.utils import progress_bar


class HeadProbe:
    """The scores, logits and embedding a ``Classifier``'s model computes for model-ready pixels."""

    def __init__(self, classifier: Classifier, softmax_beta: float | None = None) -> None:
        """``softmax_beta``: probe the model with this temperature instead of its own (1.0: uncalibrated)."""
        self.classifier = classifier
        content = classifier.content  # what the classifier runs, not whatever the path holds now
        if softmax_beta is not None:
            content = with_softmax_beta(content, softmax_beta, str(classifier.path))
        content, self.tensors = with_head_outputs(content, str(classifier.path))
        self.backend, self._interpreter = make_interpreter(content, classifier.threads, classifier.backend,
                                                           source=str(classifier.path))
        details = {d["index"]: d for d in self._interpreter.get_output_details()}
        self._outputs = {name: details[index] for name, index in self.tensors.items()}
        self._input = self._interpreter.get_input_details()[0]["index"]

    def run(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        """One image: {"scores", "logits", "embedding"?} as float32 vectors."""
        # The classifier's own input conversion: the probe sees exactly what it feeds.
        tensor = self.classifier._to_input(self.classifier._model_ready(pixels))
        with run_failures(str(self.classifier.path), self.backend):
            self._interpreter.set_tensor(self._input, tensor)
            self._interpreter.invoke()
            raws = {name: self._interpreter.get_tensor(detail["index"])[0] for name, detail in self._outputs.items()}
        result = {}
        for name, detail in self._outputs.items():
            raw = raws[name]
            q = tensor_quantization(detail)
            result[name] = raw.astype(np.float32) if q.dtype == "float32" else \
                ((raw.astype(np.float32) - q.zero_point) * q.scale).astype(np.float32)
        return result

    def run_many(self, pixels: np.ndarray, description: str = "probing") -> dict[str, np.ndarray]:
        """Every image of ``pixels`` (N x H x W x 3): one row per image in each output."""
        rows: dict[str, list[np.ndarray]] = {name: [] for name in self.tensors}
        with progress_bar(len(pixels), description) as bar:
            for image in pixels:
                for name, value in self.run(image).items():
                    rows[name].append(value)
                bar.update(1)
        return {name: np.stack(values) if values else np.zeros((0, 0), np.float32) for name, values in rows.items()}

    def run_samples(self, samples: Sequence[Sample], labels: Sequence[str] | None = None,
                    description: str = "probing") -> tuple[dict[str, np.ndarray], np.ndarray, list[tuple[Path, str]]]:
        """Every readable image file of ``samples``, decoded as it is probed (memory holds the
        outputs, never the images): (outputs as in ``run_many``, the index in ``labels`` of each
        row's class (empty without ``labels``), unreadable files with the reason)."""
        index = {name: i for i, name in enumerate(labels or ())}
        rows: dict[str, list[np.ndarray]] = {name: [] for name in self.tensors}
        truth, skipped = [], []
        with progress_bar(len(samples), description) as bar:
            for sample, pixels in iter_decoded(samples, self.classifier.input_spec):
                bar.update(1)
                if isinstance(pixels, str):
                    skipped.append((sample.path, pixels))
                    continue
                for name, value in self.run(pixels).items():
                    rows[name].append(value)
                if labels is not None:
                    truth.append(index[sample.label])
        outputs = {name: np.stack(values) if values else np.zeros((0, 0), np.float32) for name, values in rows.items()}
        return outputs, np.asarray(truth, dtype=np.int64), skipped


@contextlib.contextmanager
def loaded(model_content: bytes, card: ModelCard | None = None, **options: Any) -> Iterator[Classifier]:
    """A Classifier on a model held in memory (``card`` attached when given), e.g. a candidate rewrite."""
    with tempfile.TemporaryDirectory() as folder:
        candidate = Path(folder) / "candidate.tflite"
        candidate.write_bytes(embed_card(model_content, card) if card is not None else model_content)
        yield Classifier(candidate, **options)


def model_scores(model_content: bytes, pixels: np.ndarray, card: ModelCard | None = None) -> np.ndarray:
    """Scores of a model held in memory through the runtime's Classifier, one row per image of
    model-ready ``pixels``."""
    with loaded(model_content, card) as classifier:
        return np.stack([classifier.scores_from_pixels(image) for image in pixels])
