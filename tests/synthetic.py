"""Tiny synthetic image classes that a small CNN can learn in seconds.

Each class is a shape (disc, square, bar, cross) in its own colour family on a noisy
background, at random positions and sizes, so augmentation and cropping leave the
class recognisable but a model must actually look at the image.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

CLASSES = ("disc", "square", "bar")
_COLOURS = {"disc": (40, 60, 220), "square": (60, 200, 60), "bar": (220, 120, 30)}  # BGR


def draw(label: str, size: int, rng: np.random.Generator) -> np.ndarray:
    image = rng.integers(60, 160, (size, size, 3), dtype=np.uint8)
    image = cv2.GaussianBlur(image, (5, 5), 0)
    colour = tuple(int(np.clip(c + rng.integers(-30, 30), 0, 255)) for c in _COLOURS[label])
    cx, cy = (int(v) for v in rng.integers(size // 3, 2 * size // 3, 2))
    r = int(rng.integers(size // 6, size // 3))
    if label == "disc":
        cv2.circle(image, (cx, cy), r, colour, -1)
    elif label == "square":
        cv2.rectangle(image, (cx - r, cy - r), (cx + r, cy + r), colour, -1)
    else:
        cv2.rectangle(image, (cx - r, cy - r // 3), (cx + r, cy + r // 3), colour, -1)
    return image


def make_dataset(root: Path, per_class: int, size: int = 48, seed: int = 0, classes=CLASSES) -> Path:
    """Write ``root/<class>/<n>.png`` files; returns ``root``."""
    rng = np.random.default_rng(seed)
    for label in classes:
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            cv2.imwrite(str(folder / f"{label}_{i:03d}.png"), draw(label, size, rng))
    return root
