"""Build edgeshop/demo_data/, the small licensed subset `make demo` and the tests use (package data).

Maintainer script, run once from a checkout that has the Grocery Store dataset beside
it (../shared/datasets/grocery_store, MIT licence). Takes TRAIN_PER_CLASS images of
each demo class from the official train split and all of its official val images as
held-out test images, downscaled to SIDE px JPEG, and copies the licence.

    python tools/make_demo_subset.py [--source ../shared/datasets/grocery_store]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import cv2

CLASSES = (
    "Granny-Smith", "Royal-Gala", "Banana", "Kiwi", "Lime",
    "Oatly-Oat-Milk", "Arla-Standard-Milk", "Red-Bell-Pepper", "Yellow-Bell-Pepper", "Carrots",
)
TRAIN_PER_CLASS = 24
SIDE = 192
ROOT = Path(__file__).resolve().parents[1]


def leaf_folders(split: Path) -> dict[str, Path]:
    return {p.name: p for p in split.rglob("*") if p.is_dir() and any(f.suffix == ".jpg" for f in p.iterdir())}


def copy_downscaled(files: list[Path], target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for src in files:
        image = cv2.imread(str(src))
        small = cv2.resize(image, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(target / src.name), small, [cv2.IMWRITE_JPEG_QUALITY, 88])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(ROOT.parent / "shared" / "datasets" / "grocery_store"))
    parser.add_argument("--out", default=str(ROOT / "edgeshop" / "demo_data"))
    args = parser.parse_args()
    source, out = Path(args.source), Path(args.out)
    train, val = leaf_folders(source / "train"), leaf_folders(source / "val")
    if out.exists():
        shutil.rmtree(out)
    for name in CLASSES:
        copy_downscaled(sorted(train[name].glob("*.jpg"))[:TRAIN_PER_CLASS], out / "train" / name)
        copy_downscaled(sorted(val[name].glob("*.jpg")), out / "test" / name)
    shutil.copy(source / "LICENSE", out / "LICENSE")
    print(f"wrote {sum(1 for _ in out.rglob('*.jpg'))} images to {out}")


if __name__ == "__main__":
    main()
