"""Classify images with a standard client instead of edgeshop: MediaPipe Tasks or the TFLite Task Library.

    .venv-clients/bin/python tools/client_classify.py MODEL.tflite IMAGE [IMAGE ...] [--client task-library]

Runs in the separate environment `make clients` builds (mediapipe pulls in
opencv-contrib-python, which would replace the project's opencv-python-headless), so it
imports neither edgeshop nor TensorFlow. Prints one JSON object: image path -> top-k
[label, score] pairs, or {"error": message} when the client refuses the model.
"""

from __future__ import annotations

import argparse
import json
import sys


def classify_with_mediapipe(model: str, images: list[str], top_k: int) -> dict[str, list]:
    import mediapipe as mp
    from mediapipe.tasks import python as mp_tasks
    from mediapipe.tasks.python import vision

    options = vision.ImageClassifierOptions(base_options=mp_tasks.BaseOptions(model_asset_path=model),
                                            max_results=top_k)
    with vision.ImageClassifier.create_from_options(options) as classifier:
        results = {}
        for image in images:
            categories = classifier.classify(mp.Image.create_from_file(image)).classifications[0].categories
            results[image] = [[c.category_name, float(c.score)] for c in categories]
    return results


def classify_with_task_library(model: str, images: list[str], top_k: int) -> dict[str, list]:
    from tflite_support.task import core, processor, vision

    options = vision.ImageClassifierOptions(base_options=core.BaseOptions(file_name=model),
                                            classification_options=processor.ClassificationOptions(max_results=top_k))
    classifier = vision.ImageClassifier.create_from_options(options)
    results = {}
    for image in images:
        categories = classifier.classify(vision.TensorImage.create_from_file(image)).classifications[0].categories
        results[image] = [[c.category_name, float(c.score)] for c in categories]
    return results


CLIENTS = {"mediapipe": classify_with_mediapipe, "task-library": classify_with_task_library}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("images", nargs="+")
    parser.add_argument("--client", choices=sorted(CLIENTS), default="mediapipe")
    parser.add_argument("--top-k", type=int, default=3)
    args = parser.parse_args()
    try:
        results = CLIENTS[args.client](args.model, args.images, args.top_k)
    except (RuntimeError, ValueError, OSError) as exc:  # what the clients raise for a model they refuse
        print(json.dumps({"error": str(exc)}))
        return 1
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
