"""edgeshop-classify: classify images, folders, videos or cameras; one JSON object per frame.

Runtime only (numpy, OpenCV, LiteRT). SOURCE is an image, a folder, a video file, a
camera index, an RTSP/HTTP URL or ``picamera2``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from edgeshop.cli._common import run_command


def parse_roi(text: str) -> tuple[int, int, int, int]:
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"ROI must be x,y,w,h integers, got {text!r}") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"ROI width and height must be positive, got {text!r}")
    return x, y, w, h


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgeshop-classify", description=__doc__.splitlines()[0])
    p.add_argument("model", help=".tflite model")
    p.add_argument("source", help="image, folder, video file, camera index, RTSP/HTTP URL or picamera2")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--threshold", type=float, default=0.0, help="drop predictions scoring below this")
    p.add_argument("--roi", type=parse_roi, action="append", metavar="X,Y,W,H",
                   help="classify this region (repeat for several shelf slots)")
    p.add_argument("--smooth", choices=("ema", "vote"), help="add a temporally smoothed, stable label")
    p.add_argument("--alpha", type=float, default=0.3, help="EMA weight of the newest frame")
    p.add_argument("--window", type=int, default=5, help="frames in the vote")
    p.add_argument("--enter", type=float, default=0.6, help="smoothed score that makes a label stable")
    p.add_argument("--exit", type=float, default=0.4, help="smoothed score below which it is dropped")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument("--save-video", help="write an annotated video here (.mp4 or .avi)")
    p.add_argument("--save-dir", help="write annotated frames (JPEG) into this folder")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        import cv2

        from edgeshop.runtime.annotate import annotate
        from edgeshop.runtime.classifier import Classifier, crop_roi
        from edgeshop.runtime.smoothing import Smoother
        from edgeshop.runtime.stream import open_source

        classifier = Classifier(args.model, num_threads=args.threads, top_k=args.top_k,
                                score_threshold=args.threshold)
        regions = args.roi or [None]
        smoothers = [Smoother(classifier.labels, args.smooth, args.alpha, args.window, args.enter, args.exit)
                     for _ in regions] if args.smooth else None
        writer = None
        if args.save_dir:
            Path(args.save_dir).mkdir(parents=True, exist_ok=True)
        count = 0
        with open_source(args.source) as source:
            for frame in source:
                started = time.perf_counter()
                results, records = [], []
                for slot, roi in enumerate(regions):
                    scores = classifier.scores(frame.image if roi is None else crop_roi(frame.image, roi))
                    predictions = classifier.rank(scores)
                    record = {"predictions": [p.__dict__ for p in predictions]}
                    stable = None
                    if smoothers:
                        smoothed = smoothers[slot].update(scores)
                        stable = smoothed.label
                        record["stable"] = {"label": smoothed.label, "score": round(smoothed.score, 4),
                                            "changed": smoothed.changed}
                    if roi is not None:
                        record = {"roi": list(roi), **record}
                    records.append(record)
                    results.append((roi, predictions, stable))
                latency = (time.perf_counter() - started) * 1e3
                line = {"source": frame.source, "frame": frame.index, "timestamp": round(frame.timestamp, 3),
                        "latency_ms": round(latency, 3)}
                line.update({"rois": records} if args.roi else records[0])
                print(json.dumps(line), flush=True)
                if args.save_video or args.save_dir:
                    drawn = annotate(frame.image, results)
                    if args.save_video:
                        if writer is None:
                            fourcc = cv2.VideoWriter_fourcc(*("mp4v" if args.save_video.endswith(".mp4") else "MJPG"))
                            writer = cv2.VideoWriter(args.save_video, fourcc, 15.0, (drawn.shape[1], drawn.shape[0]))
                        writer.write(drawn)
                    if args.save_dir:
                        cv2.imwrite(str(Path(args.save_dir) / f"frame_{frame.index:06d}.jpg"), drawn)
                count += 1
                if args.max_frames and count >= args.max_frames:
                    break
        if writer is not None:
            writer.release()
        return 0

    return run_command("edgeshop-classify", body)


if __name__ == "__main__":
    sys.exit(main())
