"""The store-camera path: shelf slots seen whole (fit), clipped slots, drawn boxes, broadcast frames."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import numpy as np
import pytest
from conftest import DATA, REPO

from edgeshop.errors import ImageInputError
from edgeshop.runtime.annotate import annotate
from edgeshop.runtime.classifier import Classifier
from edgeshop.runtime.preprocess import FITS, SLOT_FIT, preprocess
from edgeshop.tflite.modelcard import InputSpec

TINY = DATA / "tiny_int8.tflite"
RED, WHITE, BLUE = (0, 0, 255), (255, 255, 255), (255, 0, 0)  # BGR


def banded_slot() -> np.ndarray:
    """A tall 20x40 (w x h) slot: red top quarter, white middle half, blue bottom quarter."""
    slot = np.empty((40, 20, 3), np.uint8)
    slot[:10], slot[10:30], slot[30:] = RED, WHITE, BLUE
    return slot


# --- fit: what of a slot the model sees ----------------------------------------------------
def test_pad_letterboxes_the_whole_tall_slot():
    out = preprocess(banded_slot(), InputSpec(10, 10, color_order="BGR", mean=(50.0, 60.0, 70.0)), "pad")
    # 20x40 scaled by 1/4 is 5x10, centred: columns 2..6; the rest is the card's mean colour
    assert (out[:, :2] == (50, 60, 70)).all() and (out[:, 7:] == (50, 60, 70)).all()
    assert (out[:2, 2:7] == RED).all() and (out[3:7, 2:7] == WHITE).all() and (out[8:, 2:7] == BLUE).all()


def test_crop_sees_only_the_centre_square_and_stretch_all_of_it():
    spec = InputSpec(10, 10, color_order="BGR")
    assert (preprocess(banded_slot(), spec, "crop") == WHITE).all()  # rows 10..30: the white half only
    stretched = preprocess(banded_slot(), spec, "stretch")
    assert (stretched[:2] == RED).all() and (stretched[3:7] == WHITE).all() and (stretched[8:] == BLUE).all()


def test_unknown_fit_is_refused():
    with pytest.raises(ValueError, match="fit must be one of crop, pad, stretch"):
        preprocess(banded_slot(), InputSpec(10, 10), "letterbox")
    with pytest.raises(ImageInputError, match="fit must be one of"):
        Classifier(TINY, fit="zoom")


def test_classifier_slot_scores_follow_the_fit():
    classifier = Classifier(TINY)
    assert SLOT_FIT == "pad"
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (96, 64, 3), dtype=np.uint8)
    tall, centre = (0, 0, 32, 96), (0, 32, 32, 32)
    # crop: a tall slot is cut to its centre square (the old, silent behaviour) ...
    crop = classifier.roi_scores(frame, [tall, centre], fit="crop")
    np.testing.assert_array_equal(crop[0], crop[1])
    # ... pad (the default) and stretch see the whole slot
    for fit in ("pad", "stretch"):
        whole, middle = classifier.roi_scores(frame, [tall, centre], fit=fit)
        assert not np.array_equal(whole, middle), fit
        np.testing.assert_array_equal(whole, classifier.scores(frame[0:96, 0:32], fit=fit))
    np.testing.assert_array_equal(classifier.roi_scores(frame, [tall])[0], classifier.roi_scores(frame, [tall],
                                                                                                   fit="pad")[0])
    per_call = Classifier(TINY, fit="crop").classify(frame, rois=[tall], fit="pad", top_k=3)[0]
    assert [p.score for p in per_call] == [p.score for p in classifier.classify(frame, rois=[tall], top_k=3)[0]]


def test_default_fit_is_the_measured_best_for_slots():
    study = json.loads((REPO / "studies" / "grocery" / "figures" / "roi_fit_study.json").read_text())
    for shape in ("tall", "wide"):
        top1 = study["top1"][shape]
        assert max(top1, key=top1.get) == SLOT_FIT, (shape, top1)
    assert set(study["top1"]["tall"]) == set(FITS) and study["images"] >= 200


# --- slots partly outside the frame ---------------------------------------------------------
def test_a_slot_partly_outside_is_clipped_with_one_warning_per_slot(caplog):
    classifier = Classifier(TINY)
    frame = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    outside, inside = (40, -8, 40, 40), (0, 0, 24, 24)
    with caplog.at_level(logging.WARNING, logger="edgeshop"):
        for _ in range(3):
            scores = classifier.roi_scores(frame, [outside, inside])
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "(40, -8, 40, 40) reaches outside the 64x48 frame" in warnings[0]
    assert "(40, 0, 24, 32)" in warnings[0]  # the part classified
    np.testing.assert_array_equal(scores[0], classifier.scores(frame[0:32, 40:64], fit="pad"))
    assert classifier.seen_box(frame, outside) == (40, 0, 24, 32)
    with pytest.raises(ImageInputError, match="lies outside the 64x48 frame"):
        classifier.roi_scores(frame, [(64, 0, 10, 10)])


# --- annotations draw what the model saw ----------------------------------------------------
@pytest.mark.parametrize("fit, seen", [("crop", (10, 30, 40, 40)), ("pad", (10, 10, 40, 80))])
def test_annotation_outlines_exactly_the_region_the_model_saw(fit, seen):
    from edgeshop.cli.classify import classify_regions

    classifier = Classifier(TINY, fit=fit)
    frame = np.zeros((120, 200, 3), np.uint8)
    roi = (10, 10, 40, 80)  # a tall slot
    records, results = classify_regions(classifier, frame, [roi], None, 0.0)
    assert records[0]["seen"] == list(seen) and results[0][0] == seen
    drawn = annotate(frame, results)
    x, y, w, h = seen
    green = (drawn != 0).any(axis=2)
    # the outline: left and bottom edges whole, the right edge below the label drawn at the top
    assert green[y:y + h, x].all() and green[y + h // 2:y + h, x + w - 1].all() and green[y + h - 1, x:x + w].all()
    assert not green[y:y + h, x - 1].any() and not green[y + h // 2:y + h, x + w].any()  # nothing beside it
    assert not green[y + h, :].any()  # nor below it (the label sits at its top)


# --- broadcast (zero-stride) frames ---------------------------------------------------------
BROADCAST_SCRIPT = """
import resource, sys
import numpy as np
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # a whole copy (10.8 GB) cannot happen
from edgeshop.runtime.classifier import Classifier
c = Classifier(sys.argv[1])
pixel = np.array([30, 140, 220], np.uint8)
view = np.broadcast_to(pixel, (60000, 60000, 3))  # 10.8 GB seen, 3 bytes stored
small = np.broadcast_to(pixel, (60, 60, 3)).copy()
for fit in ("crop", "pad", "stretch"):
    assert np.array_equal(c.scores(view, fit=fit), c.scores(small, fit=fit)), fit
rows = np.broadcast_to(np.arange(60000, dtype=np.uint8)[:, None, None], (60000, 60000, 3))
slot = c.roi_scores(rows, [(100, 1000, 3000, 6000)])[0]
assert np.array_equal(slot, c.scores(np.ascontiguousarray(rows[1000:7000, 100:3100]), fit="pad"))
print("ok")
"""


def test_a_huge_broadcast_frame_is_classified_without_copying_it():
    result = subprocess.run([sys.executable, "-c", BROADCAST_SCRIPT, str(TINY)], capture_output=True, text=True,
                            timeout=120, cwd=REPO)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-1500:]


# --- stopping keeps the work; a failed write saves nothing ------------------------------------
def noise_video(path, frames: int, size=(96, 48)):
    """An MJPG video of random frames (they compress badly: every frame costs real bytes)."""
    import cv2

    rng = np.random.default_rng(5)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15.0, size)
    for _ in range(frames):
        writer.write(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    writer.release()
    return path


def classify_command(*args) -> list[str]:
    return [sys.executable, "-m", "edgeshop.cli.classify", str(TINY), *map(str, args)]


def child_env() -> dict:
    import os

    # this checkout's edgeshop, not an installed one; no .pyc written under a file size limit
    return {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}


def decoded_frames(path) -> int:
    import cv2

    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


@pytest.mark.parametrize("signum, suffix", [("SIGINT", ".mp4"), ("SIGTERM", ".avi"), ("SIGTERM", ".mp4")])
def test_a_signal_during_save_video_keeps_a_playable_video_of_every_frame(tmp_path, signum, suffix):
    import signal

    total = 3000
    video = noise_video(tmp_path / "shelf.avi", total)
    out = tmp_path / f"annotated{suffix}"
    child = subprocess.Popen(classify_command(video, "--roi", "0,0,48,48", "--roi", "48,0,48,48",
                                              "--save-video", out), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, cwd=tmp_path, env=child_env())
    lines = [child.stdout.readline() for _ in range(10)]  # well under way (a full pipe then holds it)
    child.send_signal(getattr(signal, signum))
    rest, err = child.communicate(timeout=60)
    lines += rest.splitlines()
    printed = [json.loads(line) for line in lines if line.strip()]
    assert child.returncode == 0, err[-1500:]
    assert 10 <= len(printed) < total  # stopped early ...
    assert decoded_frames(out) == len(printed)  # ... with every frame it handled in a playable file
    assert f"stopped by {signum} after {len(printed)} frame(s); {len(printed)} frame(s) saved to {out}" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["shelf.avi", out.name])  # no .partial


@pytest.mark.parametrize("suffix", [".avi", ".mp4"])
def test_a_video_that_cannot_be_written_whole_is_an_error_and_nothing_is_saved(tmp_path, suffix):
    import resource

    video = noise_video(tmp_path / "shelf.avi", 60)  # ~10 KB a frame
    out = tmp_path / f"annotated{suffix}"
    limit = 60_000  # the "disk" fills after a few frames

    def small_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run(classify_command(video, "--save-video", out), capture_output=True, text=True,
                            cwd=tmp_path, env=child_env(), preexec_fn=small_disk, timeout=120)
    assert result.returncode == 2, result.stderr[-1500:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("edgeshop-classify: error:")]
    assert len(errors) == 1 and f"{out}: writing the video failed (60 frames written" in errors[0]
    assert "disk full or file too large?); nothing was saved" in errors[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shelf.avi"]  # no partial file, nothing renamed


# --- events: a swap is one event, "empty" only after the settle time -------------------------
EVENT_LABELS = ["A", "B"]
SCORES = {"A": np.array([0.95, 0.05]), "B": np.array([0.05, 0.95]), None: np.array([0.5, 0.5])}


def events_of(sequence: str, settle: float, fps: float = 10.0) -> list[tuple]:
    """(frame, from, to) of each event for a per-frame sequence like "AAAA..BBB" ('.': unknown frame)."""
    from edgeshop.runtime.smoothing import Smoother

    smoother = Smoother(EVENT_LABELS, "ema", alpha=0.5, enter=0.6, exit=0.4, settle=settle)
    found = []
    for frame, char in enumerate(sequence):
        label = None if char == "." else char
        result = smoother.update(SCORES[label], unknown=label is None, timestamp=frame / fps)
        if result.event is not None:
            found.append((frame, result.event.before, result.event.after))
    return found


def test_a_swap_through_a_moment_of_nothing_is_one_event():
    # 4 unknown frames (0.4 s) between A and B: the stable label passes through None
    assert events_of("AAAAAA....BBBBBB", settle=1.0) == [(0, None, "A"), (11, "A", "B")]


def test_the_slot_emptied_is_an_event_only_after_the_settle_time():
    # A leaves the stable label at frame 7; None lasts -> reported at 7 + 1.0 s * 10 fps
    assert events_of("AAAAAA" + "." * 20 + "BBBBB", settle=1.0) == [
        (0, None, "A"), (17, "A", None), (27, None, "B")]


def test_a_product_briefly_hidden_is_no_event():
    assert events_of("AAAAAA.....AAAAAA", settle=1.0) == [(0, None, "A")]


def test_settle_zero_reports_every_change_at_once():
    assert events_of("AAAAAA....BBBBBB", settle=0) == [(0, None, "A"), (7, "A", None), (11, None, "B")]


def test_settle_must_be_seconds():
    from edgeshop.runtime.smoothing import Smoother

    for bad in (-1, float("nan"), float("inf"), "1"):
        with pytest.raises(ValueError, match="settle must be a number of seconds >= 0"):
            Smoother(EVENT_LABELS, settle=bad)


# The event line of docs/cameras.md: field -> type
EVENT_FIELDS = {"time": str, "event": str, "slot": str, "from": (str, type(None)), "to": (str, type(None)),
                "score": float, "timestamp": float, "frame": int, "unknown_frame": bool}
CLI_EVENT_FIELDS = {"from": (str, type(None)), "to": (str, type(None)), "score": float, "timestamp": float}


def swap_video(path, blank_frames: int):
    """Left slot: a disc for 12 frames, `blank_frames` of plain grey, then a square; right slot: a bar."""
    import cv2
    from synthetic import draw

    rng = np.random.default_rng(3)
    blank = np.full((48, 48, 3), 110, np.uint8)
    lefts = [draw("disc", 48, rng) for _ in range(12)] + [blank] * blank_frames + \
        [draw("square", 48, rng) for _ in range(12)]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (96, 48))
    for left in lefts:
        writer.write(np.concatenate([left, draw("bar", 48, rng)], axis=1))
    writer.release()
    return path


def test_classify_cli_reports_a_swap_as_one_event(tmp_path, capsys):
    from edgeshop.cli import classify as classify_cli

    video = swap_video(tmp_path / "swap.avi", blank_frames=3)  # 0.3 s of nothing in the left slot
    code = classify_cli.main([str(TINY), str(video), "--roi", "0,0,48,48", "--roi", "48,0,48,48",
                              "--smooth", "ema", "--settle", "1", "--unknown-threshold", "0.5"])
    assert code == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    events = [(line["frame"], slot, r["event"]) for line in lines for slot, r in enumerate(line["rois"])
              if "event" in r]
    assert [(slot, e["from"], e["to"]) for _, slot, e in events] == [
        (0, None, "disc"), (1, None, "bar"), (0, "disc", "square")]
    for _, _, event in events:
        assert set(event) == set(CLI_EVENT_FIELDS)
        assert all(isinstance(event[k], t) for k, t in CLI_EVENT_FIELDS.items())


def test_shelf_watch_event_lines_follow_the_documented_schema(tmp_path):
    video = swap_video(tmp_path / "shelf.avi", blank_frames=3)
    config = {"model": str(TINY), "source": str(video), "threads": 1, "unknown_threshold": 0.5,
              "smoothing": {"settle": 1.0},
              "slots": [{"name": "left", "roi": [0, 0, 48, 48]}, {"name": "right", "roi": [48, 0, 48, 48]}]}
    (tmp_path / "shelf.json").write_text(json.dumps(config))
    script = REPO / "examples" / "raspberry_pi" / "shelf_watch.py"
    result = subprocess.run([sys.executable, str(script), "--config", str(tmp_path / "shelf.json")],
                            capture_output=True, text=True, timeout=120, cwd=REPO, env=child_env())
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    assert lines[0]["event"] == "start" and lines[0]["fit"] == "pad" and lines[-1]["event"] == "stop"
    events = [line for line in lines if line["event"] == "slot_changed"]
    assert [(e["slot"], e["from"], e["to"]) for e in events] == [
        ("left", None, "disc"), ("right", None, "bar"), ("left", "disc", "square")]
    for event in events:
        assert set(event) == set(EVENT_FIELDS), event
        assert all(isinstance(event[k], t) for k, t in EVENT_FIELDS.items()), event


# --- streams: a host that does not resolve; redaction ----------------------------------------
def test_a_stream_host_that_does_not_resolve_is_one_line_within_5_s(tmp_path):
    import time

    url = "rtsp://admin:s3cret-pw@camera.invalid:554/live?Token=abcdef123&fps=5"  # .invalid never resolves
    started = time.monotonic()
    result = subprocess.run(classify_command(url), capture_output=True, text=True, cwd=tmp_path, env=child_env(),
                            timeout=60)
    elapsed = time.monotonic() - started
    assert result.returncode == 2 and elapsed < 5, (elapsed, result.stderr[-1500:])
    lines = result.stderr.strip().splitlines()
    redacted = "rtsp://***:***@camera.invalid:554/live?Token=***&fps=5"
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"edgeshop-classify: error: {redacted}: the host name does not resolve (")
    assert lines[0].count("camera.invalid") == 1 and "s3cret" not in lines[0] and "abcdef" not in lines[0]


def test_a_reachable_but_silent_stream_keeps_the_give_up_rule():
    import socket
    import time

    from edgeshop.errors import EdgeshopError
    from edgeshop.runtime.stream import open_source

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)  # accepts connections, never answers
    try:
        started = time.monotonic()
        url = f"http://localhost:{server.getsockname()[1]}/video.mjpg"
        with pytest.raises(EdgeshopError, match=r"no frame for 2 s"), open_source(url, give_up_after=2) as source:
            next(iter(source))
        assert 2 <= time.monotonic() - started < 10
    finally:
        server.close()


QUIET_STREAM_SCRIPT = """
import logging, socket, sys, threading
from edgeshop.errors import EdgeshopError
from edgeshop.runtime.stream import open_source

server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(50)

def hang_up():  # a server that answers every connection by closing it
    while True:
        connection, _ = server.accept()
        connection.recv(1000)
        connection.close()

threading.Thread(target=hang_up, daemon=True).start()
logging.disable(logging.WARNING)  # edgeshop's own reconnect warnings are not what is checked
try:
    with open_source(f"http://u:pw@localhost:{server.getsockname()[1]}/v.mjpg", give_up_after=2) as source:
        next(iter(source))
except EdgeshopError as exc:
    print(exc)
"""


def test_a_failing_stream_is_reported_by_edgeshop_alone():
    result = subprocess.run([sys.executable, "-c", QUIET_STREAM_SCRIPT], capture_output=True, text=True,
                            timeout=60, cwd=REPO, env=child_env())
    assert "no frame for 2 s" in result.stdout, result.stdout + result.stderr
    assert "[http @" not in result.stderr and "VIDEOIO" not in result.stderr, result.stderr  # no FFmpeg/OpenCV
    assert ":pw@" not in result.stdout + result.stderr


def test_redaction_ignores_the_case_of_secret_names():
    from edgeshop.runtime.redact import redact, redact_url, scrub

    url = "rtsp://cam.local/live?Password=x&TOKEN=y&fps=5"
    assert redact_url(url) == "rtsp://cam.local/live?Password=***&TOKEN=***&fps=5"
    assert redact(f"cannot open {url}.") == "cannot open rtsp://cam.local/live?Password=***&TOKEN=***&fps=5."
    assert scrub(f"error at {url}", url) == "error at rtsp://cam.local/live?Password=***&TOKEN=***&fps=5"
    assert redact_url("HTTP://Admin:Pw@cam/x?PassWord=hunter2&Api_Key=k&Fps=5") == \
        "HTTP://***:***@cam/x?PassWord=***&Api_Key=***&Fps=5"


# --- the store-camera example, as documented ---------------------------------------------------
def test_the_store_camera_example_reports_each_change_once(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "examples" / "store_camera.py")], capture_output=True,
                            text=True, timeout=300, cwd=tmp_path, env=child_env())
    assert result.returncode == 0, result.stderr[-2000:]
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["slot"], e["from"], e["to"]) for e in events] == [
        ("left", None, "Banana"), ("right", None, "Arla-Standard-Milk"), ("left", "Banana", "Royal-Gala")]
    assert events[2]["frame"] > 30 and all(set(e) == {"slot", "frame", *CLI_EVENT_FIELDS} for e in events)


def test_the_docs_show_the_example_and_the_measured_fit_table():
    import inspect

    sys.path.insert(0, str(REPO / "examples"))
    try:
        import store_camera
    finally:
        sys.path.remove(str(REPO / "examples"))
    docs = (REPO / "docs" / "cameras.md").read_text()
    assert inspect.getsource(store_camera.watch) in docs
    assert 'SLOTS = {"left": (0, 0, 320, 480), "right": (320, 0, 320, 480)}' in docs
    study = json.loads((REPO / "studies" / "grocery" / "figures" / "roi_fit_study.json").read_text())
    names = {"square": "whole photo (1:1)", "tall": "tall slot (1:2)", "wide": "wide slot (2:1)",
             "camera": "camera frame (4:3)"}
    for shape, row in study["top1"].items():
        cells = [f"**{100 * row[fit]:.1f}%**" if fit == SLOT_FIT and shape != "square" else f"{100 * row[fit]:.1f}%"
                 for fit in ("crop", "pad", "stretch")]
        assert f"| {names[shape]} | {' | '.join(cells)} |" in docs, shape
    classifier = Classifier(TINY, fit="crop")
    assert classifier.seen_box(np.zeros((480, 640, 3), np.uint8), (0, 0, 320, 480)) == (0, 80, 320, 320)


def test_whole_frames_keep_trainings_crop_unless_asked():
    frame = np.random.default_rng(2).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    default, padded = Classifier(TINY), Classifier(TINY, fit="pad")
    assert default.seen_box(frame) == (8, 0, 48, 48) and padded.seen_box(frame) == (0, 0, 64, 48)
    pixels = preprocess(frame, default.input_spec)  # training's rule
    np.testing.assert_array_equal(default.scores(frame), default.scores_from_pixels(pixels))
    np.testing.assert_array_equal(default.scores(frame, fit="pad"), padded.scores(frame))
    assert not np.array_equal(default.scores(frame), padded.scores(frame))
    # a classifier-wide fit applies to slots too
    np.testing.assert_array_equal(Classifier(TINY, fit="crop").roi_scores(frame, [(0, 0, 32, 48)])[0],
                                  default.roi_scores(frame, [(0, 0, 32, 48)], fit="crop")[0])


def test_a_whole_frame_gets_a_box_only_where_the_model_did_not_see_all_of_it():
    from edgeshop.cli.classify import classify_regions

    frame = np.zeros((120, 200, 3), np.uint8)
    records, results = classify_regions(Classifier(TINY), frame, [None], None, 0.0)  # crop: the centre square
    assert records[0]["seen"] == [40, 0, 120, 120] and results[0][0] == (40, 0, 120, 120)
    green = (annotate(frame, results) != 0).any(axis=2)
    assert green[60:120, 40].all() and not green[60:120, 39].any()
    records, results = classify_regions(Classifier(TINY, fit="pad"), frame, [None], None, 0.0)
    assert records[0]["seen"] == [0, 0, 200, 120] and results[0][0] is None  # all of it: no box
