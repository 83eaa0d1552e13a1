"""A store camera: named shelf slots, smoothed labels, one JSON event per product change.

    python examples/store_camera.py                 # a shelf video made from edgeshop/demo_data photos
    python examples/store_camera.py shelf.mp4       # or any video, camera index or RTSP URL

Runtime only: numpy, OpenCV and LiteRT (no TensorFlow). The slots are for a 640x480 frame.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from edgeshop import Classifier, Smoother, open_source, read_image

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "grocery" / "grocery_int8.tflite"
SLOTS = {"left": (0, 0, 320, 480), "right": (320, 0, 320, 480)}  # name: (x, y, w, h), tall slots


def watch(source: str, model: Path = MODEL) -> list[dict]:
    """Print (and return) one event per product change in each slot of ``source``."""
    classifier = Classifier(model, fit="pad")  # the model sees each whole slot (the default for slots)
    smoothers = {name: Smoother(classifier.labels, "ema", alpha=0.3, enter=0.6, exit=0.4, settle=1.0)
                 for name in SLOTS}
    events = []
    with open_source(source) as frames:
        for frame in frames:
            slot_scores = classifier.roi_scores(frame.image, list(SLOTS.values()))
            for name, scores in zip(SLOTS, slot_scores, strict=True):
                result = smoothers[name].update(scores, unknown=classifier.is_unknown(scores),
                                                timestamp=frame.timestamp)  # the video's clock
                if result.event is not None:  # a swap A -> B is one event; "empty" after 1 s
                    event = {"slot": name, "frame": frame.index, **result.event.as_json()}
                    print(json.dumps(event), flush=True)
                    events.append(event)
    return events


def demo_video(path: Path, fps: float = 10.0) -> Path:
    """A 640x480 shelf video: the left slot holds a banana, is empty for 0.3 s and then holds
    a Royal Gala; the right slot holds a carton of milk throughout. Photos from edgeshop/demo_data."""
    def photo(name: str) -> np.ndarray:
        return read_image(sorted((ROOT / "edgeshop" / "demo_data" / "test" / name).glob("*.jpg"))[0])

    def slot(image: np.ndarray | None) -> np.ndarray:
        shelf = np.full((480, 320, 3), 90, np.uint8)  # a grey shelf, the product standing in its middle
        if image is not None:
            shelf[80:400] = cv2.resize(image, (320, 320), interpolation=cv2.INTER_AREA)
        return shelf

    banana, apple, milk = photo("Banana"), photo("Royal-Gala"), photo("Arla-Standard-Milk")
    lefts = [banana] * 30 + [None] * 3 + [apple] * 30
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (640, 480))
    for left in lefts:
        writer.write(np.concatenate([slot(left), slot(milk)], axis=1))
    writer.release()
    return path


def main(argv: list[str]) -> int:
    if argv:
        watch(argv[0])
        return 0
    with tempfile.TemporaryDirectory() as folder:
        watch(str(demo_video(Path(folder) / "shelf.avi")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
