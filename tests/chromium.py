"""Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe).

Standard library only: Chromium reads JSON commands from fd 3 and writes replies and events
to fd 4, each message ending in a NUL byte. Enough for the page tests: open a URL, evaluate
JavaScript, take a screenshot.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

FLAGS = ("--headless", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--mute-audio", "--window-size=900,1100")


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


class Chromium:
    """One browser with one page. ``extra_flags`` e.g. a fake camera."""

    def __init__(self, binary: str, user_data_dir: Path, extra_flags: tuple[str, ...] = ()) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # Chromium expects the protocol on fds 3 (in) and 4 (out). Lift our ends above 9 so
        # bash's "3<&R 4>&W" cannot clobber one with the other, then exec Chromium.
        child_in = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD_CLOEXEC, 10)
        child_out = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD_CLOEXEC, 10)
        for fd in (to_chrome_r, from_chrome_w):
            os.close(fd)
        flags = [*FLAGS, "--remote-debugging-pipe", f"--user-data-dir={user_data_dir}", *extra_flags]
        if os.geteuid() == 0:
            flags.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
        self.log = Path(user_data_dir).with_suffix(".log")
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                ["bash", "-c", f'exec "$@" 3<&{child_in} 4>&{child_out} {child_in}<&- {child_out}>&-', "bash",
                 binary, *flags, "about:blank"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=(child_in, child_out))
        os.close(child_in)
        os.close(child_out)
        self._buffer = b""
        self._next_id = 0
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30) -> dict:
        """Send one command and wait for its reply (events in between are dropped)."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline, method)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def _read(self, deadline: float, method: str) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_chrome], [], [], left)[0]:
                raise TimeoutError(f"Chromium did not answer {method}")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError(f"Chromium exited; its log: {self.log.read_text(errors='replace')[-2000:]}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def open(self, url: str) -> None:
        self.send("Page.navigate", {"url": url}, self.session)

    def evaluate(self, expression: str) -> object:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True}, self.session)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def choose_file(self, selector: str, path: Path) -> None:
        """What a user's pick in an <input type=file> does (fires its change event)."""
        node = self.send("Runtime.evaluate", {"expression": f"document.querySelector({json.dumps(selector)})"},
                         self.session)["result"]
        self.send("DOM.setFileInputFiles", {"files": [str(path)], "objectId": node["objectId"]}, self.session)

    def wait_for(self, expression: str, timeout: float) -> object:
        """Poll ``expression`` until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        last_error = None
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
            except RuntimeError as exc:  # e.g. the page is still navigating: its context is gone
                last_error, value = exc, None
            if value:
                return value
            time.sleep(0.2)
        raise TimeoutError(f"page: {expression} still false after {timeout} s (last error: {last_error})")

    def emulate_viewport(self, width: int, height: int, mobile: bool = True) -> None:
        """Lay the page out as a phone of width x height CSS pixels does; width 0 restores the window."""
        if width == 0:
            self.send("Emulation.clearDeviceMetricsOverride", {}, self.session)
            return
        self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 2,
                                                         "mobile": mobile}, self.session)

    def screenshot(self, path: Path) -> Path:
        data = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, self.session)
        path.write_bytes(base64.b64decode(data["data"]))
        return path

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):  # it may be gone already
            self.send("Browser.close", timeout=5)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)
