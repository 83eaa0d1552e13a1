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
    MAX_CARD_BYTES,
    InputSpec,
    ModelCard,
    ModelCardError,
    embed_card,
    read_card,
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


@given(
    labels=st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=30),
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
