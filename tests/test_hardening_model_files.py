"""Hardening, round 2: model files (issue 19). A .tflite can come from anywhere.

The archive appended to a model is untrusted input: its declared sizes and counts are
limits checked before use, never facts; whatever its bytes, loading gives a card or one
``ModelCardError`` naming the file. Each test builds the hostile file the issue found by
hand, byte by byte, on the flatbuffer of the committed tiny model.
"""

from __future__ import annotations

import json
import struct
import time
import tracemalloc
import zlib

import pytest
from conftest import DATA
from synthetic import make_dataset

from edgeshop import Classifier
from edgeshop.data import discover
from edgeshop.errors import DataError, ModelCardError
from edgeshop.tflite.archive import MAX_ARCHIVE_BYTES, MAX_MEMBER_BYTES, MAX_MEMBERS
from edgeshop.tflite.modelcard import CARD_ENTRY, LABELS_ENTRY, attach_archive, read_card, split_archive

REAL = (DATA / "tiny_int8.tflite").read_bytes()
FLATBUFFER, MEMBERS = split_archive(REAL)
STORED, DEFLATED = 0, 8


def member(name: bytes | str, data: bytes, *, method: int = STORED, flags: int = 0,
           size: int | None = None, crc: int | None = None) -> dict:
    """One archive member as its headers will declare it (size and CRC default to the truth)."""
    name = name.encode() if isinstance(name, str) else name
    return {"name": name, "data": data, "method": method, "flags": flags,
            "size": len(data) if size is None else size, "crc": zlib.crc32(data) if crc is None else crc}


def craft_zip(members: list[dict], *, copies: int = 1, declared_count: int | None = None, zip64: bool = False) -> bytes:
    """A zip archive written field by field, so that any field can lie.

    ``copies`` repeats every central directory entry (all pointing at the same local
    member); ``declared_count`` overrides the end record's member count; ``zip64`` adds
    the zip64 end records that archives with more than 65,535 members need.
    """
    local, directory = b"", b""
    for m in members:
        offset = len(local)
        fields = (m["flags"], m["method"], 0, 0, m["crc"], len(m["data"]), m["size"], len(m["name"]))
        local += struct.pack("<4s2B4HL2L2H", b"PK\x03\x04", 20, 0, *fields, 0) + m["name"] + m["data"]
        directory += struct.pack("<4s4B4HL2L5H2L", b"PK\x01\x02", 20, 3, 20, 0, *fields, 0, 0, 0, 0, 0,
                                 offset) + m["name"]
    directory *= copies
    count = len(members) * copies if declared_count is None else declared_count
    tail = b""
    if zip64:
        record_at = len(local) + len(directory)
        tail = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, len(directory), len(local))
        tail += struct.pack("<4sLQL", b"PK\x06\x07", 0, record_at, 1)
        count = 0xFFFF
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, min(count, 0xFFFF), min(count, 0xFFFF), len(directory),
                      len(local), 0)
    return local + directory + tail + end


def deflate_zeros(megabytes: int) -> bytes:
    """A raw deflate stream of ``megabytes`` MB of zeros, ~1 KB per MB, built without
    compressing them all: after a sync flush, every further MB of zeros compresses to the
    same bytes. (Inflating deflate_zeros(300) gives 314,572,800 bytes, checked with zlib.)"""
    zeros = bytes(1 << 20)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(zeros) + compressor.flush(zlib.Z_SYNC_FLUSH)
    repeat = compressor.compress(zeros) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return first + repeat * (megabytes - 1) + compressor.flush()


def measured(call):
    """(what ``call`` raised, seconds, peak bytes allocated by Python and zlib during it)."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        call()
    except Exception as exc:  # the caller asserts on exactly what was raised
        raised = exc
    else:
        raised = None
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return raised, seconds, peak


def card_json(**changes) -> bytes:
    card = json.loads(MEMBERS[CARD_ENTRY])
    for key, value in changes.items():
        if key in card["input"]:
            card["input"][key] = value
        else:
            card[key] = value
    return json.dumps(card).encode()


def test_a_small_card_that_inflates_to_300_mb_is_refused_with_bounded_memory(tmp_path):
    """The card claims 200 bytes and holds 300 MB of deflated zeros in 300 KB: zipfile's
    read() inflated all of it before cutting to the declared size (644 MB peak)."""
    bomb = deflate_zeros(300)
    assert len(bomb) < 400_000
    data = FLATBUFFER + craft_zip([member(CARD_ENTRY, bomb, method=DEFLATED, size=200, crc=0),
                                   member(LABELS_ENTRY, MEMBERS[LABELS_ENTRY])])
    for call in (lambda: read_card(data, source="bomb.tflite"), lambda: split_archive(data, source="bomb.tflite")):
        raised, _, peak = measured(call)
        assert isinstance(raised, ModelCardError) and "bomb.tflite" in str(raised), raised
        assert peak < 8 << 20, f"peak {peak / 2**20:.0f} MB while refusing a 300 MB card"
    model = tmp_path / "bomb.tflite"
    model.write_bytes(data)
    with pytest.raises(ModelCardError, match="bomb.tflite.*damaged"):
        Classifier(model)


def test_archive_members_together_inflate_to_a_bounded_size():
    """Each of 64 members is 1 KB of deflate data that honestly inflates to 1 MB (declared
    size, valid CRC): split_archive stops at MAX_ARCHIVE_BYTES in all, not 64 MB."""
    zeros = bytes(MAX_MEMBER_BYTES)
    honest = [member(f"extra/{i}.bin", deflate_zeros(1), method=DEFLATED, size=len(zeros), crc=zlib.crc32(zeros))
              for i in range(MAX_MEMBERS)]
    data = FLATBUFFER + craft_zip(honest)
    assert len(data) - len(FLATBUFFER) < 100_000
    raised, _, peak = measured(lambda: split_archive(data, source="many-mb.tflite"))
    assert isinstance(raised, ModelCardError) and f"more than {MAX_ARCHIVE_BYTES}" in str(raised), raised
    assert "many-mb.tflite" in str(raised)
    assert peak < MAX_ARCHIVE_BYTES + (8 << 20), f"peak {peak / 2**20:.0f} MB"


@pytest.mark.parametrize("zip64", [True, False], ids=["zip64-count", "count-lies-directory-does-not"])
def test_a_million_members_are_refused_before_they_are_listed(zip64):
    """zipfile lists every central directory entry before anything can be checked
    (1,000,000 members: 5 s, 614 MB). The end record is checked first: its count, and the
    directory size zipfile would parse whatever the count says."""
    name = member(LABELS_ENTRY, b"a\n")
    data = FLATBUFFER + craft_zip([name], copies=1_000_000, zip64=zip64, declared_count=None if zip64 else 2)
    for call in (lambda: read_card(data, source="many.tflite"), lambda: split_archive(data, source="many.tflite")):
        raised, seconds, peak = measured(call)
        assert isinstance(raised, ModelCardError) and "many.tflite" in str(raised), raised
        assert ("declares 1000000 members" if zip64 else "declares 2 members") in str(raised)
        assert seconds < 0.5 and peak < 1 << 20, (seconds, peak)


def _bad_card_archive(case: str) -> bytes:
    card, labels = MEMBERS[CARD_ENTRY], member(LABELS_ENTRY, MEMBERS[LABELS_ENTRY])
    if case == "corrupt deflate data (zlib.error)":
        return craft_zip([member(CARD_ENTRY, b"\x07" + card[:50], method=DEFLATED, size=len(card)), labels])
    if case == "encrypted flag (RuntimeError)":
        return craft_zip([member(CARD_ENTRY, card, flags=0x1), labels])
    if case == "unknown compression method (NotImplementedError)":
        return craft_zip([member(CARD_ENTRY, card, method=99), labels])
    if case == "member name not UTF-8 (UnicodeDecodeError)":
        return craft_zip([member(CARD_ENTRY, card), member(b"\xff\xfe.txt", b"x", flags=0x800)])
    if case == "deeply nested JSON (RecursionError)":
        return craft_zip([member(CARD_ENTRY, b"[" * 100_000), labels])
    raise AssertionError(case)


@pytest.mark.parametrize("case", [
    "corrupt deflate data (zlib.error)", "encrypted flag (RuntimeError)",
    "unknown compression method (NotImplementedError)", "member name not UTF-8 (UnicodeDecodeError)",
    "deeply nested JSON (RecursionError)",
])
def test_every_broken_archive_is_one_model_card_error_naming_the_file(case, tmp_path):
    model = tmp_path / "broken.tflite"
    model.write_bytes(FLATBUFFER + _bad_card_archive(case))
    with pytest.raises(ModelCardError, match="broken.tflite") as info:
        Classifier(model)
    error = info.value  # one error: no chained traceback of what zipfile raised
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("changes", "message"), [
    ({"crop_fraction": "0.5"}, "crop_fraction must be a number"),
    ({"mean": [float("nan"), 0, 0]}, "mean must be three numbers"),
    ({"std": [float("inf"), 1, 1]}, "std must be three numbers"),
    ({"std": [-1, 1, 1]}, "std must be three numbers"),
    ({"height": True}, "height/width must be integers"),
    ({"normalization_in_graph": "false"}, "normalization_in_graph must be true or false"),
    ({"labels": ["a", "b\x1b[2J\x1b[H", "c"]}, "label must not contain control characters"),
    ({"labels": ["a", "oat\nmilk", "c"]}, "line breaks"),
    ({"labels": ["a", "\x9b31m", "c"]}, "control characters"),
    ({"labels": ["a", "\ud800", "c"]}, "control characters"),
    ({"name": {"not": "text"}}, "name must be a string"),
    ({"arch": "tiny\x07"}, "arch must not contain control characters"),
    ({"format_version": True}, "format_version must be a positive integer"),
    ({"extra": {"deep": json.loads("[" * 200 + "]" * 200)}}, "nested more than"),
])
def test_card_values_are_checked_for_type_and_range(changes, message):
    """A string crop_fraction loaded and then every classify raised; NaN normalisation gave
    garbage scores; labels with escape sequences reached the terminal verbatim."""
    data = attach_archive(FLATBUFFER, {**MEMBERS, CARD_ENTRY: card_json(**changes)})
    with pytest.raises(ModelCardError, match=message) as info:
        read_card(data, source="values.tflite")
    assert str(info.value).startswith("values.tflite: ")


def test_a_string_crop_fraction_is_refused_at_load_not_at_every_frame(tmp_path):
    model = tmp_path / "crop.tflite"
    model.write_bytes(attach_archive(FLATBUFFER, {**MEMBERS, CARD_ENTRY: card_json(crop_fraction="0.9")}))
    with pytest.raises(ModelCardError, match="crop.tflite: crop_fraction"):
        Classifier(model)


def test_labels_txt_beside_a_bare_model_is_checked_like_a_card(tmp_path):
    model = tmp_path / "bare.tflite"
    model.write_bytes(FLATBUFFER)
    (tmp_path / "labels.txt").write_text("a\nb\x1b]0;owned\x07\nc\n", encoding="utf-8")
    with pytest.raises(ModelCardError, match="labels.txt: label must not contain control characters"):
        Classifier(model)


def test_a_class_folder_named_with_an_escape_sequence_is_refused_before_loading(tmp_path):
    root = make_dataset(tmp_path / "data", per_class=2, seed=0)
    next(p for p in root.iterdir() if p.is_dir()).rename(root / "milk\x1b[31m")
    with pytest.raises(DataError, match="class name must not contain control characters.*rename its folder"):
        discover(root)
