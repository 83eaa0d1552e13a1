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
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edgeshop._io import open_regular
from edgeshop.errors import DataError, ImageInputError
from edgeshop.runtime.image_folders import FolderScan, scan_images
from edgeshop.runtime.label_text import label_problem, lookalikes, normal_label
from edgeshop.runtime.modelcard import InputSpec
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


# Bounds of the folder walk (runtime/image_folders.py; docs/datasets.md). Grocery Store's
# deepest class folder is 3 levels down (Fruit/Apple/Golden-Delicious); its largest class has
# a few hundred images.
MAX_CLASS_DEPTH = 6  # folder levels below the dataset folder searched for class folders
MAX_IMAGES_PER_CLASS = 50_000  # more in one class is refused: a link to a big folder, not a class


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
    samples = _refuse_unusable(source, samples)
    return samples


def _refuse_unusable(source: Path, samples: Sequence[Sample]) -> list[Sample]:
    """Refuse, before any image is read, what would hang or crash the run later or give a
    wrong model: a listed path that is a device, pipe or folder (``/dev/zero`` is read without
    end by the duplicate check), a class name that is not UTF-8 or breaks the label rule
    (runtime/label_text.py: it could not be written into the model's labels, which only happens
    after training), two classes that look alike, and an oversized class. Returns the samples
    with their labels in NFC."""
    for sample in samples:
        if sample.path.exists() and not sample.path.is_file():
            raise DataError(f"{source}: {sample.path} is not a regular file (a device, pipe or folder); "
                            "list image files only")
    labels = sorted({s.label for s in samples})
    for label in labels:
        try:
            label.encode("utf-8")
        except UnicodeEncodeError:
            raise DataError(f"{source}: the class name {os.fsencode(label)!r} is not valid UTF-8 (a folder named "
                            "in another encoding); rename it, e.g. with convmv -f latin1 -t utf8") from None
        problem = label_problem(label)
        if problem:
            raise DataError(f"{source}: the class name {problem}; rename its folder")
    samples = [Sample(s.path, normal_label(s.label)) for s in samples]
    similar = lookalikes(sorted({s.label for s in samples}))
    if similar:
        name, earlier = similar[0]
        raise DataError(f"{source}: the class names {earlier!r} and {name!r} look alike (equal ignoring case and "
                        "character width); rename one, or merge their folders if they are one product")
    counts = Counter(s.label for s in samples)
    label, most = counts.most_common(1)[0]
    if most > MAX_IMAGES_PER_CLASS:
        raise DataError(f"{source}: the class {label!r} has {most:,} images, more than the {MAX_IMAGES_PER_CLASS:,} "
                        "edgeshop takes per class (is its folder a link to a large folder?); use fewer images")
    return samples


def _from_folder(root: Path) -> list[Sample]:
    """Images by their class folder (the folder they are directly in), by the one walk
    (runtime/image_folders.py): links followed, loops cut, depth and size bounded."""
    scan = _scan(root)
    if scan.loose and not scan.class_folders:
        raise DataError(f"{root}: {len(scan.loose)} image(s) but no class folders; put each class's photos in "
                        f"{root}/<class>/ (the folder's name is the class name)")
    if scan.loose:
        log.warning("%s: %d image(s) directly in the dataset folder belong to no class and are left out, e.g. %s; "
                    "put each class's photos in %s/<class>/", root, len(scan.loose), scan.loose[0].name, root)
    return [Sample(path, folder.name) for folder, files in scan.class_folders.items() for path in files]


def _scan(root: Path) -> FolderScan:
    """The walk of a dataset folder, its oddities reported (one warning line each), and
    refused what cannot be used: a device or pipe named like an image, an oversized folder."""
    scan = scan_images(root, MAX_CLASS_DEPTH, MAX_IMAGES_PER_CLASS)
    if scan.not_regular:
        raise DataError(f"{scan.not_regular[0]} is not a regular file (a device, pipe or socket named like an "
                        "image); remove it from the dataset folder")
    if scan.cut:
        raise DataError(f"{scan.cut[0]}: more than {MAX_IMAGES_PER_CLASS:,} images in one class folder, the most "
                        "edgeshop takes per class (is it a link to a large folder?); use fewer images")
    for folder, real in scan.outside[:1]:
        log.warning("%s: %d class folder(s) lie outside the dataset folder (reached through links), e.g. %s -> %s",
                    root, len(scan.outside), folder, real)
    if scan.repeated:
        log.warning("%s: %d link(s) lead to a folder already searched (a loop, or a second link to it) and were "
                    "skipped, e.g. %s", root, len(scan.repeated), scan.repeated[0])
    if scan.too_deep:
        log.warning("%s: %d folder(s) more than %d levels deep were not searched, e.g. %s", root,
                    len(scan.too_deep), MAX_CLASS_DEPTH, scan.too_deep[0])
    if scan.broken:
        log.warning("%s: %d link(s) lead nowhere and were skipped, e.g. %s", root, len(scan.broken), scan.broken[0])
    if scan.unlistable:
        log.warning("%s: %d folder(s) cannot be read and were skipped, e.g. %s (%s)", root, len(scan.unlistable),
                    *scan.unlistable[0])
    if scan.empty:
        log.warning("%s: %d empty folder(s) ignored, e.g. %s", root, len(scan.empty), scan.empty[0])
    return scan


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


def describe(samples: Sequence[Sample], source: str | Path) -> str:
    """The run log's line for what was found: the total, the classes, the largest, the bound."""
    counts = Counter(s.label for s in samples)
    label, most = counts.most_common(1)[0]
    return (f"{source}: {len(samples):,} images in {len(counts)} classes, the largest {label!r} with {most:,} "
            f"(at most {MAX_IMAGES_PER_CLASS:,} per class are taken)")


def classes_without_images(samples: Sequence[Sample], loaded: LoadedImages,
                           class_names: Sequence[str]) -> list[tuple[str, str]]:
    """(class, why) for each class of ``class_names`` with no image in ``loaded``, the images
    decoded from ``samples`` (the reason: why its first file was skipped)."""
    present = set(np.unique(loaded.labels).tolist())
    label_of = {s.path: s.label for s in samples}
    reasons: dict[str, str] = {}
    for path, reason in loaded.skipped:
        reasons.setdefault(label_of.get(path, ""), reason)
    return [(name, reasons.get(name, "no files")) for i, name in enumerate(class_names) if i not in present]


def unreadable_classes(samples: Sequence[Sample], spec: InputSpec) -> list[tuple[str, str]]:
    """(class, why) for each class none of whose files decode: its files are tried in order
    until one does, so a usable dataset costs about one decode per class (the streamed
    pipeline's check before training; the in-memory one has decoded everything anyway)."""
    by_label: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_label[sample.label].append(sample)
    unreadable = []
    for label in sorted(by_label):
        first_reason = None
        for sample in by_label[label]:
            result = decode_sample(sample.path, spec)
            if not isinstance(result, str):
                break
            first_reason = first_reason or result
        else:
            unreadable.append((label, first_reason or "no files"))
    return unreadable


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
    """Every image under the folder ``root`` (any layout, by the same walk as class folders),
    as samples with the label ""."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: expected a folder of images")
    files = _scan(root).images()
    if not files:
        raise DataError(f"{root}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return [Sample(path, "") for path in files]


def load_unlabelled(root: str | Path, spec: InputSpec, workers: int = 4) -> LoadedImages:
    """Every image under the folder ``root`` (any layout, labels ignored), preprocessed for ``spec``;
    e.g. photos of products a model does not know. Unreadable files are skipped and listed."""
    return load_images(unlabelled_samples(root), [""], spec, workers)
