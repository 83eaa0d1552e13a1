"""How much an image looks like one of the model's products, from its embedding.

The prototype score: the cosine between the image's embedding and the nearest class
prototype, both taken relative to the centre of the known images (the mean embedding of the
training photos) and L2-normalised. A prototype is the normalised mean of its class's
normalised, centred training embeddings, the same direction enrolment imprints a new
product with (`edgeshop.adapt.imprint.imprint_rows`). Cosine similarity to class means on
normalised features is the cheap relative of the kNN score of Sun et al. (ICML 2022): one
vector per class instead of every training image, so it fits in the model's card, and an
enrolled product brings its own prototype.

Runtime only (numpy): the classifier computes it from the embedding output of its probe
graph, the numbers come from the card (`extra["prototypes"]`).
"""

from __future__ import annotations

import base64

import numpy as np

from edgeshop.errors import ModelCardError


def normalise(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, np.float64)
    return rows / np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-12)


def class_prototypes(embeddings: np.ndarray, truth: np.ndarray, centre: np.ndarray, unit: bool = True,
                     count: int | None = None) -> np.ndarray:
    """One row per class 0..count-1 (default: max(truth) + 1).

    ``unit``: the normalised mean of the class's centred, normalised embeddings (the prototype
    the score compares with). Otherwise a representative embedding of the class: its mean
    direction at its members' median length (what enrolment keeps old classes with)."""
    embeddings, truth = np.asarray(embeddings, np.float64), np.asarray(truth)
    count = int(truth.max()) + 1 if count is None else count
    rows = np.zeros((count, embeddings.shape[1]))
    for label in range(count):
        members = embeddings[truth == label]
        if not len(members):
            raise ValueError(f"class {label} has no embeddings to build its prototype from")
        if unit:
            rows[label] = normalise(normalise(members - centre).mean(axis=0))
        else:
            rows[label] = normalise(members.mean(axis=0)) * float(np.median(np.linalg.norm(members, axis=1)))
    return rows


def prototype_score(embedding: np.ndarray, prototypes: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Max cosine of each (centred) embedding to the unit ``prototypes``; a scalar for one vector."""
    units = normalise(np.asarray(embedding, np.float64) - centre)
    return (units @ np.asarray(prototypes, np.float64).T).max(axis=-1)


CLASS_SAMPLES_BUDGET = 512 * 1024  # card text for the class samples; the whole card may hold 1 MiB


def fits_card(rows: np.ndarray) -> bool:
    """Whether ``rows`` fit the card's budget once encoded (~3.4 kB a class at 1,280 numbers; a model
    of more than ~150 such classes keeps none, and enrolment then imprints only)."""
    return 4 * -(-2 * np.asarray(rows).size // 3) <= CLASS_SAMPLES_BUDGET


def encode_rows(rows: np.ndarray) -> str:
    """float16 rows as base64 text for the card (a 71 x 1280 table is ~240 kB of text)."""
    return base64.b64encode(np.asarray(rows, "<f2").tobytes()).decode("ascii")


def decode_rows(text: str, shape: tuple[int, int], source: str = "model") -> np.ndarray:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise ModelCardError(f"{source}: the card's prototypes are not base64 text; "
                             "re-run edgeshop-calibrate") from None
    if len(raw) != 2 * shape[0] * shape[1]:
        raise ModelCardError(f"{source}: the card's prototypes hold {len(raw) // 2} numbers, expected "
                             f"{shape[0]} x {shape[1]}; re-run edgeshop-calibrate")
    return np.frombuffer(raw, "<f2").reshape(shape).astype(np.float64)
