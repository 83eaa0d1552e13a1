"""edgeshop-classify: classify images, folders, videos or cameras; one JSON object per frame.

Runtime only (numpy, OpenCV, LiteRT). SOURCE is an image, a folder, a video file, a
camera index, an RTSP/HTTP URL or ``picamera2``. Unreadable images of a folder are
reported on stderr and skipped; a lone unreadable image, or a camera silent for
--give-up-after seconds, is an error (exit 2).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from edgeshop.cli._common import parse, positive_int, run_command, show_warnings


def parse_roi(text: str) -> tuple[int, int, int, int]:
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"ROI must be x,y,w,h integers, got {text!r}") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"ROI width and height must be positive, got {text!r}")
    return x, y, w, h


GIVE_UP_AFTER = 30.0  # seconds without a frame before a live source counts as dead


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgeshop-classify", description=__doc__.splitlines()[0])
    p.add_argument("model", help=".tflite model")
    p.add_argument("source", help="image, folder, video file, camera index, RTSP/HTTP URL or picamera2")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--threshold", type=float, default=0.0, help="drop predictions scoring below this")
    p.add_argument("--unknown-threshold", type=float, default=None, metavar="SCORE",
                   help="a frame whose top score is below this is 'unknown' (none of the model's products); "
                        "default: the threshold edgeshop-calibrate stored in the model, 0 turns it off")
    p.add_argument("--roi", type=parse_roi, action="append", metavar="X,Y,W,H",
                   help="classify this region (repeat for several shelf slots)")
    p.add_argument("--smooth", choices=("ema", "vote"), help="add a temporally smoothed, stable label")
    p.add_argument("--alpha", type=float, default=0.3, help="EMA weight of the newest frame, in (0, 1]")
    p.add_argument("--window", type=int, default=5, help="frames in the vote (>= 1)")
    p.add_argument("--enter", type=float, default=0.6, help="smoothed score that makes a label stable")
    p.add_argument("--exit", type=float, default=0.4, help="smoothed score below which it is dropped (<= --enter)")
    p.add_argument("--threads", type=positive_int, default=None, help="interpreter threads (>= 1)")
    p.add_argument("--max-frames", type=positive_int, help="stop after this many frames")
    p.add_argument("--give-up-after", type=float, default=GIVE_UP_AFTER, metavar="SECONDS",
                   help=f"a camera or stream that delivers no frame for this long ends the run with an error "
                        f"(default {GIVE_UP_AFTER:g})")
    p.add_argument("--retry-forever", action="store_true",
                   help="never give up on a camera or stream: keep reconnecting (services)")
    p.add_argument("--save-video", help="write an annotated video here (.mp4 or .avi; the folder must exist)")
    p.add_argument("--save-dir", help="write annotated frames (JPEG) into this folder")
    p.add_argument("--force", action="store_true", help="replace an existing --save-video or --save-dir frames")
    return p


def check_outputs(save_video: str | None, save_dir: str | None, force: bool,
                  inputs: tuple[str | None, ...] = ()) -> None:
    """Refuse, before any work, outputs that cannot be written or would replace files."""
    from edgeshop._io import check_inputs, check_output_file
    from edgeshop.errors import EdgeshopError

    inputs = [p for p in inputs if p and os.path.exists(p)]  # a camera index or URL is no path
    if save_video:
        video = Path(save_video)
        if not video.parent.is_dir():
            raise EdgeshopError(f"{video}: the folder {video.parent} does not exist; create it first")
        check_output_file(video, force=force, kind="video", inputs=inputs, flag="--save-video")
    if save_dir:
        folder = Path(save_dir)
        if folder.exists() and not folder.is_dir():
            raise EdgeshopError(f"{folder}: --save-dir must be a folder, and this is a file")
        check_inputs(folder, inputs, "--save-dir")
        for frame in sorted(folder.glob("frame_*.jpg")) if folder.is_dir() else []:
            check_output_file(frame, force=force, kind="jpeg", flag="--save-dir")


class VideoOutput:
    """An annotated video written to a temporary name beside the target and renamed when
    complete: a failed run leaves no half video and replaces nothing."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.partial = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self.writer = None

    def write(self, image) -> None:
        import cv2

        from edgeshop.errors import EdgeshopError

        if self.writer is None:
            fourcc = cv2.VideoWriter_fourcc(*("mp4v" if self.path.suffix.lower() == ".mp4" else "MJPG"))
            self.writer = cv2.VideoWriter(str(self.partial), fourcc, 15.0, (image.shape[1], image.shape[0]))
            if not self.writer.isOpened():
                raise EdgeshopError(f"{self.path}: OpenCV cannot write this video; use a .mp4 or .avi name")
        self.writer.write(image)

    def finish(self, complete: bool) -> None:
        if self.writer is None:
            return
        self.writer.release()
        if complete:
            os.replace(self.partial, self.path)
        else:
            self.partial.unlink(missing_ok=True)


def classify_regions(classifier, image, regions: list, smoothers: list | None) -> tuple[list[dict], list[tuple]]:
    """Per region (None: the whole frame): its JSON record and (roi, predictions, stable label) for drawing."""
    records, results = [], []
    whole_frame = regions == [None]
    per_region = [classifier.scores(image)] if whole_frame else classifier.roi_scores(image, regions)
    for slot, (roi, scores) in enumerate(zip(regions, per_region, strict=True)):
        predictions = classifier.rank(scores)
        unknown = classifier.is_unknown(scores)
        # "unknown": none of the model's products; the predictions are then only the nearest ones
        record = {"unknown": unknown, "predictions": [p.__dict__ for p in predictions]}
        stable = None
        if smoothers:
            smoothed = smoothers[slot].update(scores, unknown=unknown)
            stable = smoothed.label
            record["stable"] = {"label": smoothed.label, "score": round(smoothed.score, 4),
                                "changed": smoothed.changed}
        if roi is not None:
            record = {"roi": list(roi), **record}
        records.append(record)
        results.append((roi, predictions, stable))
    return records, results


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse(parser, argv)
    try:
        from edgeshop.runtime.smoothing import check_settings

        check_settings(args.smooth or "ema", args.alpha, args.window, args.enter, args.exit)
    except ValueError as exc:
        parser.error(f"smoothing: {exc}")
    if args.top_k < 1:
        parser.error(f"--top-k must be >= 1 (how many products to list per frame), got {args.top_k}")
    if not 0 <= args.threshold <= 1:
        parser.error(f"--threshold is a score in [0, 1], got {args.threshold:g}")
    if args.give_up_after <= 0:
        parser.error(f"--give-up-after must be > 0 seconds, got {args.give_up_after:g} (use --retry-forever)")

    def body() -> int:
        import cv2

        from edgeshop.errors import EdgeshopError
        from edgeshop.runtime.annotate import annotate
        from edgeshop.runtime.classifier import Classifier
        from edgeshop.runtime.smoothing import Smoother
        from edgeshop.runtime.stream import ImageFiles, open_source
        from edgeshop.utils import write_bytes_atomic

        check_outputs(args.save_video, args.save_dir, args.force, (args.model, args.source))
        show_warnings("edgeshop-classify")
        classifier = Classifier(args.model, num_threads=args.threads, top_k=args.top_k,
                                score_threshold=args.threshold, unknown_threshold=args.unknown_threshold)
        if args.top_k > len(classifier.labels):
            raise EdgeshopError(f"--top-k {args.top_k}: {args.model} knows {len(classifier.labels)} products; "
                                f"give at most {len(classifier.labels)}")
        regions = args.roi or [None]
        smoothers = [Smoother(classifier.labels, args.smooth, args.alpha, args.window, args.enter, args.exit)
                     for _ in regions] if args.smooth else None
        video = VideoOutput(args.save_video) if args.save_video else None
        if args.save_dir:
            Path(args.save_dir).mkdir(parents=True, exist_ok=True)
        count, complete = 0, False
        give_up = None if args.retry_forever else args.give_up_after
        try:
            with open_source(args.source, give_up_after=give_up) as source:
                for frame in source:
                    started = time.perf_counter()
                    records, results = classify_regions(classifier, frame.image, regions, smoothers)
                    latency = (time.perf_counter() - started) * 1e3
                    line = {"source": frame.source, "frame": frame.index, "timestamp": round(frame.timestamp, 3),
                            "latency_ms": round(latency, 3)}
                    line.update({"rois": records} if args.roi else records[0])
                    print(json.dumps(line), flush=True)
                    if video or args.save_dir:
                        drawn = annotate(frame.image, results)
                        if video:
                            video.write(drawn)
                        if args.save_dir:
                            jpeg = cv2.imencode(".jpg", drawn)[1].tobytes()
                            write_bytes_atomic(Path(args.save_dir) / f"frame_{frame.index:06d}.jpg", jpeg)
                    count += 1
                    if args.max_frames and count >= args.max_frames:
                        break
            complete = True
        finally:
            if video:
                video.finish(complete)
        if isinstance(source, ImageFiles) and source.skipped:
            if count == 0:
                raise EdgeshopError(f"{args.source}: none of its {len(source.files)} image(s) could be read, "
                                    f"e.g. {source.skipped[0][1]}")
            print(f"edgeshop-classify: skipped {len(source.skipped)} of {len(source.files)} image(s) "
                  "(reasons above)", file=sys.stderr)
        return 0

    return run_command("edgeshop-classify", body)


if __name__ == "__main__":
    sys.exit(main())
