"""`make pi-check`: the edgeshop runtime installed and classifying on arm64, the Raspberry
Pi's architecture, checked on an x86 machine through qemu-user emulation.

    python tools/pi_check.py [--suite bookworm --suite trixie] [--cpu cortex-a72 --cpu cortex-a76]
                             [--model M.tflite] [--images DIR] [--cache DIR] [--json OUT]

For each Debian suite (bookworm: Python 3.11, trixie: 3.13) an arm64 root is made once with
debootstrap under --cache (default $EDGESHOP_PI_CACHE or ~/.cache/edgeshop-pi, outside the
repository); the working tree is copied in and installed with `pip install .` into a venv
(aarch64 wheels only, no TensorFlow). Then, on each emulated CPU model (QEMU_CPU):
  - tools/pi_probe.py classifies the --images with the --model; the top-k labels and scores
    must match the same probe run on this host (x86, the reference);
  - edgeshop-classify and examples/raspberry_pi/shelf_watch.py run on a video generated
    from those images; their predictions and events must match the host's;
  - TensorFlow must be neither installed nor imported.
It prints one Markdown table and exits 1 if any check failed. Times are medians under
emulation: they say nothing about a real Pi's latency. Needs root; slow (the first
debootstrap and pip install run emulated, tens of minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pi_root  # noqa: E402  (tools/ is on sys.path when run as a script)

from edgeshop import (  # noqa: E402
    DEMO_DATA,
    EdgeshopError,
    OverwriteError,
    write_json_atomic,
)

SUITES = {"bookworm": "Debian 12", "trixie": "Debian 13"}
PROBE = "tools/pi_probe.py"
SHELF_WATCH = "examples/raspberry_pi/shelf_watch.py"
SLOT = 256  # pixels per shelf slot in the generated video
PHASE_FRAMES = 10  # frames before and after the left slot's product changes
MIN_VIDEO_SCORE = 0.75  # products in the video must be recognised clearly for the smoother to settle


@dataclass
class Side:
    """How to run the three programs on one side (the host, or the root on one CPU)."""

    name: str
    run: Callable[[list[str]], subprocess.CompletedProcess]
    python: str
    classify: list[str]
    src: str  # the working tree as this side sees it
    work: str  # the folder holding the model, images and video as this side sees it


@dataclass
class Outcome:
    label: str
    probe: dict = field(default_factory=dict)
    checks: dict[str, str] = field(default_factory=dict)  # check -> one-line result
    failed: list[str] = field(default_factory=list)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", action="append", choices=sorted(SUITES), help="default: bookworm and trixie")
    p.add_argument("--cpu", action="append",
                   help="QEMU_CPU model to emulate (repeatable); default: cortex-a72 (Pi 4) and cortex-a76 (Pi 5)")
    p.add_argument("--model", type=Path, default=ROOT / "models/grocery/grocery_int8.tflite")
    p.add_argument("--images", type=Path, default=DEMO_DATA / "test", help="a folder of class folders")
    p.add_argument("--cache", type=Path,
                   default=Path(os.environ.get("EDGESHOP_PI_CACHE", Path.home() / ".cache/edgeshop-pi")),
                   help="where the arm64 roots live (env EDGESHOP_PI_CACHE); never inside the repository")
    p.add_argument("--mirror", default="http://deb.debian.org/debian")
    p.add_argument("--ca-bundle", type=Path, default=_default_ca(),
                   help="CA certificates pip inside the root trusts (default: the host's)")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--timing-runs", type=int, default=10)
    p.add_argument("--fresh-venv", action="store_true", help="recreate the roots' venvs instead of updating them")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--force", action="store_true", help="overwrite --json")
    args = p.parse_args(argv)
    args.suite = args.suite or ["bookworm", "trixie"]
    args.cpu = args.cpu or ["cortex-a72", "cortex-a76"]
    args.cache = args.cache.resolve()
    if args.cache == ROOT or ROOT in args.cache.parents:
        p.error(f"--cache {args.cache} is inside the repository; choose a folder outside it")
    for path in (args.model, args.images):
        if not path.exists():
            p.error(f"{path} does not exist")
    if args.json and args.json.exists() and not args.force:
        raise OverwriteError(args.json)
    return args


def _default_ca() -> Path | None:
    for candidate in (os.environ.get("PIP_CERT"), "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


# -- running the programs --------------------------------------------------------------------
def probe(side: Side, args: argparse.Namespace) -> dict:
    result = side.run([side.python, f"{side.src}/{PROBE}", f"{side.work}/{args.model.name}", f"{side.work}/images",
                       "--top-k", str(args.top_k), "--threads", str(args.threads),
                       "--timing-runs", str(args.timing_runs)])
    report = json.loads(_stdout(result, "pi_probe.py").splitlines()[-1])
    # LiteRT logs this on stderr; without XNNPACK the int8 ops run on LiteRT's built-in kernels,
    # whose rounding differs (seen when its cpuinfo could not read /sys in the root)
    report["xnnpack"] = "XNNPACK delegate" in result.stderr
    return report


def classify_video(side: Side, args: argparse.Namespace) -> list[list[list]]:
    """edgeshop-classify on the shelf video: per frame, per slot, the top-k [label, score]."""
    result = side.run([*side.classify, f"{side.work}/{args.model.name}", f"{side.work}/shelf.avi",
                       "--roi", f"0,0,{SLOT},{SLOT}", "--roi", f"{SLOT},0,{SLOT},{SLOT}",
                       "--top-k", str(args.top_k), "--threads", str(args.threads)])
    frames = [json.loads(line) for line in _stdout(result, "edgeshop-classify").splitlines()]
    return [[[[p["label"], p["score"]] for p in roi["predictions"]] for roi in frame["rois"]] for frame in frames]


def shelf_events(side: Side) -> list[tuple]:
    """shelf_watch.py's events on the shelf video, without times and paths."""
    result = side.run([side.python, f"{side.src}/{SHELF_WATCH}", "--config", f"{side.work}/shelf-{side.name}.json"])
    events = [json.loads(line) for line in _stdout(result, "shelf_watch.py").splitlines()]
    return [(e["event"], e.get("slot"), e.get("from"), e.get("to"), e.get("frame"), e.get("frames")) for e in events
            if e["event"] != "start"]


def _stdout(result: subprocess.CompletedProcess, what: str) -> str:
    if result.returncode:
        tail = " | ".join((result.stderr or "").strip().splitlines()[-3:])
        raise EdgeshopError(f"{what} exited with {result.returncode}: {tail}")
    return result.stdout


def host_side(work: Path) -> Side:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}

    def run(argv: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=work, timeout=3600)

    return Side("host", run, sys.executable, [sys.executable, "-m", "edgeshop.cli.classify"], str(ROOT), str(work))


def root_side(root: Path, cpu: str) -> Side:
    def run(argv: list[str]) -> subprocess.CompletedProcess:
        return pi_root.in_root(root, cpu, argv, timeout=3600)

    return Side("arm64", run, f"{pi_root.VENV}/bin/python", [f"{pi_root.VENV}/bin/edgeshop-classify"],
                pi_root.SRC, pi_root.WORK)


# -- inputs ------------------------------------------------------------------------------------
def stage_inputs(work: Path, args: argparse.Namespace) -> None:
    """The model and the images where both sides find them (the root's copy is made later)."""
    work.mkdir(parents=True, exist_ok=True)
    (work / args.model.name).write_bytes(args.model.read_bytes())
    subprocess.run(["cp", "-a", f"{args.images}/.", str(work / "images")], check=True)


def make_shelf_video(work: Path, images: Path, reference: dict) -> tuple[list[str], list[str]]:
    """A two-slot shelf video from the images the host classifies right with the highest scores:
    the left slot shows product A, then B; the right slot shows C throughout.
    Returns the left slot's and the right slot's expected stable labels."""
    best: dict[str, tuple[float, str]] = {}
    for name, ranked in reference["predictions"].items():
        truth = name.split("/")[-2]
        if ranked and ranked[0][0] == truth and ranked[0][1] > best.get(truth, (0.0, ""))[0]:
            best[truth] = (ranked[0][1], name)
    chosen = sorted(best.items(), key=lambda item: -item[1][0])[:3]
    if len(chosen) < 3 or chosen[-1][1][0] < MIN_VIDEO_SCORE:
        raise EdgeshopError(f"{images}: the model recognises fewer than 3 classes with a score >= {MIN_VIDEO_SCORE}; "
                            "pass --images with clearer photos of at least 3 of its classes")
    (a, (_, a_file)), (b, (_, b_file)), (c, (_, c_file)) = chosen
    tile = {f: cv2.resize(cv2.imread(str(images / f)), (SLOT, SLOT), interpolation=cv2.INTER_AREA)
            for f in (a_file, b_file, c_file)}
    # FFV1 is lossless: OpenCV's MJPG decoding differs slightly between its x86 and arm64 builds
    # (9 of 40 top-3 lists differed), which would compare video codecs instead of edgeshop
    writer = cv2.VideoWriter(str(work / "shelf.avi"), cv2.VideoWriter_fourcc(*"FFV1"), 5.0, (2 * SLOT, SLOT))
    if not writer.isOpened():
        raise EdgeshopError(f"{work / 'shelf.avi'}: OpenCV cannot write an FFV1 video here")
    for left in [a_file] * PHASE_FRAMES + [b_file] * PHASE_FRAMES:
        writer.write(np.concatenate([tile[left], tile[c_file]], axis=1))
    writer.release()
    return [a, b], [c]


def write_shelf_config(work: Path, side: Side, model_name: str, threads: int) -> None:
    config = {"model": f"{side.work}/{model_name}", "source": f"{side.work}/shelf.avi", "threads": threads,
              "heartbeat_seconds": 3600,
              "slots": [{"name": "left", "roi": [0, 0, SLOT, SLOT]}, {"name": "right", "roi": [SLOT, 0, SLOT, SLOT]}]}
    (work / f"shelf-{side.name}.json").write_text(json.dumps(config))


# -- comparing -----------------------------------------------------------------------------------
def tolerance(reference: dict) -> float:
    """One step of a quantized output (an int8/uint8 model's scores move in these), else float noise."""
    return reference["output_scale"] if reference["output_dtype"] != "float32" else 1e-5


def compare_ranked(ref: list[list], got: list[list]) -> tuple[bool, bool, float]:
    """(same labels in the same order, scores identical, largest score difference)."""
    same = [r[0] for r in ref] == [g[0] for g in got]
    diff = max((abs(r[1] - g[1]) for r, g in zip(ref, got, strict=False)), default=0.0) if same else float("inf")
    return same, same and diff == 0.0, diff


def agreement(pairs: list[tuple[list, list]], tol: float) -> tuple[bool, str]:
    results = [compare_ranked(r, g) for r, g in pairs]
    same = sum(s for s, _, _ in results)
    identical = sum(i for _, i, _ in results)
    worst = max((d for _, _, d in results), default=0.0)
    ok = same == len(pairs) and worst <= tol
    text = f"{same}/{len(pairs)} same labels, {identical}/{len(pairs)} identical scores"
    return ok, text + (f", max diff {worst:.4f}" if worst and same == len(pairs) else "")


def tensorflow_status(report: dict) -> tuple[bool, str]:
    if report["tensorflow_modules_loaded"]:
        return False, "imported: " + ", ".join(report["tensorflow_modules_loaded"][:2])
    return True, "not imported" + ("" if report["tensorflow_installed"] else ", not installed")


def check_side(outcome: Outcome, side: Side, args: argparse.Namespace, reference: dict, ref_video: list,
               ref_events: list, tol: float) -> None:
    """Run the three checks on one side against the host's results, filling ``outcome``."""
    steps = {"top-k": lambda: _check_probe(outcome, side, args, reference, tol),
             "video": lambda: agreement(list(zip(_flat(ref_video), _flat(classify_video(side, args)), strict=True)),
                                        tol),
             "shelf": lambda: _check_shelf(side, ref_events)}
    for name, step in steps.items():
        try:
            ok, text = step()
        except (EdgeshopError, ValueError, subprocess.SubprocessError, OSError) as exc:
            ok, text = False, f"error: {exc}"
        outcome.checks[name] = text
        if not ok:
            outcome.failed.append(name)


def _check_probe(outcome: Outcome, side: Side, args: argparse.Namespace, reference: dict, tol: float):
    outcome.probe = probe(side, args)
    names = sorted(reference["predictions"])
    if sorted(outcome.probe["predictions"]) != names:
        return False, "a different set of images was classified"
    ok, text = agreement([(reference["predictions"][n], outcome.probe["predictions"][n]) for n in names], tol)
    tf_ok, tf_text = tensorflow_status(outcome.probe)
    outcome.checks["tensorflow"] = tf_text
    if not tf_ok:
        outcome.failed.append("tensorflow")
    return ok, text


def _check_shelf(side: Side, ref_events: list[tuple]) -> tuple[bool, str]:
    events = shelf_events(side)
    if events == ref_events:
        return True, f"same {len(events) - 1} slot changes as x86"
    return False, f"events differ from x86: {events[:4]}"


def _flat(per_frame: list[list[list]]) -> list[list]:
    return [ranked for frame in per_frame for ranked in frame]


# -- the table -----------------------------------------------------------------------------------
def table(host: dict, outcomes: list[Outcome], args: argparse.Namespace, n_images: int) -> str:
    head = ("| Debian (Python) | QEMU_CPU (int8 features; kernels) | numpy / OpenCV / ai-edge-litert "
            f"| top-{args.top_k} vs x86, {n_images} images | edgeshop-classify, {2 * PHASE_FRAMES} frames x 2 slots "
            "| shelf_watch.py | TensorFlow | ms per classify, emulated |")
    rows = [head, "|" + " --- |" * 8]
    versions = host["versions"]
    kernels = "XNNPACK" if host["xnnpack"] else "no XNNPACK"
    rows.append(f"| x86 host, reference ({host['python']}) | native ({kernels}) | {versions['numpy']} / "
                f"{versions['opencv-python-headless']} / {versions['ai-edge-litert']} | - | - | - | "
                f"{tensorflow_status(host)[1]} | {host['classify_ms']['p50']:.0f} (native, not emulated) |")
    for o in outcomes:
        p = o.probe
        v = p.get("versions", {})
        packages = f"{v.get('numpy')} / {v.get('opencv-python-headless')} / {v.get('ai-edge-litert')}" if v else "-"
        features = ", ".join(p.get("cpu_features", [])) or "no dot product"
        features += "; XNNPACK" if p.get("xnnpack") else "; no XNNPACK" if p else ""
        ms = f"{p['classify_ms']['p50']:.0f}" if p else "-"
        cells = [o.label + (f" ({p['python']})" if p else ""), f"{o.checks.get('cpu', '')} ({features})", packages,
                 o.checks.get("top-k", "-"), o.checks.get("video", "-"), o.checks.get("shelf", "-"),
                 o.checks.get("tensorflow", "-"), ms]
        rows.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(rows)


def check_suite(suite: str, args: argparse.Namespace, work: Path, reference: dict, ref_video: list,
                ref_events: list) -> list[Outcome]:
    """Install the runtime in the suite's root, then check it on every --cpu; one Outcome per CPU."""
    root = args.cache / f"pi-root-{suite}"
    log = args.cache / f"pi-check-{suite}.log"
    label = f"{suite}, {SUITES[suite]}"
    outcomes = []
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(pi_root.locked(root))
            pi_root.ensure_root(root, suite, args.mirror, log)
            print(f"pi-check: installing the working tree into {root} (emulated pip), log {log}", flush=True)
            pi_root.install_runtime(root, ROOT, args.ca_bundle, log, args.fresh_venv)
        except (EdgeshopError, OSError, subprocess.SubprocessError) as exc:
            return [Outcome(label, checks={"top-k": f"not installed: {_why(exc, log)}"}, failed=["install"])]
        root_work = root / pi_root.WORK.lstrip("/")
        subprocess.run(["rm", "-rf", str(root_work)], check=True)
        subprocess.run(["cp", "-a", str(work), str(root_work)], check=True)
        for cpu in args.cpu:
            print(f"pi-check: {suite} on QEMU_CPU={cpu}", flush=True)
            side = root_side(root, cpu)
            write_shelf_config(root_work, side, args.model.name, args.threads)
            outcome = Outcome(label, checks={"cpu": cpu})
            check_side(outcome, side, args, reference, ref_video, ref_events, tolerance(reference))
            outcomes.append(outcome)
    return outcomes


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pi_root.ensure_host_tools()
    args.cache.mkdir(parents=True, exist_ok=True)
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="pi-check-") as tmp:
        work = Path(tmp)
        stage_inputs(work, args)
        host = host_side(work)
        reference = probe(host, args)
        left, right = make_shelf_video(work, args.images, reference)
        write_shelf_config(work, host, args.model.name, args.threads)
        ref_video, ref_events = classify_video(host, args), shelf_events(host)
        changes = {slot: [to for _, s, _, to, _, _ in ref_events if s == slot and to is not None]
                   for slot in ("left", "right")}
        if changes != {"left": left, "right": right}:
            raise EdgeshopError(f"on x86, shelf_watch.py saw {changes} instead of left {left}, right {right} "
                                "in the generated video; the video does not test what it should")
        for suite in args.suite:
            outcomes += check_suite(suite, args, work, reference, ref_video, ref_events)
    print(f"\nemulated arm64 vs x86: {args.model.relative_to(ROOT) if args.model.is_relative_to(ROOT) else args.model}"
          f" on {args.images}, {args.threads} thread(s); times are qemu emulation, not Raspberry Pi figures\n")
    print(table(reference, outcomes, args, len(reference["predictions"])))
    failed = [f"{o.label} {o.checks.get('cpu', '')}: {', '.join(o.failed)}" for o in outcomes if o.failed]
    if args.json:
        write_json_atomic(args.json, {"reference": reference, "rows": [o.__dict__ for o in outcomes]})
    print("\npi-check: " + ("FAILED: " + "; ".join(failed) if failed else "all checks passed"))
    return 1 if failed else 0


def _why(exc: Exception, log: Path) -> str:
    """The line of the pip log that names a missing wheel, else the error itself."""
    if log.exists():
        for line in reversed(log.read_text(errors="replace").splitlines()):
            if "No matching distribution found" in line:
                return line.split("ERROR:")[-1].strip() + " (no aarch64 wheel for this Python)"
    return str(exc)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except EdgeshopError as exc:
        sys.exit(f"pi-check: {exc}")
