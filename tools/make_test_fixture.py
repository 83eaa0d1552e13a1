"""Regenerate tests/data/tiny_int8.tflite and its golden outputs.

The runtime tests (which must pass without TensorFlow) use this committed model. Run:

    PYTHONPATH=. .venv/bin/python tools/make_test_fixture.py

Golden scores are compared within one output quantisation step, never byte-for-byte.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from synthetic import make_dataset  # noqa: E402

from edgeshop import Classifier  # noqa: E402
from edgeshop.train import (
    TrainConfig,
    export,
    train,
)

OUT = ROOT / "tests" / "data"


def main() -> None:
    work = Path(tempfile.mkdtemp())
    try:
        data = make_dataset(work / "data", per_class=40, seed=0)
        probes = make_dataset(OUT / "synthetic", per_class=2, seed=7)
        run = work / "run"
        train(TrainConfig.from_flat(data=str(data), out=str(run), arch="tiny", epochs=8, batch_size=16, lr=3e-3,
                                    qat=True))
        model = OUT / "tiny_int8.tflite"
        export(run, model, "int8", force=True)
        classifier = Classifier(model)
        golden = {}
        for image in sorted(probes.rglob("*.png")):
            frame = cv2.imread(str(image))
            golden[str(image.relative_to(OUT))] = [float(s) for s in classifier.scores(frame)]
        payload = {"labels": classifier.labels, "scores": golden}
        (OUT / "tiny_int8_golden.json").write_text(json.dumps(payload, indent=1))
        print(f"wrote {model} ({model.stat().st_size} bytes) and golden scores for {len(golden)} images")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
