"""Classifier behaviour on the committed tiny int8 model (no TensorFlow needed)."""

from __future__ import annotations

import json
import shutil
import threading

import cv2
import numpy as np
import pytest
from conftest import DATA

from edgeshop import Classifier, EdgeshopError, ImageInputError, ModelCardError, ModelLoadError, Prediction
from edgeshop.runtime.modelcard import read_card


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier(DATA / "tiny_int8.tflite", num_threads=1)


def _frames():
    return {p.relative_to(DATA).as_posix(): cv2.imread(str(p)) for p in sorted((DATA / "synthetic").rglob("*.png"))}


def test_matches_golden_scores_within_one_quantisation_step(classifier):
    golden = json.loads((DATA / "tiny_int8_golden.json").read_text())
    step = classifier.info["output_quantization"]["scale"]
    assert golden["labels"] == classifier.labels
    for name, frame in _frames().items():
        assert np.abs(classifier.scores(frame) - np.array(golden["scores"][name])).max() <= step + 1e-7, name


def test_predictions_are_ranked_probabilities(classifier):
    frame = _frames()["synthetic/square/square_000.png"]
    predictions = classifier.classify(frame, top_k=3)
    assert [type(p) for p in predictions] == [Prediction] * 3
    assert predictions[0].label == "square"
    scores = [p.score for p in predictions]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert sum(scores) == pytest.approx(1.0, abs=0.02)
    assert classifier.labels[predictions[0].index] == predictions[0].label


def test_top_k_threshold_allow_and_deny(classifier):
    frame = _frames()["synthetic/square/square_000.png"]
    assert len(classifier.classify(frame, top_k=1)) == 1
    assert all(p.score >= 0.5 for p in classifier.classify(frame, score_threshold=0.5))
    only = Classifier(DATA / "tiny_int8.tflite", allowlist=["disc", "bar"])
    assert {p.label for p in only.classify(frame)} <= {"disc", "bar"}
    deny = Classifier(DATA / "tiny_int8.tflite", denylist=["square"])
    assert "square" not in {p.label for p in deny.classify(frame)}
    with pytest.raises(ValueError, match="not-a-label"):
        Classifier(DATA / "tiny_int8.tflite", allowlist=["not-a-label"])


def test_rois_and_batch(classifier):
    frames = list(_frames().values())
    wide = np.concatenate([frames[0], frames[2]], axis=1)  # bar | disc side by side
    per_roi = classifier.classify(wide, rois=[(0, 0, 48, 48), (48, 0, 48, 48)], top_k=1)
    assert [r[0].label for r in per_roi] == [classifier.classify(frames[0])[0].label,
                                              classifier.classify(frames[2])[0].label]
    batch = classifier.classify_batch(frames, top_k=1)
    assert [b[0].label for b in batch] == [classifier.classify(f)[0].label for f in frames]
    with pytest.raises(ImageInputError, match="outside"):
        classifier.classify(wide, rois=[(500, 500, 10, 10)])


def test_shared_between_threads_gives_sequential_results(classifier):
    frames = list(_frames().values()) * 10
    expected = [classifier.scores(f) for f in frames]
    results: dict[int, list[np.ndarray]] = {}

    def work(worker: int) -> None:
        results[worker] = [classifier.scores(f) for f in frames]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for worker in range(4):
        assert all(np.array_equal(a, b) for a, b in zip(results[worker], expected, strict=True))


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (None, "None"),
        (np.zeros((0, 0, 3), np.uint8), "empty"),
        (np.zeros((8, 8, 3), np.float32), "dtype"),
        (np.zeros((8, 8, 2), np.uint8), "shape"),
        ("frame.jpg", "numpy array"),
    ],
)
def test_bad_frames_give_clear_errors(classifier, image, message):
    with pytest.raises(ImageInputError, match=message):
        classifier.classify(image)


def test_bad_model_files_give_clear_errors(tmp_path):
    missing = tmp_path / "missing.tflite"
    with pytest.raises(ModelLoadError, match="not found"):
        Classifier(missing)
    empty = tmp_path / "empty.tflite"
    empty.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="empty"):
        Classifier(empty)
    random = tmp_path / "random.tflite"
    random.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ModelLoadError, match="not a TFLite model"):
        Classifier(random)
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes((DATA / "tiny_int8.tflite").read_bytes()[:3000])
    with pytest.raises(ModelLoadError, match=str(truncated.name)):
        Classifier(truncated)


def test_model_without_card_uses_labels_txt_or_indices(tmp_path):
    content = (DATA / "tiny_int8.tflite").read_bytes()
    bare = content[: content.find(b"PK\x03\x04", len(content) - 4096)]  # drop the appended card
    assert read_card(content) is not None and read_card(bare) is None
    model = tmp_path / "bare.tflite"
    model.write_bytes(bare)
    with pytest.warns(UserWarning, match="index labels"):
        assert Classifier(model).labels == ["0", "1", "2"]
    (tmp_path / "labels.txt").write_text("a\nb\nc\n")
    assert Classifier(model).labels == ["a", "b", "c"]
    (tmp_path / "labels.txt").write_text("a\nb\n")
    with pytest.raises(ModelCardError, match="3 outputs but 2 labels"):
        Classifier(model)


def test_info_describes_the_model(classifier):
    info = classifier.info
    assert info["backend"] == "litert"
    assert info["input_shape"] == [1, 32, 32, 3] and info["input_dtype"] == "int8"
    assert info["quantization"] == "qat_int8"
    assert info["labels"] == ["bar", "disc", "square"]


def test_copy_of_model_loads_from_unicode_path(tmp_path):
    target = tmp_path / "modèle d'étagère" / "tiny.tflite"
    target.parent.mkdir()
    shutil.copy(DATA / "tiny_int8.tflite", target)
    assert Classifier(target).labels == ["bar", "disc", "square"]


def test_backends_agree_and_a_missing_one_is_named(classifier):
    frame = _frames()["synthetic/disc/disc_000.png"]
    via_tf = Classifier(DATA / "tiny_int8.tflite", backend="tensorflow")
    assert via_tf.backend == "tensorflow"
    assert np.abs(via_tf.scores(frame) - classifier.scores(frame)).max() <= classifier.info["output_quantization"][
        "scale"] + 1e-7
    import importlib.util

    if importlib.util.find_spec("tflite_runtime") is None:
        with pytest.raises(EdgeshopError, match="tflite_runtime"):
            Classifier(DATA / "tiny_int8.tflite", backend="tflite_runtime")
    with pytest.raises(EdgeshopError, match="backend must be"):
        Classifier(DATA / "tiny_int8.tflite", backend="onnx")
