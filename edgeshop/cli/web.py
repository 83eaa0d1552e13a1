"""edgeshop-web: serve the phone-browser page (edgeshop/web) with a model, on 127.0.0.1.

The page runs the model in the browser with MediaPipe Tasks Vision (WASM). Everything it
needs comes from this server: the page (package data), the model, MediaPipe's JS bundle and
wasm files (npm's node_modules: `make web` in a checkout, else `npm install` into the user
cache, see runtime_hint()), so nothing is fetched from the network at run time.
Runtime only (standard library + edgeshop's model card reader): never TensorFlow.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import stat
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO
from urllib.parse import parse_qsl, unquote, urlsplit

from edgeshop._io import open_regular
from edgeshop.cli._common import add_model, parse, run_command
from edgeshop.errors import EdgeshopError
from edgeshop.utils import cache_dir

DEFAULT_ROOT = Path(__file__).resolve().parents[1] / "web"
# Where npm installs MediaPipe's JS: a checkout's examples/web (`make web`), else the user cache.
CHECKOUT_RUNTIME = Path(__file__).resolve().parents[2] / "examples" / "web"
MEDIAPIPE = Path("node_modules") / "@mediapipe" / "tasks-vision"
MEDIAPIPE_NPM = "@mediapipe/tasks-vision@1.1.0"  # examples/web/package.json's pin

PAGE_FILES = ("index.html", "app.js")
SOCKET_TIMEOUT = 20.0  # seconds an idle or slow connection may hold a thread
MAX_CONNECTIONS = 32  # handler threads at once; more connections get 503
CHUNK = 1 << 16
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",  # module scripts are refused without a JS type
    ".wasm": "application/wasm",  # WebAssembly.instantiateStreaming needs exactly this
    ".json": "application/json",
    ".map": "application/json",
    ".tflite": "application/octet-stream",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
}


def runtime_candidates(root: Path) -> list[Path]:
    """Folders that may hold node_modules/@mediapipe/tasks-vision, first found wins."""
    return [root, CHECKOUT_RUNTIME, cache_dir() / "web"]


def runtime_hint() -> str:
    return (f"run `make web` in a checkout, or `npm install --prefix {cache_dir() / 'web'} {MEDIAPIPE_NPM}`, "
            "or pass --runtime DIR (the folder npm installed into)")


def page_config(model: Path, content: bytes | None = None) -> dict:
    """What the page needs to know about the model: its name, labels count and which region it sees.

    edgeshop centre-crops a frame to the input's aspect ratio (times crop_fraction); MediaPipe
    stretches whatever it is given, so the page passes that crop as regionOfInterest.
    ``content``: the model's bytes (read from ``model`` when not given).
    """
    from edgeshop.runtime.classifier import _read_model_file
    from edgeshop.tflite.modelcard import display_name, read_card

    card = read_card(content if content is not None else _read_model_file(model), source=str(model))
    config: dict = {"model": "/model.tflite", "file": model.name, "name": display_name(card)}
    if card is None:  # not an edgeshop model: MediaPipe's default (the whole frame)
        config.update(input={"resize": "stretch"})
    else:
        spec = card.input
        config.update(quantization=card.quantization, labels=len(card.labels),
                      input={"width": spec.width, "height": spec.height, "resize": spec.resize,
                             "crop_fraction": spec.crop_fraction})
    return config


def _installed(folder: Path) -> bool:
    return (folder / MEDIAPIPE / "vision_bundle.mjs").is_file() and (folder / MEDIAPIPE / "wasm").is_dir()


class ModelSnapshot:
    """The model's bytes and the page settings computed from those same bytes.

    Re-read whenever the file changes (size, mtime, inode), so /model.json never describes
    another model than /model.tflite serves. The settings name their model as
    /model.tflite?v=<hash>, and the bytes of the last few versions stay servable, so a page
    that read the settings just before the file was replaced still gets the matching model.
    """

    KEEP = 2

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, ...] | None = None
        self._versions: dict[str, bytes] = {}
        self._settings = b""
        self.settings()  # a bad model fails at start, not in the browser

    def _refresh(self) -> None:
        from edgeshop.runtime.classifier import _read_model_file

        try:
            info = self.path.stat()
        except OSError as exc:
            _read_model_file(self.path)  # its one-line error ("model file not found", ...)
            raise EdgeshopError(f"{self.path}: cannot read the model ({exc.strerror or exc})") from None
        stamp = (info.st_size, info.st_mtime_ns, info.st_ino, info.st_ctime_ns)
        if stamp == self._stamp:
            return
        content = _read_model_file(self.path)
        version = hashlib.sha256(content).hexdigest()[:16]
        config = page_config(self.path, content)
        config["model"] = f"/model.tflite?v={version}"
        self._versions.pop(version, None)  # newest last: the oldest is dropped first
        self._versions[version] = content
        while len(self._versions) > self.KEEP:
            del self._versions[next(iter(self._versions))]
        self._settings, self._current, self._stamp = json.dumps(config).encode(), version, stamp

    def settings(self) -> bytes:
        with self._lock:
            self._refresh()
            return self._settings

    def model(self, version: str | None) -> bytes | None:
        """The current model's bytes, or those of ``version`` if it is still kept (also while the
        file is missing or being rewritten); None when there is nothing to serve."""
        with self._lock:
            try:
                self._refresh()
            except EdgeshopError as exc:
                print(f"edgeshop-web: {exc}", file=sys.stderr, flush=True)
                return self._versions.get(version) if version else None
            return self._versions.get(version or self._current)


def build_routes(model: Path, root: Path, runtime: Path | None = None) -> dict[str, Path]:
    """URL path -> file for the page's static files; nothing else is served from disk but --images."""
    for name in PAGE_FILES:
        if not (root / name).is_file():
            raise EdgeshopError(f"{root / name}: page file not found; reinstall edgeshop or pass --root")
    if runtime is not None:
        if not _installed(runtime):
            raise EdgeshopError(f"{runtime / MEDIAPIPE}: MediaPipe Tasks Vision is not installed; {runtime_hint()}")
    else:
        runtime = next((c for c in runtime_candidates(root) if _installed(c)), None)
        if runtime is None:
            raise EdgeshopError(f"MediaPipe Tasks Vision is not installed (looked in "
                                f"{', '.join(str(c) for c in runtime_candidates(root))}); {runtime_hint()}")
    mediapipe = runtime / MEDIAPIPE
    routes: dict[str, Path] = {"/": root / "index.html"}
    routes.update({f"/{name}": root / name for name in PAGE_FILES})
    routes["/mediapipe/vision_bundle.mjs"] = mediapipe / "vision_bundle.mjs"
    routes.update({f"/mediapipe/wasm/{f.name}": f for f in (mediapipe / "wasm").iterdir() if f.is_file()})
    return routes


def allowed_hosts(host: str, extra: tuple[str, ...] = ()) -> frozenset[str]:
    """Host header names the server answers: loopback, the bound address (unless a wildcard), ``extra``.

    Anything else is refused, so a web page that points its own domain at 127.0.0.1 (DNS
    rebinding) cannot read the model or the photos.
    """
    names = {"127.0.0.1", "localhost", "::1", *(_host_name(name) for name in extra)}
    if host not in ("0.0.0.0", "::", ""):
        names.add(_host_name(host))
    return frozenset(names)


def _host_name(header: str) -> str:
    """``Host`` header -> the bare, lower-case name: port, IPv6 brackets and a trailing dot removed."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    if header.count(":") == 1:
        header = header.split(":", 1)[0]
    return header.rstrip(".")


def _open_regular(path: Path) -> tuple[BinaryIO, int] | None:
    """An open regular file and its size, or None (unreadable, or a FIFO or device under --images)."""
    try:
        return open_regular(path)
    except (OSError, ValueError):
        return None


class _BoundedServer(ThreadingHTTPServer):
    """At most ``max_connections`` handler threads; beyond that, an immediate 503."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type, max_connections: int) -> None:
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:  # noqa: ANN001 (socketserver's signature)
        if not self._slots.acquire(blocking=False):
            try:
                request.settimeout(1)
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                b"Connection: close\r\nRetry-After: 1\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:  # noqa: ANN001
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def make_server(model: str | Path, host: str = "127.0.0.1", port: int = 8000, root: str | Path | None = None,
                images: str | Path | None = None, quiet: bool = False, allow_hosts: tuple[str, ...] = (),
                timeout: float = SOCKET_TIMEOUT, max_connections: int = MAX_CONNECTIONS,
                runtime: str | Path | None = None) -> ThreadingHTTPServer:
    """A ready-to-run server (call ``serve_forever``); port 0 picks a free port.

    Answers only requests whose Host is loopback, ``host`` or one of ``allow_hosts`` (421
    otherwise); an idle connection is closed after ``timeout`` seconds; at most
    ``max_connections`` are served at once (503 beyond). ``runtime``: the folder npm installed
    MediaPipe Tasks Vision into (default: see ``runtime_candidates``).
    """
    model = Path(model)
    snapshot = ModelSnapshot(model)  # the user's file first: a bad model fails here, not in the browser
    routes = build_routes(model, Path(root) if root else DEFAULT_ROOT, Path(runtime) if runtime else None)
    image_root = Path(images).resolve() if images else None
    if image_root is not None and not image_root.is_dir():
        raise EdgeshopError(f"{images}: --images must be a folder of photos")
    hosts = allowed_hosts(host, allow_hosts)

    class Handler(BaseHTTPRequestHandler):
        def setup(self) -> None:
            self.timeout = timeout  # StreamRequestHandler applies it to the socket
            super().setup()

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self._answer(head_only=False)

        def do_HEAD(self) -> None:  # noqa: N802
            self._answer(head_only=True)

        def _answer(self, head_only: bool) -> None:
            if _host_name(self.headers.get("Host", "")) not in hosts:
                self.send_error(HTTPStatus.MISDIRECTED_REQUEST, "unknown Host; edgeshop-web answers only "
                                "127.0.0.1, localhost, [::1], its --host and --allow-host names")
                return
            url = urlsplit(self.path)
            path = unquote(url.path)
            if any(ord(c) < 32 or c == "\x7f" for c in path):  # NUL and other controls: never a file name
                self.send_error(HTTPStatus.BAD_REQUEST, "control character in the URL")
                return
            if path == "/model.json":
                self._send_bytes(_settings_or_error(snapshot), ".json", head_only)
            elif path == "/model.tflite":
                version = dict(parse_qsl(url.query)).get("v")
                self._send_bytes(snapshot.model(version), ".tflite", head_only)
            else:
                self._send_file(self._file_for(path), head_only)

        def _file_for(self, path: str) -> Path | None:
            if path in routes:
                return routes[path]
            if image_root is None or not path.startswith("/images/"):
                return None
            candidate = (image_root / path[len("/images/"):]).resolve()
            # Only photos inside the folder: no ../ escapes, no other file types.
            if candidate.is_relative_to(image_root) and candidate.suffix.lower() in IMAGE_SUFFIXES:
                return candidate
            return None

        def _headers(self, suffix: str, length: int) -> None:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", CONTENT_TYPES.get(suffix, "application/octet-stream"))
            self.send_header("Content-Length", str(length))
            self.send_header("Cache-Control", "no-store")  # a new --model must not meet a cached one
            self.end_headers()

        def _send_bytes(self, body: bytes | None, suffix: str, head_only: bool) -> None:
            if body is None:
                self.send_error(HTTPStatus.NOT_FOUND)
                return
            self._headers(suffix, len(body))
            if not head_only:
                self.wfile.write(body)

        def _send_file(self, target: Path | None, head_only: bool) -> None:
            if target is None:
                self.send_error(HTTPStatus.NOT_FOUND)
                return
            suffix = target.suffix.lower() or ".html"
            if head_only:  # the size from stat: the file is not opened, let alone read
                try:
                    info = os.stat(target)
                except (OSError, ValueError):
                    info = None
                if info is None or not stat.S_ISREG(info.st_mode):
                    self.send_error(HTTPStatus.NOT_FOUND)
                    return
                self._headers(suffix, info.st_size)
                return
            opened = _open_regular(target)
            if opened is None:
                self.send_error(HTTPStatus.NOT_FOUND)
                return
            file, size = opened
            with file:
                self._headers(suffix, size)
                left = size
                while left > 0:  # streamed: a 400 MB photo is never held in memory
                    chunk = file.read(min(CHUNK, left))
                    if not chunk:  # the file shrank: the promised length cannot be kept
                        self.close_connection = True
                        return
                    self.wfile.write(chunk)
                    left -= len(chunk)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            if not quiet:
                super().log_message(format, *args)

    try:
        return _BoundedServer((host, port), Handler, max_connections)
    except OSError as exc:
        raise EdgeshopError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port") from None


def _settings_or_error(snapshot: ModelSnapshot) -> bytes:
    """The page settings; if the model file became unusable, a JSON error the page shows."""
    try:
        return snapshot.settings()
    except EdgeshopError as exc:
        return json.dumps({"error": str(exc)}).encode()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgeshop-web", description=__doc__.splitlines()[0])
    add_model(p, ".tflite model written by edgeshop-export")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000; 0 picks a free one)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; phones reach it through adb reverse or an HTTPS proxy)")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="also answer requests for this host name or address (e.g. the LAN address a phone uses "
                        "with --host 0.0.0.0); loopback and --host are always answered, any other Host gets 421")
    p.add_argument("--images", help="also serve this folder of photos under /images/ (for ?images=... on the page)")
    p.add_argument("--root", help="the page's folder (default: the installed package's edgeshop/web)")
    p.add_argument("--runtime", metavar="DIR",
                   help="the folder npm installed @mediapipe/tasks-vision into (holding node_modules); default: "
                        "--root, a checkout's examples/web (make web), else $EDGESHOP_CACHE/web "
                        "(~/.cache/edgeshop/web)")
    p.add_argument("--quiet", action="store_true", help="do not log requests")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parse(build_parser(), argv)

    def body() -> int:
        server = make_server(args.model, args.host, args.port, args.root, args.images, args.quiet,
                             allow_hosts=tuple(args.allow_host), runtime=args.runtime)
        host, port = server.server_address[:2]
        print(f"edgeshop-web: serving {args.model} at http://{host}:{port}/ (Ctrl+C to stop)", flush=True)
        if host not in ("127.0.0.1", "localhost", "::1"):
            print("edgeshop-web: note: browsers open the camera only over HTTPS or on localhost; requests are "
                  "answered only for loopback names, --host and --allow-host NAME (the name or address phones "
                  "use)", flush=True)
        with server:
            server.serve_forever()
        return 0

    return run_command("edgeshop-web", body)


if __name__ == "__main__":
    sys.exit(main())
