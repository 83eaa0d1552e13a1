"""Shared fixtures. One session-scoped run of the real pipeline on tiny synthetic images
(train -> prune 50% -> QAT -> export float32/float16/int8/int8 with int8 I/O/PTQ int8);
stage tests inspect its artefacts."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
DATA = TESTS / "data"
sys.path.insert(0, str(TESTS))

from synthetic import make_dataset  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def require_client(available: bool, message: str) -> None:
    """Skip a test whose standard client (MediaPipe env, npm package, chromium) is missing;
    under `make test` (EDGESHOP_REQUIRE_CLIENTS set) fail, so CI cannot pass by skipping."""
    if available:
        return
    if os.environ.get("EDGESHOP_REQUIRE_CLIENTS"):
        pytest.fail(f"{message} (EDGESHOP_REQUIRE_CLIENTS is set: missing clients fail)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("synthetic")
    return {
        "train": make_dataset(root / "train", per_class=40, seed=0),
        "test": make_dataset(root / "test", per_class=12, seed=1),
    }


@pytest.fixture(scope="session")
def pipeline(synthetic_data, tmp_path_factory) -> dict[str, Path]:
    """The real pipeline, once: tiny net, prune to 50%, QAT, five exports."""
    from edgeshop.train.config import TrainConfig
    from edgeshop.train.exporter import export
    from edgeshop.train.fit import train

    out = tmp_path_factory.mktemp("pipeline")
    run = out / "run"
    config = TrainConfig.from_flat(
        data=str(synthetic_data["train"]), out=str(run), val_fraction=0.2, arch="tiny", epochs=8,
        batch_size=16, lr=3e-3, prune=0.5, prune_epochs=2, prune_lr=3e-4, qat=True, qat_epochs=2, qat_lr=1e-4,
    )
    metrics = train(config)
    models = {}
    for fmt in ("float32", "float16", "int8"):
        models[fmt] = out / f"model_{fmt}.tflite"
        # Exports are calibrated on the run's validation images, except float32: it stays the
        # Keras model's exact twin (test_float_tflite_matches_keras).
        export(run, models[fmt], fmt, calibrate=fmt != "float32")
    models["int8_io"] = out / "model_int8_io.tflite"
    export(run, models["int8_io"], "int8", io_type="int8")
    models["ptq_int8"] = out / "model_ptq_int8.tflite"
    export(run, models["ptq_int8"], "int8", ptq=True)
    return {"run": run, "metrics": metrics, **models}


@pytest.fixture()
def fixture_model() -> Path:
    """The committed tiny int8 model (tools/make_test_fixture.py)."""
    return DATA / "tiny_int8.tflite"


def served_base(process) -> str:
    """The http://host:port of an edgeshop-web started with --port 0, from its first line;
    the test fails with the server's own words if it did not start."""
    line = process.stdout.readline()
    if "serving" not in line:
        process.kill()
        pytest.fail(f"edgeshop-web did not start: {line}{process.stderr.read()}")
    return line.split(" at ")[1].split()[0]


def frame_indices(source, count: int, seconds: float = 10.0) -> list[int]:
    """The indices of up to ``count`` frames read from a LiveSource within ``seconds``."""
    seen: list[int] = []
    deadline = time.monotonic() + seconds
    while len(seen) < count and time.monotonic() < deadline:
        frame = source.read(timeout=1.0)
        if frame is not None:
            seen.append(frame.index)
    return seen


# Clients resize with their own code (MediaPipe's, not OpenCV's): on a photo whose two best labels
# are nearly tied in edgeshop's scores, that difference alone may swap them. Exact top-1 agreement
# is asked where edgeshop's answer is clear (top-1 leads top-2 by CLEAR_MARGIN); near ties may be at
# most MAX_NEAR_TIES of the photos, so a broken client cannot pass by making everything a tie.
CLEAR_MARGIN, MAX_NEAR_TIES = 0.1, 0.1
