"""What real use throws at edgeshop: odd images, faults while writing, load, secrets.

The README's "Hardening" table lists these tests by name.
"""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
from conftest import DATA, REPO

from edgeshop import Classifier
from edgeshop.data import discover, load_images
from edgeshop.errors import DataError, EdgeshopError
from edgeshop.runtime.preprocess import read_image
from edgeshop.runtime.stream import LiveSource, Reader, redact
from edgeshop.tflite.modelcard import InputSpec
from edgeshop.utils import write_bytes_atomic


def test_cmyk_and_one_pixel_images_are_read_as_bgr(tmp_path):
    from PIL import Image

    Image.new("CMYK", (20, 10), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")  # red in CMYK
    Image.new("RGB", (1, 1), (0, 0, 255)).save(tmp_path / "tiny.png")
    cmyk = read_image(tmp_path / "cmyk.jpg")
    assert cmyk.shape == (10, 20, 3)
    b, g, r = cmyk[5, 10].tolist()
    assert r > 200 and g < 60 and b < 60
    assert read_image(tmp_path / "tiny.png").shape == (1, 1, 3)


def test_huge_image_is_decoded_without_exhausting_memory(tmp_path):
    path = tmp_path / "huge.jpg"
    cv2.imwrite(str(path), np.full((9000, 12000, 3), 90, np.uint8))  # 108 Mpx; 324 MB if decoded fully
    code = textwrap.dedent(f"""
        import resource
        from edgeshop.runtime.preprocess import read_image
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        image = read_image(r"{path}")
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        print(image.shape, round(grown))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    shape, grown = result.stdout.rsplit(" ", 1)
    assert shape == "(2250, 3000, 3)", result.stderr  # decoded at 1/4 scale straight from the DCT
    assert int(grown) < 100, f"peak memory grew by {grown} MB"


def test_unicode_spaces_and_empty_class_folders(tmp_path, caplog):
    folder = tmp_path / "Äpple grön"
    folder.mkdir()
    for i in (1, 2):
        cv2.imencode(".jpg", np.full((8, 8, 3), 50 * i, np.uint8))[1].tofile(folder / f"bild {i}.jpg")
    (tmp_path / "empty class").mkdir()
    with caplog.at_level(logging.WARNING, logger="edgeshop.data"):
        samples = discover(tmp_path)
    assert {s.label for s in samples} == {"Äpple grön"} and len(samples) == 2
    assert "empty folder" in caplog.text
    loaded = load_images(samples, ["Äpple grön"], InputSpec(8, 8))
    assert len(loaded.labels) == 2 and not loaded.skipped


def test_single_class_dataset_is_refused_before_training(tmp_path):
    from edgeshop.train.config import TrainConfig
    from edgeshop.train.fit import train

    folder = tmp_path / "data" / "only"
    folder.mkdir(parents=True)
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((8, 8, 3), i * 40, np.uint8))
    with pytest.raises(DataError, match="single class"):
        train(TrainConfig.from_flat(data=str(tmp_path / "data"), out=str(tmp_path / "run"), arch="tiny", epochs=1))


def test_failed_write_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    target = tmp_path / "model.tflite"
    target.write_bytes(b"previous model")

    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="(?i)no space left"):
        write_bytes_atomic(target, b"new model" * 1000)
    assert target.read_bytes() == b"previous model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.tflite"]  # no partial file left behind


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def test_twenty_thousand_classifications_do_not_grow_memory():
    classifier = Classifier(DATA / "tiny_int8.tflite", threads=1)
    frame = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    for _ in range(500):
        classifier.classify(frame)
    before = _rss_mb()
    for _ in range(20_000):
        classifier.classify(frame)
    assert _rss_mb() - before < 20


def test_credentials_never_reach_logs(caplog):
    secret = "hunter2"

    class RefusingCamera(Reader):
        def open(self):
            raise OSError(f"cannot open rtsp://admin:{secret}@10.1.2.3/stream")

    with caplog.at_level(logging.WARNING, logger="edgeshop.stream"):
        source = LiveSource(RefusingCamera(), f"rtsp://admin:{secret}@10.1.2.3/stream", backoff=0.01,
                            max_failures=2)
        with pytest.raises(EdgeshopError) as info:
            source.read(timeout=5)
        source.close()
    assert caplog.records, "the failures should have been logged"
    assert secret not in caplog.text and secret not in str(info.value) and secret not in source.description
    assert redact(f"error at http://u:{secret}@h:8080/x and rtsp://v:{secret}@k/y") == \
        "error at http://***:***@h:8080/x and rtsp://***:***@k/y"


def test_model_file_is_never_unpickled_or_executed(tmp_path):
    """Weights are read with allow_pickle=False: a pickled payload is refused, not run."""
    import pickle

    from edgeshop.errors import ModelLoadError
    from edgeshop.train.config import TrainConfig
    from edgeshop.train.model_io import load_weights
    from edgeshop.train.run_model import build_model

    evil = tmp_path / "evil.weights.npz"
    np.savez(evil, np.array([pickle.dumps(object())], dtype=object))
    model = build_model(TrainConfig.from_flat(data="x", out="y", arch="tiny"), 3)
    with pytest.raises(ModelLoadError, match="cannot read weights"):
        load_weights(model, evil)
