"""Measurement only: metrics, evaluation, Markdown/HTML reports and the model-card document.

Above runtime/ and data/; nothing here trains, exports or imports TensorFlow. The names in
``__all__`` are the public API (``from edgeshop.report import predict, summarize``); the modules
are private. Each name is imported when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeshop._lazy import lazy_names

if TYPE_CHECKING:  # what documentation tools and type checkers see; at run time, __getattr__ below
    from edgeshop.report.calibration import reliability_diagram
    from edgeshop.report.evaluate import Predictions, predict
    from edgeshop.report.format_choice import compare_models, model_files
    from edgeshop.report.markdown import evaluation_markdown, head_markdown
    from edgeshop.report.metrics import (
        BOOTSTRAP_RESAMPLES,
        confusion_matrix,
        expected_calibration_error,
        interval_text,
        paired_difference_interval,
        per_class,
        percentile_interval,
        summarize,
        top_k_accuracy,
        wilson_interval,
    )
    from edgeshop.report.model_card_document import (
        BENCH_RUNS,
        BENCH_THREADS,
        data_counts,
        data_sentence,
        error_sections,
        figure_notes,
        measure_models,
        model_rows,
        pct,
        recipe_lines,
        render_model_card_document,
        run_figures,
        size_limitations,
        summary,
        summary_and_hits,
        table,
    )
    from edgeshop.report.onnx_baseline import OnnxModel, quantize_static_int8, tflite_to_onnx
    from edgeshop.report.openset import auroc, fpr_at_tpr, known_scores, unknown_figures

# Public name -> the module that defines it, imported on first use (PEP 562).
_LAZY = {
    # evaluating a model on labelled photos
    "predict": "edgeshop.report.evaluate",
    "Predictions": "edgeshop.report.evaluate",
    "summarize": "edgeshop.report.metrics",
    "top_k_accuracy": "edgeshop.report.metrics",
    "confusion_matrix": "edgeshop.report.metrics",
    "per_class": "edgeshop.report.metrics",
    "expected_calibration_error": "edgeshop.report.metrics",
    "wilson_interval": "edgeshop.report.metrics",
    "percentile_interval": "edgeshop.report.metrics",
    "paired_difference_interval": "edgeshop.report.metrics",
    "interval_text": "edgeshop.report.metrics",
    "BOOTSTRAP_RESAMPLES": "edgeshop.report.metrics",
    "reliability_diagram": "edgeshop.report.calibration",
    # unknown products
    "auroc": "edgeshop.report.openset",
    "fpr_at_tpr": "edgeshop.report.openset",
    "known_scores": "edgeshop.report.openset",
    "unknown_figures": "edgeshop.report.openset",
    # reports
    "evaluation_markdown": "edgeshop.report.markdown",
    "head_markdown": "edgeshop.report.markdown",
    "compare_models": "edgeshop.report.format_choice",
    "model_files": "edgeshop.report.format_choice",
    # the model-card document of a run and its parts
    "render_model_card_document": "edgeshop.report.model_card_document",
    "run_figures": "edgeshop.report.model_card_document",
    "measure_models": "edgeshop.report.model_card_document",
    "data_counts": "edgeshop.report.model_card_document",
    "summary": "edgeshop.report.model_card_document",
    "summary_and_hits": "edgeshop.report.model_card_document",
    "pct": "edgeshop.report.model_card_document",
    "model_rows": "edgeshop.report.model_card_document",
    "table": "edgeshop.report.model_card_document",
    "data_sentence": "edgeshop.report.model_card_document",
    "recipe_lines": "edgeshop.report.model_card_document",
    "figure_notes": "edgeshop.report.model_card_document",
    "error_sections": "edgeshop.report.model_card_document",
    "size_limitations": "edgeshop.report.model_card_document",
    "BENCH_RUNS": "edgeshop.report.model_card_document",
    "BENCH_THREADS": "edgeshop.report.model_card_document",
    # the ONNX Runtime baseline
    "OnnxModel": "edgeshop.report.onnx_baseline",
    "tflite_to_onnx": "edgeshop.report.onnx_baseline",
    "quantize_static_int8": "edgeshop.report.onnx_baseline",
}

__all__ = [
    "BENCH_RUNS", "BENCH_THREADS", "BOOTSTRAP_RESAMPLES", "OnnxModel", "Predictions", "auroc", "compare_models",
    "confusion_matrix", "data_counts", "data_sentence", "error_sections", "evaluation_markdown",
    "expected_calibration_error", "figure_notes", "fpr_at_tpr", "head_markdown", "interval_text", "known_scores",
    "measure_models", "model_files", "model_rows", "paired_difference_interval", "pct", "per_class",
    "percentile_interval", "predict", "quantize_static_int8", "recipe_lines", "reliability_diagram",
    "render_model_card_document",
    "run_figures", "size_limitations", "summarize", "summary", "summary_and_hits", "table", "tflite_to_onnx",
    "top_k_accuracy", "unknown_figures", "wilson_interval",
]

__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
