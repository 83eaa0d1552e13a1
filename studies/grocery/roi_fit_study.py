"""Which `fit` classifies shelf slots best: top-1 of each fit on tall, wide and camera-shaped cuts.

    nice python studies/grocery/roi_fit_study.py --data ../shared/datasets/grocery_store

Each Grocery Store val photo (square, 348x348) is cut into the largest centred region of
each shape: a tall slot (1:2, width:height), a wide slot (2:1) and a camera frame (4:3);
the whole photo (1:1) is the reference, where every fit sees the same pixels. Each cut is
classified with every fit (crop, pad, stretch) by the shipped int8 model, one thread.
Writes studies/grocery/figures/roi_fit_study.json (figures in docs/cameras.md); about 30 s of
CPU. Only this script reads the dataset: edgeshop itself never does at run time.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

from study_paths import FIGURES, ROOT  # noqa: E402  (this folder is on sys.path when run as a script)

from edgeshop import (  # noqa: E402
    FITS,
    Classifier,
    read_image,
    write_json_atomic,
)

# width:height of each cut; "square" is the uncut photo
SHAPES = {"square": (1, 1), "tall": (1, 2), "wide": (2, 1), "camera": (4, 3)}


def centred_cut(height: int, width: int, aspect: tuple[int, int]) -> tuple[int, int, int, int]:
    """(x, y, w, h) of the largest centred region of a HxW photo with w:h = aspect."""
    aw, ah = aspect
    w = min(width, height * aw // ah)
    h = min(height, w * ah // aw)
    w = h * aw // ah
    return (width - w) // 2, (height - h) // 2, w, h


def val_photos(data: Path) -> list[tuple[Path, str]]:
    """(photo, class name) of the official val split (val.txt ids named by classes.csv)."""
    with open(data / "classes.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))[1:]
    names = {int(row[1]): row[0] for row in rows}
    photos = []
    for line in (data / "val.txt").read_text(encoding="utf-8").splitlines():
        if line.strip():
            path, fine, _ = (part.strip() for part in line.split(","))
            photos.append((data / path, names[int(fine)]))
    return photos


def study(model: Path, data: Path, limit: int | None = None) -> dict:
    classifier = Classifier(model, threads=1)
    photos = val_photos(data)[:limit]
    missing = sorted({name for _, name in photos} - set(classifier.labels))
    if missing:
        raise SystemExit(f"{model}: val classes the model does not know: {missing[:5]}")
    correct = {shape: {fit: 0 for fit in FITS} for shape in SHAPES}
    started = time.process_time()
    for path, truth in photos:
        image = read_image(path)
        for shape, aspect in SHAPES.items():
            x, y, w, h = centred_cut(image.shape[0], image.shape[1], aspect)
            for fit in FITS:
                scores = classifier.roi_scores(image, [(x, y, w, h)], fit=fit)[0]
                correct[shape][fit] += classifier.labels[int(scores.argmax())] == truth
    n = len(photos)
    return {
        "model": str(model.relative_to(ROOT) if model.is_relative_to(ROOT) else model),
        "data": "Grocery Store dataset, official val split (val.txt)",
        "images": n,
        "input": f"{classifier.input_spec.width}x{classifier.input_spec.height}",
        "cuts": {shape: {"aspect_w_h": list(aspect), "size_w_h": list(centred_cut(348, 348, aspect)[2:])}
                 for shape, aspect in SHAPES.items()},
        "top1": {shape: {fit: round(correct[shape][fit] / n, 4) for fit in FITS} for shape in SHAPES},
        "correct": correct,
        "cpu_seconds": round(time.process_time() - started, 1),
        "command": "nice python studies/grocery/roi_fit_study.py --data ../shared/datasets/grocery_store",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the Grocery Store dataset folder (has val.txt)")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "grocery" / "grocery_int8.tflite")
    parser.add_argument("--out", type=Path, default=FIGURES / "roi_fit_study.json")
    parser.add_argument("--limit", type=int, help="only the first N photos (a quick check)")
    args = parser.parse_args()
    result = study(args.model.resolve(), args.data, args.limit)
    write_json_atomic(args.out, result)
    for shape, row in result["top1"].items():
        print(f"{shape:7s} " + "  ".join(f"{fit} {100 * value:5.1f}%" for fit, value in row.items()))
    print(f"{result['images']} photos, {result['cpu_seconds']} s CPU -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
