"""Weight imprinting (Qi, Brown & Lowe, CVPR 2018) for heads trained with softmax: a new
class's classifier row from a few photos' embeddings, made comparable with the trained rows.

- Centring: embeddings are ReLU outputs, all positive, so a raw mean points at every image;
  each embedding is taken relative to the mean embedding of known images (written into the
  card by edgeshop-calibrate), then L2-normalised.
- Length: a trained row is only partly aligned with its class's images, a prototype fully,
  so copying the trained rows' norm makes the new class take old images. The row gets the
  length that gives a new class's photos the logit a trained class gives its own images
  (``imprint_statistics``), times a gain per head kind (``IMPRINT_GAIN``: a prototype of a
  few photos is noisier than one of many, so at gain 1 it wins too few of its images).
- Cosine heads (no bias): the bias is folded into the row along the centre.
- Refit (``learn_rows``): with one stored embedding per old class, the imprinted rows are
  refitted by softmax regression, the old rows fixed, and scaled by ``REFIT_SCALE``.

The figures that chose the gains, views and refit settings: studies/grocery/enrolment.md.
Numpy and OpenCV only.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

VIEWS = 8  # augmented views per photo (shot_views)
REFIT_STEPS, REFIT_LEARNING_RATE = 300, 0.01  # softmax regression of the new rows (fit_new_rows)
REFIT_SCALE = 0.75  # refitted rows grow long and take old classes' images (studies/grocery/enrolment.md)
CHECK_ROUNDS = 5  # leave-one-out rounds of the recognition check (recognition_check)
IMPRINT_GAIN = {"linear": 1.0, "cosine": 1.2}  # per head kind (studies/grocery/enrolment.md)
METHOD = "imprinting: centred, L2-normalised mean embedding; median trained norm and logit"
COSINE_METHOD = ("imprinting into a cosine head: centred, L2-normalised mean embedding orthogonal to the centre; "
                 "median trained norm, the median logit at the centre folded in along it")


def shot_views(pixels: np.ndarray) -> list[np.ndarray]:
    """Augmented views of one model-ready photo (H x W x 3): itself, its mirror image, a centre
    zoom (80%) and its mirror, and the four corner zooms (85%), each resized back to H x W.
    A few photos of a product from one side then stand for a little more of how a camera
    sees it; enrolment averages the views' embeddings (``VIEWS`` of them)."""
    h, w = pixels.shape[:2]
    views = [pixels, pixels[:, ::-1]]

    def zoom(fraction: float, y: float, x: float) -> np.ndarray:
        ch, cw = round(h * fraction), round(w * fraction)
        top, left = round((h - ch) * y), round((w - cw) * x)
        return cv2.resize(pixels[top:top + ch, left:left + cw], (w, h), interpolation=cv2.INTER_LINEAR)

    centre = zoom(0.8, 0.5, 0.5)
    views += [centre, centre[:, ::-1]]
    views += [zoom(0.85, y, x) for y, x in ((0, 0), (0, 1), (1, 0), (1, 1))]
    return [np.ascontiguousarray(v) for v in views]


def imprint_statistics(embeddings: np.ndarray, truth: np.ndarray, weights: np.ndarray, bias: np.ndarray,
                       data: str = "") -> dict[str, Any]:
    """What imprinting needs to know of the trained classes, from labelled known images (calibration's):
    the mean embedding (the centre), and the row norm that gives an imprinted class the logits
    a trained class gives its own images.

    A trained row w_k adds gain = w_k . (e - m) / |e - m| to its own images' logit over the
    centre; an imprinted row of norm a adds a x cos(e - m, prototype). With the median gain and
    the median cosine of an image to its class's prototype (leave-one-out, so an image never
    votes for itself), a = gain / cosine puts both on one scale."""
    embeddings, truth = embeddings.astype(np.float64), np.asarray(truth)
    centre = embeddings.mean(axis=0)
    offsets = embeddings - centre
    lengths = np.maximum(np.linalg.norm(offsets, axis=1), 1e-12)
    units = offsets / lengths[:, None]
    gain = np.einsum("ij,ij->i", weights.astype(np.float64)[truth], offsets) / lengths
    cosines = []
    for label in np.unique(truth):
        members = units[truth == label]
        if len(members) < 2:
            continue
        total = members.sum(axis=0)
        for row in members:
            others = total - row
            cosines.append(float(row @ others) / max(float(np.linalg.norm(others)), 1e-12))
    cosine = float(np.median(cosines)) if cosines else float("nan")
    record = {"mean": [float(f"{v:.5g}") for v in centre], "images": int(len(embeddings)), "data": data,
              "own_class_gain": float(np.median(gain)), "own_class_cosine": cosine}
    if cosines and cosine > 0:
        record["imprint_norm"] = record["own_class_gain"] / cosine
    return record


def imprint_rows(embeddings: np.ndarray, labels: np.ndarray, count: int, weights: np.ndarray, bias: np.ndarray,
                 centre: np.ndarray, norm: float, fold_bias: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """One classifier row and bias per new class 0..count-1 from its photos' embeddings: the
    centred, normalised mean embedding at length ``norm``, and the bias that gives the centre
    the median logit of the trained classes.

    ``fold_bias`` (a cosine head: its layer has no bias): the prototype is made orthogonal to
    the centre and the bias becomes a component along the centre, so the row still gives the
    centre that logit and scores every other image by its centred direction; biases are 0."""
    logit_at_centre = float(np.median(weights @ centre + bias))
    offsets = embeddings.astype(np.float64) - centre
    offsets /= np.maximum(np.linalg.norm(offsets, axis=1, keepdims=True), 1e-12)
    rows, biases = [], []
    centre_sq = max(float(centre @ centre), 1e-12)
    for label in range(count):
        prototype = offsets[labels == label].mean(axis=0)
        if fold_bias:
            prototype = prototype - (prototype @ centre) / centre_sq * centre
        row = norm * prototype / max(float(np.linalg.norm(prototype)), 1e-12)
        if fold_bias:
            row = row + logit_at_centre / centre_sq * centre
        rows.append(row)
        biases.append(0.0 if fold_bias else logit_at_centre - float(row @ centre))
    return np.asarray(rows, np.float32).reshape(count, -1), np.asarray(biases, np.float32)


def fit_new_rows(old_weights: np.ndarray, old_bias: np.ndarray, rows: np.ndarray, row_bias: np.ndarray,
                 embeddings: np.ndarray, labels: np.ndarray, old_samples: np.ndarray, *, steps: int,
                 has_bias: bool, learning_rate: float = REFIT_LEARNING_RATE) -> tuple[np.ndarray, np.ndarray]:
    """Softmax regression of the new classes' rows (and biases, ``has_bias``) on stored embeddings,
    the old rows fixed: full-batch Adam on the cross-entropy over all classes of the new photos'
    embeddings (``labels`` index the new rows) and of one representative embedding per old class
    (``old_samples``, row i of class i), the two sets weighted equally so the new rows win their
    photos without taking the old classes'. Starts from the imprinted ``rows``."""
    # float32: the embeddings are int8-derived and the rows are stored in int8, and half the time of float64
    old_weights, old_bias = np.asarray(old_weights, np.float32), np.asarray(old_bias, np.float32)
    w, b = np.array(rows, np.float32), np.array(row_bias, np.float32)
    n_old = len(old_weights)
    x = np.vstack([np.asarray(embeddings, np.float32), np.asarray(old_samples, np.float32)])
    target = np.concatenate([n_old + np.asarray(labels), np.arange(len(old_samples))])
    weight = np.concatenate([np.full(len(embeddings), 0.5 / max(len(embeddings), 1)),
                             np.full(len(old_samples), 0.5 / max(len(old_samples), 1))]).astype(np.float32)
    fixed = x @ old_weights.T + old_bias
    moments = [np.zeros_like(w), np.zeros_like(w), np.zeros_like(b), np.zeros_like(b)]
    beta1, beta2 = 0.9, 0.999
    for step in range(1, steps + 1):
        logits = np.hstack([fixed, x @ w.T + b])
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(len(x)), target] -= 1.0
        delta = p[:, n_old:] * weight[:, None]  # d loss / d new logits
        grads = [delta.T @ x, delta.sum(axis=0) if has_bias else np.zeros_like(b)]
        for i, (param, grad) in enumerate(((w, grads[0]), (b, grads[1]))):
            m, v = moments[2 * i], moments[2 * i + 1]
            m[:] = beta1 * m + (1 - beta1) * grad
            v[:] = beta2 * v + (1 - beta2) * grad**2
            param -= learning_rate * (m / (1 - beta1**step)) / (np.sqrt(v / (1 - beta2**step)) + 1e-8)
    return w.astype(np.float32), b.astype(np.float32)


def learn_rows(embeddings: np.ndarray, labels: np.ndarray, count: int, weights: np.ndarray, bias: np.ndarray,
               head: Any, centre: np.ndarray, norm: float,
               old_samples: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The new classes' rows from their photos' (views') embeddings: imprinted, then (with the old
    classes' stored samples) refitted by softmax regression and scaled by REFIT_SCALE, the
    setting studies/grocery/open_set_study.py chose (refitted rows grow long and take old classes' images)."""
    rows, row_bias = imprint_rows(embeddings, labels, count, weights, bias, centre, norm,
                                  fold_bias=not head.has_bias)
    if old_samples is None:
        return rows, row_bias
    rows, row_bias = fit_new_rows(weights, bias, rows, row_bias, embeddings, labels, old_samples,
                                  steps=REFIT_STEPS, has_bias=head.has_bias)
    return rows * REFIT_SCALE, row_bias * REFIT_SCALE


def recognition_check(photo_embeddings: np.ndarray, photo_labels: np.ndarray, photo_of: np.ndarray,
                      new_rows: Any, weights: np.ndarray, bias: np.ndarray) -> list[dict[str, Any]]:
    """Per new product, the share of its photos the enrolled head recognises.

    Products with >= 3 photos: leave-one-out in rounds, round j learns every product without
    its j-th photo (and that photo's views) and classifies the photos left out (at most
    CHECK_ROUNDS rounds, for time: with more photos every CHECK_ROUNDS-th is left out together), so each photo is
    judged by rows that never saw it (its product lacks one photo, as leave-one-out's does; the
    other products lack one too, which is slightly stricter). Fewer photos: the photos the rows
    were learnt from (in-sample, said so). Embeddings of view 0 (the photo itself), the head in
    float (the written int8 model's agrees within its rounding)."""
    counts = np.bincount(photo_labels, minlength=int(photo_labels.max()) + 1)
    rank = np.zeros(len(photo_labels), int)  # j: the photo is its product's j-th
    for label in range(len(counts)):
        rank[photo_labels == label] = np.arange(counts[label])
    loo = counts[photo_labels] >= 3
    right = np.zeros(len(photo_labels), bool)
    rounds = min(int(rank[loo].max()) + 1, CHECK_ROUNDS) if loo.any() else 0
    for j in range(rounds):
        out = loo & (rank % CHECK_ROUNDS == j)
        rows, row_bias = new_rows(~np.isin(photo_of, np.flatnonzero(out)))
        right[out] = _predict(photo_embeddings[out], weights, bias, rows, row_bias) == len(weights) + \
            photo_labels[out]
    if (~loo).any():
        rows, row_bias = new_rows(np.ones(len(photo_of), bool))
        right[~loo] = _predict(photo_embeddings[~loo], weights, bias, rows, row_bias) == len(weights) + \
            photo_labels[~loo]
    return [{"recognised": float(right[photo_labels == label].mean()),
             "check": "leave-one-out" if counts[label] >= 3 else "in-sample (fewer than 3 photos)"}
            for label in range(len(counts))]


def _predict(embeddings: np.ndarray, weights: np.ndarray, bias: np.ndarray, rows: np.ndarray,
             row_bias: np.ndarray) -> np.ndarray:
    return (embeddings @ np.vstack([weights, rows]).T + np.concatenate([bias, row_bias])).argmax(axis=1)
