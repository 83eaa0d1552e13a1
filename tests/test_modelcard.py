"""The card inside a .tflite: round trip, and clear errors for malformed or oversized cards."""

from __future__ import annotations

import contextlib
import io
import json
import struct
import zipfile

import pytest
from conftest import DATA
from hypothesis import given
from hypothesis import strategies as st

from edgeshop.tflite.archive import directory_extent
from edgeshop.tflite.modelcard import (
    CARD_ENTRY,
    LABELS_ENTRY,
    MAX_CARD_BYTES,
    InputSpec,
    ModelCard,
    ModelCardError,
    attach_archive,
    embed_card,
    read_card,
    split_archive,
)

FLATBUFFER = b"\x1c\x00\x00\x00TFL3" + bytes(100)


def _card(**kw) -> ModelCard:
    return ModelCard(labels=("a", "b"), input=InputSpec(height=32, width=48), **kw)


def test_round_trip_through_model_bytes():
    card = _card(arch="tiny", quantization="qat_int8", extra={"x": [1, 2]})
    data = embed_card(FLATBUFFER, card)
    assert data.startswith(FLATBUFFER)
    assert read_card(data) == card


def test_model_without_card_reads_none():
    assert read_card(FLATBUFFER) is None


def _with_entry(payload: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr(CARD_ENTRY, payload)
    return FLATBUFFER + buffer.getvalue()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "JSON object"),
        (b'{"labels": [], "input": {"height": 1, "width": 1}}', "non-empty list"),
        (b'{"labels": ["a"]}', "malformed"),
        (b'{"labels": ["a"], "input": {"height": 0, "width": 5}}', "out of range"),
        (b'{"labels": ["a"], "input": {"height": 4, "width": 4, "resize": "zoom"}}', "resize"),
        (b'{"labels": ["a"], "input": {"height": 4, "width": 4, "std": [1, 0, 1]}}', "std"),
        (b'{"labels": ["a"], "input": {"height": 4, "width": 4}, "format_version": 99}', "newer"),
        (b'{"labels": ["a"], "input": {"height": 4, "width": 4, "bogus": 1}}', "malformed"),
    ],
)
def test_malformed_cards_raise_clear_errors(payload, message):
    with pytest.raises(ModelCardError, match=message) as info:
        read_card(_with_entry(payload), source="shelf.tflite")
    assert "shelf.tflite" in str(info.value)


def test_oversized_card_is_refused_before_reading():
    huge = json.dumps({"labels": ["a"], "input": {"height": 4, "width": 4}, "extra": {"pad": "x" * MAX_CARD_BYTES}})
    with pytest.raises(ModelCardError, match="more than"):
        read_card(_with_entry(huge.encode()), source="big.tflite")


def test_card_and_labels_share_one_stored_archive():
    """Standard readers map stored members straight from the file and see only the last zip."""
    card = _card()
    data = embed_card(FLATBUFFER, card)
    assert data.count(b"PK\x05\x06") == 1  # one end-of-archive record: one zip
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert sorted(archive.namelist()) == sorted([CARD_ENTRY, LABELS_ENTRY])
        assert all(info.compress_type == zipfile.ZIP_STORED for info in archive.infolist())
        assert archive.read(LABELS_ENTRY) == b"a\nb\n"


def test_embedding_again_replaces_the_card_and_keeps_other_members():
    first = attach_archive(FLATBUFFER, {"extra/notes.txt": b"keep me", CARD_ENTRY: b"old"})
    card = _card(name="second")
    data = embed_card(first, card)
    flatbuffer, members = split_archive(data)
    assert flatbuffer == FLATBUFFER
    assert members["extra/notes.txt"] == b"keep me"
    assert read_card(data) == card
    assert data.count(b"PK\x05\x06") == 1


def _deflated(flatbuffer: bytes, members: dict[str, bytes]) -> bytes:
    """The form earlier edgeshop versions wrote: a deflate-compressed card zip."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return flatbuffer + buffer.getvalue()


def test_cards_written_by_earlier_versions_still_read():
    """Before the stored archive, the card zip was deflate-compressed."""
    card = _card(arch="old")
    old = _deflated(FLATBUFFER, {CARD_ENTRY: card.to_json().encode(), LABELS_ENTRY: b"a\nb\n"})
    assert read_card(old) == card
    assert split_archive(old)[0] == FLATBUFFER


def test_labels_with_line_breaks_are_refused():
    """labels.txt has one label per line: a label with a line break would shift every later label."""
    with pytest.raises(ModelCardError, match="line breaks"):
        embed_card(FLATBUFFER, ModelCard(labels=("milk", "oat\nmilk"), input=InputSpec(height=4, width=4)))


@given(
    labels=st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=20),
                    min_size=1, max_size=30),
    height=st.integers(1, 8192),
    width=st.integers(1, 8192),
    crop=st.floats(0.05, 1.0),
)
def test_any_valid_card_round_trips(labels, height, width, crop):
    card = ModelCard(labels=tuple(labels), input=InputSpec(height=height, width=width, crop_fraction=crop))
    assert read_card(embed_card(FLATBUFFER, card)) == card


@given(st.binary(max_size=2000))
def test_arbitrary_card_bytes_never_crash(payload):
    with contextlib.suppress(ModelCardError):
        read_card(_with_entry(payload))


# -- the container itself: any bytes after a flatbuffer give a card, None, or one ModelCardError --

REAL_MODEL = (DATA / "tiny_int8.tflite").read_bytes()
REAL_FLATBUFFER, REAL_MEMBERS = split_archive(REAL_MODEL)


REAL_MODELS = {"stored": REAL_MODEL, "deflated": _deflated(REAL_FLATBUFFER, REAL_MEMBERS)}


def _loads_or_refuses(data: bytes) -> None:
    """read_card and split_archive give a result or one ModelCardError naming the file, and
    the archive limits are checked on the numbers zipfile itself reads from the end record."""
    try:
        end_record = zipfile._EndRecData(io.BytesIO(data))  # what ZipFile() acts on
    except zipfile.BadZipFile:  # a multi-disk zip64 locator: zipfile refuses it before reading on
        end_record = "refused"
    if end_record is None:
        assert directory_extent(data) is None
    elif end_record != "refused":
        assert directory_extent(data) == (end_record[4], end_record[5])
    for call in (read_card, split_archive):
        try:
            call(data, source="fuzzed.tflite")
        except ModelCardError as exc:
            assert str(exc).startswith("fuzzed.tflite: ")


@given(
    form=st.sampled_from(sorted(REAL_MODELS)),
    edits=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=6),
    cut=st.integers(0, 40),
)
def test_corrupted_archives_of_a_real_model_never_crash(form, edits, cut):
    """1-6 bytes of a real model's archive changed (39% of such edits leaked zlib.error),
    and sometimes its last bytes cut off."""
    model = bytearray(REAL_MODELS[form])
    archive_size = len(model) - len(REAL_FLATBUFFER)
    for position, value in edits:
        model[len(REAL_FLATBUFFER) + position % archive_size] = value
    _loads_or_refuses(bytes(model[: len(model) - cut]))


_END_RECORD = st.builds(lambda body: b"PK\x05\x06" + body, st.binary(min_size=18, max_size=18))
_ZIP64_END = st.builds(lambda record, locator, end: b"PK\x06\x06" + record + b"PK\x06\x07" + locator + end,
                       st.binary(min_size=52, max_size=52), st.binary(min_size=16, max_size=16), _END_RECORD)


def _directory(entries: list[tuple[bytes, bytes, bytes]]) -> bytes:
    """A central directory whose entries have random fields and names, and an end record
    that points at it correctly, so that zipfile goes on to list and open the entries."""
    directory = b"".join(b"PK\x01\x02" + fields + struct.pack("<3H", len(name), 0, 0) + rest + name
                         for fields, name, rest in entries)
    return directory + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(directory), 0, 0)


_DIRECTORY = st.lists(st.tuples(st.binary(min_size=24, max_size=24), st.binary(max_size=12),
                                st.binary(min_size=12, max_size=12)), min_size=1, max_size=3).map(_directory)


@given(tail=st.lists(st.one_of(st.binary(max_size=300), _END_RECORD, _ZIP64_END, _DIRECTORY), max_size=4).map(b"".join))
def test_random_bytes_after_a_flatbuffer_never_crash(tail):
    """Random bytes, with end records and central directories of random content mixed in
    so that zipfile gets past its search for an archive."""
    _loads_or_refuses(REAL_FLATBUFFER + tail)
