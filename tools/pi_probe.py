"""What `make pi-check` runs on each side: classify a folder of labelled images, print JSON.

    python tools/pi_probe.py MODEL IMAGES [--top-k 3] [--threads 1] [--timing-runs 10]

Runs unchanged on the x86 host (the reference) and inside the emulated arm64 root with
the runtime installed there by `pip install .`, so both sides run the same code. Reports
the top-k labels and scores per image, the interpreter's environment (Python, package
versions, the CPU features the process sees), whether TensorFlow is installed and
whether anything imported it, and the time of Classifier.classify.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import platform
import struct
import sys
from pathlib import Path

PACKAGES = ("edgeshop", "numpy", "opencv-python-headless", "ai-edge-litert")
TF_MODULES = ("tensorflow", "tf_keras", "keras", "tensorflow_lite_support")
# aarch64 HWCAP/HWCAP2 bits (linux arch/arm64/include/uapi/asm/hwcap.h) behind LiteRT's int8 kernels
HWCAP_BITS = {"asimddp": (16, 20), "sve": (16, 22), "sve2": (26, 1), "i8mm": (26, 13), "sme": (26, 23)}


def cpu_features() -> list[str]:
    """The int8-relevant features this (possibly emulated) aarch64 process is told it has."""
    if platform.machine() != "aarch64":
        return []
    try:
        raw = Path("/proc/self/auxv").read_bytes()  # qemu-user answers with the emulated CPU's auxv
    except OSError:
        return []
    auxv = dict(struct.iter_unpack("<QQ", raw[: len(raw) // 16 * 16]))
    return [name for name, (key, bit) in HWCAP_BITS.items() if auxv.get(key, 0) >> bit & 1]


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("images", help="a folder of class folders")
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--timing-runs", type=int, default=10)
    args = parser.parse_args(argv)

    import cv2

    import edgeshop
    from edgeshop import time_calls
    from edgeshop.data import discover

    classifier = edgeshop.Classifier(args.model, threads=args.threads)
    root = Path(args.images)
    predictions, frames = {}, []
    for sample in discover(root):
        frame = cv2.imread(str(sample.path))
        if frame is None:
            raise SystemExit(f"{sample.path}: OpenCV cannot read this image")
        frames.append(frame)
        ranked = classifier.classify(frame, top_k=args.top_k)
        predictions[sample.path.relative_to(root).as_posix()] = [[p.label, p.score] for p in ranked]
    latency = time_calls(lambda: classifier.classify(frames[0]), runs=args.timing_runs, warmup=2)
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in TF_MODULES and sys.modules[m] is not None)
    info = classifier.info
    report = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_features": cpu_features(),
        "versions": versions(),
        "edgeshop_file": edgeshop.__file__,
        "backend": classifier.backend,
        "threads": args.threads,
        "output_dtype": info["output_dtype"],
        "output_scale": info["output_quantization"]["scale"],
        "tensorflow_installed": importlib.util.find_spec("tensorflow") is not None,
        "tensorflow_modules_loaded": loaded,
        "predictions": predictions,
        "classify_ms": {"first": latency.first_ms, "p50": latency.p50_ms, "runs": latency.runs},
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
