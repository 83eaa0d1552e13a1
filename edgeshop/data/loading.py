"""Decoding samples into model pixels: in memory with skip-and-count, or streamed a window ahead."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeshop.data.discovery import Sample
from edgeshop.errors import DataError, ImageInputError
from edgeshop.runtime.preprocess import preprocess, read_image
from edgeshop.tflite.modelcard import InputSpec


@dataclass
class LoadedImages:
    """Decoded, preprocessed images ready for training or evaluation."""

    pixels: np.ndarray  # N x H x W x 3 uint8, model colour order
    labels: np.ndarray  # N int32 indices into class_names
    paths: list[Path]
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (file, why)


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


def decode_sample(path: Path, spec: InputSpec) -> np.ndarray | str:
    """One file as model pixels (H x W x 3 uint8), or the reason it cannot be used. The one
    per-image step of both input pipelines (in memory, and streamed by train/streamed_images.py)."""
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
