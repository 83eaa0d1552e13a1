"""Metrics against answers worked out by hand; eval, bench and compare end to end."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from conftest import DATA

from edgeshop.cli import bench as bench_cli
from edgeshop.cli import compare as compare_cli
from edgeshop.cli import eval as eval_cli
from edgeshop.errors import DataError
from edgeshop.report.metrics import (
    coarse_accuracy,
    confusion_matrix,
    expected_calibration_error,
    most_confused,
    paired_difference_interval,
    per_class,
    summarize,
    top_k_accuracy,
    wilson_interval,
)

LABELS = ["apple", "kiwi", "lime"]
# six images: truth and prediction worked through by hand below
TRUTH = np.array([0, 0, 0, 1, 1, 2])
SCORES = np.array([
    [0.8, 0.1, 0.1],  # apple -> apple
    [0.6, 0.3, 0.1],  # apple -> apple
    [0.2, 0.7, 0.1],  # apple -> kiwi   (apple is 2nd)
    [0.1, 0.5, 0.4],  # kiwi  -> kiwi
    [0.1, 0.2, 0.7],  # kiwi  -> lime   (kiwi is 2nd)
    [0.3, 0.6, 0.1],  # lime  -> kiwi   (lime is 3rd)
])


def test_confusion_matrix_and_per_class_by_hand():
    predicted = SCORES.argmax(1)
    matrix = confusion_matrix(TRUTH, predicted, 3)
    assert matrix.tolist() == [[2, 1, 0], [0, 1, 1], [0, 1, 0]]
    rows = {r["label"]: r for r in per_class(matrix, LABELS)}
    assert rows["apple"] == {"label": "apple", "precision": 1.0, "recall": 2 / 3, "f1": pytest.approx(0.8),
                             "support": 3}
    assert rows["kiwi"]["precision"] == pytest.approx(1 / 3) and rows["kiwi"]["recall"] == 0.5
    assert rows["kiwi"]["f1"] == pytest.approx(0.4)  # 2 * (1/3 * 1/2) / (1/3 + 1/2)
    assert rows["lime"] == {"label": "lime", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert most_confused(matrix, LABELS, top=2) == [
        {"true": "apple", "predicted": "kiwi", "count": 1}, {"true": "kiwi", "predicted": "lime", "count": 1}]


def test_top_k_and_coarse_accuracy_by_hand():
    assert top_k_accuracy(TRUTH, SCORES, 1) == pytest.approx(3 / 6)
    assert top_k_accuracy(TRUTH, SCORES, 2) == pytest.approx(5 / 6)
    assert top_k_accuracy(TRUTH, SCORES, 3) == 1.0
    citrus = {"apple": "apple", "kiwi": "kiwi", "lime": "citrus"}
    assert coarse_accuracy(TRUTH, SCORES.argmax(1), LABELS, citrus) == pytest.approx(3 / 6)
    green = {"apple": "fruit", "kiwi": "fruit", "lime": "citrus"}
    # the apple->kiwi confusion is right at the coarse level: 4 of 6
    assert coarse_accuracy(TRUTH, SCORES.argmax(1), LABELS, green) == pytest.approx(4 / 6)
    with pytest.raises(DataError, match="no coarse class for .'kiwi', 'lime'."):
        coarse_accuracy(TRUTH, SCORES.argmax(1), LABELS, {"apple": "x"})


def test_wilson_interval_against_published_values():
    # by hand, z = 1.96: 5/10 -> 0.5 -+ 1.96 * sqrt(0.025 + 0.0096) / 1.3842 = 0.2366-0.7634
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    low, high = wilson_interval(10, 10)
    assert low == pytest.approx(0.7225, abs=1e-4) and high == 1.0
    narrow, wide = wilson_interval(900, 1000), wilson_interval(9, 10)
    assert narrow[1] - narrow[0] < wide[1] - wide[0], "more images, narrower interval"


def test_paired_difference_interval_matches_the_normal_approximation_and_beats_two_wilson_intervals():
    same = np.ones(296, bool)
    assert paired_difference_interval(same, same) == (0.0, 0.0)  # agreeing models: no doubt about the difference
    # 300 images: a right and b wrong on 15, the reverse on 5, both agree on the rest
    a = np.zeros(300, bool)
    b = np.zeros(300, bool)
    a[:15] = b[15:20] = True
    a[20:250] = b[20:250] = True
    d = a.astype(float) - b
    half = 1.96 * d.std() / np.sqrt(len(d))  # by hand: 1.96 x 0.256 / sqrt(300) = 0.029
    low, high = paired_difference_interval(a, b)
    assert (low + high) / 2 == pytest.approx(d.mean(), abs=0.002)
    assert 0.95 < (high - low) / (2 * half) < 1.05  # a 90% interval would be 0.84 of this width
    wa, wb = wilson_interval(int(a.sum()), 300), wilson_interval(int(b.sum()), 300)
    unpaired = np.hypot(wa[1] - wa[0], wb[1] - wb[0])  # the width two independent samples would give
    assert high - low < 0.6 * unpaired, "pairing cancels the images both models agree on"
    with pytest.raises(ValueError, match="equally long"):
        paired_difference_interval(a, b[:10])


def test_expected_calibration_error_by_hand():
    truth = np.array([0, 0, 1, 1])
    scores = np.array([[0.9, 0.1], [0.9, 0.1], [0.7, 0.3], [0.3, 0.7]])
    # bin (0.8, 0.867]: two images, confidence 0.9, accuracy 1.0 -> gap 0.1, weight 1/2
    # bin (0.667, 0.733]: two images, confidence 0.7, accuracy 0.5 -> gap 0.2, weight 1/2
    assert expected_calibration_error(truth, scores) == pytest.approx(0.5 * 0.1 + 0.5 * 0.2)


def test_summarize_collects_everything():
    figures = summarize(TRUTH, SCORES, LABELS, {"apple": "a", "kiwi": "k", "lime": "l"})
    assert figures["n"] == 6 and figures["top1"] == 0.5
    assert figures["macro_recall"] == pytest.approx((2 / 3 + 0.5 + 0) / 3)
    assert figures["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 1, 0]]
    json.dumps(figures)


def test_eval_cli_end_to_end(tmp_path, capsys):
    data = tmp_path / "synthetic"  # a copy: the test adds a class folder, never inside the source tree
    shutil.copytree(DATA / "synthetic", data)
    (data / "broken").mkdir()
    (data / "broken" / "x.png").write_bytes(b"not an image")
    hierarchy = tmp_path / "classes.csv"
    hierarchy.write_text("name,id,coarse\nbar,0,line\ndisc,1,round\nsquare,2,box\nbroken,3,x\n")
    code = eval_cli.main([str(DATA / "tiny_int8.tflite"), "--data", str(data), "--json", str(tmp_path / "e.json"),
                          "--report", str(tmp_path / "rep"), "--hierarchy", str(hierarchy),
                          "--compare", str(DATA / "tiny_int8.tflite")])
    shutil.rmtree(data / "broken")
    assert code == 2  # "broken" is a class the model does not know: refused with a clear message
    assert "classes the model does not know" in capsys.readouterr().err
    code = eval_cli.main([str(DATA / "tiny_int8.tflite"), "--data", str(data), "--json", str(tmp_path / "e.json"),
                          "--report", str(tmp_path / "rep"), "--compare", str(DATA / "tiny_int8.tflite")])
    assert code == 0
    figures = json.loads((tmp_path / "e.json").read_text())
    assert figures["n"] == 6 and figures["top1"] == 1.0 and figures["skipped"] == 0
    assert {c["label"] for c in figures["per_class"]} == {"bar", "disc", "square"}
    assert figures["compare"]["top1_agreement"] == 1.0 and figures["compare"]["top1_delta"] == 0.0
    assert "## Per class" in (tmp_path / "rep" / "report.md").read_text()
    # a hierarchy that misses one of the model's classes: one line naming the file, no traceback
    partial = tmp_path / "partial.csv"
    partial.write_text("name,id,coarse\nbar,0,line\ndisc,1,round\n")
    assert eval_cli.main([str(DATA / "tiny_int8.tflite"), "--data", str(data), "--hierarchy", str(partial)]) == 2
    err = capsys.readouterr().err
    assert f"{partial}: no coarse class for ['square']" in err and "Traceback" not in err


def test_bench_cli_reports_the_agreed_fields(tmp_path):
    out = tmp_path / "bench.json"
    assert bench_cli.main([str(DATA / "tiny_int8.tflite"), "--runs", "20", "--warmup", "2", "--json", str(out),
                           "--end-to-end", str(DATA / "synthetic" / "disc" / "disc_000.png")]) == 0
    result = json.loads(out.read_text())
    for key in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "fps", "first_ms", "size_bytes", "size_gzip_bytes",
                "threads", "backend", "peak_rss_mb"):
        assert key in result, key
    assert result["p50_ms"] <= result["p90_ms"] <= result["p99_ms"]
    assert result["size_gzip_bytes"] < result["size_bytes"] and result["backend"] == "litert"
    assert result["end_to_end"]["p50_ms"] >= result["p50_ms"] * 0.5
    assert bench_cli.main([str(DATA / "tiny_int8.tflite"), "--threads-sweep", "1,2", "--runs", "5",
                           "--json", str(out), "--force"]) == 0  # replacing the first result needs --force
    assert [r["threads"] for r in json.loads(out.read_text())["sweep"]] == [1, 2]


def test_compare_report_of_the_pipeline_run(pipeline, synthetic_data, tmp_path):
    out = tmp_path / "cmp"
    assert compare_cli.main([str(pipeline["run"]), "--data", str(synthetic_data["test"]), "--out", str(out),
                             "--runs-timed", "10"]) == 0
    result = json.loads((out / "comparison.json").read_text())
    names = [v["variant"] for v in result["variants"]]
    assert names == ["float32", "float16", "dynamic-range", "PTQ int8", "pruned+QAT int8"]
    integer = {v["variant"]: v["fully_integer"] for v in result["variants"]}
    assert integer == {"float32": False, "float16": False, "dynamic-range": False, "PTQ int8": True,
                       "pruned+QAT int8": True}
    assert all(v["top1"] > 0.8 for v in result["variants"])
    page = (out / "comparison.html").read_text()
    assert page.count("data:image/png;base64,") == 3
    assert not re.search(r"(src|href)=\"https?://", page)  # renders with no network
    table = (out / "comparison.md").read_text()
    assert "| pruned+QAT int8 |" in table
    # the HTML table holds the Markdown table's cells (both rendered from comparison.json)
    for line in table.splitlines()[6:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>" in page, line
