"""Add new products to a finished model from a few photos each, and remove products: no
training, no TensorFlow, on the device.

Weight imprinting (Qi, Brown & Lowe, CVPR 2018): a new class's row of the classifier
layer is the normalised mean of its photos' embeddings. Our models' heads are plain
dense layers trained with softmax, not cosine heads, so two things make an imprinted
row comparable with the trained ones:
- centring: embeddings are ReLU outputs, all positive, so a raw mean points at every
  image; each embedding is taken relative to the mean embedding of known images (stored
  in the card by calibration, `extra["embedding"]`), then L2-normalised;
- scale: the row gets the length that gives a new class's photos the logit a trained class
  gives its own images (`imprint_statistics`, measured on known images at calibration), and
  a bias that gives the mean known image the median logit the trained classes give it.
  (The trained rows' own norm is several times too long: a trained row is only partly
  aligned with its class's images, a prototype fully, so the new class takes old images;
  `imprint_statistics` measures the right length instead.) The rows are written into the model
itself (`edgeshop.tflite.head_weights`), so the result is an ordinary export: fully
integer if the original was, standard metadata and card kept, new labels in labels.txt,
readable by MediaPipe Tasks like any other.

A model trained with the cosine head (`edgeshop-train --head cosine`, train/cosine_head.py)
scores scale x cos(row, embedding) and its layer has no bias. Imprinting the plain normalised
mean at the head's scale (Qi et al. as published) took other products' images in our tests:
the unit embeddings share a large common direction and trained rows reach only a modest
cosine with their own images. So the same centring and measured length are used, and the
bias is folded into the row as a component along the centre (`imprint_rows(fold_bias=True)`).

Gain: the measured length is multiplied by a gain per head kind (IMPRINT_GAIN, or
``--imprint-gain``). The length is measured with prototypes of many images; a prototype
of a few photos is noisier, so the new class's images reach a lower cosine with it and it
wins too few of them (the cosine head kept every old answer at gain 1 and learnt 45% of
the new images from 5 photos). The gains were chosen on the grocery open-set models, on
data that excludes what the benchmark reports: the largest gain (grid of 0.1) at which
5-photo enrolment takes at most 1 point from the old classes' calibration images, with
the new classes' training photos that were not enrolled as the check that new images are
won (see studies/grocery/open_set_benchmark.py). The linear head already loses 1.9 points at gain 1,
so it stays at 1.

Refit (`learn_rows`): the imprinted rows are then refitted by softmax regression in numpy
(`fit_new_rows`: the new photos' embeddings and one stored representative embedding per old
class, which calibration writes into the card; the old rows fixed), and scaled by REFIT_SCALE.
On the Grocery open-set benchmark this took 5-shot enrolment of ten unseen products from 73% to
82% of their unseen photos for 0.8 point of the old classes (docs/unknown-products.md,
studies/grocery/open_set_study.py, which chose the settings).

Views (`shot_views`): each photo and its mirror image are embedded and both imprinted and refitted
(ENROL_VIEWS = 2). Chosen by the written protocol of studies/grocery/open_set_protocol.py on the
photos of ten unseen products outside the look-alike bursts of the shots, the photos a store camera
resembles (near-copies of the shots flatter every setting): 1 view 67.9%, 2 views 73.2%, and with the
product's catalogue image as one more photo 78.6%, at most 1 point from the old classes; 8 views did
no better than 2 and took ~20 s for ten products.

Self-check (`recognition_check`): each new product's photos are classified by rows learnt
without them (leave-one-out); the rate goes into the record and the card, and a product
below MIN_RECOGNISED is named in a warning.

The temperature and the unknown threshold stay those fitted on the original classes;
the enrolment record in the card says so.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeshop._io import check_output_file
from edgeshop.adapt.probe import HeadProbe, loaded
from edgeshop.data import LoadedImages, Sample, load_images
from edgeshop.data.image_folders import FolderScan, scan_images
from edgeshop.errors import DataError, EdgeshopError
from edgeshop.runtime.classifier import _read_model_file
from edgeshop.runtime.label_text import label_problem, lookalikes, normal_label
from edgeshop.runtime.preprocess import IMAGE_SUFFIXES
from edgeshop.runtime.unknown_score import class_prototypes, decode_rows, encode_rows, fits_card
from edgeshop.tflite.head_weights import read_head_weights, with_head_weights
from edgeshop.tflite.modelcard import ModelCard, embed_card, read_card
from edgeshop.utils import write_bytes_atomic

VIEWS = 8  # augmented views per photo (shot_views)
REFIT_STEPS, REFIT_LEARNING_RATE = 300, 0.01  # softmax regression of the new rows (fit_new_rows)
REFIT_SCALE = 0.75  # chosen by studies/grocery/open_set_study.py (module docstring)
ENROL_VIEWS = 2  # the photo and its mirror image: chosen by studies/grocery/open_set_protocol.py (module docstring)
CHECK_ROUNDS = 5  # leave-one-out rounds of the recognition check (recognition_check)
MIN_RECOGNISED = 0.6  # below this share of its own photos recognised, a new product is named in a warning
IMPRINT_GAIN = {"linear": 1.0, "cosine": 1.2}  # chosen as the module docstring says
METHOD = "imprinting: centred, L2-normalised mean embedding; median trained norm and logit"
COSINE_METHOD = ("imprinting into a cosine head: centred, L2-normalised mean embedding orthogonal to the centre; "
                 "median trained norm, the median logit at the centre folded in along it")
MAX_PHOTOS_PER_PRODUCT = 20  # enrolment's bound (docs/datasets.md): imprinting averages a few photos

log = logging.getLogger("edgeshop.adapt.enroll")


def new_class_photos(data: str | Path) -> list[Sample]:
    """``data``/<product>/<photo>: one folder per new product with 1-MAX_PHOTOS_PER_PRODUCT
    photos directly in it, found by the datasets' walk (data/image_folders.py: links
    followed, loops cut) one level deep, so a product folder that links to ``/`` lists the
    images directly in ``/`` only."""
    root = Path(data)
    if not root.is_dir():
        raise DataError(f"{root}: expected a folder with one sub-folder of photos per new product")
    scan = scan_images(root, max_depth=1, max_per_folder=MAX_PHOTOS_PER_PRODUCT)
    if not scan.folders:
        raise DataError(f"{root}: no product folders inside; put each new product's photos in "
                        f"{root}/<product name>/")
    if scan.not_regular:
        raise DataError(f"{scan.not_regular[0]} is not a regular file (a device, pipe or socket named like a "
                        "photo); remove it")
    if scan.cut:
        raise DataError(f"{scan.cut[0]}: more than {MAX_PHOTOS_PER_PRODUCT} photos; enrolment imprints 1-"
                        f"{MAX_PHOTOS_PER_PRODUCT} photos per product (a mean of more adds little): keep the "
                        f"{MAX_PHOTOS_PER_PRODUCT} most typical")
    _report_scan(scan)
    samples: list[Sample] = []
    for folder in scan.folders:
        problem = label_problem(folder.name)
        if problem:
            raise DataError(f"{root}: the product name {problem}; rename the folder")  # the name shown escaped
        photos = scan.class_folders.get(folder)
        if not photos:
            raise DataError(f"{folder}: no photos directly in it (looked for {', '.join(sorted(IMAGE_SUFFIXES))}); "
                            f"add 1-{MAX_PHOTOS_PER_PRODUCT} photos of the product or remove the folder")
        samples.extend(Sample(photo, normal_label(folder.name)) for photo in photos)
    similar = lookalikes(sorted({s.label for s in samples}))
    if similar:
        raise DataError(f"{root}: the product names {similar[0][1]!r} and {similar[0][0]!r} look alike (equal "
                        "ignoring case and character width); rename one, or merge their folders")
    return samples


def _report_scan(scan: FolderScan) -> None:
    """What the walk of a products folder passed over, one warning line each."""
    if scan.loose:
        log.warning("%s: %d photo(s) directly in it belong to no product and are left out, e.g. %s; put each new "
                    "product's photos in %s/<product name>/", scan.root, len(scan.loose), scan.loose[0].name,
                    scan.root)
    if scan.too_deep:
        log.warning("%s: sub-folders of product folders are not searched (%d, e.g. %s); put the photos directly "
                    "in the product's folder", scan.root, len(scan.too_deep), scan.too_deep[0])
    for folder, real in scan.outside[:1]:
        log.warning("%s: %d product folder(s) lie outside it (reached through links), e.g. %s -> %s", scan.root,
                    len(scan.outside), folder, real)
    if scan.repeated:
        log.warning("%s: %d link(s) lead to a product folder already read and were skipped, e.g. %s", scan.root,
                    len(scan.repeated), scan.repeated[0])
    if scan.broken:
        log.warning("%s: %d link(s) lead nowhere and were skipped, e.g. %s", scan.root, len(scan.broken),
                    scan.broken[0])


def refuse_name_clashes(labels: Sequence[str], new_labels: Sequence[str], remove: Sequence[str], data: str,
                        source: str) -> None:
    """A new product may not take the name of a kept label, nor a name that looks like one
    (runtime/label_text.py: equal after NFKC and case folding)."""
    clashes = [name for name in new_labels if name in labels and name not in remove]
    if clashes:
        raise DataError(f"{data or 'new products'}: {clashes[0]!r} is already a label of {source}; to replace it, "
                        f"pass --remove {clashes[0]!r} as well (or rename the folder)")
    similar = lookalikes(new_labels, [name for name in labels if name not in remove])
    if similar:
        raise DataError(f"{data or 'new products'}: {similar[0][0]!r} looks like {similar[0][1]!r}, a label of "
                        f"{source} (equal ignoring case and character width); rename the folder, or pass --remove "
                        f"{similar[0][1]!r} to replace that product")


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


def enroll_content(content: bytes, photos: LoadedImages | None, new_labels: Sequence[str],
                   remove: Sequence[str] = (), *, source: str = "model", data: str = "",
                   skipped: Mapping[str, int] | None = None, gain: float | None = None,
                   refit: bool = True, views_per_photo: int = ENROL_VIEWS) -> tuple[bytes, dict]:
    """``content`` with the classes ``remove`` dropped and ``new_labels`` imprinted from ``photos``
    (labels index ``new_labels``; ``skipped``: unreadable photos per label, for the record);
    ``gain`` multiplies the card's imprint length (None: IMPRINT_GAIN of the head's kind); ``refit``:
    refit the imprinted rows (`learn_rows`) when the card has the old classes' samples;
    ``views_per_photo``: how many of a photo's `shot_views` are imprinted (1 to VIEWS).
    Returns the new model and the enrolment record."""
    _check_gain(gain)
    if not 1 <= views_per_photo <= VIEWS:
        raise ValueError(f"views_per_photo must be 1 to {VIEWS}, not {views_per_photo}")
    card = _card_of(content, source)
    labels = list(card.labels)
    missing = [name for name in remove if name not in labels]
    if missing:
        raise DataError(f"{source}: --remove {missing[0]!r} is not one of its labels")
    refuse_name_clashes(labels, new_labels, remove, data, source)
    head = read_head_weights(content, source)
    keep = np.array([name not in remove for name in labels])
    if not keep.any() and not new_labels:
        raise DataError(f"{source}: removing every label would leave no classes")
    weights, bias = head.weights[keep], head.bias[keep]
    if gain is None:
        gain = IMPRINT_GAIN["linear" if head.has_bias else "cosine"]
    added, check, samples = [], {}, _class_samples(card, len(labels), head.weights.shape[1], source)
    refit = refit and samples is not None and bool(new_labels)
    if new_labels:
        centre, norm = _centre(card, source, head.weights.shape[1])
        with loaded(content) as classifier:
            probe = HeadProbe(classifier)
            views = [view for image in photos.pixels for view in shot_views(image)[:views_per_photo]]
            embeddings = probe.run_many(np.stack(views), "enrolment: embeddings")["embedding"]
        per_photo = views_per_photo
        view_labels = np.repeat(photos.labels, per_photo)
        photo_of = np.repeat(np.arange(len(photos.labels)), per_photo)
        old_samples = samples[keep] if refit else None

        def new_rows(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return learn_rows(embeddings[mask], view_labels[mask], len(new_labels), weights, bias, head, centre,
                              norm * gain, old_samples)

        rows, row_bias = new_rows(np.ones(len(view_labels), bool))
        check = recognition_check(embeddings[photo_of >= 0][::per_photo], photos.labels, photo_of, new_rows,
                                  weights, bias)
        weights, bias = np.vstack([weights, rows]), np.concatenate([bias, row_bias])
        skipped = skipped or {}
        added = [{"label": name, "photos": int(np.sum(photos.labels == i)), "skipped": skipped.get(name, 0),
                  **check[i]} for i, name in enumerate(new_labels)]
        if samples is not None:
            new_samples = class_prototypes(embeddings, view_labels, np.zeros(embeddings.shape[1]), unit=False,
                                           count=len(new_labels))
            samples = np.vstack([samples[keep], new_samples])
    elif samples is not None:
        samples = samples[keep]
    new_labels_all = tuple([name for name in labels if name not in remove] + list(new_labels))
    record = {"method": METHOD if head.has_bias else COSINE_METHOD, "added": added, "gain": gain,
              "views_per_photo": views_per_photo if new_labels else 0,
              "refit": ({"steps": REFIT_STEPS, "learning_rate": REFIT_LEARNING_RATE, "scale": REFIT_SCALE}
                        if refit else "none" if samples is not None else
                "none: the card has no class samples (run edgeshop-calibrate)"),
              "warnings": [f"{a['label']}: only {a['recognised']:.0%} of its {a['photos']} photo(s) recognised "
                           f"({a['check']}); add photos from more sides" for a in added
                           if a["recognised"] < MIN_RECOGNISED],
              "removed": list(remove), "data": data,
              "classes_before": len(labels), "classes_after": len(new_labels_all),
              "storage": head.storage,
              "note": "temperature and unknown threshold were fitted on the classes before enrolment",
              "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    history = [*card.extra.get("enrolment", []), record]
    embedding_record = card.extra.get("embedding")
    extra = {**card.extra, "enrolment": history}
    if samples is not None and fits_card(samples):
        extra["embedding"] = {**embedding_record, "class_samples": encode_rows(samples)}
    elif samples is not None:  # too many classes for the card: later enrolments imprint only
        extra["embedding"] = {key: value for key, value in embedding_record.items() if key != "class_samples"}
    new_card = replace(card, labels=new_labels_all, extra=extra)
    result = embed_card(with_head_weights(content, weights, bias, source), new_card)
    _check_written(result, photos, new_labels, new_labels_all, source)
    return result, record


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
    """Per new product, the share of its photos the enrolled head recognises (#37.7).

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


def _class_samples(card: ModelCard, count: int, width: int, source: str) -> np.ndarray | None:
    """The card's representative embedding per class (written by calibration), or None."""
    record = card.extra.get("embedding")
    text = record.get("class_samples") if isinstance(record, dict) else None
    return decode_rows(text, (count, width), source) if isinstance(text, str) else None


def enroll_file(model: str | Path, out: str | Path, data: str | Path | None = None, remove: Sequence[str] = (),
                force: bool = False, gain: float | None = None, refit: bool = True) -> dict[str, Any]:
    """edgeshop-enroll: read ``model``, add the products under ``data`` and drop ``remove``, write ``out``."""
    model, out = Path(model), Path(out)
    check_output_file(out, force=force, kind="model", inputs=[model, data])
    if data is None and not remove:
        raise DataError("nothing to do: pass --data NEW (a folder per new product) and/or --remove LABEL")
    _check_gain(gain)  # the arguments first, then the names (refuse_name_clashes) before any photo is read
    content = _read_model_file(model)
    card = _card_of(content, str(model))
    photos, new_labels, skipped = None, [], Counter()
    if data is not None:
        samples = new_class_photos(data)
        new_labels = sorted({s.label for s in samples})
        refuse_name_clashes(card.labels, new_labels, remove, str(data), str(model))  # before any photo is read
        photos = load_images(samples, new_labels, card.input)
        unreadable = [name for i, name in enumerate(new_labels) if not np.any(photos.labels == i)]
        if unreadable:
            raise DataError(f"{Path(data) / unreadable[0]}: none of its photos could be read "
                            f"(e.g. {_first_reason(photos, Path(data) / unreadable[0])}); add readable photos")
        label_of = {s.path: s.label for s in samples}
        skipped = Counter(label_of[path] for path, _ in photos.skipped)
    result, record = enroll_content(content, photos, new_labels, remove, source=str(model),
                                    data=str(data) if data else "", skipped=skipped, gain=gain,
                                    refit=refit)
    write_bytes_atomic(out, result)
    skipped_files = [{"file": str(p), "reason": r} for p, r in (photos.skipped if photos else [])]
    return {**record, "path": str(out), "size_bytes": len(result), "skipped_files": skipped_files}


def _check_gain(gain: float | None) -> None:
    if gain is not None and not 0 < gain <= 10:
        raise DataError(f"--imprint-gain must be in (0, 10], e.g. 1.2; got {gain}")


def _card_of(content: bytes, source: str) -> ModelCard:
    card = read_card(content, source=source)
    if card is None:
        raise EdgeshopError(f"{source}: has no edgeshop model card, so its labels are unknown; export it with "
                            "edgeshop-export (or edgeshop-export --reexport MODEL)")
    return card


def _centre(card: ModelCard, source: str, width: int) -> tuple[np.ndarray, float]:
    """The card's mean embedding and imprint norm (written by calibration)."""
    record = card.extra.get("embedding")
    mean = np.asarray(record.get("mean", []), np.float64) if isinstance(record, dict) else np.zeros(0)
    norm = record.get("imprint_norm") if isinstance(record, dict) else None
    if mean.shape != (width,) or not isinstance(norm, (int, float)) or not 0 < norm < 1e6:
        raise EdgeshopError(f"{source}: its card has no mean embedding of known images, which enrolment centres "
                            "new products on; add it with: edgeshop-calibrate MODEL --data VAL_IMAGES --out "
                            "CALIBRATED.tflite (validation photos of the model's own classes)")
    return mean, float(norm)


def _first_reason(photos: LoadedImages, folder: Path) -> str:
    return next((reason for path, reason in photos.skipped if folder in path.parents), "unreadable")


def _check_written(result: bytes, photos: LoadedImages | None, new_labels: Sequence[str],
                   labels: Sequence[str], source: str) -> None:
    """The rewritten model loads in the runtime, has one score per label, and scores each
    enrolled photo (a sanity bound, not a test set: they are the photos imprinted)."""
    with loaded(result) as classifier:
        if classifier.labels != list(labels):
            raise EdgeshopError(f"{source}: the enrolled model's labels do not match its outputs (a bug)")
        if photos is not None and len(photos.pixels):
            scores = classifier.scores_from_pixels(photos.pixels[0])
            if scores.shape != (len(labels),):
                raise EdgeshopError(f"{source}: the enrolled model gives {scores.shape} scores for "
                                    f"{len(labels)} labels (a bug)")
