"""Grouped validation split: whole bursts of consecutive, similar files go to one side."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from synthetic import draw

from edgeshop.data import Sample, discover, file_order_groups, grouped_split, similarity_groups
from edgeshop.errors import DataError, EdgeshopError

BURSTS = {"disc": (4, 2, 5, 3, 4, 6), "square": (3, 5, 2, 4, 4, 3)}  # shots per burst, in file order


def _shelf(kind: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A background of its own per burst: stripes, checks, rings or blobs in a random colour
    (different enough that an ImageNet net, not only a thumbnail, tells the scenes apart)."""
    y, x = np.mgrid[0:size, 0:size] / size
    f = rng.uniform(2, 8)
    waves = (np.sin(2 * np.pi * f * x), np.sin(2 * np.pi * f * y),
             np.sign(np.sin(2 * np.pi * f * x) * np.sin(2 * np.pi * f * y)), np.sin(2 * np.pi * f * (x + y)),
             np.sin(2 * np.pi * f * np.hypot(x - 0.5, y - 0.5)), cv2.resize(rng.normal(size=(6, 6)), (size, size)))
    colour = rng.integers(0, 256, 3) / 255 - 0.3
    return np.clip(128 + 100 * waves[kind % len(waves)][..., None] * colour, 0, 255)


def _bursts(root: Path, interleave: bool = False) -> Path:
    """Per class, bursts of near-identical shots (one scene: the class's shape on a shelf of
    its own, + small noise and a brightness change per shot), numbered without zero padding
    (img2 before img10) consecutively as a camera does or, with ``interleave``, shuffled."""
    rng = np.random.default_rng(0)
    for label, lengths in BURSTS.items():
        folder = root / label
        folder.mkdir(parents=True)
        numbers = iter(rng.permutation(sum(lengths)) + 1 if interleave else range(1, sum(lengths) + 1))
        for burst, length in enumerate(lengths):
            scene = 0.5 * _shelf(burst, 64, rng) + 0.5 * draw(label, 64, rng)
            for _ in range(length):
                shot = scene + rng.integers(-6, 7, scene.shape) + int(rng.integers(-25, 25))
                name = f"b{burst}_img{next(numbers)}.png"
                cv2.imwrite(str(folder / name), np.clip(shot, 0, 255).astype(np.uint8))
    return root


def _burst_of(sample: Sample) -> tuple[str, str]:
    return sample.label, sample.path.name.split("_")[0]


def _split_bursts(train, val) -> set:
    return {_burst_of(s) for s in train} & {_burst_of(s) for s in val}


@pytest.mark.parametrize("interleave", [False, True])
def test_similarity_groups_recover_the_bursts_wherever_they_are(tmp_path, interleave):
    samples = discover(_bursts(tmp_path, interleave))
    for label, lengths in BURSTS.items():
        groups = similarity_groups([s for s in samples if s.label == label])
        assert sorted(len(g) for g in groups) == sorted(lengths)
        assert all(len({_burst_of(s) for s in g}) == 1 for g in groups)


@pytest.mark.parametrize("seed", range(5))
def test_similarity_split_never_puts_a_burst_on_both_sides(tmp_path, seed):
    samples = discover(_bursts(tmp_path, interleave=seed % 2 == 1))
    train, val = grouped_split(samples, 0.25, seed, "similarity")
    assert not _split_bursts(train, val)
    assert sorted(map(str, (s.path for s in train + val))) == sorted(str(s.path) for s in samples)
    counts = Counter(s.label for s in val)
    for label, lengths in BURSTS.items():  # about a quarter of each class, never all of it
        assert 0.15 * sum(lengths) <= counts[label] < sum(lengths)
    assert grouped_split(samples, 0.25, seed, "similarity") == (train, val)  # deterministic


def test_a_random_split_does_split_bursts(tmp_path):
    """Why the grouping exists: the random split of the same files leaks bursts."""
    samples = discover(_bursts(tmp_path))
    train, val = grouped_split(samples, 0.25, 0, "none")
    assert _split_bursts(train, val)


def test_file_order_blocks_follow_capture_order_and_stay_whole():
    samples = [Sample(Path(f"a/img{i}.jpg"), "a") for i in range(1, 24)] + \
        [Sample(Path(f"b/img{i}.jpg"), "b") for i in range(1, 31)]
    blocks = file_order_groups([s for s in samples if s.label == "a"], 5)
    assert [s.path.name for s in blocks[1]] == [f"img{i}.jpg" for i in range(6, 11)]  # natural order, not img10 first
    for seed in range(5):
        train, val = grouped_split(samples, 0.2, seed, "file_order", group_size=5)
        block = {s.path: (s.label, (int(s.path.stem[3:]) - 1) // 5) for s in samples}
        assert not {block[s.path] for s in train} & {block[s.path] for s in val}
        assert Counter(s.label for s in val) == {"a": 5, "b": 5}  # 30 x 0.2 = 6: one block of 5 is nearest


def test_a_class_is_never_emptied_and_bad_options_are_refused():
    one_block = [Sample(Path(f"a/{i}.jpg"), "a") for i in range(4)] + \
        [Sample(Path(f"b/{i}.jpg"), "b") for i in range(8)]
    train, val = grouped_split(one_block, 0.3, 0, "file_order", group_size=10)
    assert {s.label for s in train} == {"a", "b"} and not val  # a single block per class stays in training
    with pytest.raises(DataError, match="grouping must be one of"):
        grouped_split(one_block, 0.3, 0, "bursts")
    with pytest.raises(DataError, match="group size"):
        grouped_split(one_block, 0.3, 0, "file_order", group_size=0)


def test_edgeshop_train_groups_look_alikes_by_imagenet_embedding(tmp_path):
    """--val-grouping similarity in a training run: look-alikes found with the shipped ImageNet
    Lite0 features (train/similarity.py), bursts interleaved in file order stay whole."""
    from edgeshop.train.config import TrainConfig
    from edgeshop.train.fit import split_samples

    data = _bursts(tmp_path / "data", interleave=True)
    config = TrainConfig.from_flat(data=str(data), out=str(tmp_path / "run"), val_fraction=0.25,
                                   val_grouping="similarity")
    train, val = split_samples(config)
    assert val and not _split_bursts(train, val)
    assert {s.label for s in train} == set(BURSTS)
    with pytest.raises(EdgeshopError, match="drop it when data.val is given"):
        TrainConfig.from_flat(data=str(data), out="x", val=str(data), val_grouping="file_order").validate()
