"""edgeshop-web as a server (issue 34 item 7): a real server on 127.0.0.1, spoken to with raw
sockets and http.client. No browser: the page's own files are stand-ins written here
(the server only serves them); the model is a real one.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import DATA, REPO

from edgeshop.cli import web

TINY = DATA / "tiny_int8.tflite"
GROCERY = REPO / "models" / "grocery" / "grocery_int8.tflite"


@pytest.fixture
def page_root(tmp_path) -> Path:
    """A --root with the files edgeshop-web requires (stand-ins for `make web`'s npm install)."""
    root = tmp_path / "page"
    wasm = root / "node_modules" / "@mediapipe" / "tasks-vision" / "wasm"
    wasm.mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>t</title>")
    (root / "app.js").write_text("// app")
    (wasm.parent / "vision_bundle.mjs").write_text("export {};")
    (wasm / "vision_wasm_internal.wasm").write_bytes(b"\0asm")
    return root


@pytest.fixture
def photos(tmp_path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"\xff\xd8 not really a photo")
    return folder


@contextmanager
def running(model: Path, root: Path, images: Path | None = None,
            **options) -> Iterator[tuple[web.ThreadingHTTPServer, int]]:
    server = web.make_server(model, port=0, root=root, images=images, quiet=True, **options)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def raw(port: int, request: bytes, timeout: float = 5) -> bytes:
    """Send ``request`` on a fresh connection; everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0


def get(port: int, path: str, host: str | None = None, method: str = "GET") -> tuple[int, bytes, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {} if host is None else {"Host": host}
    connection.request(method, path, headers=headers)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, body, dict(response.getheaders())


def test_only_loopback_and_configured_host_names_are_answered(page_root, photos):
    # DNS rebinding: a page on attacker.example whose name now resolves to 127.0.0.1 sends its own Host.
    with running(TINY, page_root, photos, allow_hosts=("shop-pi.local",)) as (_, port):
        for path in ("/model.tflite", "/model.json", "/images/a.jpg", "/"):
            assert get(port, path, host="attacker.example")[0] == 421, path
            assert get(port, path, host=f"attacker.example:{port}")[0] == 421, path
        for host in ("127.0.0.1", f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST.", f"[::1]:{port}",
                     f"shop-pi.local:{port}"):
            assert get(port, "/images/a.jpg", host=host)[0] == 200, host
        assert get(port, "/model.tflite")[1] == TINY.read_bytes()  # http.client sends 127.0.0.1:port
        # No Host at all (HTTP/1.0): refused too.
        assert status_of(raw(port, b"GET /model.tflite HTTP/1.0\r\n\r\n")) == 421


def test_a_nul_byte_in_the_url_gets_a_400_answer(page_root, photos):
    with running(TINY, page_root, photos) as (_, port):
        for path in (b"/images/a%00.jpg", b"/%00", b"/images/%00/../a.jpg"):
            answer = raw(port, b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            assert status_of(answer) == 400, (path, answer[:80])
        assert get(port, "/images/a.jpg")[0] == 200  # the server still answers


def test_a_fifo_named_like_a_photo_is_never_opened(page_root, photos):
    os.mkfifo(photos / "shelf.jpg")
    with running(TINY, page_root, photos) as (_, port):
        for method in ("GET", "HEAD"):
            started = time.monotonic()
            assert get(port, "/images/shelf.jpg", method=method)[0] == 404
            assert time.monotonic() - started < 3, method
    assert threading.active_count() < 10


def _server_process(model: Path, root: Path, images: Path) -> tuple[subprocess.Popen, int]:
    process = subprocess.Popen([sys.executable, "-m", "edgeshop.cli.web", str(model), "--port", "0",
                                "--quiet", "--root", str(root), "--images", str(images)], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    assert "serving" in line, line + process.stderr.read()
    return process, int(line.split(" at ")[1].split()[0].rstrip("/").rsplit(":", 1)[1])


def _peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024


def test_head_reads_nothing_and_get_streams_a_big_photo(page_root, photos):
    big = photos / "big.jpg"
    with open(big, "wb") as file:  # 400 MB, sparse: costs no disk
        file.truncate(400 * 2**20)
    process, port = _server_process(TINY, page_root, photos)
    try:
        before = _peak_rss_mb(process.pid)
        for _ in range(4):
            status, body, headers = get(port, "/images/big.jpg", method="HEAD")
            assert (status, body, headers["Content-Length"]) == (200, b"", str(400 * 2**20))
        assert _peak_rss_mb(process.pid) - before < 20, "HEAD read the file"
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/images/big.jpg")
        response = connection.getresponse()
        received = 0
        while chunk := response.read(1 << 20):
            received += len(chunk)
        connection.close()
        assert received == 400 * 2**20
        assert _peak_rss_mb(process.pid) - before < 50, "GET held the file in memory"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_idle_connections_time_out_and_threads_are_bounded(page_root, photos):
    with running(TINY, page_root, photos, timeout=1.0, max_connections=4) as (_, port):
        threads_before = threading.active_count()
        idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(4)]
        time.sleep(0.3)
        # The 5th..50th connection: answered 503 at once, no thread each.
        extra = [raw(port, b"", timeout=5) for _ in range(46)]
        assert all(status_of(answer) == 503 for answer in extra), extra[0][:80]
        assert threading.active_count() <= threads_before + 4
        # The idle ones are closed by the server after the timeout, and their threads end.
        for sock in idle:
            assert sock.recv(100) == b""
            sock.close()
        time.sleep(0.3)
        assert threading.active_count() <= threads_before
        assert get(port, "/images/a.jpg")[0] == 200


def test_model_settings_follow_the_model_file(page_root, tmp_path):
    model = tmp_path / "shop.tflite"
    shutil.copyfile(TINY, model)
    with running(model, page_root) as (_, port):
        first = json.loads(get(port, "/model.json")[1])
        assert get(port, first["model"])[1] == TINY.read_bytes()
        replacement = tmp_path / "new.tflite"
        shutil.copyfile(GROCERY, replacement)
        os.replace(replacement, model)
        second = json.loads(get(port, "/model.json")[1])
        assert second["labels"] == 81 != first["labels"]
        assert second["model"] != first["model"]
        assert get(port, second["model"])[1] == GROCERY.read_bytes()
        assert get(port, "/model.tflite")[1] == GROCERY.read_bytes()
        # A page that read the settings just before the swap still gets the model they describe.
        assert get(port, first["model"])[1] == TINY.read_bytes()


def test_a_model_file_that_disappears_still_answers_every_request(page_root, tmp_path):
    """While the model file is missing (replaced by a copy tool, half-written), a page that read
    the settings still gets the model they describe; the current model is a 404, never a
    dropped connection."""
    model = tmp_path / "shop.tflite"
    shutil.copyfile(TINY, model)
    with running(model, page_root) as (_, port):
        settings = json.loads(get(port, "/model.json")[1])
        model.unlink()
        assert get(port, settings["model"])[:2] == (200, TINY.read_bytes())
        assert status_of(raw(port, b"GET /model.tflite HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")) == 404
