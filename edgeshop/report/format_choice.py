"""Which of several model files to run on this machine: each timed interleaved with the others,
with its top-1 (measured, or from its card), and the fastest at equal accuracy recommended
(edgeshop-bench A B ... or a folder of exports)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeshop.data import discover
from edgeshop.errors import EdgeshopError
from edgeshop.report.evaluate import predict
from edgeshop.report.metrics import top_k_accuracy
from edgeshop.runtime.bench import machine_info, time_models
from edgeshop.runtime.classifier import Classifier
from edgeshop.runtime.cpu_class import detect_cpu_class

EQUAL_ACCURACY_POINTS = 0.5  # top-1 points: within this of the most accurate model counts as equal


def model_files(paths: list[str]) -> list:
    """The .tflite files named by ``paths`` (files, or folders whose .tflite files are taken), sorted
    within a folder; a path that is neither gets a clear error."""
    files = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = sorted(p for p in path.glob("*.tflite") if p.is_file())
            if not found:
                raise EdgeshopError(f"{path}: no .tflite file in this folder; give model files or a folder of exports")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise EdgeshopError(f"{path}: no such model file or folder")
    if len({f.resolve() for f in files}) != len(files):
        raise EdgeshopError("the same model file is named twice; give each model once")
    return files


def model_accuracy(path, data=None) -> tuple[float | None, str]:
    """(top-1, where it comes from) for a model: measured on ``data`` (a labelled folder or split
    file) when given, else the validation top-1 its card records, else (None, "unknown")."""
    classifier = Classifier(path)
    if data is not None:
        predictions = predict(classifier, discover(data), show_progress=False)
        return top_k_accuracy(predictions.truth, predictions.scores, 1), f"measured on {data}"
    validation = classifier.card.extra.get("validation") if classifier.card else None
    if isinstance(validation, dict) and isinstance(validation.get("val_top1_final"), (int, float)):
        return float(validation["val_top1_final"]), "the card's validation top-1"
    return None, "unknown"


def compare_models(files: list, threads: list[int], runs: int = 100, warmup: int = 10,
                   data=None) -> dict:
    """Every model timed interleaved with the others at each thread count (time_models), with its
    top-1 (model_accuracy) and size: the rows edgeshop-bench prints and recommends from."""
    contents = {str(path): path.read_bytes() for path in files}
    rows = []
    for path in files:
        top1, source = model_accuracy(path, data)
        rows.append({"model": str(path), "size_bytes": len(contents[str(path)]), "top1": top1,
                     "top1_source": source, "p50_ms": {}})
    for count in threads:
        stats = time_models(contents, count, runs=runs, warmup=warmup)
        for row in rows:
            row["p50_ms"][str(count)] = stats[row["model"]].p50_ms
    return {"cpu_class": detect_cpu_class(), "machine": machine_info(), "threads": threads, "runs": runs,
            "rows": rows, "recommendation": recommend(rows)}


def recommend(rows: list[dict], points: float = EQUAL_ACCURACY_POINTS) -> dict:
    """The fastest row (geometric mean of its p50 over the thread counts) among those within
    ``points`` top-1 points of the most accurate; rows of unknown accuracy compete only when no
    row's accuracy is known."""
    def speed(row: dict) -> float:
        return float(np.exp(np.mean(np.log(list(row["p50_ms"].values())))))

    known = [row for row in rows if row["top1"] is not None]
    if known:
        best = max(row["top1"] for row in known)
        eligible = [row for row in known if row["top1"] >= best - points / 100 - 1e-9]
    else:
        best, eligible = None, rows
    chosen = min(eligible, key=speed)
    return {"model": chosen["model"], "top1": chosen["top1"], "best_top1": best, "points": points,
            "speedup_vs_slowest": max(speed(r) for r in rows) / speed(chosen),
            "accuracy_known": bool(known), "excluded_unknown_accuracy": [r["model"] for r in rows
                                                                         if known and r["top1"] is None]}
