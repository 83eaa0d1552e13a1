"""The built wheel works on its own: installed into a fresh venv outside the checkout, with the
pretrained weights served by a local HTTP server (the release's stand-in), it classifies a
photo, serves the browser page and a model, trains Lite0 from ImageNet weights for an epoch,
exports int8 without MediaPipe, and finds the demo photos in the package.

The venv sees this environment's site-packages through a .pth file (so TensorFlow is not
installed again) but the wheel's edgeshop comes first: every step asserts that it runs.
No network: the build and the install use --no-index, and the weights come from 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import urllib.request
from pathlib import Path

import pytest
from conftest import REPO, require_client, served_base
from file_server import serve_folder
from synthetic import make_dataset

pytestmark = pytest.mark.wheel

SHIPPED = REPO / "models" / "grocery" / "grocery_int8.tflite"
NODE_RUNTIME = REPO / "examples" / "web"  # make web's npm ci
LITE0 = "efficientnet_lite0_imagenet.npz"
STEP_TIMEOUT = 600  # seconds for one command on a busy 2-core machine


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """Build the wheel from the package's files, install it into a new venv; its bin/, env, paths."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"  # a clean copy: a stale build/ in the checkout cannot leak into the wheel
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "edgeshop", source / "edgeshop", ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index",
                    "--no-build-isolation", str(source), "-w", str(dist)], check=True, timeout=STEP_TIMEOUT)
    wheel = next(dist.glob("edgeshop-*.whl"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=STEP_TIMEOUT)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
                   check=True, timeout=STEP_TIMEOUT)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # Dependencies from this environment, after the venv's own site-packages (its .pth files are not run,
    # so an editable edgeshop there stays invisible).
    paths = sysconfig.get_paths()
    dependencies = dict.fromkeys((paths["purelib"], paths["platlib"]))
    (site / "zz_dependencies.pth").write_text("".join(f"{path}\n" for path in dependencies))
    work = tmp / "work"  # the current directory: outside the checkout
    work.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "EDGESHOP_WEIGHTS_DIR", "EDGESHOP_WEIGHTS_URL", "EDGESHOP_CACHE")}
    env.update(HOME=str(tmp / "home"), EDGESHOP_CACHE=str(tmp / "cache"), TF_CPP_MIN_LOG_LEVEL="2",
               PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    return {"bin": venv / "bin", "site": site, "env": env, "work": work, "tmp": tmp}


def run(installed: dict, *command: str, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(installed["bin"] / command[0]), *command[1:]], cwd=installed["work"],
                            env=kwargs.pop("env", installed["env"]), capture_output=True, text=True,
                            timeout=STEP_TIMEOUT, **kwargs)
    assert result.returncode == 0, f"{command}: {result.stdout[-2000:]}{result.stderr[-3000:]}"
    return result


def test_the_wheels_own_code_and_data_are_what_runs(installed):
    where = run(installed, "python", "-c", "import edgeshop, edgeshop.cli.web as w; "
                "print(edgeshop.__file__); print(w.DEFAULT_ROOT)").stdout.split()
    assert all(Path(p).is_relative_to(installed["site"]) for p in where), where
    web_root = Path(where[1])
    assert (web_root / "index.html").read_bytes() == (REPO / "edgeshop" / "web" / "index.html").read_bytes()
    data = Path(run(installed, "edgeshop-demo", "--show-data").stdout.strip())
    assert data.is_relative_to(installed["site"])
    for split, images in (("train", 240), ("test", 52)):  # the demo's 10 classes, every photo
        assert len(list((data / split).iterdir())) == 10
        assert len(list((data / split).glob("*/*.jpg"))) == images
    assert (data / "LICENSE").is_file()


def test_classify_a_demo_photo_from_the_installed_package(installed):
    data = Path(run(installed, "edgeshop-demo", "--show-data").stdout.strip())
    out = run(installed, "edgeshop-classify", str(SHIPPED), str(data / "test" / "Banana" / "Banana_001.jpg"))
    assert json.loads(out.stdout.splitlines()[0])["predictions"][0]["label"] == "Banana"


def test_edgeshop_web_serves_the_page_and_the_model(installed):
    runtime = NODE_RUNTIME / "node_modules" / "@mediapipe" / "tasks-vision" / "vision_bundle.mjs"
    require_client(runtime.is_file(), "@mediapipe/tasks-vision is not installed in examples/web: run `make web`")
    process = subprocess.Popen([str(installed["bin"] / "edgeshop-web"), str(SHIPPED), "--port", "0",
                                "--quiet", "--runtime", str(NODE_RUNTIME)], cwd=installed["work"],
                               env=installed["env"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = served_base(process)
        for path, expected in (("", None), ("model.tflite", SHIPPED.read_bytes()),
                               ("mediapipe/vision_bundle.mjs", None)):
            with urllib.request.urlopen(base + path, timeout=30) as response:
                body = response.read()
                assert response.status == 200, path
                assert expected is None or body == expected, path
        assert b"<html" in urllib.request.urlopen(base, timeout=30).read().lower()
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_lite0_from_downloaded_imagenet_weights_then_int8_export_without_mediapipe(installed):
    data = make_dataset(installed["tmp"] / "photos", per_class=12, size=96, seed=0)
    cache = Path(installed["env"]["EDGESHOP_CACHE"])
    with serve_folder(REPO / "models") as url:  # the release layout: the models/ files by name
        env = {**installed["env"], "EDGESHOP_WEIGHTS_URL": url}
        trained = run(installed, "edgeshop-train", "--data", str(data), "--out", "run", "--arch", "efficientnet_lite0",
                      "--image-size", "96", "--head-epochs", "1", "--epochs", "0", "--lr", "0.02",
                      "--batch-size", "12", "--val-fraction", "0.25", "--no-augment", env=env)
    assert f"{url}/{LITE0}" in trained.stderr  # downloaded from the local "release" ...
    assert (cache / LITE0).read_bytes() == (REPO / "models" / LITE0).read_bytes()  # ... into the user cache
    assert f"initialised from ImageNet weights ({cache / LITE0})" in trained.stdout
    # MediaPipe importable from this environment is blocked: the vendored schema writes the metadata.
    export = ("import sys; sys.modules['mediapipe'] = None; from edgeshop.cli.export import main; "
              "sys.exit(main(sys.argv[1:]))")
    run(installed, "python", "-c", export, "run", "--int8", "--out", "model_int8.tflite", "--json", "export.json")
    report = json.loads((installed["work"] / "export.json").read_text())
    assert report["audit"]["fully_integer"]
    photo = next((data / "disc").glob("*.png"))
    out = run(installed, "edgeshop-classify", "model_int8.tflite", str(photo), "--top-k", "3")
    assert {p["label"] for p in json.loads(out.stdout.splitlines()[0])["predictions"]} == {"disc", "square", "bar"}
