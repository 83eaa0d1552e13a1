"""edgeshop-web: serve the phone-browser page (examples/web) with a model, on 127.0.0.1.

The page runs the model in the browser with MediaPipe Tasks Vision (WASM). Everything it
needs comes from this server: the page, the model, MediaPipe's JS bundle and wasm files
(installed by `make web`), so nothing is fetched from the network at run time.
Runtime only (standard library + edgeshop's model card reader): never TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from edgeshop.cli._common import parse, run_command
from edgeshop.errors import EdgeshopError

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "examples" / "web"
MEDIAPIPE = Path("node_modules") / "@mediapipe" / "tasks-vision"
PAGE_FILES = ("index.html", "app.js")
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


def page_config(model: Path) -> dict:
    """What the page needs to know about the model: where it is and which region it sees.

    edgeshop centre-crops a frame to the input's aspect ratio (times crop_fraction); MediaPipe
    stretches whatever it is given, so the page passes that crop as regionOfInterest.
    """
    from edgeshop.runtime.classifier import _read_model_file
    from edgeshop.runtime.modelcard import read_card

    card = read_card(_read_model_file(model), source=str(model))
    config: dict = {"model": "/model.tflite", "file": model.name}
    if card is None:  # not an edgeshop model: MediaPipe's default (the whole frame)
        config.update(name=model.stem, input={"resize": "stretch"})
    else:
        spec = card.input
        config.update(name=card.name, quantization=card.quantization, labels=len(card.labels),
                      input={"width": spec.width, "height": spec.height, "resize": spec.resize,
                             "crop_fraction": spec.crop_fraction})
    return config


def build_routes(model: Path, root: Path) -> dict[str, Path | bytes]:
    """URL path -> file (or bytes) for everything the page loads; nothing else is served."""
    config = page_config(model)  # the user's file first: a bad model fails here, not in the browser
    for name in PAGE_FILES:
        if not (root / name).is_file():
            raise EdgeshopError(f"{root / name}: page file not found; run from an edgeshop checkout or pass --root")
    mediapipe = root / MEDIAPIPE
    if not (mediapipe / "vision_bundle.mjs").is_file() or not (mediapipe / "wasm").is_dir():
        raise EdgeshopError(f"{mediapipe}: MediaPipe Tasks Vision is not installed; run `make web`")
    routes: dict[str, Path | bytes] = {"/": root / "index.html"}
    routes.update({f"/{name}": root / name for name in PAGE_FILES})
    routes["/mediapipe/vision_bundle.mjs"] = mediapipe / "vision_bundle.mjs"
    routes.update({f"/mediapipe/wasm/{f.name}": f for f in (mediapipe / "wasm").iterdir() if f.is_file()})
    routes["/model.tflite"] = model
    routes["/model.json"] = json.dumps(config).encode()
    return routes


def make_server(model: str | Path, host: str = "127.0.0.1", port: int = 8000, root: str | Path | None = None,
                images: str | Path | None = None, quiet: bool = False) -> ThreadingHTTPServer:
    """A ready-to-run server (call ``serve_forever``); port 0 picks a free port."""
    model = Path(model)
    routes = build_routes(model, Path(root) if root else DEFAULT_ROOT)
    image_root = Path(images).resolve() if images else None
    if image_root is not None and not image_root.is_dir():
        raise EdgeshopError(f"{images}: --images must be a folder of photos")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self._send(head_only=False)

        def do_HEAD(self) -> None:  # noqa: N802
            self._send(head_only=True)

        def _send(self, head_only: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            target = routes.get(path)
            if target is None and image_root is not None and path.startswith("/images/"):
                candidate = (image_root / path[len("/images/"):]).resolve()
                # Only photos inside the folder: no ../ escapes, no other file types.
                if candidate.is_relative_to(image_root) and candidate.suffix.lower() in IMAGE_SUFFIXES:
                    target = candidate
            try:
                body = target if isinstance(target, bytes) else target.read_bytes() if target else None
            except OSError:
                body = None
            if body is None:
                self.send_error(HTTPStatus.NOT_FOUND)
                return
            suffix = ".json" if isinstance(target, bytes) else (target.suffix.lower() or ".html")
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", CONTENT_TYPES.get(suffix, "application/octet-stream"))
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")  # a new --model must not meet a cached one
            self.end_headers()
            if not head_only:
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            if not quiet:
                super().log_message(format, *args)

    try:
        return ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:
        raise EdgeshopError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgeshop-web", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help=".tflite model written by edgeshop-export")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; phones reach it through adb reverse or an HTTPS proxy)")
    p.add_argument("--images", help="also serve this folder of photos under /images/ (for ?images=... on the page)")
    p.add_argument("--root", help=f"the page's folder (default {DEFAULT_ROOT})")
    p.add_argument("--quiet", action="store_true", help="do not log requests")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parse(build_parser(), argv)

    def body() -> int:
        server = make_server(args.model, args.host, args.port, args.root, args.images, args.quiet)
        host, port = server.server_address[:2]
        print(f"edgeshop-web: serving {args.model} at http://{host}:{port}/ (Ctrl+C to stop)", flush=True)
        if host not in ("127.0.0.1", "localhost", "::1"):
            print("edgeshop-web: note: browsers open the camera only over HTTPS or on localhost", flush=True)
        with server:
            server.serve_forever()
        return 0

    return run_command("edgeshop-web", body)


if __name__ == "__main__":
    sys.exit(main())
