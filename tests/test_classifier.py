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
from edgeshop.tflite.modelcard import read_card


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier(DATA / "tiny_int8.tflite", threads=1)


def _frames():
    return {p.relative_to(DATA).as_posix(): cv2.imread(str(p)) for p in sorted((DATA / "synthetic").rglob("*.png"))}


def _reference_scores(frame: np.ndarray) -> np.ndarray:
    """The fixture's scores by a path that shares no code with Classifier: the preprocessing
    its card asks for (32x32, centre crop of a square frame = the frame, INTER_AREA, RGB)
    written out here, quantised by the interpreter's own input parameters, LiteRT called directly."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(DATA / "tiny_int8.tflite"))
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    pixels = cv2.resize(frame, (32, 32), interpolation=cv2.INTER_AREA)[:, :, ::-1].astype(np.float64)
    scale, zero = inp["quantization"]
    limits = np.iinfo(inp["dtype"])
    interpreter.set_tensor(inp["index"], np.clip(np.round(pixels / scale + zero), limits.min, limits.max)
                           .astype(inp["dtype"])[None])
    interpreter.invoke()
    scale, zero = out["quantization"]
    return (interpreter.get_tensor(out["index"])[0].astype(np.float64) - zero) * scale


def test_matches_an_independent_reference_and_golden_scores_within_one_quantisation_step(classifier):
    """Classifier is checked against the reference only. The golden file (written by
    tools/make_test_fixture.py through Classifier) checks the reference instead: the committed
    model and LiteRT still give the scores recorded when the fixture was made."""
    golden = json.loads((DATA / "tiny_int8_golden.json").read_text())
    step = classifier.info["output_quantization"]["scale"]
    assert golden["labels"] == ["bar", "disc", "square"] == classifier.labels
    assert sorted(golden["scores"]) == sorted(_frames())
    for name, frame in _frames().items():
        assert frame.shape == (48, 48, 3), name  # square: the centre crop is the whole frame
        reference = _reference_scores(frame)
        assert classifier.labels[int(reference.argmax())] == name.split("/")[1], name  # the model works
        assert np.abs(reference - np.array(golden["scores"][name])).max() <= step + 1e-7, name
        assert np.abs(classifier.scores(frame) - reference).max() <= step + 1e-7, name


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
    scores = classifier.scores(frame)  # square ~0.80, bar ~0.12, disc ~0.08
    ranked = [classifier.labels[i] for i in np.argsort(-scores)]
    assert ranked[0] == "square" and scores.max() > 0.5 > sorted(scores)[-2]
    assert [p.label for p in classifier.classify(frame, top_k=1)] == ["square"]
    assert [p.label for p in classifier.classify(frame, top_k=3)] == ranked
    assert [p.label for p in classifier.classify(frame, score_threshold=0.5)] == ["square"]
    assert classifier.classify(frame, score_threshold=0.99) == []
    only = Classifier(DATA / "tiny_int8.tflite", allowlist=["disc", "bar"])
    assert [p.label for p in only.classify(frame)] == [x for x in ranked if x != "square"]
    assert [p.score for p in only.classify(frame)] == pytest.approx(sorted(scores)[:2][::-1])  # not renormalised
    deny = Classifier(DATA / "tiny_int8.tflite", denylist=["square"])
    assert [p.label for p in deny.classify(frame)] == [x for x in ranked if x != "square"]
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
    pytest.importorskip("tensorflow", reason="TensorFlow not installed (the runtime-only venv)")
    frame = _frames()["synthetic/disc/disc_000.png"]
    via_tf = Classifier(DATA / "tiny_int8.tflite", backend="tensorflow")
    assert via_tf.backend == "tensorflow"
    assert np.abs(via_tf.scores(frame) - classifier.scores(frame)).max() <= classifier.info["output_quantization"][
        "scale"] + 1e-7
    with pytest.raises(EdgeshopError, match="backend must be"):
        Classifier(DATA / "tiny_int8.tflite", backend="onnx")


def test_a_missing_tflite_runtime_is_named(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tflite_runtime(name, *args, **kwargs):  # as on a machine without the package
        if name.startswith("tflite_runtime"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tflite_runtime)
    with pytest.raises(EdgeshopError, match="tflite_runtime"):
        Classifier(DATA / "tiny_int8.tflite", backend="tflite_runtime")


def test_tflite_runtime_backend_agrees(classifier):
    # tflite-runtime has no wheel for every platform and Python (none after 3.11, and it needs
    # numpy < 2), so it is not in this venv: `make test-tflite-runtime` runs this test in one
    # of its own. The skip is reported, never silent.
    pytest.importorskip("tflite_runtime", reason="tflite-runtime not installed: run `make test-tflite-runtime`")
    via = Classifier(DATA / "tiny_int8.tflite", backend="tflite_runtime")
    assert via.backend == "tflite_runtime" and type(via._interpreter).__module__.startswith("tflite_runtime")
    step = classifier.info["output_quantization"]["scale"]
    for name, frame in _frames().items():
        theirs, ours = via.scores(frame), classifier.scores(frame)
        assert theirs.argmax() == ours.argmax(), name
        # tflite-runtime 2.14's int8 kernels round differently from LiteRT 2.3's: up to 2 steps apart
        assert np.abs(theirs - ours).max() <= 2 * step + 1e-7, name
