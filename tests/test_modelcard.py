"""The card inside a .tflite: round trip, and clear errors for malformed or oversized cards."""

from __future__ import annotations

import contextlib
import io
import json
import zipfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeshop.runtime.modelcard import (
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


def test_cards_written_by_earlier_versions_still_read():
    """Before the stored archive, the card zip was deflate-compressed."""
    card = _card(arch="old")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr(CARD_ENTRY, card.to_json())
        z.writestr(LABELS_ENTRY, "a\nb\n")
    old = FLATBUFFER + buffer.getvalue()
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
