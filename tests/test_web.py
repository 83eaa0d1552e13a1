"""The phone-browser page (edgeshop/web, served by edgeshop-web) in headless Chromium.

MediaPipe Tasks Vision (WASM) runs the shipped models in the page; its top-1 must be
edgeshop.Classifier's on the demo photos and on a camera frame. Needs `make web`
(node_modules + Debian's chromium): skipped without them, failed under `make test`
(EDGESHOP_REQUIRE_CLIENTS=1).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from chromium import Chromium, find_chromium
from conftest import CLEAR_MARGIN, MAX_NEAR_TIES, REPO, require_client, served_base

from edgeshop import Classifier
from edgeshop.cli import web
from edgeshop.cli.demo import DEFAULT_DATA as DEMO_DATA

DEMO = DEMO_DATA / "test"
MODELS = REPO / "models" / "grocery"
WEB = REPO / "edgeshop" / "web"  # the page's files, package data
NODE_PACKAGE = REPO / "examples" / "web" / "node_modules" / "@mediapipe" / "tasks-vision" / "vision_bundle.mjs"
PAGE_TIMEOUT = 90  # seconds for a page to finish; a shared 2-core machine is slow


@pytest.fixture(scope="module")
def browser_setup(tmp_path_factory):
    """A server thread for (model path -> page) and one Chromium with a fake camera."""
    require_client(NODE_PACKAGE.is_file(), "@mediapipe/tasks-vision is not installed in examples/web: run `make web`")
    binary = find_chromium()
    require_client(binary is not None, "chromium is not installed: run `make web` (as root it apt-installs chromium)")
    tmp = tmp_path_factory.mktemp("web")
    camera_frame = write_camera_frame(tmp / "camera.y4m")
    servers: dict[Path, str] = {}

    def url_for(model: Path) -> str:
        if model not in servers:
            # edgeshop.test (below) is a name the server must be told to answer (DNS-rebinding guard).
            server = web.make_server(model, port=0, images=DEMO, quiet=True, allow_hosts=("edgeshop.test",))
            threading.Thread(target=server.serve_forever, daemon=True).start()
            started.append(server)
            servers[model] = f"http://127.0.0.1:{server.server_address[1]}/"
        return servers[model]

    started: list = []
    browser = Chromium(binary, tmp / "profile", extra_flags=(
        "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={camera_frame['path']}", "--autoplay-policy=no-user-gesture-required",
        # Only 127.0.0.1 resolves: the page must need nothing from the network (no CDN).
        # edgeshop.test is 127.0.0.1 under a name that is not localhost: a plain-http LAN address.
        "--host-resolver-rules=MAP edgeshop.test 127.0.0.1, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"))
    yield browser, url_for, camera_frame
    browser.close()
    for server in started:
        server.shutdown()
        server.server_close()


def wait_until_done(browser: Chromium) -> None:
    state = browser.wait_for("['done', 'error'].includes(document.body?.dataset.state) && document.body.dataset.state",
                             PAGE_TIMEOUT)
    status = browser.evaluate("document.getElementById('status').textContent")
    assert state == "done", f"page: {status}"


@pytest.mark.parametrize(("model_name", "per_class"), [("grocery_int8.tflite", None), ("grocery_fp16.tflite", 1),
                                                     ("grocery_int8_fast.tflite", 1)])
def test_page_top1_equals_edgeshop_on_demo_photos(browser_setup, model_name, per_class, tmp_path):
    browser, url_for, _ = browser_setup
    model = MODELS / model_name
    # Every demo photo for int8; one per class for float16 (4x slower in WASM, same code path).
    photos = [p for d in sorted(DEMO.iterdir()) for p in sorted(d.glob("*.jpg"))[:per_class]]
    query = ",".join(f"/images/{p.relative_to(DEMO).as_posix()}" for p in photos)
    browser.open(f"{url_for(model)}?images={query}")
    wait_until_done(browser)
    results = browser.evaluate("window.edgeshop.results")
    shot = browser.screenshot(tmp_path / f"page_{model.stem}.png")
    print(f"screenshot: {shot}")

    classifier = Classifier(model)
    assert len(results) == len(photos)
    near_ties = 0
    for photo, result in zip(photos, results, strict=True):
        expected = classifier.classify(cv2.imread(str(photo)), top_k=3)
        page = result["top"]
        assert result["image"] == photo.name
        assert len(page) == 3, page
        if min(expected[0].score - expected[1].score, page[0]["score"] - page[1]["score"]) < CLEAR_MARGIN:
            near_ties += 1  # MediaPipe's resize code, not OpenCV's, may swap a near tie
            continue
        assert page[0]["label"] == expected[0].label, f"{photo.name}: page {page}, edgeshop {expected}"
        # Same pixels, different resize code (MediaPipe's vs OpenCV's): scores agree closely, not exactly.
        assert abs(page[0]["score"] - expected[0].score) < 0.1, f"{photo.name}: page {page}, edgeshop {expected}"
    assert near_ties <= MAX_NEAR_TIES * len(photos), f"{near_ties} near ties of {len(photos)} photos"
    assert all(r["ms"] > 0 for r in results)
    assert "ms per classify" in browser.evaluate("document.getElementById('latency').textContent")


def test_a_chosen_wide_photo_is_classified_on_its_centre_square(browser_setup, tmp_path):
    """The file input, as a user picks a photo: a wide PNG (carrots | bananas | carrots)."""
    browser, url_for, frame = browser_setup
    model = MODELS / "grocery_int8.tflite"
    photo = tmp_path / "wide_shelf.png"
    cv2.imwrite(str(photo), frame["bgr"])
    browser.open(url_for(model))
    browser.wait_for("document.body?.dataset.state === 'ready'", PAGE_TIMEOUT)
    browser.choose_file("#file", photo)
    last = browser.wait_for("window.edgeshop.last", PAGE_TIMEOUT)
    expected = Classifier(model).classify(cv2.imread(str(photo)), top_k=3)
    assert last["image"] == photo.name
    assert last["top"][0]["label"] == expected[0].label == "Banana", f"page {last['top']}, edgeshop {expected}"
    assert abs(last["top"][0]["score"] - expected[0].score) < 0.1, f"page {last['top']}, edgeshop {expected}"


def test_camera_frames_are_classified_on_their_centre_square(browser_setup, tmp_path):
    """A wide fake-camera frame: bananas between two carrot photos. edgeshop sees the centre
    square (Banana, 0.73); the page must pass the same square to classifyForVideo: the whole
    frame stretched to 288x288 reads as Carrots (0.26, Banana not in the top 2)."""
    browser, url_for, frame = browser_setup
    model = MODELS / "grocery_int8.tflite"
    browser.open(f"{url_for(model)}?camera=1")
    camera = browser.wait_for("window.edgeshop && window.edgeshop.camera.frames >= 3 && window.edgeshop.camera",
                              PAGE_TIMEOUT)
    shot = browser.screenshot(tmp_path / "page_camera.png")
    print(f"screenshot: {shot}")
    expected = Classifier(model).classify(frame["bgr"], top_k=3)
    assert (camera["width"], camera["height"]) == frame["bgr"].shape[1::-1]
    assert camera["top"][0]["label"] == expected[0].label == "Banana", f"page {camera['top']}, edgeshop {expected}"
    assert "ms per classify" in browser.evaluate("document.getElementById('latency').textContent")


def test_over_plain_http_the_page_says_the_camera_needs_https(browser_setup):
    browser, url_for, _ = browser_setup
    url = url_for(MODELS / "grocery_int8.tflite").replace("127.0.0.1", "edgeshop.test")
    browser.open(f"{url}?camera=1")
    browser.wait_for("document.body?.dataset.state === 'error'", PAGE_TIMEOUT)
    assert "HTTPS" in browser.evaluate("document.getElementById('status').textContent")


def write_camera_frame(path: Path) -> dict:
    """A 576x192 Y4M clip (one frame, looped by Chromium): carrots | bananas | carrots.

    Returned ``bgr`` is the frame after the same I420 round trip the browser sees.
    """
    tiles = [cv2.imread(str(DEMO / name)) for name in
             ("Carrots/Carrots_001.jpg", "Banana/Banana_001.jpg", "Carrots/Carrots_001.jpg")]
    tiles = [cv2.resize(t, (192, 192), interpolation=cv2.INTER_AREA) for t in tiles]
    i420 = cv2.cvtColor(np.hstack(tiles), cv2.COLOR_BGR2YUV_I420)
    height, width = 192, 576
    path.write_bytes(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode() + b"FRAME\n" + i420.tobytes())
    return {"path": path, "bgr": cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420)}


# --- the serve command itself (no browser) ---


def test_missing_model_is_a_one_line_error(tmp_path, capsys):
    assert web.main([str(tmp_path / "nope.tflite"), "--port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nope.tflite" in err and "not found" in err, err


def test_missing_npm_package_says_make_web(tmp_path, capsys):
    for name in web.PAGE_FILES:
        (tmp_path / name).write_bytes((WEB / name).read_bytes())
    model = MODELS / "grocery_int8.tflite"
    assert web.main([str(model), "--port", "0", "--root", str(tmp_path), "--runtime", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "make web" in err and "npm install --prefix" in err, err


def test_without_any_runtime_the_error_names_every_place_looked_and_the_npm_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(web, "CHECKOUT_RUNTIME", tmp_path / "no-checkout")
    monkeypatch.setenv("EDGESHOP_CACHE", str(tmp_path / "cache"))
    assert web.main([str(MODELS / "grocery_int8.tflite"), "--port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(web.DEFAULT_ROOT) in err and str(tmp_path / "cache" / "web") in err, err
    assert f"npm install --prefix {tmp_path / 'cache' / 'web'} {web.MEDIAPIPE_NPM}" in err, err


def test_without_a_checkout_the_runtime_npm_installed_into_the_user_cache_is_served(tmp_path, monkeypatch):
    """An installed wheel: the page from the package, MediaPipe's JS from $EDGESHOP_CACHE/web."""
    require_client(NODE_PACKAGE.is_file(), "@mediapipe/tasks-vision is not installed in examples/web: run `make web`")
    monkeypatch.setattr(web, "CHECKOUT_RUNTIME", tmp_path / "no-checkout")
    monkeypatch.setenv("EDGESHOP_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache" / "web").mkdir(parents=True)
    # the same files `npm install --prefix ~/.cache/edgeshop/web` writes, without the network
    (tmp_path / "cache" / "web" / "node_modules").symlink_to(NODE_PACKAGE.parents[2])
    routes = web.build_routes(MODELS / "grocery_int8.tflite", web.DEFAULT_ROOT)
    assert routes["/mediapipe/vision_bundle.mjs"] == tmp_path / "cache" / "web" / web.MEDIAPIPE / "vision_bundle.mjs"
    assert routes["/"] == WEB / "index.html"


def test_the_npm_pin_of_the_error_message_is_package_jsons():
    package = json.loads((REPO / "examples" / "web" / "package.json").read_text())
    name, version = web.MEDIAPIPE_NPM.rsplit("@", 1)
    assert package["dependencies"] == {name: version}


def test_serve_command_without_tensorflow_serves_only_its_files():
    """The real command as a process, TensorFlow blocked: page, model, wasm; nothing else."""
    require_client(NODE_PACKAGE.is_file(), "@mediapipe/tasks-vision is not installed in examples/web: run `make web`")
    model = MODELS / "grocery_int8.tflite"
    script = ("import sys\n"
              "for name in ('tensorflow', 'tf_keras', 'keras'): sys.modules[name] = None\n"
              "from edgeshop.cli.web import main\n"
              f"sys.exit(main([{str(model)!r}, '--port', '0', '--quiet', '--images', {str(DEMO)!r}]))\n")
    process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        base = served_base(process)
        assert base.startswith("http://127.0.0.1:")

        def get(path: str) -> tuple[int, str, bytes]:
            try:
                with urllib.request.urlopen(base + path.lstrip("/"), timeout=10) as response:
                    return response.status, response.headers["Content-Type"], response.read()
            except urllib.error.HTTPError as exc:
                return exc.code, "", b""

        status, kind, body = get("/model.json")
        config = json.loads(body)
        assert config["input"] == {"width": 288, "height": 288, "resize": "center_crop", "crop_fraction": 1.0}
        assert get("/model.tflite")[2] == model.read_bytes()
        assert get("/mediapipe/wasm/vision_wasm_internal.wasm")[1] == "application/wasm"
        assert get("/mediapipe/vision_bundle.mjs")[1].startswith("text/javascript")
        assert get("/")[1].startswith("text/html")
        assert get("/images/Banana/Banana_001.jpg")[1] == "image/jpeg"
        for outside in ("/pyproject.toml", "/images/../../../pyproject.toml", "/images/%2e%2e/%2e%2e/README.md",
                        "/images/../../../tests/data/synthetic/disc/disc_000.png",  # a photo, but not in --images
                        "/node_modules/@mediapipe/tasks-vision/package.json"):
            assert get(outside)[0] == 404, outside
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_page_at_phone_width_shows_the_models_display_name(browser_setup, tmp_path):
    """What a store employee sees on a phone (390 CSS px wide): the name given with
    edgeshop-export --name (not a run folder's), "1 photo", the best match large with its
    score, and both buttons within the bottom of the screen, big enough for a thumb."""
    browser, url_for, _ = browser_setup
    model = tmp_path / "corner_shop.tflite"
    exported = subprocess.run([sys.executable, "-m", "edgeshop.cli.export", "--reexport",
                               str(MODELS / "grocery_int8.tflite"), "--out", str(model),
                               "--name", "Corner Shop Grocery"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert exported.returncode == 0, exported.stderr[-2000:]
    photo = DEMO / "Banana" / "Banana_001.jpg"
    browser.emulate_viewport(390, 844)
    try:
        browser.open(f"{url_for(model)}?images=/images/Banana/Banana_001.jpg")
        wait_until_done(browser)
        shot = browser.screenshot(tmp_path / "page_phone.png")
        print(f"screenshot: {shot}")
        page = browser.evaluate("""(() => {
            const box = (element) => element.getBoundingClientRect().toJSON();
            const style = (id) => getComputedStyle(document.getElementById(id));
            return {name: document.getElementById('name').textContent, title: document.title,
                    status: document.getElementById('status').textContent,
                    latency: document.getElementById('latency').textContent,
                    top1: document.getElementById('top1').textContent,
                    score: document.getElementById('top1-score').textContent,
                    top1Px: parseFloat(style('top1').fontSize),
                    bodyPx: parseFloat(getComputedStyle(document.body).fontSize),
                    width: innerWidth, height: innerHeight, scrollWidth: document.documentElement.scrollWidth,
                    file: box(document.querySelector('.controls label')),
                    camera: box(document.getElementById('camera'))};
        })()""")
    finally:
        browser.emulate_viewport(0, 0)
    expected = Classifier(model).classify(cv2.imread(str(photo)), top_k=1)[0]
    assert page["width"] == 390 and page["scrollWidth"] <= 390, page  # no sideways scrolling
    assert page["name"] == page["title"] == "Corner Shop Grocery", page
    assert "Classified 1 photo with Corner Shop Grocery" in page["status"] and "1 photos" not in page["status"]
    assert "median of 1 photo)" in page["latency"], page["latency"]
    assert page["top1"] == expected.label == "Banana", page
    assert page["score"].endswith("%") and abs(int(page["score"][:-1]) - expected.score * 100) <= 10, page
    assert page["top1Px"] >= 2 * page["bodyPx"], page  # the answer is the largest text on the page
    for button in (page["file"], page["camera"]):  # in the thumb's reach: the bottom fifth, >= 48 px tall
        assert button["top"] >= 0.8 * page["height"] and button["bottom"] <= page["height"], page
        assert button["height"] >= 48, page
