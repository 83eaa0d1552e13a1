"""The enrolment update and the embedding scores on hand-made embeddings, small enough to
check by hand: the class prototypes and their cosine score, the card's stored rows, the first
step of the new rows' softmax regression, and the leave-one-out recognition check (#37.7, #38)."""

from __future__ import annotations

import numpy as np
import pytest

from edgeshop.adapt.enroll import fit_new_rows, recognition_check, shot_views
from edgeshop.errors import ModelCardError
from edgeshop.runtime.unknown_score import (
    CLASS_SAMPLES_BUDGET,
    class_prototypes,
    decode_rows,
    encode_rows,
    fits_card,
    prototype_score,
)


def test_prototypes_and_their_cosine_score_by_hand():
    embeddings = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0], [3.0, 3.0]])
    truth = np.array([0, 0, 1, 1])
    centre = np.zeros(2)
    # class 0: mean of the unit vectors (1,0) and (0,1) is (0.5,0.5) -> unit (0.707,0.707)
    units = class_prototypes(embeddings, truth, centre)
    np.testing.assert_allclose(units, [[np.sqrt(0.5), np.sqrt(0.5)], [np.sqrt(0.5), np.sqrt(0.5)]])
    # representative: the mean direction at the members' median length (2 and 1 -> 1.5)
    samples = class_prototypes(embeddings, truth, centre, unit=False)
    np.testing.assert_allclose(samples[0], [1.5 * 2 / np.sqrt(5), 1.5 * 1 / np.sqrt(5)])
    np.testing.assert_allclose(np.linalg.norm(samples[1]), (np.sqrt(2) + np.sqrt(18)) / 2)
    # centred on (1,0): class 0's offsets (1,0) and (-1,1)/sqrt(2) average to ((1-0.707)/2, 0.354)
    centred = class_prototypes(embeddings, truth, np.array([1.0, 0.0]))
    expected = np.array([1 - np.sqrt(0.5), np.sqrt(0.5)])
    np.testing.assert_allclose(centred[0], expected / np.linalg.norm(expected))
    prototypes = np.array([[1.0, 0.0], [0.0, 1.0]])
    # (3,4) is 0.6 along the first prototype and 0.8 along the second: the nearest gives 0.8
    assert prototype_score(np.array([3.0, 4.0]), prototypes, centre) == pytest.approx(0.8)
    np.testing.assert_allclose(prototype_score(np.array([[3.0, 4.0], [-1.0, -1.0]]), prototypes, centre),
                               [0.8, -np.sqrt(0.5)])
    # centring moves the query: (3,4) - (3,0) = (0,4) lies on the second prototype
    assert prototype_score(np.array([3.0, 4.0]), prototypes, np.array([3.0, 0.0])) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="class 2 has no embeddings"):
        class_prototypes(embeddings, truth, centre, count=3)


def test_card_rows_round_trip_in_float16_and_a_wrong_size_is_refused():
    rows = np.array([[0.5, -1.25, 3.0], [1e-3, 2.0, -0.0625]])
    np.testing.assert_allclose(decode_rows(encode_rows(rows), (2, 3)), rows, rtol=1e-3)
    with pytest.raises(ModelCardError, match="hold 6 numbers, expected 3 x 3"):
        decode_rows(encode_rows(rows), (3, 3), "m.tflite")
    with pytest.raises(ModelCardError, match="not base64"):
        decode_rows("not base64!", (2, 3), "m.tflite")
    # the budget: 150 classes of 1,280 numbers fit (500 kB of text), 160 do not (546 kB)
    assert fits_card(np.zeros((150, 1280))) and len(encode_rows(np.zeros((150, 1280)))) <= CLASS_SAMPLES_BUDGET
    assert not fits_card(np.zeros((160, 1280))) and len(encode_rows(np.zeros((160, 1280)))) > CLASS_SAMPLES_BUDGET


def test_the_first_refit_step_by_hand_and_the_refit_wins_the_new_photo_but_not_the_old():
    """One old class (row (1,0)), one new class starting at (0,0); the new photo (0,1) and the old
    class's sample (1,0). New photo: logits (0,0), p_new 1/2, its d/dlogit_new = -1/2, weight 1/2.
    Old sample: logits (1,0), p_new = 1/(1+e), weight 1/2. Gradient of the new row:
    -1/4 (0,1) + (1/(1+e))/2 (1,0) = (0.134, -0.25); Adam's first step moves each weight by
    the learning rate against its gradient's sign: (-0.1, +0.1)."""
    old_w, old_b = np.array([[1.0, 0.0]]), np.zeros(1)
    x, y, old_samples = np.array([[0.0, 1.0]]), np.array([0]), np.array([[1.0, 0.0]])
    rows, bias = fit_new_rows(old_w, old_b, np.zeros((1, 2)), np.zeros(1), x, y, old_samples, steps=1,
                              has_bias=False, learning_rate=0.1)
    np.testing.assert_allclose(rows, [[-0.1, 0.1]], atol=1e-6)
    assert bias.tolist() == [0.0]  # a cosine head's layer has no bias: it stays 0
    rows, bias = fit_new_rows(old_w, old_b, np.zeros((1, 2)), np.zeros(1), x, y, old_samples, steps=1,
                              has_bias=True, learning_rate=0.1)
    # with a bias: d/db = -1/4 + (1/(1+e))/2 = -0.116 < 0, so the bias steps up by the rate
    np.testing.assert_allclose(bias, [0.1], atol=1e-6)
    rows, bias = fit_new_rows(old_w, old_b, np.zeros((1, 2)), np.zeros(1), x, y, old_samples, steps=200,
                              has_bias=True, learning_rate=0.1)
    assert x @ rows[0] + bias[0] > x @ old_w[0], "the new photo goes to the new class"
    assert old_samples @ rows[0] + bias[0] < old_samples @ old_w[0], "the old sample stays with its class"


def test_recognition_check_leaves_each_photo_out():
    """A product of three photos, one of them off to the side; the new row is the mean of the
    photos it is given, the old class's row (0.9, 0). In sample, the off photo (0.8, 0.6) scores
    0.733 against the old row's 0.72 and counts as recognised; left out, the row is (0, 1), it
    scores 0.6 < 0.72 and is not. The two others are recognised either way: 2 of 3."""
    photos = np.array([[0.0, 1.0], [0.0, 1.0], [0.8, 0.6]])
    labels = np.array([0, 0, 0])
    old_w, old_b = np.array([[0.9, 0.0]]), np.zeros(1)

    def mean_row(mask):
        return photos[mask].mean(axis=0, keepdims=True), np.zeros(1)

    check = recognition_check(photos, labels, np.arange(3), mean_row, old_w, old_b)
    assert check == [{"recognised": pytest.approx(2 / 3), "check": "leave-one-out"}]
    two = recognition_check(photos[:2], labels[:2], np.arange(2), lambda m: mean_row(np.r_[m, False]), old_w, old_b)
    assert two == [{"recognised": 1.0, "check": "in-sample (fewer than 3 photos)"}]


def test_shot_views_are_the_photo_its_mirror_and_zooms():
    image = np.zeros((20, 40, 3), np.uint8)
    image[:, :10] = 255  # a white band on the left
    views = shot_views(image)
    assert len(views) == 8 and all(v.shape == image.shape and v.dtype == np.uint8 for v in views)
    assert views[0] is image or np.array_equal(views[0], image)
    assert views[1][:, -10:].min() == 255 and views[1][:, :10].max() == 0  # mirrored: the band on the right
    # the centre 80% zoom cuts 4 of the band's 10 columns and stretches the other 6 by 1.25
    assert views[2][:, :7].min() == 255 and views[2][:, 9:].max() == 0
    assert views[4][:, :11].min() == 255  # the top-left 85% zoom keeps the band at the left edge


def test_knn_score_is_minus_the_distance_to_the_kth_nearest_reference_by_hand():
    """Three references at 0, 90 and 180 degrees (lengths 5, 0.5 and 2: only directions count), a
    query at 30 degrees (length 3). Unit vectors at angle t are 2 sin(t/2) apart: 2 sin 15 = 0.5176
    to the first, 2 sin 30 = 1 to the second, 2 sin 75 = 1.9319 to the third. So k = 1, 2, 3
    give minus those, and a k beyond the three references takes the farthest."""
    from edgeshop.report.openset import known_scores

    reference = np.array([[5.0, 0.0], [0.0, 0.5], [-2.0, 0.0]])
    query = {"embedding": 3.0 * np.array([[np.cos(np.pi / 6), np.sin(np.pi / 6)], [0.0, -1.0]])}
    # the second query (270 degrees) is 90, 180 and 90 degrees away: sorted 1.4142, 1.4142, 2
    expected = {1: [0.5176, 1.4142], 2: [1.0, 1.4142], 3: [1.9319, 2.0], 10: [1.9319, 2.0]}
    for k, distances in expected.items():
        np.testing.assert_allclose(known_scores("knn", query, reference, k=k), -np.array(distances), atol=1e-4)


def test_imprint_rows_by_hand():
    """Centre (2, 0); the product's photos (2, 1) and (5, 0): centred (0, 1) and (3, 0), each
    normalised first (so the far photo does not outweigh the near one), (0, 1) and (1, 0): mean
    (0.5, 0.5). Trained rows (1, 0) and (0, 3) without bias give the centre logits 2 and 0: median 1.
    - plain head: the row is the unit mean at length 2, (1.414, 1.414), and its bias puts the centre
      at logit 1: 1 - 2 x 1.414 = -1.828;
    - cosine head (no bias): the mean loses its part along the centre, (0, 0.5) -> (0, 1) x 2, and
      the logit at the centre goes in along it: + 1 / |c|^2 x c = (0.5, 0); the row (0.5, 2)."""
    from edgeshop.adapt.enroll import imprint_rows

    photos, centre = np.array([[2.0, 1.0], [5.0, 0.0]]), np.array([2.0, 0.0])
    trained = np.array([[1.0, 0.0], [0.0, 3.0]])
    rows, bias = imprint_rows(photos, np.array([0, 0]), 1, trained, np.zeros(2), centre, 2.0)
    np.testing.assert_allclose(rows, [[np.sqrt(2), np.sqrt(2)]], rtol=1e-6)
    np.testing.assert_allclose(bias, [1 - 2 * np.sqrt(2)], rtol=1e-6)
    rows, bias = imprint_rows(photos, np.array([0, 0]), 1, trained, np.zeros(2), centre, 2.0, fold_bias=True)
    np.testing.assert_allclose(rows, [[0.5, 2.0]], rtol=1e-6)
    assert bias.tolist() == [0.0] and float(rows[0] @ centre) == pytest.approx(1.0)
