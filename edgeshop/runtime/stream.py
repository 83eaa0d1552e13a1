"""Frame sources for cameras and files: one ``open_source`` for every kind of input.

- a folder of images or one image file: every image, in name order;
- a video file: every frame, timestamped by its position in the video;
- a camera index (``0``), an RTSP/HTTP(S) URL, or ``picamera2`` (Raspberry Pi camera via
  Picamera2, which OpenCV cannot open on Raspberry Pi OS Bookworm and later): a live
  source. A background thread keeps only the newest frame, so a slow consumer never
  falls behind the camera (no growing lag), and reconnects with exponential backoff
  when the camera drops.

Every frame carries its index (frames the camera delivered, so gaps show what a slow
consumer skipped) and a timestamp. URLs are redacted (no credentials) wherever they
are shown.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeshop.errors import EdgeshopError, ImageInputError
from edgeshop.runtime.preprocess import read_image

log = logging.getLogger("edgeshop.stream")

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mjpg", ".mjpeg"}
URL_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://")


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # BGR uint8
    index: int  # position in the source (live: frames delivered by the camera)
    timestamp: float  # seconds: wall clock for live sources, position for video files
    source: str  # redacted description of the source


_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


def redact(source: object) -> str:
    """Text safe for logs: user and password of every URL in it replaced by ***."""
    return _CREDENTIALS.sub(r"\g<scheme>***:***@", str(source))


class FrameSource:
    """Iterable of Frames; use as a context manager so devices are released."""

    description = "source"

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ImageFiles(FrameSource):
    """Every image of a folder (sorted, recursive) or one image file. Unreadable ones are skipped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = str(path)
        if path.is_dir():
            self.files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        else:
            self.files = [path]
        self.skipped: list[tuple[Path, str]] = []

    def __iter__(self) -> Iterator[Frame]:
        for index, file in enumerate(self.files):
            try:
                image = read_image(file)
            except ImageInputError as exc:
                self.skipped.append((file, str(exc)))
                log.warning("skipping %s", exc)
                continue
            yield Frame(image, index, file.stat().st_mtime, str(file))


class VideoFile(FrameSource):
    """Every frame of a video file, in order (nothing dropped: files are not real time)."""

    def __init__(self, path: Path) -> None:
        self.description = str(path)
        self.capture = cv2.VideoCapture(str(path))
        if not self.capture.isOpened():
            raise EdgeshopError(f"{path}: OpenCV cannot open this video (missing codec or not a video)")

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        while True:
            ok, image = self.capture.read()
            if not ok or image is None:
                return
            position = self.capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            yield Frame(image, index, position, self.description)
            index += 1

    def close(self) -> None:
        self.capture.release()


class Reader:
    """What a live source needs from a device: open, read one frame, release."""

    def open(self) -> None: ...

    def read(self) -> np.ndarray | None: ...

    def release(self) -> None: ...


class OpenCVReader(Reader):
    def __init__(self, target: int | str) -> None:
        self.target = target
        self.capture: cv2.VideoCapture | None = None

    def open(self) -> None:
        self.capture = cv2.VideoCapture(self.target)
        if not self.capture.isOpened():
            self.capture.release()
            self.capture = None
            raise OSError(f"cannot open {redact(self.target)}")
        self.capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # where supported: no stale frames queued

    def read(self) -> np.ndarray | None:
        if self.capture is None:
            return None
        ok, image = self.capture.read()
        return image if ok else None

    def release(self) -> None:
        if self.capture is not None:
            self.capture.release()
            self.capture = None


class Picamera2Reader(Reader):
    """The Raspberry Pi camera through Picamera2 (libcamera)."""

    def __init__(self, size: tuple[int, int] = (640, 480)) -> None:
        self.size = size
        self.camera: Any = None

    def open(self) -> None:
        from picamera2 import Picamera2  # only on Raspberry Pi OS

        self.camera = Picamera2()
        # "RGB888" is stored B, G, R in memory: exactly OpenCV's BGR.
        self.camera.configure(self.camera.create_video_configuration(main={"format": "RGB888", "size": self.size}))
        self.camera.start()

    def read(self) -> np.ndarray | None:
        return None if self.camera is None else self.camera.capture_array()

    def release(self) -> None:
        if self.camera is not None:
            self.camera.stop()
            self.camera.close()
            self.camera = None


class LiveSource(FrameSource):
    """A camera or stream read by a background thread that keeps only the newest frame.

    When the device fails to open or stops delivering, it is released and reopened
    after a delay that doubles from ``backoff`` up to ``max_backoff`` seconds; the
    consumer simply waits. ``max_frames`` (None: forever) ends the iteration.
    """

    def __init__(self, reader: Reader, description: str, backoff: float = 0.5, max_backoff: float = 10.0,
                 max_failures: int | None = None, clock: Callable[[], float] = time.time) -> None:
        self.reader = reader
        self.description = redact(description)
        self.backoff, self.max_backoff, self.max_failures = backoff, max_backoff, max_failures
        self.clock = clock
        self.reconnects = 0
        self._condition = threading.Condition()
        self._latest: Frame | None = None
        self._delivered = -1
        self._stop = threading.Event()
        self._error: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"edgeshop-{self.description}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        index, delay, failures, is_open = 0, self.backoff, 0, False
        while not self._stop.is_set():
            if not is_open:
                try:
                    self.reader.open()
                    is_open = True
                except Exception as exc:  # noqa: BLE001 - any device failure means: retry later
                    failures += 1
                    if self.max_failures is not None and failures > self.max_failures:
                        self._fail(f"{self.description}: gave up after {failures - 1} failed attempts ({redact(exc)})")
                        return
                    log.warning("%s: %s; retrying in %.1f s", self.description, redact(exc), delay)
                    self._stop.wait(delay)
                    delay = min(delay * 2, self.max_backoff)
                    continue
            image = self.reader.read()
            if image is None:
                log.warning("%s: no frame; reconnecting", self.description)
                self.reader.release()
                is_open = False
                self.reconnects += 1
                failures += 1
                if self.max_failures is not None and failures > self.max_failures:
                    self._fail(f"{self.description}: gave up after {failures - 1} failed reads")
                    return
                self._stop.wait(delay)
                delay = min(delay * 2, self.max_backoff)
                continue
            delay, failures = self.backoff, 0
            with self._condition:
                self._latest = Frame(image, index, self.clock(), self.description)
                self._condition.notify_all()
            index += 1
        self.reader.release()

    def _fail(self, message: str) -> None:
        with self._condition:
            self._error = message
            self._condition.notify_all()
        self.reader.release()

    def read(self, timeout: float | None = None) -> Frame | None:
        """The newest frame not yet handed out (waiting for one), or None on timeout/close."""
        with self._condition:
            ready = self._condition.wait_for(
                lambda: self._stop.is_set() or self._error is not None
                or (self._latest is not None and self._latest.index > self._delivered),
                timeout=timeout,
            )
            if self._error is not None:
                raise EdgeshopError(self._error)
            if not ready or self._stop.is_set() or self._latest is None:
                return None
            self._delivered = self._latest.index
            return self._latest

    def __iter__(self) -> Iterator[Frame]:
        while not self._stop.is_set():
            frame = self.read(timeout=1.0)
            if frame is not None:
                yield frame

    def close(self) -> None:
        self._stop.set()
        with self._condition:
            self._condition.notify_all()
        self._thread.join(timeout=5)


def open_source(source: str | int | Path, **live_options: Any) -> FrameSource:
    """A FrameSource for a camera index, URL, ``picamera2``, video file, image or folder."""
    text = str(source)
    if isinstance(source, int) or text.isdigit():
        return LiveSource(OpenCVReader(int(text)), f"camera {text}", **live_options)
    if text.lower().startswith(URL_SCHEMES):
        return LiveSource(OpenCVReader(text), text, **live_options)
    if text.lower() in ("picamera2", "picam"):
        try:
            import picamera2  # noqa: F401
        except ImportError:
            raise EdgeshopError(
                "picamera2 is not importable; on Raspberry Pi OS: sudo apt install python3-picamera2 "
                "(and create the venv with --system-site-packages)"
            ) from None
        return LiveSource(Picamera2Reader(), "picamera2", **live_options)
    path = Path(text)
    if not path.exists():
        raise EdgeshopError(f"{redact(text)}: no such file, folder, camera index or URL")
    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageFiles(path)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return VideoFile(path)
    raise EdgeshopError(f"{path}: unknown file type; expected an image ({', '.join(sorted(IMAGE_SUFFIXES))}) "
                        f"or a video ({', '.join(sorted(VIDEO_SUFFIXES))})")
