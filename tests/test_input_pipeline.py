"""Issue 37.10: --input-pipeline auto (memory when the decoded images fit a budget, else stream;
the log says which and why); issue 34.13: a class without a readable image is refused, named;
issue 40.12: streamed epochs are new orders of the same images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from synthetic import make_dataset

from edgeshop.errors import DataError, EdgeshopError
from edgeshop.train.input_pipeline import MB, available_memory, choose_pipeline, in_memory_bytes


def test_the_in_memory_estimate_is_the_measured_growth():
    # studies/grocery/pipeline_bench.py measured 1,023 -> 2,651 MB peak RSS from 2,300 to 20,300 images at 96 px:
    # 1,628 MB for 18,000 images; the estimate must be within 10% of that.
    assert in_memory_bytes(18_000, 96, 96) / MB == pytest.approx(1628, rel=0.1)
    assert in_memory_bytes(1, 224, 224) == int(224 * 224 * 3 * 3.3)


def test_auto_chooses_by_the_budget_and_says_why():
    gb = 1 << 30
    small = choose_pipeline("auto", 2_300, 96, 96, available=24 * gb)  # budget 1/16 of 24 GB = 1,536 MB
    assert small.pipeline == "memory"
    assert small.reason == ("memory (auto): 2,300 images at 96x96 need about 200 MB in memory, within the budget "
                            "of 1,536 MB (1/16 of the 24,576 MB of RAM available)")
    large = choose_pipeline("auto", 20_300, 96, 96, available=24 * gb)
    assert large.pipeline == "stream"
    assert large.reason.startswith("stream (auto): 20,300 images at 96x96 need about 1,766 MB in memory, over the "
                                   "budget of 1,536 MB (1/16 of the 24,576 MB of RAM available)")
    assert choose_pipeline("auto", 20_300, 96, 96, budget_mb=2000, available=gb).pipeline == "memory"
    assert choose_pipeline("auto", 2_300, 96, 96, budget_mb=199).pipeline == "stream"
    assert choose_pipeline("memory", 10**7, 224, 224).pipeline == "memory"  # asked for: not second-guessed
    assert choose_pipeline("stream", 10, 32, 32).pipeline == "stream"
    teacher = choose_pipeline("auto", 10**7, 224, 224, available=gb, needs_memory="--teacher")
    assert teacher.pipeline == "memory" and "as --teacher needs" in teacher.reason
    assert choose_pipeline("auto", 10, 32, 32, needs_stream="--cache-dir").pipeline == "stream"


def test_available_memory_is_read_from_the_system():
    total = next(int(line.split()[1]) * 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                 if line.startswith("MemTotal:"))
    available = available_memory()
    assert available is not None and 0 < available <= total


def test_pipeline_settings_are_checked():
    from edgeshop.train.config import TrainConfig

    assert TrainConfig.from_flat(data="d", out="o").runtime.input_pipeline == "auto"
    with pytest.raises(EdgeshopError, match="runtime.memory_budget_mb must be a positive number"):
        TrainConfig.from_flat(data="d", out="o", memory_budget_mb=0).validate()
    with pytest.raises(EdgeshopError, match="drop it with runtime.input_pipeline memory"):
        TrainConfig.from_flat(data="d", out="o", memory_budget_mb=100, input_pipeline="memory").validate()
    with pytest.raises(EdgeshopError, match="runtime.input_pipeline stream"):
        TrainConfig.from_flat(data="d", out="o", cache_dir="c", input_pipeline="memory").validate()
    TrainConfig.from_flat(data="d", out="o", cache_dir="c").validate()  # auto: --cache-dir makes it stream


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("pipeline_choice") / "data", per_class=8, size=40, seed=5)


def _train(data: Path, out: Path, **settings) -> list[str]:
    from edgeshop.train.config import TrainConfig
    from edgeshop.train.fit import train

    lines: list[str] = []
    config = TrainConfig.from_flat(data=str(data), out=str(out), arch="tiny", image_size=32, epochs=1, head_epochs=0,
                         batch_size=8, val_fraction=0.25, representative_images=4, **settings)
    train(config, log=lambda *parts: lines.append(" ".join(map(str, parts))))
    return lines


def test_auto_streams_a_real_training_when_the_budget_is_tiny(small_data, tmp_path):
    lines = _train(small_data, tmp_path / "tiny_budget", memory_budget_mb=0.01)
    chosen = [line for line in lines if line.startswith("input pipeline: ")]
    assert chosen == ["input pipeline: stream (auto): 24 images at 32x32 need about 0.23 MB in memory, over the "
                      "budget of 0.01 MB (--memory-budget); images are decoded as batches need them "
                      "(--memory-budget MB changes the budget)"]
    report = json.loads((tmp_path / "tiny_budget" / "data_report.json").read_text())
    assert report["input_pipeline"] == "stream" and "over the budget" in report["input_pipeline_reason"]
    assert report["train_images"] == 18 and (tmp_path / "tiny_budget" / "metrics.json").is_file()
    lines = _train(small_data, tmp_path / "default")
    assert any(line.startswith("input pipeline: memory (auto): 24 images") and "of RAM available" in line
               for line in lines)
    assert json.loads((tmp_path / "default" / "data_report.json").read_text())["input_pipeline"] == "memory"
    assert any("24 images in 3 classes, the largest" in line for line in lines)  # the stated total


@pytest.mark.parametrize("pipeline", ["memory", "stream"])
def test_a_class_without_a_readable_image_is_refused_by_name_before_training(small_data, tmp_path, pipeline):
    data = tmp_path / "data"
    for folder in small_data.iterdir():
        (data / folder.name).mkdir(parents=True)
        for image in folder.iterdir():
            (data / folder.name / image.name).write_bytes(image.read_bytes())
    for image in (data / "bar").iterdir():
        image.write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"the class 'bar' has no readable training image, e\.g\. .*bar.*; add "
                                        "readable photos of it or remove its folder"):
        _train(data, tmp_path / "run", input_pipeline=pipeline)
    assert not (tmp_path / "run" / "training_log.csv").exists()  # refused before the first epoch


# -- streamed epochs -------------------------------------------------------------------------------

def _epoch(dataset) -> list[bytes]:
    return [pixels.numpy().tobytes() for pixels, _ in dataset]


@pytest.mark.parametrize("cached", [False, True])
def test_two_streamed_epochs_are_different_orders_of_the_same_images(small_data, tmp_path, cached):
    from edgeshop.data import discover
    from edgeshop.tflite.modelcard import InputSpec
    from edgeshop.train.streamed_images import SkipLog, stream_images

    samples = discover(small_data)
    data = stream_images(samples, sorted({s.label for s in samples}), InputSpec(24, 24), SkipLog(), seed=0,
                         cache_dir=tmp_path / "cache" if cached else None)
    first, second = _epoch(data), _epoch(data)
    assert len(first) == len(samples) == 24 and len(set(first)) == 24  # every image once, all distinct
    assert sorted(first) == sorted(second)
    assert first != second
    if not cached:  # the same seed gives the same sequence of orders: a rerun trains alike
        again = stream_images(samples, sorted({s.label for s in samples}), InputSpec(24, 24), SkipLog(), seed=0)
        assert _epoch(again) == first
        assert np.mean([a == b for a, b in zip(first, second, strict=True)]) < 0.5
