"""Compare compression variants of trained runs on the same data and the same machine.

For each run: float32, float16, dynamic-range and post-training int8 exports of its
float model, plus its QAT int8 model when it has one ("pruned+QAT int8" after
pruning). Each is evaluated on the same images and timed in the same process with
the same threads. Writes comparison.json, comparison.md and a self-contained
comparison.html (plots inlined as PNG data; no network needed to view it).
"""

from __future__ import annotations

import base64
import gzip
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from edgeshop.datasets import discover, read_hierarchy
from edgeshop.errors import MissingExtraError
from edgeshop.report.evaluate import predict
from edgeshop.report.metrics import summarize
from edgeshop.runtime.bench import benchmark_model
from edgeshop.runtime.classifier import Classifier
from edgeshop.utils import write_bytes_atomic, write_json_atomic


def variants_of(run_dir: Path) -> list[tuple[str, str, bool]]:
    """(variant name, export format, ptq) for one run."""
    from edgeshop.train.run_model import read_run

    config, _, completed = read_run(run_dir)
    out = [("float32", "float32", False), ("float16", "float16", False), ("dynamic-range", "dynamic", False),
           ("PTQ int8", "int8", True)]
    if "qat" in completed:
        out.append(("pruned+QAT int8" if config.experimental.sparsity else "QAT int8", "int8", False))
    return out


def compare(runs: list[Path], data: str, out: Path, threads: int = 1, runs_timed: int = 50,
            hierarchy: str | None = None, classes: str | None = None) -> dict[str, Any]:
    from edgeshop.train.export import export

    out.mkdir(parents=True, exist_ok=True)
    samples = discover(data, classes)
    tree = read_hierarchy(Path(hierarchy)) if hierarchy else None
    rows = []
    for run in runs:
        for name, fmt, ptq in variants_of(run):
            label = name if len(runs) == 1 else f"{run.name}: {name}"
            model = out / "models" / f"{run.name}_{name.replace(' ', '_').replace('+', '_')}.tflite"
            report = export(run, model, fmt, ptq=ptq, force=True, require_integer=False, check=False)
            result = predict(Classifier(model), samples)  # streamed; progress bar and images/s on stderr
            figures = summarize(result.truth, result.scores, result.labels, tree)
            latency = benchmark_model(model, threads, runs=runs_timed, warmup=5)
            content = model.read_bytes()
            rows.append({
                "variant": label, "file": str(model), "top1": figures["top1"], "top5": figures["top5"],
                "coarse_top1": figures.get("coarse_top1"), "size_bytes": len(content),
                "size_gzip_bytes": len(gzip.compress(content, 9)), "p50_ms": latency["p50_ms"],
                "p90_ms": latency["p90_ms"], "fully_integer": report["audit"]["fully_integer"],
                "weight_sparsity": report["audit"]["weight_sparsity"], "n": figures["n"],
                "per_class": figures["per_class"], "confusion_matrix": figures["confusion_matrix"],
                "labels": figures["labels"],
            })
    result = {"data": str(data), "threads": threads, "timed_runs": runs_timed, "variants": rows}
    write_json_atomic(out / "comparison.json", result)
    write_bytes_atomic(out / "comparison.md", markdown(result).encode())
    write_bytes_atomic(out / "comparison.html", html_page(result).encode())
    return result


def _summary(result: dict[str, Any]) -> str:
    return (f"{result['variants'][0]['n']} images from `{result['data']}`; latency: median of {result['timed_runs']} "
            f"bare invokes, {result['threads']} thread(s), same process and machine.")


TABLE_HEADER = ("variant", "top-1", "size (MB)", "gzipped (MB)", "median latency (ms)", "fully integer",
                "weight sparsity")


def _table_rows(result: dict[str, Any]) -> list[tuple[str, ...]]:
    """The comparison table's cells, one tuple per variant: rendered as Markdown and as HTML."""
    rows = []
    for r in result["variants"]:
        sparsity = "-" if r["weight_sparsity"] is None else f"{r['weight_sparsity']:.2f}"
        rows.append((r["variant"], f"{r['top1']:.2%}", f"{r['size_bytes'] / 1e6:.3f}",
                     f"{r['size_gzip_bytes'] / 1e6:.3f}", f"{r['p50_ms']:.3f}", "yes" if r["fully_integer"] else "no",
                     sparsity))
    return rows


def markdown(result: dict[str, Any]) -> str:
    lines = ["# Compression variants compared", "", _summary(result), "",
             "| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in _table_rows(result)]
    return "\n".join(lines) + "\n"


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def plots(result: dict[str, Any]) -> dict[str, str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingExtraError("report", "matplotlib") from None
    rows = result["variants"]
    images = {}

    fig, ax = plt.subplots(figsize=(6, 4))
    sizes = np.array([r["size_bytes"] for r in rows], dtype=float)
    ax.scatter([r["p50_ms"] for r in rows], [100 * r["top1"] for r in rows], s=40 + 400 * sizes / sizes.max(),
               alpha=0.6)
    for r in rows:
        ax.annotate(r["variant"], (r["p50_ms"], 100 * r["top1"]), fontsize=8, xytext=(4, 4),
                    textcoords="offset points")
    ax.set_xlabel("median latency (ms)")
    ax.set_ylabel("top-1 (%)")
    ax.set_title("accuracy vs latency (marker area ~ file size)")
    images["accuracy_vs_latency"] = _png(fig)
    plt.close(fig)

    best = max((r for r in rows if r["fully_integer"]), key=lambda r: r["top1"], default=rows[0])
    matrix = np.array(best["confusion_matrix"], dtype=float)
    matrix = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    side = min(12, 3 + 0.15 * len(best["labels"]))
    fig, ax = plt.subplots(figsize=(side, side))
    ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    ticks = range(len(best["labels"]))
    ax.set_xticks(ticks, best["labels"], rotation=90, fontsize=6)
    ax.set_yticks(ticks, best["labels"], fontsize=6)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion matrix, row-normalised: {best['variant']}")
    images["confusion_matrix"] = _png(fig)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(max(6, 0.2 * len(best["labels"])), 4))
    width = 0.8 / len(rows)
    present = [i for i, c in enumerate(best["per_class"]) if c["support"]]
    for k, r in enumerate(rows):
        ax.bar(np.arange(len(present)) + k * width, [100 * r["per_class"][i]["recall"] for i in present],
               width=width, label=r["variant"])
    ax.set_xticks(np.arange(len(present)) + 0.4, [best["labels"][i] for i in present], rotation=90, fontsize=6)
    ax.set_ylabel("accuracy (%)")
    ax.set_title("per-class accuracy")
    ax.legend(fontsize=7)
    images["per_class_accuracy"] = _png(fig)
    plt.close(fig)
    return images


def html_page(result: dict[str, Any]) -> str:
    images = plots(result)

    def cells(values: tuple[str, ...], tag: str) -> str:
        return "".join(f"<{tag}>{html.escape(value)}</{tag}>" for value in values)

    rows = "\n".join(f"<tr>{cells(row, 'td')}</tr>" for row in _table_rows(result))
    figures = "\n".join(f'<h2>{html.escape(k.replace("_", " "))}</h2><img alt="{k}" src="data:image/png;base64,{v}">'
                        for k, v in images.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>edgeshop: compression variants</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}img{{max-width:100%}}</style></head>
<body><h1>Compression variants compared</h1>
<p>{html.escape(_summary(result))}</p>
<table><tr>{cells(TABLE_HEADER, 'th')}</tr>
{rows}</table>
{figures}
<script type="application/json" id="data">{html.escape(json.dumps([{k: v for k, v in r.items()
    if k not in ("per_class", "confusion_matrix", "labels")} for r in result["variants"]]))}</script>
</body></html>
"""
