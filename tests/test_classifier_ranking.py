"""Classifier's per-call fast paths (dequantizing by table, ranking in Python) give exactly what
the plain numpy formulas give, on every output value and on random score vectors."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import DATA

from edgeshop import Classifier, Prediction
from edgeshop.runtime.quantization import TensorQuantization, dequantize_table


@pytest.mark.parametrize("q", [TensorQuantization("uint8", 1 / 256, 0), TensorQuantization("int8", 1 / 256, -128),
                               TensorQuantization("int8", 0.0173, 7), TensorQuantization("uint8", 0.3, 200)])
def test_dequantize_table_equals_the_formula_on_every_value(q):
    raw = np.arange(256, dtype=np.uint8).view(q.dtype)
    expected = ((raw.astype(np.float32) - q.zero_point) * q.scale).astype(np.float32)
    looked_up = dequantize_table(q)[raw.view(np.uint8)]
    assert looked_up.dtype == np.float32
    np.testing.assert_array_equal(looked_up, expected)


def test_dequantize_table_only_for_8_bit_outputs():
    assert dequantize_table(TensorQuantization("float32", 0.0, 0)) is None
    assert dequantize_table(TensorQuantization("int16", 0.01, 0)) is None


def _numpy_rank(classifier: Classifier, mask: np.ndarray, scores: np.ndarray, k: int | None,
                threshold: float) -> list[Prediction]:
    """Ranking written with numpy: stable argsort of the candidates passing mask and threshold."""
    candidates = np.flatnonzero(mask & (scores >= threshold))
    order = candidates[np.argsort(-scores[candidates], kind="stable")]
    if k is not None and k >= 0:
        order = order[:k]
    unknown = bool(len(scores)) and float(np.max(scores)) < classifier.unknown_threshold  # numpy's max: NaN wins
    return [Prediction(classifier.labels[i], float(min(max(scores[i], 0.0), 1.0)), int(i), unknown) for i in order]


@pytest.mark.parametrize("allow, deny", [(None, None), (["bar", "square"], None), (None, ["disc"])])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rank_equals_a_numpy_argsort_on_random_scores(allow, deny, dtype):
    classifier = Classifier(DATA / "tiny_int8.tflite", threads=1, allowlist=allow, denylist=deny,
                            unknown_threshold=0.4)
    mask = np.isin(np.array(classifier.labels), allow if allow else classifier.labels)
    if deny:
        mask &= ~np.isin(np.array(classifier.labels), deny)
    rng = np.random.default_rng(3)
    for _ in range(300):
        # a few distinct values so that ties are frequent; thresholds that float32 cannot hold
        # exactly, some of them within one float32 step of a score
        scores = rng.choice(np.array([0.0, 0.1, 0.25, 1 / 3, 0.5, 1.0, -0.0, np.nan], dtype), 3).astype(dtype)
        threshold = float(rng.choice([0.0, 0.1, 1 / 3, float(np.float32(0.1)) + 1e-12, 0.3333333, 0.5, 2.0]))
        k = rng.choice([None, 0, 1, 2, 5, -1])
        got = classifier.rank(scores, k, threshold)
        assert got == _numpy_rank(classifier, mask, scores, k, threshold), (scores, threshold, k)
        assert all(type(p.score) is float and type(p.index) is int for p in got)
