"""Finding labelled images on disk: class folders, split files and CSV manifests.

No TensorFlow: evaluation on a device uses it too.

Accepted layouts:
- a folder of class folders, nested allowed; an image's class is its parent folder's
  name (Keras' ``flow_from_directory`` layout, and the Grocery Store dataset's);
- a split file like Grocery Store's ``train.txt`` (``path, class_id[, ...]`` per line,
  paths relative to the file) with ``classes.csv`` beside it naming the ids;
- a CSV manifest with ``path,label`` rows (a header row is optional).
"""

from __future__ import annotations

import csv
import logging
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeshop.data.image_folders import FolderScan, scan_images
from edgeshop.errors import DataError
from edgeshop.runtime.label_text import label_problem, lookalikes, normal_label
from edgeshop.runtime.preprocess import IMAGE_SUFFIXES

log = logging.getLogger("edgeshop.data")


@dataclass(frozen=True)
class Sample:
    path: Path
    label: str


# Bounds of the folder walk (data/image_folders.py; docs/datasets.md). Grocery Store's
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
    (data/image_folders.py): links followed, loops cut, depth and size bounded."""
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
