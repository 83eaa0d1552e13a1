"""Which channels to remove for a latency target, measured on this machine (NetAdapt's
idea, Yang et al. 2018: ask the device, not a FLOP count, and spend the removals where
they cost the least accuracy per millisecond).

1. Latency: for every channel group, the narrowed architecture with only that group at
   a quarter width (SAVING_PROBE removed) is converted to int8; all of them and the
   unpruned model are timed in one session, calls interleaved (runtime/bench.py), giving
   each group's saving as a fraction of the unpruned invoke. Latency does not depend on
   the weights' values, so candidates are converted with their initial weights
   (ranges measured on a few representative images).
2. Damage: for every group and a few fractions, how far the trained network's output moves
   (KL divergence on training images) with only that group pruned (channels.group_damage).
3. Path: a greedy walk removes, step by step, from the group whose next step costs the
   least predicted damage per predicted saving, until every group is at its limit.
4. Choice: a bisection over the path's steps, each converted and timed against the
   unpruned model at every thread count in TARGET_THREADS, finds the first step that meets
   the target at all of them (the grocery sweep's first 0.70x level read 0.679x on one
   thread and 0.704x on two when only one thread was timed).

Savings and damages are treated as additive over groups. That approximation only orders
the removals; the step taken is decided by measurement.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from edgeshop.errors import EdgeshopError
from edgeshop.runtime.bench import time_models
from edgeshop.train._keras import keras, tf
from edgeshop.train.channels import ChannelGroup, group_damage, kept_width
from edgeshop.train.convert import int8_converter

PROBE_FRACTIONS = (0.25, 0.5, 0.75)  # damage is measured at these
SAVING_PROBE = 0.75  # each group's latency saving is measured with this fraction removed
STEP = 0.125  # the walk's step in each group's removed fraction
MAX_GROUP_FRACTION = 0.75  # no group loses more than this
MIN_SAVING = 1e-4  # a group whose measured saving is noise (<= 0) is the last to be chosen
SAVING_RUNS = 60  # per-group savings are a few percent each: more runs than a single ratio
TIMING_RUNS = 40
TIMING_THREADS = 1  # the per-group savings (they only order the removals): one core, the quietest clock
TARGET_THREADS = (1, 2)  # the target must hold at each: a phone or a Pi runs on one core or several


def int8_flatbuffer(model: keras.Model, images: np.ndarray) -> bytes:
    """``model`` as a fully integer .tflite (uint8 I/O), ``images`` its representative images."""
    return int8_converter(tf.lite.TFLiteConverter.from_keras_model(model), images).convert()


def interleaved_p50(models: dict[str, bytes], threads: int = TIMING_THREADS,
                    runs: int = TIMING_RUNS) -> dict[str, float]:
    """p50 bare-invoke latency (ms) of every flatbuffer, calls interleaved one by one. On
    one thread the clock is the thread's CPU time, so time spent descheduled is not
    counted, and the ratio matches wall time on a quiet machine. It does not make a loaded
    machine quiet: other jobs still share its caches and memory bandwidth, which moves the
    ratio (0.35 by CPU time, 0.18 by wall time with two other training jobs on 2 cores), so
    run the search on the machine alone, as a deployment check would."""
    clock = time.thread_time if threads == 1 else time.perf_counter
    return {name: s.p50_ms for name, s in time_models(models, threads, runs, clock=clock).items()}


def latency_ratio(candidate: bytes, reference: bytes, threads: int = TIMING_THREADS,
                  runs: int = TIMING_RUNS) -> float:
    """p50 bare-invoke latency of ``candidate`` over ``reference``, calls interleaved."""
    p50 = interleaved_p50({"candidate": candidate, "reference": reference}, threads, runs)
    return p50["candidate"] / p50["reference"]


def worst_ratio(candidate: bytes, reference: bytes, runs: int = TIMING_RUNS) -> tuple[float, dict[int, float]]:
    """The largest of ``candidate``'s latency ratios over TARGET_THREADS, and each of them."""
    ratios = {threads: latency_ratio(candidate, reference, threads, runs) for threads in TARGET_THREADS}
    return max(ratios.values()), ratios


def widths_at(groups: list[ChannelGroup], fractions: dict[str, float]) -> dict[str, int]:
    """{producer: kept filters} for the groups that lose channels."""
    return {g.producer: kept_width(g.width, fractions[g.producer]) for g in groups
            if fractions.get(g.producer, 0.0) > 0}


def group_savings(build: Callable[[dict[str, int] | None], keras.Model], groups: list[ChannelGroup],
                  images: np.ndarray) -> tuple[dict[str, float], bytes]:
    """Per group, the fraction of the unpruned int8 invoke saved by removing SAVING_PROBE
    of that group's channels alone; and the unpruned flatbuffer."""
    reference = int8_flatbuffer(build(None), images)
    models = {"": reference}
    for group in groups:
        models[group.producer] = int8_flatbuffer(build(widths_at([group], {group.producer: SAVING_PROBE})), images)
    p50 = interleaved_p50(models, runs=SAVING_RUNS)
    return {g.producer: 1.0 - p50[g.producer] / p50[""] for g in groups}, reference


def _removed(group: ChannelGroup, fraction: float) -> int:
    return group.width - kept_width(group.width, fraction)


def allocation_path(groups: list[ChannelGroup], savings: dict[str, float],
                    damage: dict[str, list[float]]) -> list[tuple[dict[str, float], float]]:
    """The greedy walk from nothing removed to every group at MAX_GROUP_FRACTION: each step
    takes the group whose next step costs the least predicted damage per predicted saving.
    Every state on the way as (per-group fractions, predicted saving as a fraction of the
    unpruned latency). Savings scale with the channels removed (measured at SAVING_PROBE);
    damage is interpolated between the probes."""
    def saving(group: ChannelGroup, fraction: float) -> float:
        probe = _removed(group, SAVING_PROBE)
        return max(savings[group.producer], MIN_SAVING) * _removed(group, fraction) / probe if probe else 0.0

    def harm(group: ChannelGroup, fraction: float) -> float:
        xs = [0] + [_removed(group, f) for f in PROBE_FRACTIONS]
        return float(np.interp(_removed(group, fraction), xs, [0.0, *damage[group.producer]]))

    grid = [STEP * i for i in range(1, round(MAX_GROUP_FRACTION / STEP) + 1)]
    fractions = {g.producer: 0.0 for g in groups}
    total = 0.0
    path = [(dict(fractions), total)]
    while True:
        best = None  # (damage per saving, group, next fraction)
        for group in groups:
            now = fractions[group.producer]
            # the next grid fraction that removes more channels (widths round to multiples of 8)
            nxt = next((f for f in grid if f > now and _removed(group, f) > _removed(group, now)), None)
            if nxt is None:
                continue
            gained = saving(group, nxt) - saving(group, now)
            if gained <= 0:
                continue
            cost = (harm(group, nxt) - harm(group, now)) / gained
            if best is None or cost < best[0]:
                best = (cost, group, nxt)
        if best is None:
            return path  # every group at its limit
        _, group, nxt = best
        total += saving(group, nxt) - saving(group, fractions[group.producer])
        fractions[group.producer] = nxt
        path.append((dict(fractions), total))


def _unreachable(target: float, floor: float) -> EdgeshopError:
    return EdgeshopError(f"--target-latency-ratio {target:g}: removing {MAX_GROUP_FRACTION:.0%} of every group's "
                         f"channels gives {floor:.2f}x on this machine (the layers that stay set a floor); ask for "
                         "a larger ratio")


def require_reachable(build: Callable[[dict[str, int] | None], keras.Model], groups: list[ChannelGroup],
                      target: float, images: np.ndarray) -> float:
    """The latency ratio with every group at MAX_GROUP_FRACTION (the fastest the search can
    reach), refusing a target below it: checked before training, so an impossible target
    costs two conversions, not a training run."""
    floor, _ = worst_ratio(int8_flatbuffer(build(widths_at(groups, {g.producer: MAX_GROUP_FRACTION for g in groups})),
                                           images), int8_flatbuffer(build(None), images))
    if floor > target:
        raise _unreachable(target, floor)
    return floor


def allocate_for_latency(build: Callable[[dict[str, int] | None], keras.Model], model: keras.Model,
                         groups: list[ChannelGroup], target: float, images: np.ndarray,
                         log=print) -> tuple[dict[str, float], dict[str, Any]]:
    """Per-group fractions whose removal brings the int8 model to ``target`` x the unpruned
    model's latency on this machine at every thread count of TARGET_THREADS, chosen for the
    least damage to ``model``'s output on ``images``; and a record of the search.
    ``build(widths)`` makes the architecture at its export size (None: unpruned). The
    predictions only order the removals: which state on the path is taken is decided by
    timing (a bisection over the path), so a wrong prediction costs accuracy, never the
    target."""
    if not 0 < target < 1:
        raise EdgeshopError(f"--target-latency-ratio must be in (0, 1), e.g. 0.7; got {target}")
    representative = images[:8]
    log(f"[prune_channels] timing each of {len(groups)} channel groups with {SAVING_PROBE:.0%} of its channels "
        f"removed (int8, {TIMING_THREADS} thread, {SAVING_RUNS} interleaved runs)")
    savings, reference = group_savings(build, groups, representative)
    log(f"[prune_channels] measuring the output change of every group at {PROBE_FRACTIONS} removed "
        f"on {len(images)} training images")
    damage = group_damage(model, groups, images, PROBE_FRACTIONS)
    path = allocation_path(groups, savings, damage)
    record: dict[str, Any] = {"target": target, "threads": list(TARGET_THREADS), "runs": TIMING_RUNS,
                              "saving_probe": SAVING_PROBE,
                              "savings": {k: round(v, 4) for k, v in savings.items()},
                              "damage": {k: [round(d, 5) for d in v] for k, v in damage.items()},
                              "probe_fractions": list(PROBE_FRACTIONS), "path_steps": len(path) - 1, "trials": []}

    def ratio_at(step: int) -> float:
        fractions, predicted = path[step]
        ratio, by_threads = worst_ratio(int8_flatbuffer(build(widths_at(groups, fractions)), representative), reference)
        record["trials"].append({"step": step, "predicted_ratio": round(1 - predicted, 4), "ratio": round(ratio, 4),
                                 "ratio_by_threads": {str(t): round(r, 4) for t, r in by_threads.items()}})
        measured = " / ".join(f"{r:.3f}x" for r in by_threads.values())
        log(f"[prune_channels] step {step} of {len(path) - 1}: predicted {1 - predicted:.3f}x, measured "
            f"{measured} the unpruned at {' / '.join(map(str, TARGET_THREADS))} thread(s)")
        return ratio

    last = len(path) - 1
    if ratio_at(last) > target:
        raise _unreachable(target, record["trials"][-1]["ratio"])
    low, high = 0, last  # ratio(low) > target >= ratio(high); step 0 removes nothing
    while high - low > 1:
        middle = (low + high) // 2
        if ratio_at(middle) <= target:
            high = middle
        else:
            low = middle
    record["chosen_step"] = high
    return path[high][0], record
