"""edgeshop-classify: classify images, folders, videos or cameras; one JSON object per frame.

Runtime only (numpy, OpenCV, LiteRT). SOURCE is an image, a folder, a video file, a
camera index, an RTSP/HTTP URL or ``picamera2``. Unreadable images of a folder are
reported on stderr and skipped; a lone unreadable image, or a camera silent for
--give-up-after seconds, is an error (exit 2). Ctrl-C (SIGINT) or SIGTERM stops at the
next frame and keeps the work: --save-video is finalised with every frame written so far
(exit 0); a second signal abandons it (exit 130).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from edgeshop.cli._common import add_deprecated_alias, add_threads, parse, positive_int, run_command, show_warnings
from edgeshop.runtime.preprocess import FITS, FRAME_FIT, SLOT_FIT
from edgeshop.runtime.smoothing import SETTLE_SECONDS


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
    p.add_argument("--top-k", type=int, default=3, help="products listed per frame or region (default 3)")
    p.add_argument("--score-threshold", type=float, default=0.0, metavar="SCORE",
                   help="drop predictions scoring below this (default 0: keep all --top-k)")
    add_deprecated_alias(p, "--threshold", "--score-threshold")
    p.add_argument("--unknown-threshold", type=float, default=None, metavar="SCORE",
                   help="a frame whose top score is below this is 'unknown' (none of the model's products); "
                        "default: the threshold edgeshop-calibrate stored in the model, 0 turns it off")
    p.add_argument("--roi", type=parse_roi, action="append", metavar="X,Y,W,H",
                   help="classify this region (repeat for several shelf slots)")
    p.add_argument("--fit", choices=FITS,
                   help="how a frame or region of another shape than the model's input is fitted to it: "
                        "pad (letterbox, the model sees all of it), crop (centre crop) or stretch "
                        f"(default: {SLOT_FIT} for --roi slots, {FRAME_FIT} for whole frames; see docs/cameras.md)")
    p.add_argument("--smooth", choices=("ema", "vote"), help="add a temporally smoothed, stable label")
    p.add_argument("--alpha", type=float, default=0.3, help="EMA weight of the newest frame, in (0, 1]")
    p.add_argument("--window", type=int, default=5, help="frames in the vote (>= 1)")
    p.add_argument("--enter", type=float, default=0.6, help="smoothed score that makes a label stable")
    p.add_argument("--exit", type=float, default=0.4, help="smoothed score below which it is dropped (<= --enter)")
    p.add_argument("--settle", type=float, default=SETTLE_SECONDS, metavar="SECONDS",
                   help="a slot must have no stable label this long before 'product -> null' is an event; "
                        f"a swap within it is one event 'A -> B' (default {SETTLE_SECONDS:g}; image folders "
                        "count one second per image)")
    add_threads(p)
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


class SignalStop:
    """While entered: the first SIGINT/SIGTERM calls ``stop`` (end at the next frame, keep
    the work) and is remembered in ``signum``; a second one raises KeyboardInterrupt,
    except while ``finishing`` (writing out what was done), when it is ignored. A file
    size limit (SIGXFSZ) becomes a failed write that the video check reports, not a kill."""

    def __init__(self, stop: Callable[[], None]) -> None:
        self.stop, self.signum, self.finishing = stop, None, False
        self._previous: dict = {}

    def _handle(self, signum: int, _frame: object) -> None:
        if self.signum is None:
            self.signum = signum
            self.stop()
        elif not self.finishing:
            raise KeyboardInterrupt

    def __enter__(self) -> SignalStop:
        wanted = {signal.SIGINT: self._handle, signal.SIGTERM: self._handle}
        if hasattr(signal, "SIGXFSZ"):
            wanted[signal.SIGXFSZ] = signal.SIG_IGN
        try:
            for signum, action in wanted.items():
                self._previous[signum] = signal.signal(signum, action)
        except ValueError:  # not the main thread: signals stay as they were
            pass
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, action in self._previous.items():
            signal.signal(signum, action)


def classify_regions(classifier, image, regions: list, smoothers: list | None,
                     timestamp: float) -> tuple[list[dict], list[tuple]]:
    """Per region (None: the whole frame): its JSON record and, for drawing, (the box the
    model saw or None when it saw the whole frame, predictions, stable label)."""
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
            smoothed = smoothers[slot].update(scores, unknown=unknown, timestamp=timestamp)
            stable = smoothed.label
            record["stable"] = {"label": smoothed.label, "score": round(smoothed.score, 4),
                                "changed": smoothed.changed}
            if smoothed.event is not None:
                record["event"] = smoothed.event.as_json()
        seen = classifier.seen_box(image, roi)
        record = {"seen": list(seen), **record}
        if roi is not None:
            record = {"roi": list(roi), **record}
        records.append(record)
        results.append((None if seen == (0, 0, image.shape[1], image.shape[0]) else seen, predictions, stable))
    return records, results


def classify_frames(args: argparse.Namespace, classifier, source, regions: list, smoothers: list | None,
                    video) -> int:
    """Classify, print and save every frame of ``source`` (until it ends or is stopped); the count."""
    import cv2

    from edgeshop.runtime.annotate import annotate
    from edgeshop.runtime.stream import ImageFiles
    from edgeshop.utils import write_bytes_atomic

    count = 0
    for frame in source:
        started = time.perf_counter()
        # image folders: file times say nothing of the order, so one second per image
        timestamp = float(frame.index) if isinstance(source, ImageFiles) else frame.timestamp
        records, results = classify_regions(classifier, frame.image, regions, smoothers, timestamp)
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
    return count


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse(parser, argv)
    try:
        from edgeshop.runtime.smoothing import check_settings

        check_settings(args.smooth or "ema", args.alpha, args.window, args.enter, args.exit, args.settle)
    except ValueError as exc:
        # the library names its parameters; the command's user knows them as options
        parser.error("smoothing: " + re.sub(r"\b(alpha|window|enter|exit|settle)\b", r"--\1", str(exc)))
    if args.top_k < 1:
        parser.error(f"--top-k must be >= 1 (how many products to list per frame), got {args.top_k}")
    if not 0 <= args.score_threshold <= 1:
        parser.error(f"--score-threshold is a score in [0, 1], got {args.score_threshold:g}")
    if args.unknown_threshold is not None and not 0 <= args.unknown_threshold <= 1:
        parser.error(f"--unknown-threshold is a score in [0, 1] (0 turns the check off), "
                     f"got {args.unknown_threshold:g}")
    if args.give_up_after <= 0:
        parser.error(f"--give-up-after must be > 0 seconds, got {args.give_up_after:g} (use --retry-forever)")

    def body() -> int:
        from edgeshop.errors import EdgeshopError
        from edgeshop.runtime.classifier import Classifier
        from edgeshop.runtime.smoothing import Smoother
        from edgeshop.runtime.stream import URL_SCHEMES, ImageFiles, open_source, resolve_stream_host
        from edgeshop.runtime.video_out import VideoOutput

        check_outputs(args.save_video, args.save_dir, args.force, (args.model, args.source))
        if args.source.lower().startswith(URL_SCHEMES) and not args.retry_forever:
            resolve_stream_host(args.source)  # before the model loads: a wrong name is answered at once
        show_warnings("edgeshop-classify")
        classifier = Classifier(args.model, threads=args.threads, top_k=args.top_k,
                                score_threshold=args.score_threshold, unknown_threshold=args.unknown_threshold,
                                fit=args.fit)
        if args.top_k > len(classifier.labels):
            raise EdgeshopError(f"--top-k {args.top_k}: {args.model} knows {len(classifier.labels)} products; "
                                f"give at most {len(classifier.labels)}")
        regions = args.roi or [None]
        smoothers = [Smoother(classifier.labels, args.smooth, args.alpha, args.window, args.enter, args.exit,
                              args.settle) for _ in regions] if args.smooth else None
        video = VideoOutput(args.save_video) if args.save_video else None
        if args.save_dir:
            Path(args.save_dir).mkdir(parents=True, exist_ok=True)
        count, complete = 0, False
        give_up = None if args.retry_forever else args.give_up_after
        sources: list = []  # the open source, for the signal handler
        with SignalStop(lambda: [s.stop() for s in sources]) as stopping:
            try:
                with open_source(args.source, give_up_after=give_up) as source:
                    sources.append(source)
                    if stopping.signum is not None:  # signalled while the source opened
                        source.stop()
                    count = classify_frames(args, classifier, source, regions, smoothers, video)
                complete = True
            finally:
                stopping.finishing = True
                if video:
                    video.finish(keep=complete)
        if stopping.signum is not None:
            saved = f"; {video.frames} frame(s) saved to {video.path}" if video and video.frames else ""
            print(f"edgeshop-classify: stopped by {signal.Signals(stopping.signum).name} after {count} frame(s)"
                  f"{saved}", file=sys.stderr)
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
