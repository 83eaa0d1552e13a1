"""Frames and the sources that read them from files: a folder of images or one image, a
video file. Live cameras and streams are in live_source.py; ``stream.open_source`` picks one."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgeshop.errors import EdgeshopError, ImageInputError
from edgeshop.runtime.preprocess import IMAGE_SUFFIXES, read_image

log = logging.getLogger("edgeshop.stream")
# FFmpeg's own messages (read once, when OpenCV first uses FFmpeg) repeat each failed
# connection at length, URL included; edgeshop reports failures itself. Set it to show them.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mjpg", ".mjpeg"}


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # BGR uint8
    index: int  # position in the source (live: frames delivered by the camera)
    timestamp: float  # seconds: wall clock for live sources, position for video files
    source: str  # redacted description of the source


class FrameSource:
    """Iterable of Frames; use as a context manager so devices are released."""

    description = "source"
    _stopped = False

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def stop(self) -> None:
        """End the iteration at the next frame (live sources: within a second, frame or not)."""
        self._stopped = True

    def close(self) -> None:
        pass

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ImageFiles(FrameSource):
    """Every image of a folder (sorted, recursive), or one image file.

    A folder's unreadable images are skipped, logged and listed in ``skipped``; a single
    image that cannot be read raises ``ImageInputError``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = str(path)
        self.folder = path.is_dir()
        if self.folder:
            self.files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        else:
            self.files = [path]
        self.skipped: list[tuple[Path, str]] = []

    def __iter__(self) -> Iterator[Frame]:
        for index, file in enumerate(self.files):
            if self._stopped:
                return
            try:
                image = read_image(file)
                modified = file.stat().st_mtime
            except ImageInputError as exc:
                if not self.folder:
                    raise
                reason = str(exc)
            except OSError as exc:  # removed between listing and reading
                reason = f"{file}: {exc.strerror or exc}"
                if not self.folder:
                    raise ImageInputError(reason) from None
            else:
                yield Frame(image, index, modified, str(file))
                continue
            self.skipped.append((file, reason))
            log.warning("skipping %s", reason)


class VideoFile(FrameSource):
    """Every frame of a video file, in order (nothing dropped: files are not real time)."""

    def __init__(self, path: Path) -> None:
        self.description = str(path)
        self.capture = cv2.VideoCapture(str(path))
        if not self.capture.isOpened():
            raise EdgeshopError(f"{path}: OpenCV cannot open this video (missing codec or not a video)")

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        while not self._stopped:
            ok, image = self.capture.read()
            if not ok or image is None:
                return
            position = self.capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            yield Frame(image, index, position, self.description)
            index += 1

    def close(self) -> None:
        self.capture.release()

