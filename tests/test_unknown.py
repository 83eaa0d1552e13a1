"""'Not one of my products': the separation measures, the Classifier's unknown marking from the
threshold in the card, edgeshop-eval --unknown, edgeshop-classify's output, smoothing and the
Raspberry Pi example."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import cv2
import numpy as np
import pytest
from conftest import DATA, REPO
from test_stream_and_smoothing import make_video

from edgeshop.cli import classify as classify_cli
from edgeshop.cli import eval as eval_cli
from edgeshop.errors import ModelCardError
from edgeshop.report.openset import auroc, auroc_interval, fpr_at_tpr, known_scores, threshold_at_tpr
from edgeshop.runtime.classifier import Classifier
from edgeshop.runtime.smoothing import Smoother
from edgeshop.tflite.modelcard import embed_card, read_card


# --- the measures, by hand -------------------------------------------------------------------
def test_auroc_and_fpr_at_95_tpr_by_hand():
    known, unknown = np.array([0.9, 0.8, 0.7]), np.array([0.75, 0.1])
    assert auroc(known, unknown) == pytest.approx(5 / 6)  # 0.7 loses to 0.75, every other pair is won
    assert auroc(np.array([0.5]), np.array([0.5])) == 0.5  # a tie counts half
    assert auroc(unknown, known) == pytest.approx(1 / 6)
    assert threshold_at_tpr(known, 0.95) == 0.7  # keeping 95% of three images keeps all three
    assert threshold_at_tpr(np.arange(100.0), 0.95) == 5.0  # keeps 5..99: 95 images
    assert fpr_at_tpr(known, unknown, 0.95) == 0.5  # 0.75 passes 0.7, 0.1 does not


def test_auroc_interval_matches_hanley_and_mcneil_and_narrows_with_more_images():
    rng = np.random.default_rng(1)
    known, unknown = rng.normal(1.0, 1.0, 200), rng.normal(0.0, 1.0, 200)
    a = auroc(known, unknown)
    # Hanley & McNeil (1982): the AUROC's standard error from its value and the two counts
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    se = np.sqrt((a * (1 - a) + 199 * (q1 - a * a) + 199 * (q2 - a * a)) / (200 * 200))
    low, high = auroc_interval(known, unknown)
    assert low < a < high
    assert (low, high) == pytest.approx((a - 1.96 * se, a + 1.96 * se), abs=0.004)  # 90%: off by 0.008
    few = auroc_interval(known[:30], unknown[:30])
    assert few[1] - few[0] > 1.8 * (high - low), "seven times fewer images: a much wider interval"
    assert auroc_interval(np.array([0.9, 0.8]), np.array([0.1, 0.2])) == (1.0, 1.0)  # always separated


def test_scores_of_each_method():
    logits = np.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    outputs = {"scores": np.array([[0.8, 0.15, 0.05], [0.34, 0.33, 0.33]]), "logits": logits,
               "embedding": np.array([[1.0, 0.0], [0.0, 3.0]])}
    assert known_scores("max_score", outputs).tolist() == [0.8, 0.34]
    assert known_scores("max_logit", outputs).tolist() == [2.0, 0.0]
    np.testing.assert_allclose(known_scores("energy", outputs), np.log(np.exp(logits).sum(1)))
    reference = np.array([[2.0, 0.0], [1.0, 1.0]])  # the first query lies on the first reference's ray
    np.testing.assert_allclose(known_scores("knn", outputs, reference, k=1), [0.0, -np.sqrt(2 - np.sqrt(2))])


# --- the Classifier ----------------------------------------------------------------------------
def _frames(synthetic_data) -> list[np.ndarray]:
    return [cv2.imread(str(p)) for p in sorted(synthetic_data["test"].rglob("*.png"))]


def test_classifier_marks_frames_below_the_cards_threshold_unknown(pipeline, synthetic_data, tmp_path):
    card = read_card(pipeline["int8"].read_bytes())
    frames = _frames(synthetic_data)
    plain = Classifier(pipeline["int8"], unknown_threshold=0.0)
    tops = np.array([plain.scores(f).max() for f in frames])
    assert not any(p.unknown for f in frames for p in plain.classify(f))  # 0: never unknown
    # A card whose threshold splits these frames in two, as edgeshop-calibrate would store it.
    threshold = float(np.median(tops))
    model = tmp_path / "with_threshold.tflite"
    extra = {**card.extra, "unknown": {**card.extra["unknown"], "threshold": threshold}}
    model.write_bytes(embed_card(pipeline["int8"].read_bytes(), replace(card, extra=extra)))
    classifier = Classifier(model)
    assert classifier.unknown_threshold == threshold
    for frame, top in zip(frames, tops, strict=True):
        predictions = classifier.classify(frame, top_k=2)
        assert [p.unknown for p in predictions] == [bool(top < threshold)] * 2
        assert predictions[0].label == plain.classify(frame, top_k=1)[0].label  # still says the nearest product
    assert 0 < np.mean(tops < threshold) < 1
    assert classifier.info["unknown_threshold"] == threshold


def test_a_card_threshold_outside_zero_one_is_refused(pipeline, tmp_path):
    card = read_card(pipeline["int8"].read_bytes())
    model = tmp_path / "bad.tflite"
    model.write_bytes(embed_card(pipeline["int8"].read_bytes(),
                                 replace(card, extra={**card.extra, "unknown": {"threshold": 1.5}})))
    with pytest.raises(ModelCardError, match="unknown threshold 1.5"):
        Classifier(model)


# --- edgeshop-eval --unknown -----------------------------------------------------------------
@pytest.fixture(scope="module")
def other_products(tmp_path_factory):
    """Images of products the synthetic model never saw: noise, flat colours, and shapes of the
    known classes in another class's colour would be too close; these are plainly other things."""
    root = tmp_path_factory.mktemp("unknown")
    rng = np.random.default_rng(7)
    for i in range(12):
        image = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
        if i % 3 == 1:
            image[:] = rng.integers(0, 256, 3, dtype=np.uint8)
        elif i % 3 == 2:
            cv2.line(image, (0, 0), (47, 47), (255, 0, 255), 6)
        cv2.imwrite(str(root / f"other_{i:02d}.png"), image)
    (root / "broken.jpg").write_bytes(b"not an image")
    return root


def test_eval_unknown_reports_auroc_fpr_and_known_accuracy(pipeline, synthetic_data, other_products, tmp_path):
    figures_file = tmp_path / "figures.json"
    code = eval_cli.main([str(pipeline["int8"]), "--data", str(synthetic_data["test"]), "--unknown",
                          str(other_products), "--reference", str(synthetic_data["train"]),
                          "--json", str(figures_file), "--report", str(tmp_path / "report")])
    assert code == 0
    figures = json.loads(figures_file.read_text())
    unknown = figures["unknown"]
    assert set(unknown["methods"]) == {"max_score", "max_logit", "energy", "knn"}
    assert unknown["unknown_images"] == 12 and unknown["skipped"] == 1
    # The same figures from the Classifier directly: an independent path to the numbers.
    classifier = Classifier(pipeline["int8"])
    frames = _frames(synthetic_data)
    known_top = np.array([classifier.scores(f).max() for f in frames])
    other_top = np.array([classifier.scores(cv2.imread(str(p))).max()
                          for p in sorted(other_products.glob("*.png"))])
    assert figures["unknown_auroc"] == pytest.approx(auroc(known_top, other_top))
    assert figures["unknown_fpr_at_95tpr"] == pytest.approx(fpr_at_tpr(known_top, other_top))
    low, high = unknown["unknown_auroc_interval"]
    assert low <= figures["unknown_auroc"] <= high
    assert f"(95% bootstrap interval {low:.3f}-{high:.3f})" in (tmp_path / "report" / "report.md").read_text()
    threshold = classifier.unknown_threshold
    assert unknown["threshold"] == threshold > 0
    paths = sorted(synthetic_data["test"].rglob("*.png"))
    correct = np.array([classifier.classify(f, top_k=1)[0].label == p.parent.name
                        for f, p in zip(frames, paths, strict=True)])
    assert figures["known_top1_at_threshold"] == pytest.approx(np.mean(correct & (known_top >= threshold)))
    assert unknown["unknown_rejected"] == pytest.approx(np.mean(other_top < threshold))
    assert "| knn |" in (tmp_path / "report" / "report.md").read_text()


def test_eval_unknown_with_an_empty_folder_is_one_line(pipeline, synthetic_data, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code = eval_cli.main([str(pipeline["int8"]), "--data", str(synthetic_data["test"]), "--unknown",
                          str(tmp_path / "empty"), "--json", str(tmp_path / "f.json")])
    assert code == 2
    assert "no images found" in capsys.readouterr().err
    assert not (tmp_path / "f.json").exists()


# --- the commands on a camera or video ---------------------------------------------------------
def test_classify_cli_marks_unknown_frames(tmp_path, capsys):
    video = make_video(tmp_path / "v.avi", [("disc",)] * 3)
    model = str(DATA / "tiny_int8.tflite")
    assert classify_cli.main([model, str(video), "--top-k", "1", "--unknown-threshold", "1.0"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["unknown"] for x in lines] == [True] * 3  # an int8 score never reaches 1.0
    assert all(x["predictions"][0]["unknown"] for x in lines)
    assert classify_cli.main([model, str(video), "--top-k", "1", "--unknown-threshold", "0"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["unknown"] for x in lines] == [False] * 3
    assert [x["predictions"][0]["label"] for x in lines] == ["disc"] * 3


@pytest.mark.parametrize("method", ["ema", "vote"])
def test_unknown_frames_take_a_stable_label_away(method):
    smoother = Smoother(["a", "b"], method, alpha=0.5, window=4, enter=0.6, exit=0.4)
    for _ in range(4):
        assert smoother.update(np.array([0.9, 0.1])).label in (None, "a")
    assert smoother.update(np.array([0.9, 0.1])).label == "a"
    labels = [smoother.update(np.array([0.9, 0.1]), unknown=True).label for _ in range(4)]
    assert labels[-1] is None  # the same scores, but marked unknown: no product in the slot


def test_raspberry_pi_example_reports_no_product_for_unknown_frames(tmp_path):
    frames = [("disc", "bar")] * 8
    video = make_video(tmp_path / "shelf.avi", frames)
    config = {"model": str(DATA / "tiny_int8.tflite"), "source": str(video), "threads": 1,
              "unknown_threshold": 1.0, "heartbeat_seconds": 0,
              "slots": [{"name": "left", "roi": [0, 0, 48, 48]}, {"name": "right", "roi": [48, 0, 48, 48]}]}
    (tmp_path / "shelf.json").write_text(json.dumps(config))
    script = REPO / "examples" / "raspberry_pi" / "shelf_watch.py"
    result = subprocess.run([sys.executable, str(script), "--config", str(tmp_path / "shelf.json")],
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    events = [json.loads(x) for x in result.stdout.splitlines()]
    assert events[0]["unknown_threshold"] == 1.0
    assert not [e for e in events if e["event"] == "slot_changed"]  # every frame is unknown: no product
    assert sum(e["unknown_slot_frames"] for e in events if e["event"] == "heartbeat") == 16
