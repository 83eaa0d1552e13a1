"""A model that learned nothing is flagged; the export gate says what to do (issue 37 item 6)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edgeshop.report.metrics import did_not_learn
from edgeshop.train.verify_gate import VerificationError, require_agreement


def test_chance_level_and_one_dominant_class_are_named():
    labels = ["apple", "kiwi", "leek"]
    truth = np.repeat([0, 1, 2], 10)
    one_class = np.eye(3)[np.zeros(30, int)]  # everything "apple": 33% on 3 balanced classes
    warnings = did_not_learn(truth, one_class, labels)
    assert len(warnings) == 2
    assert "top-1 33.3% is within 2% of chance (33.3%)" in warnings[0]
    assert "100% of the validation images are predicted as 'apple'" in warnings[1]
    assert did_not_learn(truth, np.eye(3)[truth], labels) == []  # a model that learned: silent
    near = np.eye(3)[np.r_[truth[:11], np.full(19, 2)]]  # 11 + 10/19 right: 70%, leek 63% of predictions
    assert did_not_learn(truth, near, labels) == []


def test_training_on_indistinguishable_classes_ends_with_a_warning(tmp_path, capsys):
    from edgeshop.cli import train as train_cli

    # every class holds the same pictures: no model can tell the classes apart
    rng = np.random.default_rng(0)
    pictures = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(8)]
    for label in ("apple", "kiwi", "leek"):
        (tmp_path / "data" / label).mkdir(parents=True)
        for i, picture in enumerate(pictures):
            cv2.imwrite(str(tmp_path / "data" / label / f"{label}_{i}.png"), picture)
    out = tmp_path / "run"
    assert train_cli.main(["--data", str(tmp_path / "data"), "--out", str(out), "--arch", "tiny", "--image-size",
                           "32", "--epochs", "1", "--batch-size", "8", "--val-fraction", "0.25", "--no-augment"]) == 0
    printed = capsys.readouterr().out
    assert "warning: " in printed and "of the validation images are predicted as" in printed
    assert "--arch tiny only checks the pipeline" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert any("predicted as" in w for w in metrics["warnings"])


@pytest.mark.parametrize(("fmt", "advice"), [("int8", "--qat-epochs"), ("float32", "card.json")])
def test_the_export_gate_says_what_to_do(fmt, advice):
    with pytest.raises(VerificationError) as refused:
        require_agreement({"top1_agreement": 0.576, "images": 64}, fmt, "runs/quick")
    message = str(refused.value)
    assert "agrees with the Keras model on 57.6% of 64" in message and advice in message
    assert "--no-verify for a pipeline check" in message or "pass --no-verify" in message
    assert "\n" not in message
