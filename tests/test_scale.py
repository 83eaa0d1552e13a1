"""Issue 23: the streamed input pipeline (parity with the in-memory one, unreadable files
counted without a pre-pass, on-disk cache) and multi-worker training on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from synthetic import make_dataset

REPO = Path(__file__).resolve().parents[1]


def _run(data: Path, out: Path, pipeline: str, **settings):
    from edgeshop.train.config import TrainConfig
    from edgeshop.train.fit import TrainingRun

    config = TrainConfig.from_flat(data=str(data), out=str(out), arch="tiny", image_size=32, batch_size=8,
                                   val_fraction=0.2,
                         input_pipeline=pipeline, **settings)
    run = TrainingRun(config, log=lambda *_: None)
    run._load_data()
    return run


def _batches(dataset, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(x.numpy(), y.numpy()) for x, y in dataset.take(count)]


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("scale") / "data", per_class=12, size=40, seed=3)


def test_streamed_batches_equal_in_memory_batches(small_data, tmp_path):
    """Same files, seed and settings: the streamed pipeline gives the model the same inputs, batch for batch,
    in the same order (the shuffle permutes indices alike), at the run's size and a FixRes size."""
    memory = _run(small_data, tmp_path / "memory", "memory", augment=False)
    stream = _run(small_data, tmp_path / "stream", "stream", augment=False)
    for size in (32, 24):
        a, b = _batches(memory._train_dataset(size), 5), _batches(stream._train_dataset(size), 5)
        assert [len(x) for x, _ in a] == [len(x) for x, _ in b] == [8, 8, 8, 6]  # one epoch: 30 training images
        for (xa, ya), (xb, yb) in zip(a, b, strict=True):
            assert xa.shape[1:] == (size, size, 3)
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)
    va, vb = _batches(memory._val_dataset(), 10), _batches(stream._val_dataset(), 10)
    np.testing.assert_array_equal(np.concatenate([x for x, _ in va]), np.concatenate([x for x, _ in vb]))


AUGMENTED_PARITY = """
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from pathlib import Path
from test_scale import _batches, _run
from edgeshop.train._keras import tf
tf.config.experimental.enable_op_determinism()  # what --deterministic does: tf.data's random ops in order
data, out = Path(sys.argv[2]), Path(sys.argv[3])
runs = [_run(data, out / pipeline, pipeline, augment=True, mix=0.5) for pipeline in ("memory", "stream")]
a, b = (_batches(run._train_dataset(24), 4) for run in runs)
print(max(float(np.abs(xa - xb).max()) + float(np.abs(ya - yb).max()) for (xa, ya), (xb, yb) in zip(a, b)))
"""


def test_streamed_batches_equal_in_memory_batches_with_augmentation(small_data, tmp_path):
    """With augmentation and CutMix/MixUp too, under --deterministic (in a process of its own: determinism is
    process-wide). Without it the augmenter's random rotation is drawn in tf.data's thread order, in both
    pipelines alike."""
    result = subprocess.run([sys.executable, "-c", AUGMENTED_PARITY, str(Path(__file__).parent), str(small_data),
                             str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert float(result.stdout.split()[-1]) == 0.0


def test_a_streamed_image_is_the_runtime_preprocessing(small_data, tmp_path):
    from edgeshop.data import discover
    from edgeshop.runtime.preprocess import preprocess, read_image
    from edgeshop.train.streamed_images import SkipLog, stream_images

    run = _run(small_data, tmp_path / "run", "stream")
    samples = discover(small_data)[:5]
    streamed = [p.numpy() for p, _ in stream_images(samples, run.class_names, run.spec, SkipLog())]
    expected = [preprocess(read_image(s.path), run.spec) for s in samples]
    np.testing.assert_array_equal(np.stack(streamed), np.stack(expected))


def test_unreadable_files_are_skipped_and_counted_in_one_pass(small_data, tmp_path, monkeypatch):
    """Each training file is decoded once in a 1-epoch streamed run (no pre-pass), and the broken ones are
    listed in data_report.json and left out of the card's image count."""
    from edgeshop.train import streamed_images as stream
    from edgeshop.train.config import TrainConfig
    from edgeshop.train.fit import split_samples, train

    data = tmp_path / "data"
    for folder in small_data.iterdir():
        (data / folder.name).mkdir(parents=True)
        for image in folder.iterdir():
            (data / folder.name / image.name).write_bytes(image.read_bytes())
    (data / "disc" / "zz_truncated.png").write_bytes((data / "disc" / "disc_000.png").read_bytes()[:60])
    (data / "bar" / "zz_text.jpg").write_text("not an image")
    decoded: dict[str, int] = {}
    real = stream.decode_sample

    def counting(path, spec):  # a spy on our own function; the decoding is the real one
        decoded[str(path)] = decoded.get(str(path), 0) + 1
        return real(path, spec)

    monkeypatch.setattr(stream, "decode_sample", counting)
    config = TrainConfig.from_flat(data=str(data), out=str(tmp_path / "run"), arch="tiny", image_size=32, epochs=1,
                         batch_size=8, val_fraction=0.2, input_pipeline="stream",
                         representative_images=4)  # few: the stream itself must find the broken files
    train(config, log=lambda *_: None)
    train_files = [str(s.path) for s in split_samples(config)[0]]
    assert {decoded[f] for f in train_files} == {1}
    report = json.loads((tmp_path / "run" / "data_report.json").read_text())
    assert sorted(Path(row["file"]).name for row in report["skipped"]) == ["zz_text.jpg", "zz_truncated.png"]
    broken_in_train = sum(Path(f).name.startswith("zz_") for f in train_files)
    assert report["train_images"] == len(train_files) - broken_in_train
    assert report["train_images"] + report["val_images"] == 36
    card = json.loads((tmp_path / "run" / "card.json").read_text())
    assert card["extra"]["training"]["train_images"] == report["train_images"]


def test_disk_cache_is_read_back_instead_of_decoding(small_data, tmp_path, monkeypatch):
    from edgeshop.data import discover
    from edgeshop.train import streamed_images as stream

    run = _run(small_data, tmp_path / "run", "stream", cache_dir=str(tmp_path / "cache"))
    samples = discover(small_data)
    calls = []
    real = stream.decode_sample
    monkeypatch.setattr(stream, "decode_sample", lambda path, spec: calls.append(path) or real(path, spec))

    def epoch():
        data = stream.stream_images(samples, run.class_names, run.spec, stream.SkipLog(), seed=0,
                                    cache_dir=tmp_path / "cache")
        return sorted(p.numpy().tobytes() for p, _ in data)

    first = epoch()
    assert len(calls) == len(samples) and list((tmp_path / "cache").glob("*.index"))
    assert epoch() == first and len(calls) == len(samples)  # the second pass decoded nothing


def test_cache_dir_needs_the_streamed_pipeline(tmp_path):
    from edgeshop.errors import EdgeshopError
    from edgeshop.train.config import TrainConfig

    with pytest.raises(EdgeshopError, match="runtime.input_pipeline stream"):
        TrainConfig.from_flat(data="d", out="o", cache_dir=str(tmp_path), input_pipeline="memory").validate()


# -- several machines (here: two processes on 127.0.0.1) ------------------------------------------

def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _tf_config(addresses: list[str], index: int) -> str:
    return json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})


def _train_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "edgeshop.cli.train", *args]


def test_two_workers_train_the_same_weights(small_data, tmp_path):
    addresses = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    run = tmp_path / "run"
    args = ["--data", str(small_data), "--out", str(run), "--arch", "tiny", "--image-size", "32", "--epochs", "1",
            "--batch-size", "8", "--no-augment", "--strategy", "multi_worker", "--input-pipeline", "stream",
            "--connect-timeout", "60"]
    processes = [subprocess.Popen(_train_command(*args), env={**os.environ, "TF_CONFIG": _tf_config(addresses, i)},
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    outputs = [p.communicate(timeout=180)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    assert "MultiWorkerMirroredStrategy: worker-0 (chief) of 2 tasks, 2 replicas" in outputs[0]
    chief, worker = np.load(run / "stages" / "train.weights.npz"), np.load(
        run / "workers" / "worker-1" / "stages" / "train.weights.npz")
    assert chief.files == worker.files and len(chief.files) > 2
    for name in chief.files:
        np.testing.assert_array_equal(chief[name], worker[name])
    # the chief wrote the run folder (checkpoints for --resume); the worker the same files in its own
    assert (run / "checkpoints" / "train" / "checkpoint").is_file() and (run / "float_model.keras").is_file()
    assert (run / "workers" / "worker-1" / "checkpoints" / "train" / "checkpoint").is_file()


def test_unreachable_task_in_tf_config_fails_with_one_line_after_the_timeout(small_data, tmp_path):
    own, nobody = _free_ports(2)
    tf_config = _tf_config([f"127.0.0.1:{own}", f"127.0.0.1:{nobody}"], 0)
    started = time.monotonic()
    result = subprocess.run(
        _train_command("--data", str(small_data), "--out", str(tmp_path / "run"), "--arch", "tiny",
                       "--strategy", "multi_worker", "--connect-timeout", "2"),
        env={**os.environ, "TF_CONFIG": tf_config}, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("edgeshop-train:")]
    assert len(errors) == 1, result.stderr
    assert f"TF_CONFIG: cannot reach worker-1 at 127.0.0.1:{nobody}" in errors[0] and "within 2 s" in errors[0]
    assert time.monotonic() - started < 60
    assert not (tmp_path / "run").exists()  # nothing left behind that would block the corrected command


def test_tf_config_errors_name_the_fix():
    from edgeshop.errors import EdgeshopError
    from edgeshop.train.cluster import read_tf_config

    with pytest.raises(EdgeshopError, match="needs TF_CONFIG"):
        read_tf_config("")
    with pytest.raises(EdgeshopError, match="not host:port"):
        read_tf_config(_tf_config(["127.0.0.1:1", "host-without-port"], 0))
    with pytest.raises(EdgeshopError, match=r"\['ps'\] are not used"):
        read_tf_config(json.dumps({"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "worker",
                                                                                          "index": 0}}))
    role = read_tf_config(json.dumps({"cluster": {"chief": ["a:1"], "worker": ["b:2", "c:3"]},
                                      "task": {"type": "worker", "index": 0}}))
    assert not role.chief and role.name == "worker-0" and role.size == 3


# -- evaluation streams too ------------------------------------------------------------------------

def test_iter_decoded_keeps_order_and_a_bounded_window(small_data):
    from edgeshop.data import decode_sample, discover, iter_decoded
    from edgeshop.tflite.modelcard import InputSpec

    spec = InputSpec(height=24, width=24)
    samples = discover(small_data) * 10  # 360
    pulled = []

    def listed():
        for sample in samples:
            pulled.append(sample)
            yield sample

    stream = iter_decoded(listed(), spec, workers=2, window=16)
    first = next(stream)
    assert len(pulled) <= 17  # the window plus the one refilled: not the 360 images
    rest = list(stream)
    assert [s for s, _ in [first, *rest]] == samples
    for sample, pixels in [first, *rest][:5]:
        np.testing.assert_array_equal(pixels, decode_sample(sample.path, spec))


def test_eval_streams_and_reports_images_per_second(fixture_model, tmp_path, capsys, monkeypatch):
    """edgeshop-eval, head figures and --unknown included, never decodes a whole image set into memory."""
    from edgeshop import data as datasets
    from edgeshop.cli import eval as eval_cli

    def refuse(*args, **kwargs):
        raise AssertionError("load_images decodes every image into memory")

    monkeypatch.setattr(datasets, "load_images", refuse)
    data = Path(__file__).parent / "data" / "synthetic"
    unknown = tmp_path / "unknown"
    unknown.mkdir()
    for i, image in enumerate(sorted(data.rglob("*.png"))[:3]):
        (unknown / f"u{i}.png").write_bytes(image.read_bytes())
    code = eval_cli.main([str(fixture_model), "--data", str(data), "--unknown", str(unknown),
                          "--json", str(tmp_path / "figures.json")])
    assert code == 0
    err = capsys.readouterr().err
    count = len(datasets.discover(data))
    assert f"tiny_int8.tflite: {count} images in " in err and " images/s)" in err
    assert json.loads((tmp_path / "figures.json").read_text())["n"] == count
