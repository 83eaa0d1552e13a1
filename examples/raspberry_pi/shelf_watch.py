"""Watch shelf slots with a camera and log an event when a slot's product changes.

    python shelf_watch.py --config shelf.json

Uses only the edgeshop runtime (numpy, OpenCV, LiteRT): no TensorFlow on the device.
Each slot is a region (x, y, w, h) of the frame, seen whole by the model ("fit": "pad",
letterboxed; "crop" or "stretch" on request); its label is smoothed over frames with
hysteresis, and a JSON event is written whenever the product in it changes: a swap is one
event "A -> B", and "A -> null" (empty or unrecognised) is written once the slot has had
no stable label for "settle" seconds (docs/cameras.md: "Events"). A frame whose top score is below
the model's unknown threshold (chosen by edgeshop-calibrate on validation images; config
"unknown_threshold" overrides it, 0 turns it off) counts as no product, so a product the
model was never trained on takes the slot to null instead of to its nearest class; such
frames are counted in the heartbeat. A heartbeat line with the frame
rate is written every ``heartbeat_seconds``. SIGTERM (systemd stop) ends it cleanly.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import signal
import sys
import time
from pathlib import Path

from edgeshop import FITS, SETTLE_SECONDS, SLOT_FIT, Classifier, ImageFiles, Smoother, check_settings, open_source

DEFAULTS = {"threads": 2, "threshold": 0.0, "unknown_threshold": None, "every_n_frames": 1, "heartbeat_seconds": 60,
            "fit": SLOT_FIT,
            "smoothing": {"method": "ema", "alpha": 0.3, "window": 5, "enter": 0.6, "exit": 0.4,
                          "settle": SETTLE_SECONDS}}


def load_config(path: Path) -> dict:
    config = {**DEFAULTS, **json.loads(path.read_text())}
    config["smoothing"] = {**DEFAULTS["smoothing"], **config.get("smoothing", {})}
    for key in ("model", "source", "slots"):
        if key not in config:
            raise SystemExit(f"{path}: missing '{key}'")
    try:
        check_settings(**config["smoothing"])
    except (TypeError, ValueError) as exc:
        raise SystemExit(f"{path}: smoothing: {exc}") from None
    if config["fit"] not in FITS:
        raise SystemExit(f"{path}: fit must be one of {', '.join(FITS)}, got {config['fit']!r}")
    model = Path(config["model"])
    config["model"] = str(model if model.is_absolute() else (path.parent / model))
    source = str(config["source"])
    if not source.isdigit() and "://" not in source and source not in ("picamera2", "picam"):
        source_path = Path(source)
        config["source"] = str(source_path if source_path.is_absolute() else (path.parent / source_path))
    return config


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="shelf.json")
    parser.add_argument("--max-frames", type=int, help="stop after this many frames (testing)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    config = load_config(Path(args.config))

    classifier = Classifier(config["model"], threads=config["threads"], score_threshold=config["threshold"],
                            unknown_threshold=config["unknown_threshold"], fit=config["fit"])
    slots = [(slot["name"], tuple(slot["roi"])) for slot in config["slots"]]
    rois = [roi for _, roi in slots]
    smoothers = {name: Smoother(classifier.labels, **config["smoothing"]) for name, _ in slots}
    emit = lambda record: print(json.dumps(record), flush=True)  # noqa: E731 - one line per event
    frames, last_beat, beat_frames, beat_unknown = 0, time.time(), 0, 0
    with open_source(config["source"]) as source:
        # source.stop() ends the iteration within a second even while no frame arrives
        # (a dead camera); checking a flag per frame would wait for the camera.
        signal.signal(signal.SIGTERM, lambda *_: source.stop())
        emit({"time": now(), "event": "start", "model": config["model"], "labels": len(classifier.labels),
              "backend": classifier.backend, "slots": [name for name, _ in slots], "fit": classifier.fit,
              "unknown_threshold": classifier.unknown_threshold})
        for frame in source:
            if args.max_frames and frames >= args.max_frames:
                break
            frames += 1
            if (frames - 1) % config["every_n_frames"]:
                continue
            # image folders: file times say nothing of the order, so one second per image
            timestamp = float(frame.index) if isinstance(source, ImageFiles) else frame.timestamp
            for (name, _), scores in zip(slots, classifier.roi_scores(frame.image, rois), strict=True):
                unknown = classifier.is_unknown(scores)
                beat_unknown += unknown
                result = smoothers[name].update(scores, unknown=unknown, timestamp=timestamp)
                if result.event is not None:
                    emit({"time": now(), "event": "slot_changed", "slot": name, **result.event.as_json(),
                          "frame": frame.index, "unknown_frame": unknown})
            beat_frames += 1
            if time.time() - last_beat >= config["heartbeat_seconds"]:
                emit({"time": now(), "event": "heartbeat", "fps": round(beat_frames / (time.time() - last_beat), 2),
                      "frame": frame.index, "unknown_slot_frames": beat_unknown})
                last_beat, beat_frames, beat_unknown = time.time(), 0, 0
    emit({"time": now(), "event": "stop", "frames": frames})
    return 0


if __name__ == "__main__":
    sys.exit(main())
