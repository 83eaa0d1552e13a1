"""Frame sources, reconnects, smoothing, edgeshop-classify and the Raspberry Pi example."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest
from conftest import DATA, REPO, frame_indices
from synthetic import draw

from edgeshop.cli import classify as classify_cli
from edgeshop.errors import EdgeshopError
from edgeshop.runtime.smoothing import Smoother
from edgeshop.runtime.stream import LiveSource, Reader, open_source, redact


def make_video(path, slots_per_frame, size=48):
    """A video whose frames are side-by-side slots; slots_per_frame: list of label tuples."""
    rng = np.random.default_rng(3)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (size * len(slots_per_frame[0]), size))
    assert writer.isOpened()
    for labels in slots_per_frame:
        writer.write(np.concatenate([draw(label, size, rng) for label in labels], axis=1))
    writer.release()
    return path


# --- smoothing -----------------------------------------------------------------------------
LABELS = ["a", "b", "c"]


def test_ema_with_hysteresis_ignores_a_single_outlier_frame():
    smoother = Smoother(LABELS, "ema", alpha=0.3, enter=0.6, exit=0.4)
    a, b = np.array([0.9, 0.05, 0.05]), np.array([0.05, 0.9, 0.05])
    labels = [smoother.update(s).label for s in [a, a, a, b, a, a]]
    assert labels == ["a"] * 6
    changes = [smoother.update(b) for _ in range(6)]
    switched = [r for r in changes if r.changed]
    assert len(switched) == 1 and switched[0].previous == "a" and switched[0].label == "b"


def test_low_confidence_drops_to_unknown_and_does_not_flicker():
    smoother = Smoother(LABELS, "ema", alpha=0.5, enter=0.6, exit=0.4)
    assert smoother.update(np.array([0.9, 0.05, 0.05])).label == "a"
    flat = np.array([0.34, 0.33, 0.33])
    results = [smoother.update(flat) for _ in range(5)]
    assert results[-1].label is None
    assert sum(r.changed for r in results) == 1  # one change to unknown, no flicker


def test_vote_needs_a_majority_to_switch():
    smoother = Smoother(LABELS, "vote", window=5, enter=0.6, exit=0.4)
    one_hot = {k: np.eye(3)[i] for i, k in enumerate(LABELS)}
    sequence = "aaaaabbbbb"
    labels = [smoother.update(one_hot[x]).label for x in sequence]
    assert labels == ["a"] * 7 + ["b"] * 3  # b holds 3 of the last 5 at the 8th frame


def test_smoother_rejects_bad_settings():
    with pytest.raises(ValueError):
        Smoother(LABELS, "median")
    with pytest.raises(ValueError):
        Smoother(LABELS, enter=0.3, exit=0.5)
    with pytest.raises(ValueError, match="expected 3 scores"):
        Smoother(LABELS).update(np.zeros(2))


# --- sources ---------------------------------------------------------------------------------
def test_redact_removes_credentials():
    assert redact("rtsp://admin:s3cret@10.0.0.5:554/stream1") == "rtsp://***:***@10.0.0.5:554/stream1"
    assert "s3cret" not in redact("http://user:s3cret@cam.local/video.mjpg")
    assert redact("rtsp://cam.local/live") == "rtsp://cam.local/live"
    assert redact(0) == "0"


def test_video_file_yields_every_frame_with_timestamps(tmp_path):
    video = make_video(tmp_path / "v.avi", [("disc",)] * 12)
    with open_source(video) as source:
        frames = list(source)
    assert [f.index for f in frames] == list(range(12))
    assert frames[0].image.shape == (48, 48, 3)
    assert frames[-1].timestamp > frames[0].timestamp


def test_folder_source_skips_unreadable_files(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "b.jpg").write_bytes(b"broken")
    source = open_source(tmp_path)
    assert [f.source for f in source] == [str(tmp_path / "a.png")]
    assert [p.name for p, _ in source.skipped] == ["b.jpg"]


def test_unknown_sources_give_clear_errors(tmp_path):
    with pytest.raises(EdgeshopError, match="no such file"):
        open_source(tmp_path / "missing.mp4")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(EdgeshopError, match="unknown file type"):
        open_source(tmp_path / "notes.txt")


class FlakyCamera(Reader):
    """Delivers frames, drops out (read fails, then open fails twice), comes back."""

    def __init__(self):
        self.opens = 0
        self.reads = 0
        self.lock = threading.Lock()

    def open(self):
        with self.lock:
            self.opens += 1
            if self.opens in (2, 3):
                raise OSError("camera unplugged")

    def read(self):
        with self.lock:
            self.reads += 1
            if self.reads == 20:
                return None  # the drop
        time.sleep(0.002)
        return np.full((4, 4, 3), self.reads % 256, np.uint8)

    def release(self):
        pass


def test_live_source_reconnects_and_keeps_running():
    camera = FlakyCamera()
    source = LiveSource(camera, "rtsp://user:pw@cam/stream", backoff=0.01, max_backoff=0.05)
    try:
        seen = frame_indices(source, 40)
        assert len(seen) == 40, "the source stopped after the camera dropped"
        assert camera.opens >= 4 and source.reconnects >= 1
        assert seen == sorted(seen) and len(set(seen)) == len(seen)
        assert "pw" not in source.description
    finally:
        source.close()


def test_live_source_hands_out_the_newest_frame_not_a_backlog():
    camera = FlakyCamera()
    source = LiveSource(camera, "camera 0", backoff=0.01)
    try:
        first = source.read(timeout=2)
        time.sleep(0.3)  # a slow consumer: the camera delivers many frames meanwhile
        second = source.read(timeout=2)
        assert second.index - first.index > 10  # skipped to the newest, no queue of stale frames
    finally:
        source.close()


def test_live_source_gives_up_after_max_failures():
    class DeadCamera(Reader):
        def open(self):
            raise OSError("no device")

    source = LiveSource(DeadCamera(), "camera 9", backoff=0.01, max_failures=2)
    try:
        with pytest.raises(EdgeshopError, match="gave up after 2"):
            source.read(timeout=5)
    finally:
        source.close()


# --- edgeshop-classify and the Raspberry Pi example -------------------------------------------
def test_classify_cli_prints_one_json_object_per_frame(tmp_path, capsys):
    video = make_video(tmp_path / "v.avi", [("disc", "bar")] * 8)
    code = classify_cli.main([str(DATA / "tiny_int8.tflite"), str(video), "--roi", "0,0,48,48",
                              "--roi", "48,0,48,48", "--smooth", "ema", "--top-k", "1",
                              "--save-video", str(tmp_path / "out.avi"), "--save-dir", str(tmp_path / "frames")])
    assert code == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(lines) == 8 and [x["frame"] for x in lines] == list(range(8))
    last = lines[-1]
    assert {"source", "frame", "timestamp", "latency_ms", "rois"} <= set(last)
    assert [r["stable"]["label"] for r in last["rois"]] == ["disc", "bar"]
    assert [r["predictions"][0]["label"] for r in last["rois"]] == ["disc", "bar"]
    assert len(list((tmp_path / "frames").glob("*.jpg"))) == 8
    assert cv2.VideoCapture(str(tmp_path / "out.avi")).isOpened()


def test_raspberry_pi_example_logs_slot_changes_on_a_video(tmp_path):
    frames = [("disc", "bar")] * 10 + [("square", "bar")] * 10
    video = make_video(tmp_path / "shelf.avi", frames)
    config = {"model": str(DATA / "tiny_int8.tflite"), "source": str(video), "threads": 1,
              "slots": [{"name": "left", "roi": [0, 0, 48, 48]}, {"name": "right", "roi": [48, 0, 48, 48]}]}
    (tmp_path / "shelf.json").write_text(json.dumps(config))
    script = REPO / "examples" / "raspberry_pi" / "shelf_watch.py"
    result = subprocess.run([sys.executable, str(script), "--config", str(tmp_path / "shelf.json")],
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    events = [json.loads(x) for x in result.stdout.splitlines()]
    changes = [(e["slot"], e["from"], e["to"]) for e in events if e["event"] == "slot_changed"]
    # the left slot goes disc -> square (possibly through "unknown" between them); right never changes
    assert [to for slot, _, to in changes if slot == "left" and to is not None] == ["disc", "square"]
    assert [c for c in changes if c[0] == "right"] == [("right", None, "bar")]
    assert events[-1] == {**events[-1], "event": "stop", "frames": 20}
