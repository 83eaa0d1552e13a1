"""Finding labelled images on disk: class folders, split files and CSV manifests.

Pure stdlib + the runtime's image reader, so evaluation on a device can use it too.

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
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

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
    if not 0 < fraction < 1:
        raise DataError(f"validation fraction must be between 0 and 1, got {fraction}")
    by_class: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_class[sample.label].append(sample)
    rng = random.Random(seed)
    train, val = [], []
    for label in sorted(by_class):
        items = sorted(by_class[label], key=lambda s: str(s.path))
        rng.shuffle(items)
        n_val = min(len(items) - 1, max(1, round(len(items) * fraction))) if len(items) > 1 else 0
        val.extend(items[:n_val])
        train.extend(items[n_val:])
    return train, val


def duplicate_files(a: Sequence[Sample], b: Sequence[Sample]) -> list[tuple[Path, Path]]:
    """Pairs of byte-identical files across two sample lists (train/val leakage)."""
    def digest(path: Path) -> str | None:
        try:
            return hashlib.sha1(path.read_bytes()).hexdigest()
        except OSError:
            return None

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
