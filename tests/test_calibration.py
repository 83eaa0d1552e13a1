"""Calibrated scores built into the model: the temperature fit, the SOFTMAX beta rewrite, export's
calibration on the run's validation images, edgeshop-calibrate, edgeshop-eval's calibration figures,
and MediaPipe reading the calibrated scores from the model file as it is."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
import test_clients
from conftest import DATA, REPO, TESTS
from synthetic import make_dataset
from test_clients import _client, _synthetic_images

from edgeshop.adapt.probe import HeadProbe, loaded, model_scores
from edgeshop.adapt.temperature import BETA_RANGE, fit_beta, negative_log_likelihood, softmax
from edgeshop.cli import calibrate as calibrate_cli
from edgeshop.cli import eval as eval_cli
from edgeshop.cli.demo import DEFAULT_DATA as DEMO_DATA
from edgeshop.data import discover, load_images
from edgeshop.report.calibration import ece_of_a_calibrated_model, reliability_diagram
from edgeshop.report.metrics import expected_calibration_error, reliability_bins
from edgeshop.runtime.classifier import Classifier
from edgeshop.tflite.modelcard import read_card, split_archive
from edgeshop.tflite.tflite_head import softmax_beta, with_softmax_beta

client_python = test_clients.client_python  # the standard clients' environment (a fixture)
OUTPUT_STEP = 1 / 256  # an int8/uint8 softmax output's quantisation step


def _test_pixels(model: Path, synthetic_data) -> tuple[np.ndarray, np.ndarray]:
    card = read_card(model.read_bytes())
    images = load_images(discover(synthetic_data["test"]), card.labels, card.input)
    return images.pixels, images.labels.astype(np.int64)


def _reference_ece(truth: np.ndarray, scores: np.ndarray, bins: int = 15) -> float:
    """ECE written out here, sharing no code with edgeshop.report.metrics: the top score c goes
    to bin ceil(c * bins) - 1, i.e. bin k holds (k/bins, (k+1)/bins], so 1.0 is in the last bin."""
    confidence, right = scores.max(1).astype(np.float64), scores.argmax(1) == truth
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    gaps = [np.sum(index == k) * abs(right[index == k].mean() - confidence[index == k].mean())
            for k in np.unique(index)]
    return float(sum(gaps) / len(truth))


def _nll(logits: np.ndarray, truth: np.ndarray, beta: float) -> float:
    """Mean -log softmax(beta * logits)[truth], written out here (not the code under test)."""
    z = beta * logits.astype(np.float64)
    return float(np.mean(np.log(np.exp(z).sum(1)) - z[np.arange(len(truth)), truth]))


# --- the measures, by hand -------------------------------------------------------------------
def test_ece_by_hand_counts_a_wrong_answer_at_confidence_one():
    """A wrong prediction at confidence exactly 1.0 is the worst calibration there is: ECE 1.0."""
    truth, scores = np.array([0]), np.array([[0.0, 1.0]])
    assert expected_calibration_error(truth, scores) == 1.0
    assert sum(row["count"] for row in reliability_bins(truth, scores)) == 1
    # Four images, 15 bins, one image per bin: ECE = mean |right - confidence|
    #   [0.0, 1.0]  truth 0: wrong at 1.00 -> |0 - 1.00| = 1.00  (bin (14/15, 1])
    #   [0.9, 0.1]  truth 0: right at 0.90 -> |1 - 0.90| = 0.10
    #   [0.3, 0.7]  truth 1: right at 0.70 -> |1 - 0.70| = 0.30
    #   [0.62, 0.38] truth 1: wrong at 0.62 -> |0 - 0.62| = 0.62
    #   ECE = (1.00 + 0.10 + 0.30 + 0.62) / 4 = 0.505
    truth = np.array([0, 0, 1, 1])
    scores = np.array([[0.0, 1.0], [0.9, 0.1], [0.3, 0.7], [0.62, 0.38]])
    assert expected_calibration_error(truth, scores) == pytest.approx(0.505)
    rows = reliability_bins(truth, scores)
    assert sum(row["count"] for row in rows) == 4
    assert (rows[-1]["count"], rows[-1]["accuracy"], rows[-1]["confidence"]) == (1, 0.0, 1.0)


def _curve_rows(png: Path) -> np.ndarray:
    """Image rows holding the first curve's colour (matplotlib's first, #1f77b4) left of the
    legend, which sits in the lower right."""
    image = cv2.imread(str(png))[:, :, ::-1].astype(int)
    blue = np.abs(image - np.array([0x1F, 0x77, 0xB4])).sum(2) < 60
    blue[:, int(image.shape[1] * 0.55):] = False
    return np.flatnonzero(blue.any(1))


def test_the_reliability_diagram_plots_the_data(tmp_path):
    """Confidences 0.34-0.48 (three classes) always right: the curve runs along the top of the
    plot; always wrong: along its bottom. A diagram that ignores the data cannot pass."""
    confidence = np.linspace(0.34, 0.48, 40)
    scores = np.stack([confidence, (1 - confidence) / 2, (1 - confidence) / 2], 1)
    for name, truth in (("right", np.zeros(40, int)), ("wrong", np.ones(40, int))):
        reliability_diagram(tmp_path / f"{name}.png", {name: (truth, scores)})
    right, wrong = _curve_rows(tmp_path / "right.png"), _curve_rows(tmp_path / "wrong.png")
    height = cv2.imread(str(tmp_path / "right.png")).shape[0]
    assert len(right) and len(wrong)
    assert right.max() < 0.3 * height and wrong.min() > 0.7 * height, (right, wrong, height)


# --- the fit ---------------------------------------------------------------------------------
def test_fit_beta_recovers_the_temperature_that_generated_the_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 2.0, (6000, 8))
    truth = np.array([rng.choice(8, p=p) for p in softmax(logits, 2.5)])
    assert fit_beta(logits, truth) == pytest.approx(2.5, rel=0.06)
    # and the fitted value is the NLL minimum, not just near it
    beta = fit_beta(logits, truth)
    assert negative_log_likelihood(logits, truth, beta) <= min(
        negative_log_likelihood(logits, truth, beta * f) for f in (0.9, 1.1))


def test_noise_floor_of_ece_is_what_a_calibrated_model_shows():
    rng = np.random.default_rng(1)
    confidence = rng.uniform(0.3, 1.0, 300)
    floor = ece_of_a_calibrated_model(confidence)
    assert 0.02 < floor["median"] < 0.08 and floor["p05"] < floor["median"] < floor["p95"]
    assert ece_of_a_calibrated_model(np.ones(300))["median"] == 0.0  # always right at confidence 1


# --- the rewrite -----------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["int8", "float16", "float32"])
def test_softmax_beta_gives_softmax_of_scaled_logits_and_keeps_archive_and_metadata(pipeline, synthetic_data,
                                                                                     key):
    from edgeshop.train.tflite_metadata import read_metadata

    original = pipeline[key].read_bytes()
    rewritten = with_softmax_beta(original, 0.5)
    assert softmax_beta(rewritten) == pytest.approx(0.5)
    flat_old, members_old = split_archive(original)
    flat_new, members_new = split_archive(rewritten)
    assert members_new == members_old  # labels.txt and the card, byte for byte
    assert read_metadata(flat_new) == read_metadata(flat_old)
    assert len(flat_new) == pytest.approx(len(flat_old), abs=64)  # one float, not a second copy of anything

    pixels, _ = _test_pixels(pipeline[key], synthetic_data)
    with loaded(original) as classifier:
        logits = HeadProbe(classifier).run_many(pixels)["logits"]
    scores = model_scores(rewritten, pixels)
    tolerance = OUTPUT_STEP + 2e-3 if key == "int8" else 1e-5  # int8: a lookup-table exp, then 1/256 steps
    np.testing.assert_allclose(scores, softmax(logits, 0.5), atol=tolerance)
    assert np.abs(scores - softmax(logits, 1.0)).max() > 10 * tolerance  # the change is real
    assert (scores.argmax(1) == model_scores(with_softmax_beta(original, 1.0), pixels).argmax(1)).all()


def test_a_model_without_a_softmax_head_is_refused_with_one_line(pipeline, tmp_path):
    from edgeshop.errors import ModelLoadError
    from edgeshop.tflite.tflite_head import find_head, read_model, write_model

    model = read_model(pipeline["float32"].read_bytes())
    model.subgraphs[0].outputs = [find_head(model).logits]  # the logits as the output: no softmax left
    with pytest.raises(ModelLoadError, match="not produced by a SOFTMAX layer"):
        with_softmax_beta(write_model(model, pipeline["float32"].read_bytes()), 2.0)


# --- export ----------------------------------------------------------------------------------
def _validation_pixels(pipeline, card) -> tuple[np.ndarray, np.ndarray]:
    """The run's validation images (the split training held out), preprocessed for ``card``."""
    from edgeshop.train.config import TrainConfig
    from edgeshop.train.fit import split_samples

    config = TrainConfig.from_saved(json.loads((pipeline["run"] / "config.json").read_text()))
    images = load_images(split_samples(config)[1], card.labels, card.input)
    return images.pixels, images.labels.astype(np.int64)


@pytest.mark.parametrize("key", ["int8", "float16"])
def test_export_calibrates_on_the_runs_validation_images(pipeline, key):
    """The card's figures are those of the written model on the run's validation images, measured
    here (ECE written out in this file), and `Classifier` keeps 95% of those images (within one)
    at the card's threshold, and no more than it must."""
    content = pipeline[key].read_bytes()
    card = read_card(content)
    calibration, unknown = card.extra["calibration"], card.extra["unknown"]
    assert softmax_beta(content) == pytest.approx(calibration["beta"])
    assert calibration["temperature"] == pytest.approx(1 / calibration["beta"])
    assert "validation fraction 0.2" in calibration["data"]
    pixels, truth = _validation_pixels(pipeline, card)
    assert calibration["images"] == len(truth) == 24
    classifier = Classifier(pipeline[key])
    with loaded(with_softmax_beta(content, 1.0)) as plain:
        for figures, model in (("before", plain), ("after_in_sample", classifier)):
            scores = np.stack([model.scores_from_pixels(p) for p in pixels])
            assert calibration[figures]["ece"] == pytest.approx(_reference_ece(truth, scores), abs=1e-6), figures
            assert calibration[figures]["top1"] == pytest.approx(np.mean(scores.argmax(1) == truth)), figures
    assert calibration["top1_changed"] == 0
    assert unknown["method"] == "max_score" and classifier.unknown_threshold == unknown["threshold"]
    tops = np.array([classifier.scores_from_pixels(p).max() for p in pixels])
    needed = math.ceil(0.95 * len(truth))  # 23 of 24
    kept = sum(not classifier.rank(classifier.scores_from_pixels(p), 1)[0].unknown for p in pixels)
    assert kept >= needed - 1 and np.sum(tops > unknown["threshold"]) <= needed, (kept, unknown["threshold"], tops)


def test_export_no_calibrate_leaves_beta_one(pipeline):
    content = pipeline["float32"].read_bytes()  # the fixture exports float32 with calibrate=False
    assert softmax_beta(content) == 1.0
    assert "calibration" not in read_card(content).extra


# --- edgeshop-calibrate ----------------------------------------------------------------------
def test_calibrate_cli_writes_a_calibrated_model_and_refuses_to_overwrite(pipeline, synthetic_data, tmp_path,
                                                                          capsys):
    out, record_file = tmp_path / "calibrated.tflite", tmp_path / "calibration.json"
    args = [str(pipeline["float32"]), "--data", str(synthetic_data["test"]), "--out", str(out)]
    assert calibrate_cli.main([*args, "--json", str(record_file)]) == 0
    assert "temperature" in capsys.readouterr().out
    record = json.loads(record_file.read_text())
    content = out.read_bytes()
    assert softmax_beta(content) == pytest.approx(record["calibration"]["beta"])
    assert read_card(content).extra["calibration"]["beta"] == record["calibration"]["beta"]
    assert split_archive(content)[1].keys() == split_archive(pipeline["float32"].read_bytes())[1].keys()

    pixels, truth = _test_pixels(out, synthetic_data)
    logits = HeadProbe(Classifier(out)).run_many(pixels)["logits"]
    beta = record["calibration"]["beta"]
    # the temperature written is the NLL minimum on these images (unless the images cannot pin it)
    if not record["calibration"]["at_bound"]:
        assert negative_log_likelihood(logits, truth, beta) <= min(
            negative_log_likelihood(logits, truth, beta * f) for f in (0.8, 1.25))
    # recalibrating a calibrated model fits the same temperature (the fit starts from beta = 1)
    again = tmp_path / "again.tflite"
    assert calibrate_cli.main([str(out), "--data", str(synthetic_data["test"]), "--out", str(again)]) == 0
    assert softmax_beta(again.read_bytes()) == pytest.approx(beta, rel=1e-4)

    before = out.read_bytes()
    assert calibrate_cli.main(args) == 2
    assert "--force" in capsys.readouterr().err
    assert out.read_bytes() == before


def test_the_written_models_unknown_threshold_keeps_95_percent_of_the_calibration_images(tmp_path):
    """The promise in the card: `Classifier` on the calibrated file keeps 95% of the known images
    the threshold was chosen on (within one image), and no more than it must: a threshold taken
    from other scores (e.g. the uncalibrated ones, 0.29 instead of 0.75 here) keeps every image
    and rejects far fewer unknown products. The shipped grocery model and its demo test photos."""
    data = DEMO_DATA / "test"
    out = tmp_path / "calibrated.tflite"
    assert calibrate_cli.main([str(REPO / "models" / "grocery" / "grocery_int8.tflite"), "--data", str(data),
                               "--out", str(out)]) == 0
    classifier = Classifier(out)
    photos = sorted(p for p in data.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    frames = [cv2.imread(str(p)) for p in photos]
    tops = np.array([classifier.scores(f).max() for f in frames])
    unknown = np.array([classifier.classify(f, top_k=1)[0].unknown for f in frames])
    needed = math.ceil(0.95 * len(photos))  # 50 of the 52 photos
    assert len(photos) - unknown.sum() >= needed - 1, f"{len(photos) - unknown.sum()} of {len(photos)} kept"
    # the strictest threshold that keeps them: fewer than `needed` images score above it
    assert np.sum(tops > classifier.unknown_threshold) <= needed, (classifier.unknown_threshold, np.sort(tops))


def test_held_out_calibration_figures_are_cross_fitted(tmp_path):
    """The "after" NLL must come from images the temperature never saw. Constructed case: images
    the committed model gets right, plus one disc photo filed as a square. Whichever half that
    photo falls in, the other half is all right, so its NLL keeps falling as beta grows and its
    fit is the upper bound; the photo scored at that beta costs a lot. Fitted in-sample, the wrong
    photo pulls beta down instead, and the mean NLL is far lower."""
    data = make_dataset(tmp_path / "val", per_class=10, seed=5)
    misfiled = sorted((data / "disc").glob("*.png"))[0]
    shutil.move(misfiled, data / "square" / "misfiled_disc.png")
    out = tmp_path / "calibrated.tflite"
    record_file = tmp_path / "record.json"
    model = DATA / "tiny_int8.tflite"
    assert calibrate_cli.main([str(model), "--data", str(data), "--out", str(out), "--json", str(record_file)]) == 0
    record = json.loads(record_file.read_text())["calibration"]

    card = read_card(model.read_bytes())
    images = load_images(discover(data), card.labels, card.input)
    logits = HeadProbe(Classifier(model)).run_many(images.pixels)["logits"]
    truth = images.labels.astype(np.int64)
    wrong = np.flatnonzero(logits.argmax(1) != truth)
    assert [images.paths[i].name for i in wrong] == ["misfiled_disc.png"]  # the case is as constructed
    in_sample = min(_nll(logits, truth, b) for b in np.geomspace(*BETA_RANGE, 2000))
    at_upper_bound = _nll(logits[wrong], truth[wrong], BETA_RANGE[1])  # the wrong photo alone, at beta 10
    n = len(truth)
    assert record["after_crossfit"]["nll"] >= at_upper_bound / n * 0.99
    assert record["after_crossfit"]["nll"] > in_sample + 0.1, (record["after_crossfit"]["nll"], in_sample)


def test_calibrate_cli_bad_input_is_one_line_and_writes_nothing(pipeline, synthetic_data, tmp_path, capsys):
    out = tmp_path / "out.tflite"
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(split_archive(pipeline["int8"].read_bytes())[0])  # no card, no labels
    cases = [
        ([str(pipeline["int8"]), "--data", str(tmp_path / "missing")], "does not exist"),
        ([str(bare), "--data", str(synthetic_data["test"])], "no edgeshop model card"),
        ([str(tmp_path / "nothing.tflite"), "--data", str(synthetic_data["test"])], "not found"),
    ]
    for args, message in cases:
        assert calibrate_cli.main([*args, "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
        assert not out.exists()


# --- edgeshop-eval ---------------------------------------------------------------------------
def test_eval_reports_ece_with_and_without_the_temperature_and_draws_the_diagram(pipeline, synthetic_data,
                                                                                 tmp_path):
    report_dir, figures_file = tmp_path / "report", tmp_path / "figures.json"
    code = eval_cli.main([str(pipeline["int8"]), "--data", str(synthetic_data["test"]), "--json",
                          str(figures_file), "--report", str(report_dir)])
    assert code == 0
    figures = json.loads(figures_file.read_text())
    calibration = figures["calibration"]
    pixels, truth = _test_pixels(pipeline["int8"], synthetic_data)
    with loaded(with_softmax_beta(pipeline["int8"].read_bytes(), 1.0)) as plain:
        plain_scores = np.stack([plain.scores_from_pixels(p) for p in pixels])
    model = Classifier(pipeline["int8"])
    scores = np.stack([model.scores_from_pixels(p) for p in pixels])
    # ECEs measured here (not by expected_calibration_error): with the model's temperature exactly,
    # "without": the same model at beta 1, within the int8 output's step
    assert calibration["ece"] == pytest.approx(_reference_ece(truth, scores), abs=1e-6)
    assert figures["ece"] == pytest.approx(_reference_ece(truth, scores), abs=1e-6)
    assert calibration["ece_without_temperature"] == pytest.approx(_reference_ece(truth, plain_scores), abs=0.02)
    assert abs(calibration["ece_without_temperature"] - calibration["ece"]) > 0.05  # the temperature matters here
    assert calibration["beta"] == pytest.approx(softmax_beta(pipeline["int8"].read_bytes()))
    png = cv2.imread(str(report_dir / "reliability.png"))[:, :, ::-1].astype(int)
    for colour in ((0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E)):  # both curves drawn (matplotlib's first two colours)
        assert (np.abs(png - np.array(colour)).sum(2) < 40).sum() > 50, colour
    markdown = (report_dir / "report.md").read_text()
    assert "![reliability diagram](reliability.png)" in markdown and "without it" in markdown


# --- a standard client -----------------------------------------------------------------------
def test_mediapipe_reads_the_temperature_from_the_model_file(client_python, pipeline, synthetic_data, tmp_path):
    """MediaPipe knows nothing of edgeshop: its scores follow the SOFTMAX beta in the file."""
    images = _synthetic_images(synthetic_data)[:12]
    original = pipeline["int8"].read_bytes()
    tops = {}
    for beta in (0.4, 1.0):
        model = tmp_path / f"beta_{beta}.tflite"
        model.write_bytes(with_softmax_beta(original, beta))
        result = _client(client_python, model, images)
        assert "error" not in result, result
        ours = Classifier(model)
        edgeshop_top = {str(i): ours.classify(cv2.imread(str(i)), top_k=1)[0] for i in images}
        for image, top in edgeshop_top.items():
            label, score = result[image][0]
            assert label == top.label
            assert score == pytest.approx(top.score, abs=0.03)  # resize filters differ, scores do not
        tops[beta] = np.array([result[str(i)][0][1] for i in images])
    assert np.mean(tops[1.0] - tops[0.4]) > 0.1  # a hotter softmax gives lower top scores in MediaPipe too


def test_mediapipe_opens_the_export_calibrated_model(client_python, pipeline, synthetic_data):
    images = _synthetic_images(synthetic_data)
    result = _client(client_python, pipeline["int8"], images)
    assert "error" not in result, result
    assert read_card(pipeline["int8"].read_bytes()).extra["calibration"]["beta"] != 1.0


def test_calibrate_runs_on_a_device_without_tensorflow(tmp_path):
    """edgeshop-calibrate is runtime only: TensorFlow blocked, the committed tiny int8 model."""
    script = textwrap.dedent(f"""
        import sys
        for name in ("tensorflow", "tf_keras", "tensorflow_model_optimization", "keras"):
            sys.modules[name] = None  # any import of these now raises ImportError
        sys.path.insert(0, r"{TESTS}")
        from pathlib import Path
        from synthetic import make_dataset
        from edgeshop.cli import calibrate
        data = make_dataset(Path(r"{tmp_path}") / "val", per_class=6, seed=5)
        code = calibrate.main([r"{DATA / 'tiny_int8.tflite'}", "--data", str(data),
                               "--out", r"{tmp_path / 'out.tflite'}"])
        loaded = [m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tf_keras") and sys.modules[m]]
        assert not loaded, loaded
        print("exit", code)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "exit 0" in result.stdout
    content = (tmp_path / "out.tflite").read_bytes()
    assert softmax_beta(content) == pytest.approx(read_card(content).extra["calibration"]["beta"])
    assert softmax_beta(content) != 1.0
