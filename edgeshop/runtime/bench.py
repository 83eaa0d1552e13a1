"""Latency measurement shared by the CLI, the demo and the reports.

Method of the established benchmark tools (TFLite's benchmark_model, MLPerf): one cold
first inference reported apart, warm-up runs discarded, many timed runs, medians and
percentiles rather than means, thread count stated.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    runs: int
    first_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    fps: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def time_calls(call: Callable[[], object], runs: int = 50, warmup: int = 5) -> LatencyStats:
    """Time ``call``: the first call (cold) apart, then ``warmup`` untimed, then ``runs`` timed."""
    if runs < 1:
        raise ValueError("runs must be >= 1")
    start = time.perf_counter()
    call()
    first = (time.perf_counter() - start) * 1e3
    for _ in range(warmup):
        call()
    samples = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter()
        call()
        samples[i] = (time.perf_counter() - start) * 1e3
    p50 = float(np.percentile(samples, 50))
    return LatencyStats(
        runs=runs,
        first_ms=first,
        p50_ms=p50,
        p90_ms=float(np.percentile(samples, 90)),
        p99_ms=float(np.percentile(samples, 99)),
        mean_ms=float(samples.mean()),
        min_ms=float(samples.min()),
        fps=1e3 / p50 if p50 > 0 else float("inf"),
    )


def invoke_callable(interpreter) -> Callable[[], None]:
    """A bare ``invoke`` on a random valid input: the model alone, no pre/post-processing."""
    details = interpreter.get_input_details()[0]
    dtype = np.dtype(details["dtype"])
    rng = np.random.default_rng(0)
    if dtype.kind == "f":
        tensor = rng.uniform(0, 255, details["shape"]).astype(dtype)
    else:
        info = np.iinfo(dtype)
        tensor = rng.integers(info.min, info.max, details["shape"], endpoint=True).astype(dtype)
    interpreter.set_tensor(details["index"], tensor)
    return interpreter.invoke
