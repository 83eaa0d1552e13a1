"""The model card document (MODEL_CARD.md): measure a run's exported models on labelled
images, keep the figures in a JSON file, and write the Markdown document from that file alone.
Not the card embedded in a model (tflite/modelcard.py), though it reads from it.

`edgeshop-card RUN_DIR M.tflite --data VAL` does it for any run; the shipped grocery
document (studies/grocery/render_model_card.py) is the same with the Grocery-specific sections
added. Every number in the document is read from the figures file or computed from it here:
rerunning the measurement and the rendering reproduces it.

Runtime side: numpy, OpenCV and LiteRT (no TensorFlow).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from edgeshop.data import Sample
from edgeshop.report.evaluate import predict
from edgeshop.report.metrics import interval_text, summarize
from edgeshop.runtime.audit import audit_model
from edgeshop.runtime.bench import benchmark_model, machine_info
from edgeshop.runtime.classifier import Classifier

BENCH_THREADS = (1, 2)
BENCH_RUNS = 200
AUDIT_KEYS = ("fully_integer", "input", "output", "weight_sparsity")


def pct(x: float) -> str:
    return f"{100 * x:.2f}%"


# -- measuring ---------------------------------------------------------------------------
def summary(model: Path, samples: Sequence[Sample], hierarchy: Mapping[str, str] | None) -> dict[str, Any]:
    """edgeshop-eval's figures of one model on labelled images (without the confusion matrix)."""
    return summary_and_hits(model, samples, hierarchy)[0]


def summary_and_hits(model: Path, samples: Sequence[Sample],
                     hierarchy: Mapping[str, str] | None) -> tuple[dict[str, Any], dict[Path, bool]]:
    """summary(), and per readable image (by path) whether the top-1 is right: what paired
    comparisons of two models on the same images need."""
    result = predict(Classifier(model), samples, show_progress=False)
    figures = summarize(result.truth, result.scores, result.labels, hierarchy)
    figures.pop("confusion_matrix")
    hits = result.scores.argmax(axis=1) == result.truth
    return figures, {path: bool(hit) for path, hit in zip(result.paths, hits, strict=True)}


def measure_models(models: Mapping[str, Path], samples: Sequence[Sample], hierarchy: Mapping[str, str] | None,
                   threads: Sequence[int] = BENCH_THREADS, runs: int = BENCH_RUNS) -> dict[str, Any]:
    """Per model: file, size, accuracy figures, audit, bare-invoke latency. All models are timed
    in this one process, alternating per thread count, so their latency ratio is a fair one."""
    figures: dict[str, Any] = {}
    for name, path in models.items():
        audit = audit_model(path.read_bytes())
        figures[name] = {"file": path.name, "size_bytes": path.stat().st_size, "val": summary(path, samples, hierarchy),
                         "audit": {k: audit[k] for k in AUDIT_KEYS}}
    for count in threads:
        for name, path in models.items():
            figures[name][f"latency_{count}t"] = benchmark_model(path, count, runs=runs, image=samples[0].path)
    return figures


def data_counts(run_dir: Path) -> dict[str, int]:
    """How many images the run trained and validated on, and its classes (data_report.json)."""
    report = json.loads((run_dir / "data_report.json").read_text())
    return {k: report[k] for k in ("train_images", "val_images", "classes") if k in report}


def run_figures(run_dir: Path, model: Path, reference: Path | None, data: str, samples: Sequence[Sample],
                hierarchy: Mapping[str, str] | None, command: str, threads: Sequence[int] = BENCH_THREADS,
                runs: int = BENCH_RUNS) -> dict[str, Any]:
    """The figures file of a user's run: its settings and training metrics, and the exported
    model (and its float reference) measured on ``samples``."""
    names = {"model": model, **({"reference": reference} if reference else {})}
    started = time.time()
    figures = {
        "run": str(run_dir),
        "data": data,
        "recipe": json.loads((run_dir / "config.json").read_text()),
        "train_metrics": json.loads((run_dir / "metrics.json").read_text()),
        "data_report": data_counts(run_dir),
        **measure_models(names, samples, hierarchy, threads, runs),
        "machine": machine_info(),
        "command": command,
    }
    figures["wall_seconds_measuring"] = round(time.time() - started, 1)
    return figures


# -- rendering ---------------------------------------------------------------------------
TABLE_HEAD = "| model | top-1 | top-5 | coarse top-1 | size (MB) | latency 1 thread (ms) | 2 threads (ms) |"


def _latency(f: dict, threads: int) -> str:
    entry = f.get(f"latency_{threads}t")
    return f"{entry['p50_ms']:.2f}" if entry else "-"


def model_rows(name: str, figures: dict, formats: Sequence[str], by_file: bool = False) -> list[str]:
    """One table row (TABLE_HEAD) per format of one figures file, named by format or file."""
    rows = []
    for fmt in formats:
        f = figures[fmt]
        v = f["val"]
        coarse = pct(v["coarse_top1"]) if "coarse_top1" in v else "-"
        label = f"`{f['file']}`" if by_file else fmt
        rows.append(f"| {f'{name} ' if name else ''}{label} | {pct(v['top1'])} | {pct(v['top5'])} | {coarse} "
                    f"| {f['size_bytes'] / 1e6:.2f} | {_latency(f, 1)} | {_latency(f, 2)} |")
    return rows


def table(rows: list[str]) -> list[str]:
    return [TABLE_HEAD, "|---|---|---|---|---|---|---|", *rows]


def measured_classes(val: dict) -> tuple[int, int]:
    """(classes with at least one evaluation image, classes of the model)."""
    return sum(1 for r in val["per_class"] if r["support"]), len(val["per_class"])


def data_sentence(val: dict) -> str:
    """How many images and classes the figures rest on, counted from the per-class figures."""
    measured, total = measured_classes(val)
    missing = total - measured
    return (f"{val['n']} images, {measured} of the {total} classes"
            + (f"; the other {missing} have no evaluation images" if missing else "") + ")")


class Recipe(Protocol):
    """A run's training settings with defaults filled in: edgeshop.train.config.recipe_config's
    TrainConfig (a protocol here, so the report layer does not import the training one)."""

    data: Any
    model: Any
    schedule: Any
    compression: Any
    distillation: Any
    experimental: Any

    def teachers(self) -> list[str]: ...


def recipe_lines(config: Recipe, train_metrics: dict) -> list[str]:
    """The training recipe in words, from the run's settings (``recipe_config(figures["recipe"])``)."""
    d, m, s, x, kd, c = (config.data, config.model, config.schedule, config.experimental, config.distillation,
                         config.compression)
    phases = train_metrics.get("phases", [])
    size = m.image_size
    train_size = m.train_image_size or size
    select_best = s.select_best_epoch
    regularisers = [f"label smoothing {s.label_smoothing:g}"]
    if m.dropout is not None:
        regularisers.append(f"dropout {m.dropout:g}")
    if s.freeze_bn:
        regularisers.append("BatchNorm statistics frozen")
    if d.mix:
        regularisers.append(f"CutMix or MixUp on {d.mix:.0%} of batches")
    if x.coarse_loss_weight:
        regularisers.append(f"plus {x.coarse_loss_weight:g} x the coarse-class cross-entropy")
    if d.augment:
        regularisers.append("augmentation: random resized crop, flip, rotation, colour, blur")
    kept = ("best val epoch kept" if select_best else
            f"mean weights of the last {x.average_last_epochs} epochs kept (stochastic weight averaging)"
            if x.average_last_epochs else "last epoch kept")
    lines = [f"`{m.arch}`" + (" initialised from ImageNet" if "head" in phases else " trained from scratch")
             + f", input {size}x{size} (centre crop, resize rule `{m.interpolation}`).",
             *([f"The float phases train at {train_size}x{train_size} (FixRes); QAT and export at {size}."]
               if train_size != size else [])]
    if "head" in phases:
        lines.append(f"{s.head_epochs} epochs training the new head alone (lr {s.lr:g}), then")
    main_lr = s.fine_tune_lr if "head" in phases else s.lr
    lines.append(("Up to " if select_best and "head" not in phases else "up to " if select_best else "")
                 + f"{s.epochs} epochs training the whole network (AdamW, "
                 f"lr {main_lr:g}, cosine; {'; '.join(regularisers)}), {kept}.")
    teachers = config.teachers()
    if teachers:
        names = ", ".join(f"`{t}`" for t in teachers)
        lines.append(("Distilled from the teacher " if len(teachers) == 1 else
                      f"Distilled from an ensemble of {len(teachers)} teachers (mean of their softened "
                      "probabilities): ") + f"{names}; temperature {kd.distill_temperature:g}, "
                     f"soft-target weight {kd.distill_weight:g}.")
    if "prune" in phases:
        lines.append(f"{x.sparsity_epochs} epochs of magnitude pruning to {x.sparsity:.0%} sparsity.")
    if "qat" in phases:
        lines.append(f"{c.qat_epochs} epoch(s) of int8 quantization-aware training (lr {c.qat_lr:g}).")
    return lines


def latency_sentence(figures: dict, model: str, reference: str) -> str:
    """The model/reference median-latency ratio, computed from the two latencies in the file."""
    parts = []
    for threads in (1, 2):
        a, b = figures[model].get(f"latency_{threads}t"), figures[reference].get(f"latency_{threads}t")
        if a and b:
            parts.append(f"{a['p50_ms'] / b['p50_ms']:.2f}x ({threads} thread{'s' if threads > 1 else ''})")
    return ", ".join(parts)


def figure_notes(figures: dict, model: str = "int8", reference: str | None = "float16") -> list[str]:
    """Bullets under the table: model vs reference, vs the float model before QAT, file, calibration."""
    val, f = figures[model]["val"], figures[model]
    lines = []
    metrics = figures.get("train_metrics", {})
    if reference:
        ref = figures[reference]["val"]
        lines.append(f"- {model} vs {reference} top-1: {100 * (val['top1'] - ref['top1']):+.2f} points "
                     f"({round((val['top1'] - ref['top1']) * val['n']):+d} images of {val['n']}).")
    if "qat" in metrics.get("phases", []) and "val_top1_float" in metrics:
        lines.append(f"- The float model before QAT (Keras, the run's own validation images): "
                     f"{pct(metrics['val_top1_float'])}.")
    if reference and latency_sentence(figures, model, reference):
        lines.append(f"- {model} / {reference} median latency, measured in the same process: "
                     f"{latency_sentence(figures, model, reference)}.")
    audit = f["audit"]
    sparsity = audit.get("weight_sparsity")
    lines.append(f"- {model} file: {f['size_bytes'] / 1e6:.2f} MB; fully integer: {audit['fully_integer']} "
                 f"(input {audit['input']['dtype']} scale {audit['input']['scale']:g} zero point "
                 f"{audit['input']['zero_point']})"
                 + (f"; conv/dense weight sparsity {sparsity:.1%}" if sparsity else "") + ".")
    lines.append(f"- Expected calibration error: {val['ece']:.3f}; macro recall {pct(val['macro_recall'])}.")
    return lines


def error_sections(val: dict, model: str = "int8") -> list[str]:
    lines = ["", f"### Most confused pairs ({model})", "", "| true | predicted as | images |", "|---|---|---|"]
    lines += [f"| {p['true']} | {p['predicted']} | {p['count']} |" for p in val["most_confused"]]
    measured = [r for r in val["per_class"] if r["support"]]  # classes without images have no accuracy
    lines += ["", f"### Per-class accuracy ({model}; weakest first)", "", "| class | accuracy | images |",
              "|---|---|---|"]
    lines += [f"| {r['label']} | {r['recall']:.0%} | {r['support']} |"
              for r in sorted(measured, key=lambda r: (r["recall"], r["label"]))]
    return lines


def size_limitations(val: dict) -> list[str]:
    """What the size of the evaluation set allows one to conclude."""
    measured, total = measured_classes(val)
    n = val["n"]
    lines = [f"- The evaluation set is {n} images (about {n / max(measured, 1):.0f} per class): one image is "
             f"{100 / n:.2f} points" + (f", and {total - measured} of the {total} classes cannot be measured on it."
                                        if total > measured else ".")]
    coarse = (f", coarse top-1 {interval_text(val['coarse_top1'], n)}" if "coarse_top1" in val else "")
    lines.append(f"  95% (Wilson) intervals: top-1 {interval_text(val['top1'], n)}{coarse}.")
    return lines


def render_model_card_document(figures: dict, recipe: Recipe) -> str:
    """The model card document of a user's run (what edgeshop-card writes): the model and, when the
    figures file has one, its float reference. ``recipe``: ``recipe_config(figures["recipe"])``."""
    model, reference = "model", ("reference" if "reference" in figures else None)
    val = figures[model]["val"]
    data = figures.get("data_report", {})
    machine = figures["machine"]
    labels = len(val["per_class"])
    formats = [x for x in (reference, model) if x]
    lines = [
        f"# Model card: {Path(figures['run']).name}",
        "",
        f"`{figures[model]['file']}` classifies an image into {labels} classes; labels and preprocessing are "
        "stored inside the file (`edgeshop.Classifier(path)`)."
        + (f" `{figures[reference]['file']}` is its float reference." if reference else ""),
        "",
        "Every figure below comes from this command, and the figures file beside this card:",
        "",
        "```",
        figures["command"],
        "```",
        "",
        "## Data",
        "",
        f"Training run `{figures['run']}`: {data.get('train_images', '?')} training images"
        + (f", {data['val_images']} validation images chosen by the run" if data.get("val_images") else "")
        + f". Figures below: `{figures.get('data', 'the evaluation images')}` ({data_sentence(val)}.",
        "",
        "## Recipe",
        "",
        *recipe_lines(recipe, figures["train_metrics"]),
        "",
        "## Figures",
        "",
        f"Latency: median of {figures[model].get('latency_1t', {}).get('runs', BENCH_RUNS)} bare-interpreter invokes "
        f"after warm-up, on {machine['cpu']} ({machine['cores']} cores), Python {machine['python']}.",
        "",
        *table(model_rows("", figures, formats, by_file=True)),
        "",
        *figure_notes(figures, model, reference),
        *error_sections(val, model),
        "",
        "## Limitations",
        "",
        *size_limitations(val),
        f"- Any image gets one of the {labels} labels, also one of something else: use `score_threshold`",
        "  and the runtime's temporal smoothing on a camera.",
        "- Photos from the days, stores and cameras of the training photos flatter the figures; evaluate on",
        "  photos taken elsewhere for honest ones.",
        "",
    ]
    return "\n".join(lines)
