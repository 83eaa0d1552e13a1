"""Classifier: camera frame in, ranked predictions out, on any TFLite interpreter."""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeshop._deprecation import UNSET, renamed_keyword
from edgeshop.errors import ImageInputError, ModelCardError, ModelLoadError
from edgeshop.runtime.backend import make_interpreter, run_failures
from edgeshop.runtime.preprocess import FRAME_FIT, SLOT_FIT, check_fit, check_frame, fit_box, preprocess
from edgeshop.runtime.quantization import dequantize, dequantize_table, tensor_quantization
from edgeshop.tflite.model_check import TFLITE_IDENTIFIER, check_model, check_outputs_fit_card
from edgeshop.tflite.modelcard import InputSpec, ModelCard, check_labels, read_card

# Edgeshop models are 3-7 MB (mobile classifiers rarely pass 50 MB); with MAX_ACTIVATION_BYTES the limit keeps
# the runtime's memory (the file, the weights XNNPACK repacks) under 300 MB for any file.
MAX_MODEL_BYTES = 64 << 20

Roi = tuple[int, int, int, int]
MAX_WARNED_ROIS = 1024  # clipped regions remembered so each is warned about once
log = logging.getLogger("edgeshop.classifier")


@dataclass(frozen=True)
class Prediction:
    label: str
    score: float  # probability in [0, 1]
    index: int
    # The frame's top score is below the unknown threshold: it looks like none of the model's
    # products, and ``label`` is only the nearest one (see Classifier.unknown_threshold).
    unknown: bool = False


class Classifier:
    """Classify OpenCV BGR frames with an edgeshop .tflite model.

    Everything the model needs (labels, input size, colour order, resize rule) is read
    from the card inside the file. One instance may be shared by several threads: the
    interpreter call is serialised, preprocessing runs in parallel.

    ``threads``: interpreter threads (None: the interpreter's choice); ``top_k`` and
    ``score_threshold``: how many predictions, scoring at least what. The commands' options
    use the same words (``--threads``, ``--top-k``, ``--score-threshold``).

    ``unknown_threshold``: a frame whose top score is below it is "not one of my products"
    and its predictions are marked ``unknown``. None takes the threshold edgeshop-calibrate
    stored in the card (chosen to keep 95% of known validation images), 0 turns it off.

    ``fit``: how a frame or region (ROI) of another aspect ratio than the model's input is
    fitted to it: ``pad`` (letterbox: the model sees all of it), ``crop`` (the centre
    crop training uses) or ``stretch``; every call may override it. None: regions are
    padded (``SLOT_FIT``: a shelf slot is classified whole) and whole frames cropped
    (``FRAME_FIT``, as in training and on the browser page). A region reaching outside
    the frame is clipped to it, with one warning per region (``seen_box`` gives the part
    the model sees, for drawing).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        threads: int | None = None,
        *,
        top_k: int = 5,
        score_threshold: float = 0.0,
        allowlist: Iterable[str] | None = None,
        denylist: Iterable[str] | None = None,
        backend: str = "auto",
        unknown_threshold: float | None = None,
        fit: str | None = None,
        num_threads: int | None = UNSET,
    ) -> None:
        threads = renamed_keyword("Classifier", "num_threads", "threads", num_threads, threads)
        self.fit = None if fit is None else _checked_fit(fit)
        self._clipped_warned: set[tuple[Roi, tuple[int, int]]] = set()
        self.path = Path(path)
        # The bytes the interpreter runs; everything else that reads the model (HeadProbe) reads
        # these, never the path again, which may hold another file by then.
        self.content = _read_model_file(self.path)
        card = read_card(self.content, source=str(self.path))
        graph = check_model(self.content, str(self.path))[0]
        if card is not None:
            export = card.extra.get("export")
            check_outputs_fit_card(graph, export.get("format") if isinstance(export, dict) else None, str(self.path))
        self.backend, self._interpreter = make_interpreter(self.content, threads, backend, source=str(self.path),
                                                           checked=True)
        self.card = card or self._fallback_card()
        self.threads = threads
        self.top_k = top_k
        self.score_threshold = score_threshold
        self._lock = threading.Lock()
        self._bind_tensors()
        self._mask = self._label_mask(allowlist, denylist)
        self._allowed = np.flatnonzero(self._mask).tolist()
        self.unknown_threshold = self._card_unknown_threshold() if unknown_threshold is None else unknown_threshold

    def _card_unknown_threshold(self) -> float:
        """The threshold edgeshop-calibrate chose on validation images; 0 (never unknown) without one."""
        unknown = self.card.extra.get("unknown")
        if not isinstance(unknown, dict) or "threshold" not in unknown:
            return 0.0
        threshold = unknown["threshold"]
        if not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
            raise ModelCardError(f"{self.path}: the card's unknown threshold {threshold!r} is not a score in [0, 1]")
        return float(threshold)

    # -- loading ---------------------------------------------------------------------
    def _fallback_card(self) -> ModelCard:
        """A card for a model without edgeshop metadata: labels.txt beside it, else indices."""
        shape = self._interpreter.get_input_details()[0]["shape"]
        n_out = int(self._interpreter.get_output_details()[0]["shape"][-1])
        labels_file = self.path.with_name("labels.txt")
        if labels_file.is_file():
            lines = labels_file.read_text(encoding="utf-8").splitlines()
            labels = tuple(line.strip() for line in lines if line.strip())
        else:
            warnings.warn(
                f"{self.path}: no edgeshop model card and no labels.txt beside it; "
                f"using index labels '0'..'{n_out - 1}'",
                stacklevel=3,
            )
            labels = tuple(str(i) for i in range(n_out))
        spec = InputSpec(height=int(shape[1]), width=int(shape[2]), normalization_in_graph=False)
        try:
            check_labels(labels)
        except ModelCardError as exc:
            raise ModelCardError(f"{labels_file}: {exc}") from None
        return ModelCard(labels=labels, input=spec, name=self.path.stem, extra={"card": "fallback"})

    def _bind_tensors(self) -> None:
        inp = self._interpreter.get_input_details()
        out = self._interpreter.get_output_details()
        if len(inp) != 1 or len(out) != 1:
            raise ModelLoadError(
                f"{self.path}: expected one input and one output tensor, got {len(inp)} and {len(out)}"
            )
        self._in, self._out = inp[0], out[0]
        shape = tuple(int(s) for s in self._in["shape"])
        spec = self.card.input
        if len(shape) != 4 or shape[3] != 3 or shape[1:3] != (spec.height, spec.width):
            raise ModelCardError(
                f"{self.path}: input tensor shape {shape} does not match the card's "
                f"{spec.height}x{spec.width}x3"
            )
        n_out = int(self._out["shape"][-1])
        if n_out != len(self.card.labels):
            raise ModelCardError(
                f"{self.path}: the model has {n_out} outputs but {len(self.card.labels)} labels; "
                "the labels belong to another model"
            )
        self._in_q = tensor_quantization(self._in)
        self._out_q = tensor_quantization(self._out)
        self._out_table = dequantize_table(self._out_q)
        # Raw pixels feed an int8/uint8 input with scale ~1 directly (edgeshop exports do).
        self._pixel_passthrough = (
            spec.normalization_in_graph
            and abs(self._in_q.scale - 1.0) < 1e-3
            and (self._in_q.dtype, self._in_q.zero_point) in (("uint8", 0), ("int8", -128))
        )

    def _label_mask(self, allowlist: Iterable[str] | None, denylist: Iterable[str] | None) -> np.ndarray:
        labels = self.card.labels
        mask = np.ones(len(labels), dtype=bool)
        for name, names, keep in (("allowlist", allowlist, True), ("denylist", denylist, False)):
            if names is None:
                continue
            names = list(names)
            unknown = sorted(set(names) - set(labels))
            if unknown:
                raise ValueError(f"{name} names labels this model does not have: {unknown[:5]}")
            chosen = np.isin(np.array(labels, dtype=object), names)
            mask &= chosen if keep else ~chosen
        return mask

    # -- public API ------------------------------------------------------------------
    @property
    def labels(self) -> list[str]:
        return list(self.card.labels)

    @property
    def input_spec(self) -> InputSpec:
        return self.card.input

    @property
    def num_threads(self) -> int | None:
        """Deprecated name of ``threads``."""
        warnings.warn("Classifier.num_threads is deprecated and will be removed; use Classifier.threads",
                      DeprecationWarning, stacklevel=2)
        return self.threads

    @property
    def info(self) -> dict[str, Any]:
        """What this classifier is running: backend, input, quantization, labels, card."""
        return {
            "path": str(self.path),
            "backend": self.backend,
            "threads": self.threads,
            "input_shape": [int(s) for s in self._in["shape"]],
            "input_dtype": self._in_q.dtype,
            "input_quantization": {"scale": self._in_q.scale, "zero_point": self._in_q.zero_point},
            "output_dtype": self._out_q.dtype,
            "output_quantization": {"scale": self._out_q.scale, "zero_point": self._out_q.zero_point},
            "quantization": self.card.quantization,
            "unknown_threshold": self.unknown_threshold,
            "labels": self.labels,
            "model_card": {"name": self.card.name, "arch": self.card.arch, **self.card.extra},
        }

    def classify(
        self,
        image: np.ndarray,
        top_k: int | None = None,
        *,
        rois: Sequence[Roi] | None = None,
        score_threshold: float | None = None,
        fit: str | None = None,
    ) -> list[Prediction] | list[list[Prediction]]:
        """Ranked predictions for one frame; with ``rois``, one list per (x, y, w, h) region."""
        if rois is None:
            return self.rank(self.scores(image, fit=fit), top_k, score_threshold)
        return [self.rank(scores, top_k, score_threshold) for scores in self.roi_scores(image, rois, fit=fit)]

    def roi_scores(self, image: np.ndarray, rois: Sequence[Roi], *, fit: str | None = None) -> list[np.ndarray]:
        """Probabilities for each (x, y, w, h) region of one frame (e.g. shelf slots), in order."""
        frame = check_frame(image)
        fit = self._fit(fit, slot=True)
        return [self.scores(frame[y : y + h, x : x + w], fit=fit)
                for x, y, w, h in (self.clip_roi(frame, roi) for roi in rois)]

    def clip_roi(self, image: np.ndarray, roi: Roi) -> Roi:
        """``roi`` clipped to the frame; the first time a region is clipped, a warning says so."""
        height, width = image.shape[:2]
        clipped = clip_roi(roi, width, height)
        if clipped != tuple(roi) and (tuple(roi), (width, height)) not in self._clipped_warned:
            if len(self._clipped_warned) >= MAX_WARNED_ROIS:  # regions that move (tracking boxes): bounded memory
                self._clipped_warned.clear()
            self._clipped_warned.add((tuple(roi), (width, height)))
            log.warning("roi %s reaches outside the %dx%d frame; classifying the part inside it, %s",
                        tuple(roi), width, height, clipped)
        return clipped

    def seen_box(self, image: np.ndarray, roi: Roi | None = None, *, fit: str | None = None) -> Roi:
        """(x, y, w, h) in the frame of what the model sees of the frame or of ``roi`` with ``fit``."""
        frame = check_frame(image)
        x, y, w, h = (0, 0, frame.shape[1], frame.shape[0]) if roi is None else clip_roi(roi, frame.shape[1],
                                                                                          frame.shape[0])
        dx, dy, seen_w, seen_h = fit_box(h, w, self.card.input, self._fit(fit, slot=roi is not None))
        return x + dx, y + dy, seen_w, seen_h

    def classify_batch(self, images: Iterable[np.ndarray], top_k: int | None = None) -> list[list[Prediction]]:
        return [self.rank(self.scores(image), top_k, None) for image in images]

    def scores(self, image: np.ndarray, *, fit: str | None = None) -> np.ndarray:
        """Probabilities for every label (float32, length ``len(labels)``) of a whole frame."""
        return self.scores_from_pixels(preprocess(image, self.card.input, self._fit(fit, slot=False)))

    def _fit(self, fit: str | None, slot: bool) -> str:
        """The fit of a call: its own, else this classifier's, else the default for slots or frames."""
        if fit is not None:
            return _checked_fit(fit)
        if self.fit is not None:
            return self.fit
        return SLOT_FIT if slot else FRAME_FIT

    def scores_from_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Probabilities for model-ready pixels: input-sized uint8, the model's colour order."""
        tensor = self._to_input(self._model_ready(pixels))
        with self._lock, run_failures(str(self.path), self.backend):
            self._interpreter.set_tensor(self._in["index"], tensor)
            self._interpreter.invoke()
            return self._dequantize(self._interpreter.get_tensor(self._out["index"])[0])

    def _model_ready(self, pixels: object) -> np.ndarray:
        """``pixels`` if they are what the model takes (H x W x 3 uint8 of the card's size), else an
        ImageInputError saying what is expected; LiteRT's own error would not name either."""
        spec = self.card.input
        expected = (spec.height, spec.width, 3)
        if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.shape != expected:
            found = (f"{pixels.dtype} array of shape {pixels.shape}" if isinstance(pixels, np.ndarray)
                     else type(pixels).__name__)
            raise ImageInputError(f"model-ready pixels must be a uint8 array of shape {expected} (use "
                                  f"Classifier.scores for camera frames of any size); got a {found}")
        return pixels

    # -- tensors ---------------------------------------------------------------------
    def _to_input(self, pixels: np.ndarray) -> np.ndarray:
        q = self._in_q
        if self._pixel_passthrough:
            if q.dtype == "uint8":
                return pixels[None]
            return (pixels ^ np.uint8(0x80)).view(np.int8)[None]  # p - 128 without a copy to int16
        values = pixels.astype(np.float32)
        if not self.card.input.normalization_in_graph:
            values = (values - np.float32(self.card.input.mean)) / np.float32(self.card.input.std)
        if q.dtype == "float32":
            return values[None]
        info = np.iinfo(q.dtype)
        quantized = np.round(values / q.scale + q.zero_point)
        return np.clip(quantized, info.min, info.max).astype(q.dtype)[None]

    def _dequantize(self, raw: np.ndarray) -> np.ndarray:
        """Float32 scores of a raw output, in a new array (the interpreter may reuse ``raw``)."""
        if self._out_table is not None:
            return self._out_table[raw.view(np.uint8)]
        q = self._out_q
        if q.dtype == "float32":
            return raw.astype(np.float32)
        return dequantize(raw, q)

    def is_unknown(self, scores: np.ndarray) -> bool:
        """True when no label (allowed or not) reaches ``unknown_threshold``: not one of the products."""
        return self._unknown(np.asarray(scores).tolist())

    def rank(self, scores: np.ndarray, top_k: int | None = None, score_threshold: float | None = None, *,
             threshold: float | None = UNSET) -> list[Prediction]:
        """Predictions from a score vector, with this classifier's top_k/score_threshold/allow/deny
        rules; all of them are marked ``unknown`` when the frame is (`is_unknown`)."""
        score_threshold = renamed_keyword("Classifier.rank", "threshold", "score_threshold", threshold,
                                          score_threshold)
        k = self.top_k if top_k is None else top_k
        threshold = self.score_threshold if score_threshold is None else score_threshold
        # On plain floats in Python: after an invoke has evicted the caches each numpy call costs
        # ~0.07 ms, more than this whole loop. The threshold is rounded to the scores' dtype, as
        # numpy's `scores >= threshold` does; sorted() is stable (ties keep label order) and NaN
        # scores never pass the >= test.
        values = scores.tolist()
        cut = float(scores.dtype.type(threshold)) if scores.dtype.kind == "f" else threshold
        order = sorted((i for i in self._allowed if values[i] >= cut), key=lambda i: -values[i])
        if k is not None and k >= 0:
            order = order[:k]
        labels, unknown = self.card.labels, self._unknown(values)
        return [Prediction(labels[i], min(max(values[i], 0.0), 1.0), i, unknown) for i in order]

    def _unknown(self, values: list[float]) -> bool:
        """``is_unknown`` of the scores as plain floats (a NaN makes numpy's max NaN, never below)."""
        return bool(values) and max(values) < self.unknown_threshold and not any(v != v for v in values)


def clip_roi(roi: Roi, width: int, height: int) -> Roi:
    """The (x, y, w, h) region clipped to a width x height frame; a region with no pixel
    in the frame, or not four integers, is an ``ImageInputError``."""
    try:
        x, y, w, h = (int(v) for v in roi)
    except (TypeError, ValueError):
        raise ImageInputError(f"roi must be (x, y, w, h) integers, got {roi!r}") from None
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(width, x + w), min(height, y + h)
    if x1 <= x0 or y1 <= y0:
        raise ImageInputError(f"roi {roi!r} lies outside the {width}x{height} frame")
    return x0, y0, x1 - x0, y1 - y0


def _checked_fit(fit: str) -> str:
    try:
        return check_fit(fit)
    except ValueError as exc:
        raise ImageInputError(str(exc)) from None


def _read_model_file(path: Path) -> bytes:
    if not path.exists():
        raise ModelLoadError(f"{path}: model file not found")
    if not path.is_file():
        raise ModelLoadError(f"{path}: is not a file")
    size = path.stat().st_size
    if size == 0:
        raise ModelLoadError(f"{path}: model file is empty (0 bytes); re-export or re-copy it")
    if size > MAX_MODEL_BYTES:
        raise ModelLoadError(f"{path}: {size} bytes is too large for a TFLite model")
    with open(path, "rb") as file:
        # at most the size stat gave, plus one byte to notice a file that grew since (read(n)
        # allocates n bytes up front, so n is the file's size, not the limit)
        content = file.read(size + 1)
    if len(content) > size:
        raise ModelLoadError(f"{path}: the file grew while it was read; read it again when it is complete")
    if len(content) < 8 or content[4:8] != TFLITE_IDENTIFIER:
        raise ModelLoadError(
            f"{path}: not a TFLite model (no 'TFL3' identifier); pass a .tflite file written by edgeshop-export"
        )
    return content
