"""Hardening, round 3: every image decode bounded (issue 34 items 3 and 10).

The size check must read a header the way the decoder does; otherwise a crafted file passes
the check and the decoder allocates gigabytes. Each reproducer is generated here: a real
small image whose header is edited. Each file is read in a fresh process whose peak RSS must
stay under 300 MB; a watchdog kills it well before it could take the machine down. The peak
is the kernel's VmHWM: ``getrusage``'s ru_maxrss survives exec on Linux, so a child started
by a big pytest process would report its parent's size.
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import REPO

from edgeshop.errors import ImageInputError
from edgeshop.runtime.image_header import HeaderRefused, read_header
from edgeshop.runtime.preprocess import MAX_FILE_BYTES, read_image

PEAK_RSS_MB = 300
WATCHDOG_MB = 700  # a process over this is killed at once (the unfixed code asks for gigabytes)


# --- generators of crafted files ----------------------------------------------------------------
def _jpeg(progressive: bool = False) -> bytes:
    image = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive),
                                               cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444])
    assert ok
    return encoded.tobytes()


def _segment_at(data: bytes, marker: int) -> int:
    """Where the segment FF<marker> starts in an encoder's own (clean) JPEG."""
    i = 2
    while data[i + 1] != marker:
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return i


def _with_size(data: bytes, frame_marker: int, width: int, height: int) -> bytes:
    sof = _segment_at(data, frame_marker)
    return data[: sof + 5] + struct.pack(">HH", height, width) + data[sof + 9 :]


def jpeg_stuffed_decoy(width: int, height: int) -> bytes:
    """A baseline JPEG declaring width x height, with a stuffed FF 00 right after SOI whose next two
    bytes, read as a segment length, jump over the real frame header onto an 8x8 one inside a comment.
    libjpeg discards FF 00 and the stray bytes after it, and reads the real frame header."""
    real = _with_size(_jpeg(), 0xC0, width, height)
    sof = _segment_at(real, 0xC0)
    sof_end = sof + 2 + int.from_bytes(real[sof + 2 : sof + 4], "big")
    decoy = real[sof : sof + 5] + struct.pack(">HH", 8, 8) + real[sof + 9 : sof_end]
    comment = b"\xff\xfe" + struct.pack(">H", 2 + len(decoy)) + decoy
    body = real[2:sof_end] + comment + real[sof_end:]
    decoy_at = 2 + 4 + sof_end - 2 + 4  # SOI, FF 00 + 2 bytes, the real segments up to SOF's end, COM header
    jump = decoy_at - 2 - 2  # a naive walker at FF 00 jumps 2 + "length"
    assert 0xFF not in struct.pack(">H", jump)
    return b"\xff\xd8\xff\x00" + struct.pack(">H", jump) + body


def jpeg_progressive(width: int, height: int) -> bytes:
    """A real progressive JPEG (SOF2) honestly declaring width x height."""
    return _with_size(_jpeg(progressive=True), 0xC2, width, height)


def jpeg_multiscan_baseline(width: int, height: int) -> bytes:
    """A baseline JPEG (SOF0) whose first scan holds one of its three components: libjpeg then
    buffers the whole frame's coefficients, like a progressive one."""
    data = _with_size(_jpeg(), 0xC0, width, height)
    sos = _segment_at(data, 0xDA)
    sos_end = sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")
    one_component = b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00"
    return data[:sos] + one_component + data[sos_end:]


def tiff_bilevel(width: int, height: int, size_twice: bool = False) -> bytes:
    """A valid one-strip bilevel Deflate TIFF of width x height; with ``size_twice`` its directory
    lists ImageWidth and ImageLength a second time, as 8x8 (libtiff keeps the first values)."""
    strip = zlib.compress(bytes((width + 7) // 8) * height, 9)
    entries = [(256, 4, width), (257, 4, height), (258, 3, 1), (259, 3, 8), (262, 3, 1), (273, 4, 0),
               (277, 3, 1), (278, 4, height), (279, 4, len(strip))]
    if size_twice:
        entries[1:1] = [(256, 4, 8)]
        entries[3:3] = [(257, 4, 8)]
    ifd_size = 2 + 12 * len(entries) + 4
    entries = [(tag, kind, 8 + ifd_size if tag == 273 else value) for tag, kind, value in entries]  # strip after it
    ifd = struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHI", tag, kind, 1) + (struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value))
        for tag, kind, value in entries) + struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + strip


CRAFTED = {
    "stuffed_decoy_20000.jpg": lambda: jpeg_stuffed_decoy(20000, 20000),
    "stuffed_decoy_32768.jpg": lambda: jpeg_stuffed_decoy(32767, 32767),
    "progressive_32768.jpg": lambda: jpeg_progressive(32768, 32768),
    "progressive_20000.jpg": lambda: jpeg_progressive(20000, 20000),
    "multiscan_32768.jpg": lambda: jpeg_multiscan_baseline(32768, 32768),
    "tiff_size_twice_16000.tif": lambda: tiff_bilevel(16000, 16000, size_twice=True),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def read_in_fresh_process(path: Path) -> tuple[float, str]:
    """(peak RSS in MB, outcome) of read_image(path) in a new process."""
    code = textwrap.dedent(f"""
        from pathlib import Path
        from edgeshop.runtime.preprocess import read_image
        try:
            outcome = "decoded " + "x".join(map(str, read_image({str(path)!r}).shape))
        except Exception as exc:
            outcome = type(exc).__name__ + ": " + str(exc)
        status = Path("/proc/self/status").read_text().splitlines()
        peak_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
        print(peak_kb / 1024, outcome, flush=True)
    """)
    process = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while process.poll() is None:
        try:
            rss_kb = next(int(line.split()[1]) for line in Path(f"/proc/{process.pid}/status").read_text().splitlines()
                          if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            rss_kb = 0
        if rss_kb > WATCHDOG_MB * 1024 or time.monotonic() > deadline:
            process.kill()
            process.wait()
            return rss_kb / 1024, "killed by the watchdog"
        time.sleep(0.005)
    out, err = process.communicate()
    assert out, err[-2000:]
    peak, outcome = out.strip().split(" ", 1)
    return float(peak), outcome


@pytest.mark.parametrize("name", sorted(CRAFTED))
def test_crafted_headers_are_decoded_or_refused_within_the_memory_bound(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(CRAFTED[name]())
    assert path.stat().st_size < 100_000
    peak, outcome = read_in_fresh_process(path)
    assert outcome.startswith(("decoded ", f"ImageInputError: {path}: ")), outcome
    assert peak < PEAK_RSS_MB, f"{name}: peak RSS {peak:.0f} MB ({outcome})"


def test_the_walker_reads_the_frame_header_libjpeg_reads():
    # The real header is found behind the stuffed FF 00; the decoy in the comment is never read.
    header = read_header(jpeg_stuffed_decoy(20000, 20000))
    assert (header.height, header.width, header.buffer_bytes) == (20000, 20000, 0)
    # Restart markers and fill bytes between segments are skipped as libjpeg skips them.
    plain = _jpeg()
    assert read_header(plain[:2] + b"\xff\xd0\xff\xff\xff" + plain[2:]).height == 16


def test_multi_scan_jpegs_are_charged_their_full_coefficient_buffer(tmp_path):
    # 32768 x 32768 at 4:4:4: 2 bytes x 64 coefficients x 3 x 4096 x 4096 blocks = 6 GiB.
    for data in (jpeg_progressive(32768, 32768), jpeg_multiscan_baseline(32768, 32768)):
        assert read_header(data).buffer_bytes == 2 * 64 * 3 * 4096 * 4096
    with pytest.raises(ImageInputError, match=r"progressive_big\.jpg: decoding this 20000x20000 JPEG would buffer"):
        (tmp_path / "progressive_big.jpg").write_bytes(jpeg_progressive(20000, 20000))
        read_image(tmp_path / "progressive_big.jpg")
    # An ordinary progressive photo still decodes.
    photo = np.full((600, 800, 3), 120, np.uint8)
    cv2.imwrite(str(tmp_path / "photo.jpg"), photo, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    assert read_image(tmp_path / "photo.jpg").shape == (600, 800, 3)


def test_tiff_listing_its_size_twice_is_refused(tmp_path):
    with pytest.raises(HeaderRefused, match="TIFF lists ImageWidth twice"):
        read_header(tiff_bilevel(64, 64, size_twice=True))
    path = tmp_path / "twice.tif"
    path.write_bytes(tiff_bilevel(64, 64, size_twice=True))
    with pytest.raises(ImageInputError, match=r"twice\.tif: not a readable image \(TIFF: TIFF lists ImageWidth twice"):
        read_image(path)


def test_files_over_the_size_limit_are_refused_unread(tmp_path):
    # 3 GB sparse: refused from its size (the unfixed code read it whole, then copied it).
    path = tmp_path / "huge.jpg"
    with open(path, "wb") as file:
        file.write(_jpeg())
        file.truncate(3 * 2**30)
    peak, outcome = read_in_fresh_process(path)
    assert outcome.startswith(f"ImageInputError: {path}: file of 3,072 MiB, more than the 64 MiB"), outcome
    assert peak < 100, f"peak RSS {peak:.0f} MB"
    assert MAX_FILE_BYTES == 64 * 2**20


def test_a_fifo_named_like_a_photo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(ImageInputError, match="photo.jpg: not a regular file"):
        read_image(fifo)
    assert time.monotonic() - started < 5


def test_random_corruptions_give_an_image_or_one_named_error(tmp_path):
    rng = np.random.default_rng(34)
    small = np.random.default_rng(5).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    seeds = [_jpeg(), _jpeg(progressive=True), tiff_bilevel(32, 32)] + [
        cv2.imencode(suffix, small, options)[1].tobytes() for suffix, options in (
            (".png", []), (".bmp", []), (".webp", [cv2.IMWRITE_WEBP_QUALITY, 80]),
            (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]), (".gif", []))]
    assert read_image(_write(tmp_path / "seed.tif", seeds[2])).shape == (32, 32, 3)
    for k in range(800):
        data = bytearray(seeds[k % len(seeds)])
        for _ in range(int(rng.integers(1, 6))):
            data[int(rng.integers(0, len(data)))] = int(rng.integers(0, 256))
        if k % 5 == 0:  # truncated as well
            data = data[: int(rng.integers(1, len(data)))]
        path = tmp_path / f"mutant{k}.img"
        path.write_bytes(bytes(data))
        try:
            image = read_image(path)
        except ImageInputError as exc:
            assert str(exc).startswith(f"{path}: "), exc
        else:
            assert image.dtype == np.uint8 and image.ndim == 3 and image.size <= 3 * 4096 * 4096


def test_the_largest_admitted_images_decode_within_the_memory_bound(tmp_path):
    # What the bounds still admit, at their limits: a 4096x4096 PNG of noise (~50 MB file) and a
    # 3600x3600 progressive 4:4:4 JPEG (74 MiB of coefficients beside the 37 MiB image).
    noise = np.random.default_rng(3).integers(0, 256, (4096, 4096, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "noise.png"), noise, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    cv2.imwrite(str(tmp_path / "noise.jpg"), noise[:3600, :3600], [
        cv2.IMWRITE_JPEG_PROGRESSIVE, 1, cv2.IMWRITE_JPEG_QUALITY, 100,
        cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444])
    for name, shape in (("noise.png", "4096x4096x3"), ("noise.jpg", "3600x3600x3")):
        peak, outcome = read_in_fresh_process(tmp_path / name)
        assert outcome == f"decoded {shape}", outcome
        assert peak < PEAK_RSS_MB, f"{name}: peak RSS {peak:.0f} MB"


def test_duplicate_check_hashes_big_files_in_chunks(tmp_path):
    import tracemalloc

    from edgeshop.data import Sample, duplicate_files

    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        with open(tmp_path / folder / "big.jpg", "wb") as file:  # 200 MB, sparse (under the check's 256 MB limit)
            file.truncate(200 * 2**20)
    os.mkfifo(tmp_path / "b" / "pipe.jpg")
    tracemalloc.start()
    try:
        pairs = duplicate_files([Sample(tmp_path / "a" / "big.jpg", "x")],
                                [Sample(tmp_path / "b" / "big.jpg", "x"), Sample(tmp_path / "b" / "pipe.jpg", "x")])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert pairs == [(tmp_path / "a" / "big.jpg", tmp_path / "b" / "big.jpg")]
    assert peak < 20 * 2**20, f"{peak / 2**20:.0f} MiB held while hashing"


def test_animated_pngs_are_charged_their_canvases(tmp_path):
    from PIL import Image

    # OpenCV composes an animated PNG on three RGBA canvases, then converts: 16 bytes a pixel at 8 bits.
    frames = [Image.new("RGB", (4096, 2048), (40 * i, 90, 0)) for i in range(2)]
    frames[0].save(tmp_path / "anim.png", save_all=True, append_images=frames[1:])
    assert read_header((tmp_path / "anim.png").read_bytes()).buffer_bytes == 16 * 4096 * 2048
    with pytest.raises(ImageInputError, match=r"anim\.png: decoding this 4096x2048 PNG would buffer 128 MiB"):
        read_image(tmp_path / "anim.png")
    frames = [Image.new("RGB", (64, 32), (40 * i, 90, 0)) for i in range(2)]
    frames[0].save(tmp_path / "small.png", save_all=True, append_images=frames[1:])
    assert read_image(tmp_path / "small.png").shape == (32, 64, 3)


def test_a_folder_given_as_an_image_is_one_clear_error_and_leaks_nothing(tmp_path):
    """A folder where a photo is expected: ImageInputError naming it (not IsADirectoryError with a
    descriptor number), the duplicate check skips it, and no file descriptor stays open."""
    from edgeshop.data import Sample, find_duplicates
    from edgeshop.errors import ImageInputError
    from edgeshop.runtime.preprocess import read_image

    folder = tmp_path / "Banana.jpg"
    folder.mkdir()
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(os.urandom(4096))  # a folder's st_size is 4096 too: it passes the size filter
    open_before = len(os.listdir("/proc/self/fd"))
    for _ in range(3):
        with pytest.raises(ImageInputError, match=rf"^{re.escape(str(folder))}: not a regular file"):
            read_image(folder)
        assert find_duplicates([Sample(folder, "a")], [Sample(photo, "a")]).pairs == []
    assert len(os.listdir("/proc/self/fd")) == open_before
