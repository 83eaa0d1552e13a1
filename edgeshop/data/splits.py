"""Validation splits: stratified, or in whole groups of look-alike shots; and the check for the same
file on both sides of a split."""

from __future__ import annotations

import hashlib
import random
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgeshop._io import open_regular
from edgeshop.data.discovery import Sample
from edgeshop.errors import DataError, ImageInputError
from edgeshop.runtime.preprocess import read_image


def stratified_split(samples: Sequence[Sample], fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Hold out ``fraction`` of each class (at least one image of classes with 2+)."""
    by_class = _by_class(samples, fraction)
    rng = random.Random(seed)
    train, val = [], []
    for label in sorted(by_class):
        items = sorted(by_class[label], key=lambda s: str(s.path))
        rng.shuffle(items)
        n_val = _holdout_size(len(items), fraction)
        val.extend(items[:n_val])
        train.extend(items[n_val:])
    return train, val


# --- grouped validation split --------------------------------------------------------
# Shelf photos come in sessions: shots of one shelf, one bin, one light, taken together.
# A random split puts shots of a session on both sides, so validation measures recall of a
# seen shelf. A grouped split assigns whole groups to one side.
VAL_GROUPINGS = ("none", "file_order", "similarity")
# Look-alike threshold for the default descriptor (thumbnail below): RMS difference of two
# standardised thumbnails, sqrt(2 * (1 - r)) for their correlation r; 0.7 is r ~ 0.75.
BURST_DISTANCE = 0.7
THUMBNAIL_SIDE = 16


def _natural_key(path: Path) -> list:
    """img2 before img10: capture order for files numbered without zero padding."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def file_order_groups(items: Sequence[Sample], group_size: int) -> list[list[Sample]]:
    """Blocks of ``group_size`` consecutive files (natural file order): a burst is split only
    at a block edge."""
    ordered = sorted(items, key=lambda s: _natural_key(s.path))
    return [ordered[i : i + group_size] for i in range(0, len(ordered), group_size)]


def thumbnail(path: Path) -> np.ndarray | None:
    """The cheap default descriptor: a 16x16 grayscale thumbnail standardised to mean 0 /
    std 1, flattened (None: unreadable or flat)."""
    try:
        image = read_image(path)
    except ImageInputError:
        return None
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(gray, (THUMBNAIL_SIDE, THUMBNAIL_SIDE), interpolation=cv2.INTER_AREA).astype(np.float32)
    std = float(small.std())
    return None if std < 1e-3 else ((small - small.mean()) / std).ravel()


def similarity_groups(items: Sequence[Sample], threshold: float = BURST_DISTANCE,
                      descriptors: Mapping[Path, np.ndarray | None] | None = None) -> list[list[Sample]]:
    """Clusters of look-alike files of one class, wherever they are in file order: average
    linkage on the RMS distance of their descriptors (``thumbnail`` unless given), merged while
    below ``threshold``. Average, not single, linkage: a chain of small steps across a
    class does not make it one group. A file without a descriptor is a group of its own."""
    ordered = sorted(items, key=lambda s: _natural_key(s.path))
    vectors = [descriptors[s.path] if descriptors is not None else thumbnail(s.path) for s in ordered]
    known = [i for i, v in enumerate(vectors) if v is not None]
    clusters = {i: [i] for i in range(len(ordered))}
    if len(known) > 1:
        stack = np.stack([np.asarray(vectors[i], np.float32) for i in known])
        squared = (stack**2).sum(1)
        rms = np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2 * stack @ stack.T, 0) / stack.shape[1])
        distance = np.full((len(known), len(known)), np.inf)
        distance[:] = rms
        np.fill_diagonal(distance, np.inf)
        alive = np.ones(len(known), bool)
        size = np.ones(len(known))
        members = {k: [known[k]] for k in range(len(known))}
        while True:
            a, b = np.unravel_index(np.argmin(distance), distance.shape)
            if not distance[a, b] < threshold:
                break
            # Lance-Williams update for average linkage; cluster b joins a.
            merged = (size[a] * distance[a] + size[b] * distance[b]) / (size[a] + size[b])
            distance[a], distance[:, a] = merged, merged
            distance[a, a] = np.inf
            distance[b], distance[:, b] = np.inf, np.inf
            alive[b] = False
            size[a] += size[b]
            members[a] += members.pop(b)
        clusters = {i: [i] for i, v in enumerate(vectors) if v is None}
        clusters.update({members[k][0]: members[k] for k in np.flatnonzero(alive)})
    groups = [sorted(indices) for indices in clusters.values()]
    return [[ordered[i] for i in g] for g in sorted(groups)]


def grouped_split(samples: Sequence[Sample], fraction: float, seed: int, grouping: str = "file_order",
                  group_size: int = 10, threshold: float = BURST_DISTANCE,
                  descriptors: Mapping[Path, np.ndarray | None] | None = None) -> tuple[list[Sample], list[Sample]]:
    """Hold out about ``fraction`` of each class in whole groups (``grouping``: "file_order"
    blocks of ``group_size`` consecutive files, or "similarity" clusters of look-alike files,
    ``similarity_groups`` with ``threshold`` and ``descriptors``), so no group has shots on
    both sides. "none" is ``stratified_split``. Groups are taken in a seeded random order while
    they bring a class's hold-out nearer ``fraction`` of it; a class is never emptied."""
    if grouping == "none":
        return stratified_split(samples, fraction, seed)
    if grouping not in VAL_GROUPINGS:
        raise DataError(f"validation grouping must be one of {VAL_GROUPINGS}, got {grouping!r}")
    if group_size < 1:
        raise DataError(f"validation group size must be >= 1 file, got {group_size}")
    by_class = _by_class(samples, fraction)
    rng = random.Random(seed)
    train, val = [], []
    for label in sorted(by_class):
        items = by_class[label]
        groups = file_order_groups(items, group_size) if grouping == "file_order" else \
            similarity_groups(items, threshold, descriptors)
        target = _holdout_size(len(items), fraction)
        rng.shuffle(groups)
        taken = 0
        for group in groups:
            # Take a group when it brings the hold-out nearer its target size (ties: take it, so
            # a class with only large groups still gives one), never the class's last training image.
            closer = abs(taken + len(group) - target) <= abs(taken - target) and taken < target
            if closer and taken + len(group) < len(items):
                val.extend(group)
                taken += len(group)
            else:
                train.extend(group)
    return train, val


def _by_class(samples: Sequence[Sample], fraction: float) -> dict[str, list[Sample]]:
    """The samples of each class, after checking the hold-out fraction (both splits start here)."""
    if not 0 < fraction < 1:
        raise DataError(f"validation fraction must be between 0 and 1, got {fraction}")
    by_class: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_class[sample.label].append(sample)
    return by_class


def _holdout_size(count: int, fraction: float) -> int:
    """How many of a class's ``count`` images to hold out: at least one, never all."""
    return min(count - 1, max(1, round(count * fraction))) if count > 1 else 0


# The duplicate check reads files in chunks of HASH_CHUNK bytes (memory stays flat), compares
# only files of equal size, and leaves out files over MAX_HASH_BYTES (no photo is that large;
# such a file is counted and reported instead of read).
HASH_CHUNK = 1 << 20
MAX_HASH_BYTES = 256 << 20


@dataclass
class Duplicates:
    """Byte-identical files across two sample lists, and the files too large to compare."""

    pairs: list[tuple[Path, Path]]  # (file of the first list, its copy in the second)
    too_large: list[Path]


def find_duplicates(a: Sequence[Sample], b: Sequence[Sample], max_bytes: int = MAX_HASH_BYTES) -> Duplicates:
    """Files of ``b`` byte-identical to a file of ``a`` (train/val leakage). Only files whose
    size occurs on both sides are hashed, each in chunks; files over ``max_bytes`` are skipped
    and listed in ``too_large``."""
    too_large: list[Path] = []

    def sizes(samples: Sequence[Sample]) -> list[tuple[Path, int]]:
        known = []
        for sample in samples:
            try:
                size = sample.path.stat().st_size
            except OSError:
                continue
            if size > max_bytes:
                too_large.append(sample.path)
            else:
                known.append((sample.path, size))
        return known

    first, second = sizes(a), sizes(b)
    shared = {size for _, size in first} & {size for _, size in second}
    seen: dict[tuple[int, str], Path] = {}
    for path, size in first:
        if size in shared and (key := _digest(path)):
            seen.setdefault((size, key), path)
    pairs = [(seen[(size, key)], path) for path, size in second
             if size in shared and (key := _digest(path)) and (size, key) in seen]
    return Duplicates(pairs, too_large)


def duplicate_files(a: Sequence[Sample], b: Sequence[Sample]) -> list[tuple[Path, Path]]:
    """Pairs of byte-identical files across two sample lists (``find_duplicates``' pairs)."""
    return find_duplicates(a, b).pairs


def _digest(path: Path) -> str | None:
    """SHA-1 of the file, read HASH_CHUNK bytes at a time (None: unreadable, or not a regular
    file: a FIFO or device is never read, and opening non-blocking keeps a FIFO from hanging)."""
    digest = hashlib.sha1()
    try:
        opened = open_regular(path)
    except OSError:
        return None
    if opened is None:
        return None
    with opened[0] as handle:
        try:
            while chunk := handle.read(HASH_CHUNK):
                digest.update(chunk)
        except OSError:
            return None
    return digest.hexdigest()
