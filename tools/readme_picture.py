"""The README's picture: three demo photos side by side as one shelf frame, each shelf slot
classified by the shipped int8 model and annotated as `edgeshop-classify --roi ... --save-dir`
draws it. Rerun after changing the model or the annotation:

    python tools/readme_picture.py          # writes docs/assets/shelf.jpg
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgeshop import (
    DEMO_DATA,
    Classifier,
    annotate,
    read_image,
    write_bytes_atomic,
)

PRODUCTS = ("Banana", "Arla-Standard-Milk", "Carrots")  # three demo classes, left to right
SIDE = 240  # pixels per slot in the picture
OUT = ROOT / "docs" / "assets" / "shelf.jpg"


def shelf_frame() -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    photos = [read_image(sorted((DEMO_DATA / "test" / name).glob("*.jpg"))[0]) for name in PRODUCTS]
    slots = [cv2.resize(photo, (SIDE, SIDE), interpolation=cv2.INTER_AREA) for photo in photos]
    return np.hstack(slots), [(i * SIDE, 0, SIDE, SIDE) for i in range(len(slots))]


def main() -> int:
    classifier = Classifier(ROOT / "models" / "grocery" / "grocery_int8.tflite")
    frame, rois = shelf_frame()
    results = [(classifier.seen_box(frame, roi), classifier.classify(frame, top_k=1, rois=[roi])[0], None)
               for roi in rois]
    ok, jpeg = cv2.imencode(".jpg", annotate(frame, results), [cv2.IMWRITE_JPEG_QUALITY, 85])
    write_bytes_atomic(OUT, jpeg.tobytes())
    print(f"wrote {OUT}: " + ", ".join(p[1][0].label for p in results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
