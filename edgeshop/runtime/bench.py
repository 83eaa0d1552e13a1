"""Latency measurement shared by the CLI, the demo and the reports.

Method of the established benchmark tools (TFLite's benchmark_model, MLPerf): one cold
first inference reported apart, warm-up runs discarded, many timed runs, medians and
percentiles rather than means, thread count stated.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgeshop.runtime.backend import make_interpreter
from edgeshop.runtime.classifier import Classifier
from edgeshop.runtime.preprocess import read_image


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
    return _stats(samples, first)


def time_interleaved(calls: dict[str, Callable[[], object]], runs: int = 50, warmup: int = 5,
                     block: int = 1, clock: Callable[[], float] = time.perf_counter) -> dict[str, LatencyStats]:
    """Time several calls in alternation so that a ratio between two of them is measured
    under the same conditions: clock boosts, thermal state and background load drift over
    seconds and would bias one long block after another.

    ``block=1`` alternates every call (A, B, C, A, B, C, ...). With several thread pools in
    one process (interpreters, ONNX Runtime) use short blocks instead (A x block, B x
    block, ...): a pool that has just worked spins for a while and would steal the cores
    of the next call, so each block starts with one unrecorded call that lets it settle.

    ``clock``: wall time by default (what a user waits). ``time.thread_time`` counts only
    the CPU time of the calling thread, which a single-threaded interpreter's invoke runs
    on: time spent descheduled is left out, but caches and memory shared with other jobs
    still slow the call, so a ratio is trustworthy only on an otherwise idle machine.
    """
    if runs < 1 or block < 1:
        raise ValueError("runs and block must be >= 1")
    first = {}
    for name, call in calls.items():
        start = clock()
        call()
        first[name] = (clock() - start) * 1e3
    for _ in range(warmup):
        for call in calls.values():
            call()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    while len(samples[next(iter(calls))]) < runs:
        for name, call in calls.items():
            if block > 1:
                call()  # settling call, not recorded
            for _ in range(min(block, runs - len(samples[name]))):
                start = clock()
                call()
                samples[name].append((clock() - start) * 1e3)
    return {name: _stats(np.array(values), first[name]) for name, values in samples.items()}


MULTI_THREAD_BLOCK = 10  # time_models' block length when interpreters use several threads


def time_models(models: dict[str, bytes], threads: int, runs: int = 50, warmup: int = 5,
                block: int | None = None, clock: Callable[[], float] = time.perf_counter) -> dict[str, LatencyStats]:
    """Bare-invoke latency of every .tflite flatbuffer, each in its own interpreter with
    ``threads`` threads, interleaved (time_interleaved): call by call on one thread, in blocks
    of MULTI_THREAD_BLOCK on more unless ``block`` says otherwise."""
    calls = {name: invoke_callable(make_interpreter(content, threads)[1]) for name, content in models.items()}
    if block is None:
        block = 1 if threads == 1 else MULTI_THREAD_BLOCK
    return time_interleaved(calls, runs=runs, warmup=warmup, block=block, clock=clock)


def _stats(samples: np.ndarray, first_ms: float) -> LatencyStats:
    p50 = float(np.percentile(samples, 50))
    return LatencyStats(
        runs=len(samples),
        first_ms=first_ms,
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


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux/macOS), in MB."""
    import resource  # Unix only: imported here so the rest of this module loads on Windows

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def benchmark_model(path, threads: int, runs: int = 100, warmup: int = 10, image=None,
                    backend: str = "auto") -> dict:
    """Bare-invoke latency of a model (and, with ``image``, Classifier.classify end to end)."""
    path = Path(path)
    classifier = Classifier(path, threads, backend=backend)
    stats = time_calls(invoke_callable(classifier._interpreter), runs=runs, warmup=warmup)  # noqa: SLF001
    content = path.read_bytes()
    result = {
        "model": str(path),
        "threads": threads,
        "backend": classifier.backend,
        **stats.to_dict(),
        "size_bytes": len(content),
        "size_gzip_bytes": len(gzip.compress(content, compresslevel=9)),
    }
    if image is not None:
        frame = read_image(image)
        result["end_to_end"] = time_calls(lambda: classifier.classify(frame), runs=runs, warmup=warmup).to_dict()
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return result


def machine_info() -> dict[str, object]:
    """CPU model, its class (runtime/cpu_class), usable cores, Python and platform: stated next to
    every latency figure, so that figures of two CPU classes are never mixed."""
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError, StopIteration):  # no /proc (macOS) or no model name line
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    from edgeshop.runtime.cpu_class import detect_cpu_class

    return {"cpu": cpu, "cpu_class": detect_cpu_class(), "cores": cores, "python": platform.python_version(),
            "platform": platform.platform()}
