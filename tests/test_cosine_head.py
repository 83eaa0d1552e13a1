"""The cosine head (--head cosine): scores are scale x cos(row, embedding) in training and
in the int8 export, and edgeshop-enroll imprints new products into it at the head's scale."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from synthetic import make_dataset
from test_clients import _client, client_python  # noqa: F401 - the fixture, reused

from edgeshop.adapt.enroll import COSINE_METHOD, IMPRINT_GAIN
from edgeshop.cli.enroll import main as enroll_main
from edgeshop.errors import EdgeshopError
from edgeshop.runtime.audit import audit_model
from edgeshop.runtime.classifier import Classifier
from edgeshop.tflite.head_weights import read_head_weights
from edgeshop.tflite.modelcard import read_card

SCALE = 12.0


@pytest.fixture(scope="module")
def cosine_export(synthetic_data, tmp_path_factory) -> dict[str, Path]:
    """A tiny cosine-head run with QAT, exported to int8 and calibrated on its validation images."""
    from edgeshop.train.config import TrainConfig
    from edgeshop.train.exporter import export
    from edgeshop.train.fit import train

    out = tmp_path_factory.mktemp("cosine")
    run = out / "run"
    config = TrainConfig.from_flat(data=str(synthetic_data["train"]), out=str(run), val_fraction=0.2, arch="tiny",
                                   epochs=8,
                         batch_size=16, lr=3e-3, head="cosine", cosine_scale=SCALE, qat=True, qat_epochs=2,
                         qat_lr=1e-4)
    train(config)
    model = out / "cosine_int8.tflite"
    export(run, model, "int8")
    return {"run": run, "int8": model}


def _accuracy(model: Path, root: Path, labels=("disc", "square", "bar")) -> dict[str, float]:
    classifier = Classifier(model)
    result = {}
    for label in labels:
        images = [cv2.imread(str(p)) for p in sorted((root / label).glob("*.png"))]
        result[label] = float(np.mean([classifier.classify(i, top_k=1)[0].label == label for i in images]))
    return result


def test_the_trained_head_is_a_cosine_head(cosine_export):
    from edgeshop.train.run_model import load_run_model

    model = load_run_model(cosine_export["run"], as_float=True)
    (kernel,) = model.get_layer("classifier").get_weights()  # no bias
    np.testing.assert_allclose(np.linalg.norm(kernel, axis=0), 1.0, rtol=1e-4)
    assert model.get_layer("embedding_scale").scale == SCALE


def test_the_int8_export_is_fully_integer_normalises_and_classifies(cosine_export, synthetic_data):
    content = cosine_export["int8"].read_bytes()
    audit = audit_model(content)
    assert audit["fully_integer"], (audit["float_tensors"][:5], audit["float_ops"])
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content)
    ops = [op["op_name"] for op in interpreter._get_ops_details()]
    assert ops.index("L2_NORMALIZATION") < ops.index("FULLY_CONNECTED") < ops.index("SOFTMAX"), ops
    head = read_head_weights(content)
    assert not head.has_bias  # the layer has no bias input at all
    # the converter folds the scale into the rows (calibrated after the fold: not clipped)
    np.testing.assert_allclose(np.linalg.norm(head.weights, axis=1), SCALE, rtol=0.03)
    assert read_card(content).extra["training"]["head"] == {"kind": "cosine", "scale": SCALE}
    accuracy = _accuracy(cosine_export["int8"], synthetic_data["test"])
    assert min(accuracy.values()) >= 0.8, accuracy


def test_the_int8_logits_follow_the_float_model(cosine_export, synthetic_data):
    """The scale survives conversion: int8 logits track the float model's (rows clipped to the
    ranges QAT saw for unit rows gave logits 4x too small)."""
    from edgeshop.adapt.probe import HeadProbe
    from edgeshop.data import discover, load_images
    from edgeshop.train._keras import keras
    from edgeshop.train.run_model import load_run_model

    classifier = Classifier(cosine_export["int8"])
    images = load_images(discover(synthetic_data["test"]), classifier.labels, classifier.input_spec)
    int8 = HeadProbe(classifier).run_many(images.pixels)["logits"]
    model = load_run_model(cosine_export["run"], as_float=True)
    reference = keras.Model(model.input, model.get_layer("classifier").output).predict(images.pixels, verbose=0)
    assert np.mean(int8.argmax(1) == reference.argmax(1)) >= 0.95
    assert np.mean(np.abs(int8 - reference)) <= 0.1 * np.mean(np.abs(reference)), (int8[:2], reference[:2])


def test_enrolment_into_a_cosine_head_learns_the_product_and_keeps_the_others(cosine_export, synthetic_data,
                                                                              tmp_path):
    """'bar' removed, then enrolled again from five new photos (imprint only): the centred prototype at the length
    calibration measured times the cosine head's gain, its bias folded into the row (the layer
    has none), and the old products keep their answers."""
    without = tmp_path / "without.tflite"
    assert enroll_main([str(cosine_export["int8"]), "--remove", "bar", "--out", str(without)]) == 0
    new = tmp_path / "new"
    make_dataset(new, per_class=5, seed=7, classes=("bar",))
    enrolled = tmp_path / "enrolled.tflite"
    assert enroll_main([str(without), "--data", str(new), "--out", str(enrolled), "--no-refit"]) == 0
    content = enrolled.read_bytes()
    card = read_card(content)
    assert card.labels[-1] == "bar" and card.extra["enrolment"][-1]["method"] == COSINE_METHOD
    head = read_head_weights(content)
    centre = np.asarray(card.extra["embedding"]["mean"])
    gain = card.extra["enrolment"][-1]["gain"]
    assert gain == IMPRINT_GAIN["cosine"] == 1.2  # a cosine head's default (edgeshop/adapt/enroll.py)
    length = card.extra["embedding"]["imprint_norm"] * gain
    row = head.weights[-1]
    across = row - (row @ centre) / (centre @ centre) * centre  # the prototype part, orthogonal to the centre
    assert abs(float(np.linalg.norm(across)) - length) <= 0.05 * length
    # the folded bias: at the centre the new row gives the trained rows' median logit
    at_centre = float(np.median(head.weights[:-1] @ centre))
    assert abs(float(row @ centre) - at_centre) <= 0.05 * abs(at_centre) + 0.05, (float(row @ centre), at_centre)
    assert not head.has_bias
    before = _accuracy(cosine_export["int8"], synthetic_data["test"])
    after = _accuracy(enrolled, synthetic_data["test"])
    assert after["bar"] >= 0.8, after
    # a sanity bound on 12 test images each (the geometry is pinned above)
    assert after["disc"] >= before["disc"] - 0.2 and after["square"] >= before["square"] - 0.2, (before, after)
    # the default also refits the imprinted row (edgeshop.adapt.enroll.learn_rows): the same bounds hold
    refitted = tmp_path / "refitted.tflite"
    assert enroll_main([str(without), "--data", str(new), "--out", str(refitted)]) == 0
    assert isinstance(read_card(refitted.read_bytes()).extra["enrolment"][-1]["refit"], dict)
    after = _accuracy(refitted, synthetic_data["test"])
    assert after["bar"] >= 0.8, after
    assert after["disc"] >= before["disc"] - 0.2 and after["square"] >= before["square"] - 0.2, (before, after)


def test_a_cosine_head_model_opens_in_mediapipe_and_agrees(client_python, cosine_export, synthetic_data):  # noqa: F811
    """L2_NORMALIZATION and a bias-less FULLY_CONNECTED are builtin ops: the standard client runs it."""
    images = sorted(Path(synthetic_data["test"]).rglob("*.png"))
    result = _client(client_python, cosine_export["int8"], images)
    assert "error" not in result, result
    ours = Classifier(cosine_export["int8"])
    agree = [result[str(p)][0][0] == ours.classify(cv2.imread(str(p)), top_k=1)[0].label for p in images]
    assert np.mean(agree) >= 0.95


def test_freeze_bn_leaves_the_cosine_heads_own_batchnorm_learning(synthetic_data, tmp_path):
    """--freeze-bn keeps the backbone's BatchNorm statistics, but the head's BatchNorm is new:
    frozen, its statistics would stay at their initial 0 / 1 and it would centre nothing."""
    from edgeshop.train.config import TrainConfig
    from edgeshop.train.fit import train
    from edgeshop.train.run_model import load_run_model

    train(TrainConfig.from_flat(data=str(synthetic_data["train"]), out=str(tmp_path / "run"),
                                val_fraction=0.2, arch="tiny",
                      epochs=1, batch_size=16, lr=3e-3, head="cosine", freeze_bn=True))
    model = load_run_model(tmp_path / "run")
    assert np.any(model.get_layer("embedding_bn").moving_mean.numpy() != 0)
    assert np.all(model.get_layer("stem_bn").moving_mean.numpy() == 0)  # frozen, as asked


def test_seed_cnn_has_no_cosine_head():
    from edgeshop.train.architectures import build_seed_cnn

    with pytest.raises(EdgeshopError, match="only the linear head"):
        build_seed_cnn(3, 64, head="cosine")


def test_the_head_setting_is_checked():
    from edgeshop.train.config import TrainConfig

    with pytest.raises(EdgeshopError, match="model.head must be"):
        TrainConfig.from_flat(data="d", out="o", head="arcface").validate()
    with pytest.raises(EdgeshopError, match="model.cosine_scale"):
        TrainConfig.from_flat(data="d", out="o", head="cosine", cosine_scale=0).validate()
