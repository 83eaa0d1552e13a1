"""``--input-pipeline auto`` (the default): hold the decoded images in memory when they fit a
memory budget, stream them from disk otherwise (train/streamed_images.py). No TensorFlow here.

In memory, every image is decoded once and training reads an array: 2-15% faster epochs on
Grocery (bench/pipeline.json), but peak memory grows with the data, by about
``MEMORY_COPIES`` times the decoded pixels (the decoded list, the stacked array and the copy
tf.data holds; measured 90 KB per 96 px image, 3.3 x 27.6 KB, by studies/grocery/pipeline_bench.py). A
small gain against an out-of-memory kill, so the default budget is a small share of the RAM
available when the run starts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

MEMORY_COPIES = 3.3  # peak memory of the in-memory pipeline per decoded byte (measured, see above)
BUDGET_FRACTION = 1 / 16  # default budget: this share of the available RAM
FALLBACK_BUDGET = 1 << 30  # bytes, where the available RAM cannot be read
MB = 1 << 20


@dataclass(frozen=True)
class PipelineChoice:
    pipeline: str  # "memory" or "stream"
    reason: str  # the run log's "why", with the figures


def available_memory() -> int | None:
    """RAM available to a new allocation now, in bytes: /proc/meminfo's MemAvailable (Linux),
    else free pages x page size (os.sysconf), else None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def in_memory_bytes(images: int, height: int, width: int) -> int:
    """The in-memory pipeline's peak memory growth for ``images`` decoded at height x width."""
    return int(images * height * width * 3 * MEMORY_COPIES)


def choose_pipeline(requested: str, images: int, height: int, width: int, budget_mb: float | None = None,
                    available: int | None = None, needs_memory: str = "", needs_stream: str = "") -> PipelineChoice:
    """The pipeline to run and why. ``requested``: "memory", "stream" or "auto"; ``images``:
    training + validation images; ``budget_mb``: the user's budget (None: BUDGET_FRACTION of
    ``available`` bytes, read now when None); ``needs_memory`` / ``needs_stream``: a setting
    that only one pipeline supports (e.g. "--teacher"), which auto then follows."""
    need = in_memory_bytes(images, height, width)
    sizes = f"{images:,} images at {height}x{width} need about {_mb(need)} MB in memory"
    if requested != "auto":
        return PipelineChoice(requested, f"{requested} (--input-pipeline {requested}); {sizes}")
    if needs_memory:
        return PipelineChoice("memory", f"memory, as {needs_memory} needs (auto); {sizes}")
    if needs_stream:
        return PipelineChoice("stream", f"stream, as {needs_stream} needs (auto); {sizes}")
    if budget_mb is not None:
        budget, source = budget_mb * MB, "--memory-budget"
    else:
        available = available_memory() if available is None else available
        if available is None:
            budget, source = FALLBACK_BUDGET, "the available RAM is unknown"
        else:
            budget = available * BUDGET_FRACTION
            source = f"1/{round(1 / BUDGET_FRACTION)} of the {_mb(available)} MB of RAM available"
    if need <= budget:
        return PipelineChoice("memory", f"memory (auto): {sizes}, within the budget of {_mb(budget)} MB "
                                        f"({source})")
    return PipelineChoice("stream", f"stream (auto): {sizes}, over the budget of {_mb(budget)} MB ({source}); "
                                    "images are decoded as batches need them (--memory-budget MB changes the budget)")


def _mb(size: float) -> str:
    """Bytes as MB for the log: whole MB, or two significant digits below 10 MB."""
    return f"{size / MB:,.0f}" if size >= 10 * MB else f"{size / MB:.2g}"
