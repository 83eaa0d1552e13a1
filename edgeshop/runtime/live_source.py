"""Live sources: a camera index, an RTSP/HTTP(S) URL or the Raspberry Pi camera, read by a
background thread that keeps only the newest frame and reconnects with backoff."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import cv2
import numpy as np

from edgeshop.errors import EdgeshopError
from edgeshop.runtime.frames import Frame, FrameSource, log
from edgeshop.runtime.redact import redact_url, scrub, url_host

URL_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://")
DNS_TIMEOUT = 3.0  # seconds for a host name lookup (the system resolver may retry for much longer)


def resolve_stream_host(url: str, timeout: float = DNS_TIMEOUT) -> None:
    """Raise ``EdgeshopError`` (the redacted URL and the resolver's reason) when the host
    of stream ``url`` does not resolve within ``timeout`` seconds."""
    host = url_host(url)
    if not host:
        raise EdgeshopError(f"{redact_url(url)}: no host name in this URL")
    outcome: list[str | None] = []

    def lookup() -> None:
        try:
            socket.getaddrinfo(host, None)
            outcome.append(None)
        except (OSError, UnicodeError) as exc:  # socket.gaierror: the resolver's own reason
            outcome.append(getattr(exc, "strerror", None) or str(exc))

    # a thread, because getaddrinfo has no timeout of its own
    thread = threading.Thread(target=lookup, name="edgeshop-dns", daemon=True)
    thread.start()
    thread.join(timeout)
    reason = outcome[0] if outcome else f"no DNS answer within {timeout:g} s"
    if reason is not None:
        raise EdgeshopError(f"{redact_url(url)}: the host name does not resolve ({reason}); "
                            "check the camera's address and the network's DNS")


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
        if isinstance(self.target, str):
            try:
                resolve_stream_host(self.target)
            except EdgeshopError as exc:
                raise OSError(str(exc).split(": ", 1)[-1]) from None  # LiveSource names the source itself
            # A named backend: letting OpenCV fall back through its others (images,
            # MJPEG, V4L2) gets the URL, credentials and all, printed by their errors.
            # OpenCV's own warning when FFmpeg cannot open it says nothing the error does not
            previous = cv2.utils.logging.getLogLevel()
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
            try:
                self.capture = cv2.VideoCapture(self.target, cv2.CAP_FFMPEG)
            finally:
                cv2.utils.logging.setLogLevel(previous)
        else:
            self.capture = cv2.VideoCapture(self.target)
        if not self.capture.isOpened():
            self.capture.release()
            self.capture = None
            target = redact_url(self.target) if isinstance(self.target, str) else f"camera {self.target}"
            raise OSError(f"cannot open {target}")
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

    When the device fails to open, stops delivering or its read raises, it is released
    and reopened after a delay that doubles from ``backoff`` up to ``max_backoff``
    seconds; the consumer waits. ``max_failures`` consecutive failures (None: no limit),
    or ``give_up_after`` seconds without a frame (None: wait for ever), end the iteration
    with an ``EdgeshopError``.
    """

    def __init__(self, reader: Reader, description: str, backoff: float = 0.5, max_backoff: float = 10.0,
                 max_failures: int | None = None, give_up_after: float | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.reader = reader
        self.description = redact_url(description)
        self._scrub = lambda text: scrub(text, description)  # the raw URL stays in this closure only
        self.backoff, self.max_backoff, self.max_failures = backoff, max_backoff, max_failures
        self.give_up_after = give_up_after
        self.clock = clock
        self.reconnects = 0
        self.failed_reads = 0  # reads that returned no frame or raised
        self._condition = threading.Condition()
        self._latest: Frame | None = None
        self._delivered = -1
        self._stop = threading.Event()
        self._error: str | None = None
        self._problem = "no frame yet"  # the last failure, for the give-up message
        self._thread = threading.Thread(target=self._run, name=f"edgeshop-{self.description}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._capture_loop()
        except BaseException as exc:  # noqa: BLE001 - the consumer must hear that the thread ended
            self._fail(f"{self.description}: frame reader stopped ({type(exc).__name__}: {self._scrub(exc)})")
        finally:
            self._release()

    def _capture_loop(self) -> None:
        index, delay, failures, is_open = 0, self.backoff, 0, False
        while not self._stop.is_set():
            if not is_open:
                try:
                    self.reader.open()
                    is_open = True
                except Exception as exc:  # noqa: BLE001 - any device failure means: retry later
                    failures += 1
                    self._problem = self._scrub(exc)
                    if self.max_failures is not None and failures > self.max_failures:
                        self._fail(f"{self.description}: gave up after {failures - 1} failed attempts "
                                   f"({self._problem})")
                        return
                    log.warning("%s: %s; retrying in %.1f s", self.description, self._problem, delay)
                    self._stop.wait(delay)
                    delay = min(delay * 2, self.max_backoff)
                    continue
            try:
                image = self.reader.read()
                problem = "no frame"
            except Exception as exc:  # noqa: BLE001 - e.g. Picamera2's capture_array: a failed read
                image, problem = None, f"read failed ({type(exc).__name__}: {self._scrub(exc)})"
            if image is None:
                self._problem = problem
                self.failed_reads += 1
                log.warning("%s: %s; reconnecting in %.1f s", self.description, problem, delay)
                self._release()
                is_open = False
                self.reconnects += 1
                failures += 1
                if self.max_failures is not None and failures > self.max_failures:
                    self._fail(f"{self.description}: gave up after {failures - 1} failed reads ({problem})")
                    return
                self._stop.wait(delay)
                delay = min(delay * 2, self.max_backoff)
                continue
            delay, failures = self.backoff, 0
            with self._condition:
                self._latest = Frame(image, index, self.clock(), self.description)
                self._condition.notify_all()
            index += 1

    def _release(self) -> None:
        try:
            self.reader.release()
        except Exception as exc:  # noqa: BLE001 - a failing release must not end the reconnect loop
            log.warning("%s: release failed (%s)", self.description, self._scrub(exc))

    def _fail(self, message: str) -> None:
        with self._condition:
            self._error = message
            self._condition.notify_all()

    def read(self, timeout: float | None = None) -> Frame | None:
        """The newest frame not yet handed out (waiting for one), or None on timeout/stop.

        Raises ``EdgeshopError`` once the source has given up or its thread has ended,
        so no wait outlives the reader.
        """
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
        last_frame = time.monotonic()
        while not self._stop.is_set():
            # Short waits: stop() and the give-up time are noticed with no frame coming.
            waited = time.monotonic() - last_frame
            if self.give_up_after is not None and waited >= self.give_up_after:
                raise EdgeshopError(f"{self.description}: no frame for {self.give_up_after:g} s "
                                    f"(last problem: {self._problem}); giving up")
            limit = 1.0 if self.give_up_after is None else min(1.0, self.give_up_after - waited)
            frame = self.read(timeout=max(limit, 0.01))
            if frame is not None:
                yield frame
                last_frame = time.monotonic()

    def stop(self) -> None:
        self._stop.set()  # Event.set only: safe in a signal handler on the consuming thread

    def close(self) -> None:
        self._stop.set()
        with self._condition:
            self._condition.notify_all()
        self._thread.join(timeout=5)

