"""Add new products to a finished model from a few photos each, and remove products: no
training, no TensorFlow, on the device. The photos' embeddings become classifier rows
(adapt/imprint.py), written into the model with its card and labels updated."""

from __future__ import annotations

import datetime as _dt
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edgeshop._io import check_output_file
from edgeshop.adapt.imprint import (
    COSINE_METHOD,
    IMPRINT_GAIN,
    METHOD,
    REFIT_LEARNING_RATE,
    REFIT_SCALE,
    REFIT_STEPS,
    VIEWS,
    fit_new_rows,
    imprint_rows,
    imprint_statistics,
    learn_rows,
    recognition_check,
    shot_views,
)
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

ENROL_VIEWS = 2  # views embedded per photo: itself and its mirror image (studies/grocery/enrolment.md)
MIN_RECOGNISED = 0.6  # below this share of its own photos recognised, a new product is named in a warning
MAX_PHOTOS_PER_PRODUCT = 20  # enrolment's bound (docs/datasets.md): imprinting averages a few photos

# The imprinting names are imported from here too (studies, tests): enroll's public names.
__all__ = ["COSINE_METHOD", "ENROL_VIEWS", "IMPRINT_GAIN", "MAX_PHOTOS_PER_PRODUCT", "METHOD", "MIN_RECOGNISED",
           "REFIT_LEARNING_RATE", "REFIT_SCALE", "REFIT_STEPS", "VIEWS", "enroll_content", "enroll_file",
           "fit_new_rows", "imprint_rows", "imprint_statistics", "learn_rows", "new_class_photos",
           "recognition_check", "refuse_name_clashes", "shot_views"]

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
