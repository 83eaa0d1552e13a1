"""Markdown renderings of evaluation figures (model cards and reports)."""

from __future__ import annotations

import math
from typing import Any

from edgeshop.report.metrics import interval_text


def evaluation_markdown(figures: dict[str, Any], title: str | None = None) -> str:
    lines = [f"# {title or 'Evaluation of ' + str(figures.get('model', 'model'))}", ""]
    lines.append(f"- images: {figures['n']} (unreadable, skipped: {figures.get('skipped', 0)})")
    n = figures["n"]
    lines.append(f"- top-1: {figures['top1']:.2%} (95% interval {interval_text(figures['top1'], n)}), "
                 f"top-5: {figures['top5']:.2%}")
    if "coarse_top1" in figures:
        lines.append(f"- coarse top-1: {figures['coarse_top1']:.2%} "
                     f"(95% interval {interval_text(figures['coarse_top1'], n)})")
    lines.append(f"- macro recall: {figures['macro_recall']:.2%}, expected calibration error: {figures['ece']:.3f}")
    if "compare" in figures:
        c = figures["compare"]
        lines.append(f"- vs `{c['model']}`: its top-1 {c['top1']:.2%}, delta {c['top1_delta']:+.2%}, "
                     f"top-1 agreement {c['top1_agreement']:.2%}")
    lines += head_markdown(figures)
    lines += ["", "## Most confused pairs", "", "| true | predicted as | images |", "|---|---|---|"]
    lines += [f"| {p['true']} | {p['predicted']} | {p['count']} |" for p in figures["most_confused"]]
    if not figures["most_confused"]:
        lines.append("| (none: every image is classified right) | | |")
    if figures.get("reliability"):
        lines += ["", "## Reliability (top score against accuracy)", "",
                  "| top score | images | accuracy | mean top score |", "|---|---|---|---|"]
        lines += [f"| {r['low']:.2f}-{r['high']:.2f} | {r['count']} | {r['accuracy']:.0%} | {r['confidence']:.2f} |"
                  for r in figures["reliability"]]
    lines += ["", "## Per class", "", "| class | accuracy (recall) | precision | F1 | images |",
              "|---|---|---|---|---|"]
    for row in sorted(figures["per_class"], key=lambda r: r["label"]):
        if row["support"]:
            lines.append(f"| {row['label']} | {row['recall']:.0%} | {row['precision']:.0%} | {row['f1']:.2f} "
                         f"| {row['support']} |")
    return "\n".join(lines) + "\n"


def head_markdown(figures: dict[str, Any]) -> list[str]:
    """The calibration and unknown-product lines of an evaluation, and its reliability diagram."""
    lines = []
    if "calibration" in figures:
        c = figures["calibration"]
        lines.append(f"- calibration: temperature {c['temperature']:.3f} built into the model; expected calibration "
                     f"error {c['ece_without_temperature']:.3f} without it, {c['ece']:.3f} with it")
    if "unknown" in figures:
        u = figures["unknown"]
        lines.append(f"- unknown products ({u['unknown_images']} images of `{u['data']}`): AUROC "
                     f"{u['unknown_auroc']:.3f}{_auroc_interval(u)}, FPR at 95% TPR {u['unknown_fpr_at_95tpr']:.3f}; "
                     "at the threshold "
                     f"{u['threshold']:.4f} ({u['threshold_source']}) {u['known_accepted']:.1%} of known images are "
                     f"kept, known top-1 {u['known_top1_at_threshold']:.2%}, {u['unknown_rejected']:.1%} of unknown "
                     "images rejected")
        lines += ["", "| method | AUROC | FPR at 95% TPR |", "|---|---|---|"]
        lines += [f"| {name} | {m['auroc']:.3f} | {m['fpr_at_95tpr']:.3f} |" for name, m in u["methods"].items()]
    if "reliability_diagram" in figures:
        lines += ["", f"![reliability diagram]({figures['reliability_diagram']})"]
    return lines


def _auroc_interval(unknown: dict) -> str:
    """` (95% bootstrap interval 0.776-0.904)`; nothing for figures written before it existed
    or without unknown images (NaN)."""
    interval = unknown.get("unknown_auroc_interval")
    if not interval or not all(math.isfinite(x) for x in interval):
        return ""
    return f" (95% bootstrap interval {interval[0]:.3f}-{interval[1]:.3f})"
