"""Frame sources for cameras and files: one ``open_source`` for every kind of input.

- a folder of images or one image file: every image, in name order;
- a video file: every frame, timestamped by its position in the video;
- a camera index (``0``), an RTSP/HTTP(S) URL, or ``picamera2`` (Raspberry Pi camera via
  Picamera2, which OpenCV cannot open on Raspberry Pi OS Bookworm and later): a live
  source. A background thread keeps only the newest frame, so a slow consumer never
  falls behind the camera (no growing lag), and reconnects with exponential backoff
  when the camera drops.

Every frame carries its index (frames the camera delivered, so gaps show what a slow
consumer skipped) and a timestamp. URLs are redacted (no credentials, see redact.py)
wherever they are shown. A live source that delivers nothing is retried for ever unless
``give_up_after`` seconds are set; ``stop()`` ends any iteration soon, even while the
camera is dead (safe to call from a signal handler). A stream URL's host is resolved by
edgeshop before FFmpeg sees it: a name that does not resolve is one clear error within
seconds (with ``give_up_after``; retried, with its DNS reason, without), not 30 s of
FFmpeg retries.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeshop.errors import EdgeshopError
from edgeshop.runtime.frames import VIDEO_SUFFIXES, Frame, FrameSource, ImageFiles, VideoFile
from edgeshop.runtime.live_source import (
    URL_SCHEMES,
    LiveSource,
    OpenCVReader,
    Picamera2Reader,
    Reader,
    resolve_stream_host,
)
from edgeshop.runtime.preprocess import IMAGE_SUFFIXES
from edgeshop.runtime.redact import redact, redact_url

__all__ = ["Frame", "FrameSource", "ImageFiles", "LiveSource", "OpenCVReader", "Picamera2Reader", "Reader",
           "URL_SCHEMES", "VIDEO_SUFFIXES", "VideoFile", "open_source", "redact", "resolve_stream_host"]


def open_source(source: str | int | Path, **live_options: Any) -> FrameSource:
    """A FrameSource for a camera index, URL, ``picamera2``, video file, image or folder."""
    text = str(source)
    if isinstance(source, int) or text.isdigit():
        return LiveSource(OpenCVReader(int(text)), f"camera {text}", **live_options)
    if text.lower().startswith(URL_SCHEMES):
        if live_options.get("give_up_after") is not None:
            resolve_stream_host(text)  # a wrong name is final; retrying for ever keeps trying
        return LiveSource(OpenCVReader(text), text, **live_options)  # LiveSource redacts the description
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
        raise EdgeshopError(f"{redact_url(text)}: no such file, folder, camera index or URL")
    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageFiles(path)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return VideoFile(path)
    raise EdgeshopError(f"{path}: unknown file type; expected an image ({', '.join(sorted(IMAGE_SUFFIXES))}) "
                        f"or a video ({', '.join(sorted(VIDEO_SUFFIXES))})")
