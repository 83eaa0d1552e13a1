"""edgeshop-eval's files are readable: compact eval.json, confused pairs and per-bin counts (issue 37 item 8)."""

from __future__ import annotations

import json

from conftest import DATA

from edgeshop.cli import eval as eval_cli

MODEL = str(DATA / "tiny_int8.tflite")


def test_eval_json_is_one_line_per_matrix_row_and_the_report_counts(tmp_path, capsys):
    target, report = tmp_path / "eval.json", tmp_path / "report"
    assert eval_cli.main([MODEL, "--data", str(DATA / "synthetic"), "--json", str(target), "--report",
                          str(report)]) == 0
    figures = json.loads(target.read_text())
    labels, matrix = figures["labels"], figures["confusion_matrix"]
    lines = [line.strip().rstrip(",") for line in target.read_text().splitlines()]
    assert all(json.dumps(row) in lines for row in matrix), "each row of the matrix on one line of the file"
    assert len(labels) == len(matrix) == 3
    bins = figures["reliability"]
    assert bins and all(b["count"] > 0 for b in bins) and sum(b["count"] for b in bins) == figures["n"]
    markdown = (report / "report.md").read_text()
    assert "## Most confused pairs" in markdown and "## Reliability" in markdown
    for b in bins:
        assert f"| {b['low']:.2f}-{b['high']:.2f} | {b['count']} |" in markdown
    for pair in figures["most_confused"]:
        assert f"| {pair['true']} | {pair['predicted']} | {pair['count']} |" in markdown
    assert (report / "reliability.png").read_bytes()[:4] == b"\x89PNG"
    # a second run replaces them only with --force
    capsys.readouterr()
    assert eval_cli.main([MODEL, "--data", str(DATA / "synthetic"), "--report", str(report)]) == 2
    assert "report.md already exists; pass --force" in capsys.readouterr().err
    assert eval_cli.main([MODEL, "--data", str(DATA / "synthetic"), "--report", str(report), "--force"]) == 0
