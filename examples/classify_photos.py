"""Classify product photos with the shipped grocery model (or any edgeshop model).

    python examples/classify_photos.py edgeshop/demo_data/test/Banana
    python examples/classify_photos.py shelf.jpg --model my_model.tflite --top-k 3

Runtime only: numpy, OpenCV and LiteRT (no TensorFlow).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgeshop import Classifier, open_source

SHIPPED_MODEL = Path(__file__).resolve().parents[1] / "models" / "grocery" / "grocery_int8.tflite"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", help="an image file or a folder of images")
    parser.add_argument("--model", default=str(SHIPPED_MODEL), help="default: the shipped 81-class grocery model")
    parser.add_argument("--top-k", type=int, default=3)
    args = parser.parse_args()

    classifier = Classifier(args.model, top_k=args.top_k)
    with open_source(args.photos) as photos:
        for frame in photos:
            ranked = ", ".join(f"{p.label} {p.score:.2f}" for p in classifier.classify(frame.image))
            print(f"{Path(frame.source).name}: {ranked}")


if __name__ == "__main__":
    main()
