"""Finding labelled images on disk: class folders, split files and CSV manifests.

Stdlib, numpy and the runtime's OpenCV image reader, so evaluation on a device can use it too.

Accepted layouts:
- a folder of class folders, nested allowed; an image's class is its parent folder's
  name (Keras' ``flow_from_directory`` layout, and the Grocery Store dataset's);
- a split file like Grocery Store's ``train.txt`` (``path, class_id[, ...]`` per line,
  paths relative to the file) with ``classes.csv`` beside it naming the ids;
- a CSV manifest with ``path,label`` rows (a header row is optional).
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import random
import re
import stat
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edgeshop.errors import DataError, ImageInputError
from edgeshop.runtime.modelcard import InputSpec, text_problem
from edgeshop.runtime.preprocess import IMAGE_SUFFIXES, preprocess, read_image

log = logging.getLogger("edgeshop.datasets")


@dataclass(frozen=True)
class Sample:
    path: Path
    label: str


@dataclass
class LoadedImages:
    """Decoded, preprocessed images ready for training or evaluation."""

    pixels: np.ndarray  # N x H x W x 3 uint8, model colour order
    labels: np.ndarray  # N int32 indices into class_names
    paths: list[Path]
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (file, why)


def discover(source: str | Path, classes_csv: str | Path | None = None) -> list[Sample]:
    """All labelled samples under ``source`` (folder, split .txt, or .csv manifest)."""
    source = Path(source)
    if not source.exists():
        raise DataError(f"{source}: dataset path does not exist")
    if source.is_dir():
        samples = _from_folder(source)
    elif source.suffix.lower() == ".txt":
        samples = _from_split_file(source, classes_csv)
    elif source.suffix.lower() == ".csv":
        samples = _from_manifest(source)
    else:
        raise DataError(f"{source}: expected a folder of class folders, a split .txt file or a path,label .csv")
    if not samples:
        raise DataError(f"{source}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    _refuse_unusable(source, samples)
    return samples


def _refuse_unusable(source: Path, samples: Sequence[Sample]) -> None:
    """Refuse, before any image is read, what would hang or crash the run later: a listed
    path that is a device, pipe or folder (``/dev/zero`` is read without end by the
    duplicate check), and a class name that is not UTF-8 or holds control characters (it
    cannot be written into the model's labels, which only happens after every image has loaded)."""
    for sample in samples:
        if sample.path.exists() and not sample.path.is_file():
            raise DataError(f"{source}: {sample.path} is not a regular file (a device, pipe or folder); "
                            "list image files only")
    for label in sorted({s.label for s in samples}):
        try:
            label.encode("utf-8")
        except UnicodeEncodeError:
            raise DataError(f"{source}: the class name {os.fsencode(label)!r} is not valid UTF-8 (a folder named "
                            "in another encoding); rename it, e.g. with convmv -f latin1 -t utf8") from None
        problem = text_problem(label)  # the same rule the model card applies to its labels
        if problem:
            raise DataError(f"{source}: the class name {problem}; rename its folder")


def _from_folder(root: Path) -> list[Sample]:
    samples = []
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file() and path.parent != root:
            samples.append(Sample(path, path.parent.name))
    empty = sorted(p for p in root.rglob("*") if p.is_dir() and not any(p.iterdir()))
    if empty:
        log.warning("%s: %d empty folder(s) ignored, e.g. %s", root, len(empty), empty[0])
    return samples


def read_class_names(classes_csv: Path) -> dict[int, str]:
    """Grocery Store style ``classes.csv``: name in column 0, integer id in column 1."""
    names: dict[int, str] = {}
    try:
        with open(classes_csv, newline="", encoding="utf-8") as handle:
            for row in csv.reader(handle):
                if len(row) >= 2 and row[1].strip().lstrip("-").isdigit():
                    names[int(row[1])] = row[0].strip()
    except OSError as exc:
        raise DataError(f"{classes_csv}: cannot read class names ({exc.strerror})") from None
    if not names:
        raise DataError(f"{classes_csv}: no 'name,id' rows found")
    return names


def read_hierarchy(classes_csv: Path) -> dict[str, str]:
    """Fine class name -> coarse class name (columns 0 and 2 of Grocery's classes.csv)."""
    mapping = {}
    try:
        with open(classes_csv, newline="", encoding="utf-8") as handle:
            for row in csv.reader(handle):
                if len(row) >= 3 and row[1].strip().isdigit():
                    mapping[row[0].strip()] = row[2].strip()
    except OSError as exc:
        raise DataError(f"{classes_csv}: cannot read class hierarchy ({exc.strerror})") from None
    if not mapping:
        raise DataError(f"{classes_csv}: no 'fine name,id,coarse name' rows found")
    return mapping


def coarse_index(class_names: Sequence[str], hierarchy: Mapping[str, str], source: str | Path) -> np.ndarray:
    """Per fine class (in ``class_names`` order) the index of its coarse class."""
    missing = [name for name in class_names if name not in hierarchy]
    if missing:
        raise DataError(f"{source}: no coarse class for {missing[:5]} (add rows for them or drop --hierarchy)")
    coarse_names = sorted({hierarchy[name] for name in class_names})
    position = {name: i for i, name in enumerate(coarse_names)}
    return np.array([position[hierarchy[name]] for name in class_names], dtype=np.int32)


def _from_split_file(split: Path, classes_csv: str | Path | None) -> list[Sample]:
    classes_csv = Path(classes_csv) if classes_csv else split.with_name("classes.csv")
    if not classes_csv.is_file():
        raise DataError(f"{split}: a split file needs classes.csv beside it (or pass --classes FILE)")
    names = read_class_names(classes_csv)
    samples = []
    for number, line in enumerate(split.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        try:
            samples.append(Sample(split.parent / parts[0], names[int(parts[1])]))
        except (IndexError, ValueError, KeyError):
            raise DataError(f"{split}:{number}: expected 'path, class_id' with an id from {classes_csv.name}") from None
    return samples


def _from_manifest(manifest: Path) -> list[Sample]:
    samples = []
    with open(manifest, newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.reader(handle), 1):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 2:
                raise DataError(f"{manifest}:{number}: expected 'path,label'")
            path, label = row[0].strip(), row[1].strip()
            if number == 1 and (path.lower(), label.lower()) == ("path", "label"):
                continue
            samples.append(Sample(manifest.parent / path, label))
    return samples


def class_names_of(samples: Sequence[Sample]) -> list[str]:
    return sorted({s.label for s in samples})


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


def duplicate_files(a: Sequence[Sample], b: Sequence[Sample]) -> list[tuple[Path, Path]]:
    """Pairs of byte-identical files across two sample lists (train/val leakage)."""
    def digest(path: Path) -> str | None:
        # In 1 MiB chunks (a photo may be any size); a FIFO or device is never read.
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        except OSError:
            return None
        with os.fdopen(fd, "rb") as file:
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    return None
                sha = hashlib.sha1()
                while chunk := file.read(1 << 20):
                    sha.update(chunk)
            except OSError:
                return None
        return sha.hexdigest()

    seen = {}
    for sample in a:
        key = digest(sample.path)
        if key:
            seen.setdefault(key, sample.path)
    return [(seen[k], s.path) for s in b if (k := digest(s.path)) in seen]


def decode_sample(path: Path, spec: InputSpec) -> np.ndarray | str:
    """One file as model pixels (H x W x 3 uint8), or the reason it cannot be used. The one
    per-image step of both input pipelines (in memory, and streamed by train/stream.py)."""
    try:
        return preprocess(read_image(path), spec)
    except ImageInputError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - a decoder crash on one file must not stop the run
        return f"{path}: {type(exc).__name__}: {exc}"


def iter_decoded(samples: Iterable[Sample], spec: InputSpec, workers: int = 4,
                 window: int = 64) -> Iterator[tuple[Sample, np.ndarray | str]]:
    """Each sample with its model pixels (or the reason it cannot be used), in order, decoded
    by ``workers`` threads at most ``window`` images ahead of the consumer: evaluation streams
    through any number of images with a few dozen in memory."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pending: deque = deque()
        remaining = iter(samples)
        for sample in remaining:
            pending.append((sample, pool.submit(decode_sample, sample.path, spec)))
            if len(pending) >= window:
                break
        while pending:
            sample, future = pending.popleft()
            following = next(remaining, None)
            if following is not None:
                pending.append((following, pool.submit(decode_sample, following.path, spec)))
            yield sample, future.result()


def load_images(
    samples: Sequence[Sample],
    class_names: Sequence[str],
    spec: InputSpec,
    workers: int = 4,
    progress: Callable[[int], object] | None = None,
) -> LoadedImages:
    """Decode and preprocess every sample; unreadable files are skipped and listed."""
    index = {name: i for i, name in enumerate(class_names)}
    unknown = sorted({s.label for s in samples} - set(index))
    if unknown:
        raise DataError(f"labels not among the model's classes: {unknown[:5]} (check the class folders)")

    pixels, labels, paths, skipped = [], [], [], []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        loaded = pool.map(lambda sample: decode_sample(sample.path, spec), samples)
        for sample, result in zip(samples, loaded, strict=True):
            if isinstance(result, str):
                skipped.append((sample.path, result))
            else:
                pixels.append(result)
                labels.append(index[sample.label])
                paths.append(sample.path)
            if progress:
                progress(1)
    array = np.stack(pixels) if pixels else np.zeros((0, spec.height, spec.width, 3), np.uint8)
    return LoadedImages(array, np.asarray(labels, dtype=np.int32), paths, skipped)


def unlabelled_samples(root: str | Path) -> list[Sample]:
    """Every image under the folder ``root`` (any layout), as samples with the label ""."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: expected a folder of images")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"{root}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return [Sample(path, "") for path in files]


def load_unlabelled(root: str | Path, spec: InputSpec, workers: int = 4) -> LoadedImages:
    """Every image under the folder ``root`` (any layout, labels ignored), preprocessed for ``spec``;
    e.g. photos of products a model does not know. Unreadable files are skipped and listed."""
    return load_images(unlabelled_samples(root), [""], spec, workers)
