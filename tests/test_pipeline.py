"""Each stage of the real pipeline, checked on its artefacts (session fixture)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edgeshop import Classifier
from edgeshop.data import discover
from edgeshop.runtime.audit import audit_model
from edgeshop.runtime.preprocess import preprocess, read_image


def _test_images(synthetic_data):
    samples = discover(synthetic_data["test"])
    return samples, [read_image(s.path) for s in samples]


def test_training_beats_chance(pipeline):
    metrics = pipeline["metrics"]
    assert metrics["val_top1_float"] > 0.8  # 3 classes: chance is 0.33
    assert metrics["val_top1_final"] > 0.8
    log = (pipeline["run"] / "training_log.csv").read_text().splitlines()
    assert log[0].startswith("phase,epoch")
    assert {row.split(",")[0] for row in log[1:]} == {"train", "prune", "qat"}


def test_run_directory_has_config_log_and_models(pipeline, synthetic_data):
    run = pipeline["run"]
    for name in ("config.json", "card.json", "labels.txt", "training_log.csv", "float_model.keras", "metrics.json",
                 "stages/qat.weights.npz", "representative_images.npy", "split.json"):
        assert (run / name).is_file(), name
    config = json.loads((run / "config.json").read_text())
    assert (config["experimental"]["sparsity"], config["compression"]["qat_epochs"], config["data"]["path"]) == (
        0.5, 2, str(synthetic_data["train"]))
    assert (run / "labels.txt").read_text().split() == ["bar", "disc", "square"]
    assert json.loads((run / "card.json").read_text())["labels"] == ["bar", "disc", "square"]
    _check_metrics_file(run)
    report = json.loads((run / "data_report.json").read_text())
    assert (report["train_images"], report["val_images"]) == (96, 24)  # 3 x 40 images, 20% of each class to val
    # calibration images are training pixels at the model's input size, as the runtime preprocesses them
    calibration = np.load(run / "representative_images.npy", allow_pickle=False)
    assert calibration.dtype == np.uint8 and calibration.shape[1:] == (32, 32, 3) and len(calibration) <= 96
    spec = Classifier(pipeline["int8"]).input_spec
    from edgeshop.train.config import TrainConfig
    from edgeshop.train.fit import split_samples

    training_split = split_samples(TrainConfig.from_saved(config))[0]  # not the run's val images
    train_pixels = {preprocess(read_image(s.path), spec).tobytes() for s in training_split}
    assert all(image.tobytes() in train_pixels for image in calibration)
    # one log row per epoch of each phase: prune and QAT ran their 2 epochs each
    rows = [line.split(",")[:2] for line in (run / "training_log.csv").read_text().splitlines()[1:]]
    assert [e for p, e in rows if p == "prune"] == ["1", "2"] and [e for p, e in rows if p == "qat"] == ["1", "2"]
    assert any((run / "tensorboard").rglob("events.out.tfevents*"))


def _check_metrics_file(run):
    """metrics.json against measurements made here: the validation accuracy of the saved float
    model and of the final (QAT) model on the run's validation images, and the int8 file's sparsity."""
    from edgeshop.data import load_images
    from edgeshop.tflite.modelcard import ModelCard
    from edgeshop.train._keras import keras
    from edgeshop.train.config import TrainConfig
    from edgeshop.train.fit import split_samples
    from edgeshop.train.run_model import load_run_model

    metrics = json.loads((run / "metrics.json").read_text())
    card = ModelCard.from_json((run / "card.json").read_text())
    validation = split_samples(TrainConfig.from_saved(json.loads((run / "config.json").read_text())))[1]
    images = load_images(validation, card.labels, card.input)
    assert len(images.labels) == 24
    pixels = images.pixels.astype(np.float32)
    for key, model in (("val_top1_float", keras.models.load_model(run / "float_model.keras", compile=False)),
                       ("val_top1_final", load_run_model(run, final=True))):
        right = int(np.sum(model.predict(pixels, verbose=0).argmax(1) == images.labels))
        assert abs(metrics[key] * len(images.labels) - right) <= 1, (key, metrics[key], right)  # one near-tie
    assert (metrics["classes"], metrics["phases"]) == (3, ["train", "prune", "qat"])
    assert metrics["sparsity_after_strip"] == pytest.approx(
        audit_model((run.parent / "model_int8.tflite").read_bytes())["weight_sparsity"], abs=0.02)


def test_float_keras_model_loads_in_safe_mode(pipeline):
    from edgeshop.train._keras import keras
    from edgeshop.train.run_model import load_run_model

    model = keras.models.load_model(pipeline["run"] / "float_model.keras", compile=False, safe_mode=True)
    assert model.output_shape == (None, 3)
    pixels = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype(np.float32)
    expected = load_run_model(pipeline["run"], final=False).predict(pixels, verbose=0)  # the run's float weights
    np.testing.assert_allclose(model.predict(pixels, verbose=0), expected, atol=1e-5)


def test_sparsity_at_target_after_strip_and_after_qat(pipeline):
    metrics = pipeline["metrics"]
    assert metrics["sparsity_after_strip"] == pytest.approx(0.5, abs=0.02)
    # After QAT the zeros must survive into the integer file itself.
    audit = audit_model(pipeline["int8"].read_bytes())
    assert audit["weight_sparsity"] == pytest.approx(0.5, abs=0.02)


def test_int8_export_is_fully_integer_with_uint8_io_by_default(pipeline):
    """uint8 pixels in and uint8 scores out: the only integer I/O MediaPipe Tasks accepts."""
    for key in ("int8", "ptq_int8"):
        audit = audit_model(pipeline[key].read_bytes())
        assert audit["fully_integer"], (key, audit["float_tensors"], audit["float_ops"])
        assert audit["input"]["dtype"] == "uint8" and audit["output"]["dtype"] == "uint8"
        # raw pixels are the input as they are (pinned by the calibration gradient)
        assert audit["input"]["scale"] == pytest.approx(1.0, abs=1e-3)
        assert audit["input"]["zero_point"] == 0
        # the interior stays int8: the only uint8 tensors are the two ends
        assert audit["op_counts"].get("QUANTIZE", 0) >= 2


def test_int8_io_flag_keeps_int8_tensors_and_the_same_scores(pipeline, synthetic_data):
    audit = audit_model(pipeline["int8_io"].read_bytes())
    assert audit["fully_integer"]
    assert audit["input"]["dtype"] == "int8" and audit["output"]["dtype"] == "int8"
    assert audit["input"]["zero_point"] == -128
    uint8_io, int8_io = Classifier(pipeline["int8"]), Classifier(pipeline["int8_io"])
    _, frames = _test_images(synthetic_data)
    for frame in frames[:8]:
        np.testing.assert_array_equal(uint8_io.scores(frame), int8_io.scores(frame))


def test_float_exports_are_not_integer(pipeline):
    assert not audit_model(pipeline["float32"].read_bytes())["fully_integer"]


def test_int8_file_is_smaller_than_float(pipeline):
    size = {k: pipeline[k].stat().st_size for k in ("float32", "float16", "int8")}
    assert size["int8"] < size["float16"] < size["float32"]


def test_float_tflite_matches_keras(pipeline, synthetic_data):
    from edgeshop.train.run_model import load_run_model

    keras_model = load_run_model(pipeline["run"], final=True, as_float=True)  # the final weights, no fake-quant
    classifier = Classifier(pipeline["float32"])
    _, frames = _test_images(synthetic_data)
    pixels = np.stack([preprocess(f, classifier.input_spec) for f in frames]).astype(np.float32)
    expected = keras_model.predict(pixels, verbose=0)
    got = np.stack([classifier.scores(f) for f in frames])
    assert (got.argmax(1) == expected.argmax(1)).all()
    assert np.abs(got - expected).max() < 1e-4


def test_float_twin_carries_the_qat_weights(pipeline, synthetic_data):
    from edgeshop.train.compress import kernel_sparsity
    from edgeshop.train.run_model import is_qat, load_run_model

    qat = load_run_model(pipeline["run"], final=True)
    twin = load_run_model(pipeline["run"], final=True, as_float=True)
    assert is_qat(qat) and not is_qat(twin)
    trained = {w.name: w.numpy() for w in qat.weights}
    assert len(twin.weights) > 0
    for weight in twin.weights:
        assert np.array_equal(weight.numpy(), trained[weight.name]), weight.name
    assert kernel_sparsity(twin) >= 0.49  # prune-preserving QAT kept the zeros
    _, frames = _test_images(synthetic_data)
    pixels = np.stack([preprocess(f, Classifier(pipeline["float32"]).input_spec) for f in frames]).astype(np.float32)
    agree = np.mean(twin.predict(pixels, verbose=0).argmax(1) == qat.predict(pixels, verbose=0).argmax(1))
    assert agree >= 0.9  # the same model with and without fake-quant


def test_int8_tflite_agrees_with_qat_keras(pipeline, synthetic_data):
    from edgeshop.train.run_model import load_run_model

    keras_model = load_run_model(pipeline["run"], final=True)
    classifier = Classifier(pipeline["int8"])
    _, frames = _test_images(synthetic_data)
    pixels = np.stack([preprocess(f, classifier.input_spec) for f in frames]).astype(np.float32)
    expected = keras_model.predict(pixels, verbose=0).argmax(1)
    got = np.stack([classifier.scores(f) for f in frames]).argmax(1)
    assert np.mean(got == expected) >= 0.95


def test_classifier_on_exported_int8_is_accurate(pipeline, synthetic_data):
    classifier = Classifier(pipeline["int8"])
    samples, frames = _test_images(synthetic_data)
    correct = [classifier.classify(f, top_k=1)[0].label == s.label for s, f in zip(samples, frames, strict=True)]
    assert np.mean(correct) > 0.8


def test_card_inside_the_model_describes_it(pipeline):
    classifier = Classifier(pipeline["int8"])
    assert classifier.labels == ["bar", "disc", "square"]
    assert classifier.card.quantization == "qat_int8"
    assert classifier.card.input.height == 32 and classifier.card.input.normalization_in_graph
    assert classifier.card.extra["export"]["fully_integer"] is True
    assert Classifier(pipeline["ptq_int8"]).card.quantization == "ptq_int8"


def test_grayscale_and_bgra_frames_are_accepted(pipeline, synthetic_data):
    classifier = Classifier(pipeline["int8"])
    _, frames = _test_images(synthetic_data)
    frame = frames[0]
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    bgra = cv2.cvtColor(frame, cv2.COLOR_BGR2BGRA)
    # a gray frame is the same picture as its 3-channel copy; BGRA's alpha is dropped
    np.testing.assert_array_equal(classifier.scores(gray), classifier.scores(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)))
    np.testing.assert_array_equal(classifier.scores(gray[:, :, None]), classifier.scores(gray))
    np.testing.assert_array_equal(classifier.scores(bgra), classifier.scores(frame))


def test_export_refuses_a_model_that_is_not_fully_integer(pipeline, tmp_path):
    from edgeshop.train.exporter import NotFullyIntegerError, export

    target = tmp_path / "must_be_integer.tflite"
    with pytest.raises(NotFullyIntegerError, match="not fully integer"):
        export(pipeline["run"], target, "float16", require_integer=True, check=False)
    assert not target.exists()  # nothing written
