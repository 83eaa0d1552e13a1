"""Dataset discovery: class folders (nested), split files with classes.csv, CSV manifests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeshop.data import Sample, discover, duplicate_files, load_images, read_hierarchy, stratified_split
from edgeshop.errors import DataError
from edgeshop.tflite.modelcard import InputSpec


def _image(path, value=100):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((12, 12, 3), value, np.uint8))
    return path


def test_nested_class_folders_use_the_leaf_name(tmp_path):
    _image(tmp_path / "Fruit" / "Apple" / "Granny-Smith" / "a.jpg")
    _image(tmp_path / "Fruit" / "Avocado" / "b.jpg")
    _image(tmp_path / "Fruit" / "Apple" / "Granny-Smith" / "c.png")
    samples = discover(tmp_path)
    assert sorted((s.path.name, s.label) for s in samples) == [
        ("a.jpg", "Granny-Smith"), ("b.jpg", "Avocado"), ("c.png", "Granny-Smith")]


def test_grocery_style_split_file_with_classes_csv(tmp_path):
    _image(tmp_path / "train" / "Fruit" / "Kiwi" / "k1.jpg")
    _image(tmp_path / "train" / "Fruit" / "Lime" / "l1.jpg")
    (tmp_path / "classes.csv").write_text(
        "Class Name (str),Class ID (int),Coarse Class Name (str),Coarse Class ID (int)\n"
        "Kiwi,0,Kiwi,0\nLime,1,Citrus,1\n")
    (tmp_path / "train.txt").write_text("train/Fruit/Kiwi/k1.jpg, 0, 0\ntrain/Fruit/Lime/l1.jpg, 1, 1\n")
    samples = discover(tmp_path / "train.txt")
    assert [(s.path.name, s.label) for s in samples] == [("k1.jpg", "Kiwi"), ("l1.jpg", "Lime")]
    assert samples[0].path.is_file()
    assert read_hierarchy(tmp_path / "classes.csv") == {"Kiwi": "Kiwi", "Lime": "Citrus"}
    (tmp_path / "bad.txt").write_text("train/Fruit/Kiwi/k1.jpg, 7\n")
    with pytest.raises(DataError, match="bad.txt:1"):
        discover(tmp_path / "bad.txt")


def test_csv_manifest_with_or_without_header(tmp_path):
    _image(tmp_path / "imgs" / "1.jpg")
    _image(tmp_path / "imgs" / "2.jpg")
    (tmp_path / "m.csv").write_text("path,label\nimgs/1.jpg,milk\nimgs/2.jpg,juice\n")
    (tmp_path / "n.csv").write_text("imgs/1.jpg,milk\n")
    assert [s.label for s in discover(tmp_path / "m.csv")] == ["milk", "juice"]
    assert [s.label for s in discover(tmp_path / "n.csv")] == ["milk"]


def test_missing_or_empty_sources_raise_clear_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        discover(tmp_path / "nope")
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(DataError, match="no images found"):
        discover(tmp_path)


def test_stratified_split_keeps_every_class_in_train():
    samples = [Sample(Path(f"{c}/{i}.jpg"), c) for c in "abc" for i in range(10)] + [Sample(Path("d/0.jpg"), "d")]
    train, val = stratified_split(samples, 0.2, seed=0)
    assert {s.label for s in train} == set("abcd")
    assert sorted(s.label for s in val) == ["a", "a", "b", "b", "c", "c"]
    assert stratified_split(samples, 0.2, seed=0) == (train, val)  # deterministic


def test_corrupt_files_are_skipped_counted_and_named(tmp_path):
    good = _image(tmp_path / "a" / "good.jpg")
    bad = tmp_path / "a" / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    zero = tmp_path / "b" / "zero.png"
    zero.parent.mkdir()
    zero.write_bytes(b"")
    _image(tmp_path / "b" / "fine.png")
    loaded = load_images(discover(tmp_path), ["a", "b"], InputSpec(8, 8))
    assert len(loaded.labels) == 2 and loaded.pixels.shape == (2, 8, 8, 3)
    assert sorted(p.name for p, _ in loaded.skipped) == ["bad.jpg", "zero.png"]
    assert good in loaded.paths


def test_duplicates_across_train_and_val_are_found(tmp_path):
    _image(tmp_path / "train" / "x" / "1.jpg", 10)
    _image(tmp_path / "val" / "x" / "copy.jpg", 10)
    _image(tmp_path / "val" / "x" / "other.jpg", 200)
    pairs = duplicate_files(discover(tmp_path / "train"), discover(tmp_path / "val"))
    assert [(p.name, q.name) for p, q in pairs] == [("1.jpg", "copy.jpg")]
