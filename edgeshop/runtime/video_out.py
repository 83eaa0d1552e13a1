"""An annotated video written so that only a complete, playable file ever appears.

Frames go to a hidden temporary name beside the target. ``finish(keep=True)`` closes it,
re-opens it and checks that it holds every frame written (OpenCV only warns when a write
fails, say on a full disk, and a truncated .mp4 has no index and does not play), then
renames it into place; anything else removes the temporary file and replaces nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from edgeshop.errors import EdgeshopError

FPS = 15.0


class VideoOutput:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.partial = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self.writer: cv2.VideoWriter | None = None
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        if self.writer is None:
            fourcc = cv2.VideoWriter_fourcc(*("mp4v" if self.path.suffix.lower() == ".mp4" else "MJPG"))
            self.writer = cv2.VideoWriter(str(self.partial), fourcc, FPS, (image.shape[1], image.shape[0]))
            if not self.writer.isOpened():
                self.writer = None
                self.partial.unlink(missing_ok=True)
                raise EdgeshopError(f"{self.path}: OpenCV cannot write this video; use a .mp4 or .avi name")
        self.writer.write(image)
        self.frames += 1

    def finish(self, keep: bool) -> None:
        """Close the video; with ``keep``, check it and rename it into place (else an
        ``EdgeshopError``, and nothing is renamed); without, remove it."""
        if self.writer is None:
            return
        writer, self.writer = self.writer, None
        try:
            writer.release()
            if keep:
                self._check()
                os.replace(self.partial, self.path)
        finally:
            self.partial.unlink(missing_ok=True)

    def _check(self) -> None:
        """Re-open the closed file: it must hold ``frames`` frames and the last must decode."""
        capture = cv2.VideoCapture(str(self.partial), cv2.CAP_FFMPEG)
        try:
            count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
            last_ok = count == self.frames and capture.set(cv2.CAP_PROP_POS_FRAMES, count - 1) \
                and capture.read()[0]
        finally:
            capture.release()
        if not last_ok:
            size = self.partial.stat().st_size if self.partial.exists() else 0
            raise EdgeshopError(
                f"{self.path}: writing the video failed ({self.frames} frames written, the file of {size:,} bytes "
                "does not play them all back: disk full or file too large?); nothing was saved"
            )
