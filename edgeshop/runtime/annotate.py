"""Draw predictions onto frames (for annotated videos and images)."""

from __future__ import annotations

import cv2
import numpy as np

from edgeshop.runtime.classifier import Prediction

_GREEN, _BLACK = (60, 200, 60), (0, 0, 0)


def _label(image: np.ndarray, text: str, x: int, y: int) -> None:
    scale = max(0.4, image.shape[1] / 1200)
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    y = max(y, h + base)
    cv2.rectangle(image, (x, y - h - base), (x + w, y + base), _BLACK, -1)
    cv2.putText(image, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, _GREEN, 1, cv2.LINE_AA)


def annotate(frame: np.ndarray, results: list[tuple[tuple[int, int, int, int] | None, list[Prediction], str | None]]
             ) -> np.ndarray:
    """A copy of ``frame`` with one box and label per result.

    Each result is (box, predictions, stable label or None). The box is exactly the
    region the model saw (``Classifier.seen_box``: a slot's centre crop with fit "crop",
    the slot clipped to the frame otherwise); None: it saw the whole frame (no box drawn).
    """
    image = frame.copy()
    for box, predictions, stable in results:
        x, y, w, h = box if box is not None else (0, 0, image.shape[1], image.shape[0])
        if box is not None:
            # two 1-pixel outlines inside the box: the drawing covers the box's own edge, nothing outside
            for inset in (0, 1):
                cv2.rectangle(image, (x + inset, y + inset), (x + w - 1 - inset, y + h - 1 - inset), _GREEN, 1)
        top = f"{predictions[0].label} {predictions[0].score:.2f}" if predictions else "-"
        text = top if stable is None else f"{stable} ({top})"
        _label(image, text, x + 2, y + 2)
    return image
