"""Compare compression variants of trained runs on the same data and the same machine.

For each run: float32, float16, dynamic-range and post-training int8 exports of its
float model, plus its QAT int8 model when it has one ("pruned+QAT int8" after
pruning). Each is evaluated on the same images and timed in the same process with
the same threads. Writes comparison.json, comparison.md and a self-contained
comparison.html (edgeshop.report.compare renders them).
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

from edgeshop.data import discover, read_hierarchy
from edgeshop.report.compare import write_report
from edgeshop.report.evaluate import predict
from edgeshop.report.metrics import summarize
from edgeshop.runtime.bench import benchmark_model
from edgeshop.runtime.classifier import Classifier
from edgeshop.train.exporter import export
from edgeshop.train.run_model import read_run


def variants_of(run_dir: Path) -> list[tuple[str, str, bool]]:
    """(variant name, export format, ptq) for one run."""
    config, _, completed = read_run(run_dir)
    out = [("float32", "float32", False), ("float16", "float16", False), ("dynamic-range", "dynamic", False),
           ("PTQ int8", "int8", True)]
    if "qat" in completed:
        out.append(("pruned+QAT int8" if config.experimental.sparsity else "QAT int8", "int8", False))
    return out


def compare(runs: list[Path], data: str, out: Path, threads: int = 1, runs_timed: int = 50,
            hierarchy: str | None = None, classes: str | None = None) -> dict[str, Any]:
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
    write_report(result, out)
    return result
