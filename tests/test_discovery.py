"""Issue 37.2-3 and 34.9-13: one discovery rule for dataset and product folders (links
followed, loops cut, depth and size bounded, folders outside the root reported), the flat
folder message, the label rule, and the chunked duplicate check. Real links in tmp dirs."""

from __future__ import annotations

import logging
import os
import re
import time
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeshop.data import discover, discovery, find_duplicates, splits, unlabelled_samples
from edgeshop.data.image_folders import scan_images
from edgeshop.errors import DataError
from edgeshop.runtime.label_text import label_problem, lookalikes


def _image(path: Path, value: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((12, 12, 3), value, np.uint8))
    return path


def _classes(samples) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for sample in samples:
        found.setdefault(sample.label, []).append(sample.path.name)
    return {label: sorted(names) for label, names in sorted(found.items())}


@pytest.fixture()
def linked(tmp_path) -> Path:
    """Real Banana and Lime folders, a Carrots folder linked in from outside the dataset, a
    linked file in Lime and a loop (a link in Banana back to the dataset folder)."""
    data = tmp_path / "data"
    for i in range(3):
        _image(data / "Banana" / f"b{i}.jpg")
        _image(data / "Lime" / f"l{i}.jpg")
        _image(tmp_path / "elsewhere" / "carrot_photos" / f"c{i}.jpg")
    _image(tmp_path / "elsewhere" / "extra_lime.jpg")
    (data / "Carrots").symlink_to(tmp_path / "elsewhere" / "carrot_photos", target_is_directory=True)
    (data / "Lime" / "linked.jpg").symlink_to(tmp_path / "elsewhere" / "extra_lime.jpg")
    (data / "Banana" / "loop").symlink_to(data, target_is_directory=True)
    return data


def test_linked_class_folders_and_files_are_followed_loops_cut_and_outside_folders_reported(linked, caplog):
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="edgeshop.data"):
        samples = discover(linked)
    assert time.monotonic() - started < 5
    assert _classes(samples) == {"Banana": ["b0.jpg", "b1.jpg", "b2.jpg"], "Carrots": ["c0.jpg", "c1.jpg", "c2.jpg"],
                                 "Lime": ["l0.jpg", "l1.jpg", "l2.jpg", "linked.jpg"]}
    carrots = next(s.path for s in samples if s.label == "Carrots")
    assert carrots.parent == linked / "Carrots"  # the path as walked: through the link, named by it
    assert "1 class folder(s) lie outside the dataset folder" in caplog.text and "carrot_photos" in caplog.text
    assert "already searched (a loop" in caplog.text and str(linked / "Banana" / "loop") in caplog.text


def test_a_dataset_of_links_only_is_found(tmp_path):
    real = tmp_path / "real"
    for label in ("Banana", "Lime"):
        for i in range(2):
            _image(real / label / f"{label}{i}.png")
    data = tmp_path / "data"
    data.mkdir()
    for label in ("Banana", "Lime"):
        (data / label).symlink_to(real / label, target_is_directory=True)
    assert _classes(discover(data)) == {"Banana": ["Banana0.png", "Banana1.png"], "Lime": ["Lime0.png", "Lime1.png"]}
    (tmp_path / "only_link").symlink_to(data, target_is_directory=True)  # the dataset folder itself a link
    assert len(discover(tmp_path / "only_link")) == 4


def test_a_link_loop_between_two_folders_ends(tmp_path):
    data = tmp_path / "data"
    _image(data / "a" / "x" / "1.jpg")
    _image(data / "b" / "2.jpg")
    (data / "a" / "x" / "to_b").symlink_to(data / "b", target_is_directory=True)
    (data / "b" / "to_a").symlink_to(data / "a", target_is_directory=True)
    samples = discover(data)
    assert sorted(str(s.path.relative_to(data)) for s in samples) == ["a/x/1.jpg", "b/2.jpg"]


def test_depth_and_entry_bounds_keep_a_link_to_a_huge_tree_bounded(tmp_path, caplog):
    data = tmp_path / "data"
    deep = data.joinpath(*[f"level{i}" for i in range(discovery.MAX_CLASS_DEPTH + 2)])
    _image(deep / "too_deep.jpg")
    _image(data / "level0" / "shallow.jpg")
    _image(data / "other" / "o.jpg")
    with caplog.at_level(logging.WARNING, logger="edgeshop.data"):
        samples = discover(data)
    assert sorted(s.path.name for s in samples) == ["o.jpg", "shallow.jpg"]
    assert f"more than {discovery.MAX_CLASS_DEPTH} levels deep were not searched" in caplog.text
    with pytest.raises(DataError, match="more than 5 files and folders within 6 levels.*link to /"):
        scan_images(data, max_depth=6, max_per_folder=10, max_entries=5)


def test_images_per_class_are_bounded(tmp_path, monkeypatch):
    for i in range(4):
        _image(tmp_path / "data" / "big" / f"{i}.jpg")
    _image(tmp_path / "data" / "small" / "0.jpg")
    assert len(discover(tmp_path / "data")) == 5
    monkeypatch.setattr(discovery, "MAX_IMAGES_PER_CLASS", 3)
    with pytest.raises(DataError, match=r"big: more than 3 images in one class folder"):
        discover(tmp_path / "data")
    (tmp_path / "m.csv").write_text("".join(f"data/big/{i}.jpg,big\n" for i in range(4)))
    with pytest.raises(DataError, match="the class 'big' has 4 images, more than the 3"):
        discover(tmp_path / "m.csv")


def test_a_flat_photo_folder_is_told_to_make_class_folders(tmp_path, caplog):
    for i in range(12):
        _image(tmp_path / "flat" / f"IMG_{i:04d}.jpg")
    with pytest.raises(DataError) as raised:
        discover(tmp_path / "flat")
    message = str(raised.value)
    assert "12 image(s) but no class folders" in message and f"{tmp_path / 'flat'}/<class>/" in message
    assert "no images found" not in message
    _image(tmp_path / "flat" / "Kiwi" / "k.jpg")  # mixed: the loose photos are left out, and said so
    with caplog.at_level(logging.WARNING, logger="edgeshop.data"):
        assert [s.label for s in discover(tmp_path / "flat")] == ["Kiwi"]
    assert "12 image(s) directly in the dataset folder belong to no class" in caplog.text


def test_unlabelled_folders_use_the_same_walk(linked):
    names = sorted(s.path.name for s in unlabelled_samples(linked))
    assert names == ["b0.jpg", "b1.jpg", "b2.jpg", "c0.jpg", "c1.jpg", "c2.jpg", "l0.jpg", "l1.jpg", "l2.jpg",
                     "linked.jpg"]


# -- the label rule --------------------------------------------------------------------------------

@pytest.mark.parametrize("name, expected", [
    ("Kiwi\u2028", "U+2028 LINE SEPARATOR"),
    ("Ki\u2029wi", "U+2029 PARAGRAPH SEPARATOR"),
    ("Ki\u200bwi", "U+200B ZERO WIDTH SPACE"),
    ("\ufeffKiwi", "U+FEFF ZERO WIDTH NO-BREAK SPACE"),
    ("Kiwi\u202e", "U+202E RIGHT-TO-LEFT OVERRIDE"),
    ("\u2066Kiwi\u2069", "U+2066 LEFT-TO-RIGHT ISOLATE"),
    ("Kiwi ", "must not start or end with white space"),
    (" Kiwi", "must not start or end with white space"),
    ("Kiwi\u00a0", "must not start or end with white space"),
    ("Kiwi\x1b[31m", "control characters"),
])
def test_a_class_folder_breaking_the_label_rule_is_refused_before_any_image_is_read(tmp_path, name, expected):
    _image(tmp_path / "data" / "Lime" / "1.jpg")
    _image(tmp_path / "data" / name / "1.jpg")
    with pytest.raises(DataError, match="the class name .*rename its folder") as raised:
        discover(tmp_path / "data")
    assert expected in str(raised.value) and str(raised.value).isprintable()
    assert label_problem(name) is not None


def test_good_names_pass_and_decomposed_names_become_nfc(tmp_path):
    for name in ("Äpple grön", "Bravo-Apple-Juice", "牛奶", "Café au lait"):
        assert label_problem(name) is None, name
    decomposed = "Cafe\u0301"  # as macOS writes "Café"
    _image(tmp_path / "data" / decomposed / "1.jpg")
    _image(tmp_path / "data" / "Lime" / "1.jpg")
    labels = {s.label for s in discover(tmp_path / "data")}
    assert labels == {"Caf\u00e9", "Lime"}


@pytest.mark.parametrize("twin", ["kiwi", "KIWI", "\uff2b\uff49\uff57\uff49"])  # the last: fullwidth letters
def test_look_alike_class_names_are_refused(tmp_path, twin):
    _image(tmp_path / "data" / "Kiwi" / "1.jpg")
    _image(tmp_path / "data" / "nested" / twin / "1.jpg")
    with pytest.raises(DataError, match="the class names '.*' and '.*' look alike"):
        discover(tmp_path / "data")
    assert lookalikes([twin], ["Kiwi"]) == [(twin, "Kiwi")]


def test_one_name_in_two_normal_forms_is_one_class(tmp_path):
    _image(tmp_path / "data" / "Caf\u00e9" / "1.jpg")
    _image(tmp_path / "data" / "nested" / "Cafe\u0301" / "2.jpg")
    _image(tmp_path / "data" / "Lime" / "1.jpg")
    assert _classes(discover(tmp_path / "data")) == {"Caf\u00e9": ["1.jpg", "2.jpg"], "Lime": ["1.jpg"]}


def test_a_training_class_named_with_a_line_separator_fails_before_the_run_starts(tmp_path):
    from edgeshop.train.config import TrainConfig
    from edgeshop.train.fit import train

    for label in ("Lime", "Kiwi\u2028"):
        for i in range(3):
            _image(tmp_path / "data" / label / f"{i}.jpg", 40 * i)
    started = time.monotonic()
    with pytest.raises(DataError, match="U\\+2028"):
        train(TrainConfig.from_flat(data=str(tmp_path / "data"), out=str(tmp_path / "run"), arch="tiny", epochs=1),
              log=lambda *_: None)
    assert time.monotonic() - started < 30 and not (tmp_path / "run").exists()


# -- the duplicate check ---------------------------------------------------------------------------

def _sparse(path: Path, size: int, tail: bytes = b"end") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.truncate(size - len(tail))
        handle.seek(size - len(tail))
        handle.write(tail)
    return path


def test_duplicate_check_reads_in_chunks_and_skips_files_over_the_bound(tmp_path):
    big = 64 << 20
    a = discovery.Sample(_sparse(tmp_path / "train" / "x" / "a.jpg", big), "x")
    copy = discovery.Sample(_sparse(tmp_path / "val" / "x" / "copy.jpg", big), "x")
    other = discovery.Sample(_sparse(tmp_path / "val" / "x" / "other.jpg", big, b"END"), "x")
    tracemalloc.start()
    found = find_duplicates([a], [copy, other])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert found.pairs == [(a.path, copy.path)] and found.too_large == []
    assert peak < 8 << 20, f"{peak / 2**20:.0f} MB held while hashing two 64 MB files"
    huge = discovery.Sample(_sparse(tmp_path / "val" / "x" / "huge.jpg", splits.MAX_HASH_BYTES + 1), "x")
    found = find_duplicates([a], [copy, huge])
    assert found.pairs == [(a.path, copy.path)] and found.too_large == [huge.path]


def test_duplicate_check_hashes_only_files_whose_size_is_on_both_sides(tmp_path, monkeypatch):
    a = discovery.Sample(_image(tmp_path / "t" / "x" / "1.png", 10), "x")
    b = discovery.Sample(_sparse(tmp_path / "v" / "x" / "2.png", 5000), "x")
    hashed = []
    real = splits._digest
    monkeypatch.setattr(splits, "_digest", lambda path: hashed.append(path) or real(path))
    assert find_duplicates([a], [b]).pairs == [] and hashed == []


def test_an_unreadable_folder_is_reported_not_fatal(tmp_path, caplog):
    if os.geteuid() == 0:
        pytest.skip("root reads every folder")
    _image(tmp_path / "data" / "a" / "1.jpg")
    _image(tmp_path / "data" / "b" / "1.jpg")
    locked = tmp_path / "data" / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        with caplog.at_level(logging.WARNING, logger="edgeshop.data"):
            assert {s.label for s in discover(tmp_path / "data")} == {"a", "b"}
        assert "cannot be read" in caplog.text
    finally:
        locked.chmod(0o755)


# -- enrolment's product folders: the same walk, one level deep, 1-20 photos ------------------------

def test_a_product_folder_linked_to_the_root_of_the_file_system_lists_only_what_is_directly_in_it(tmp_path):
    """Issue 34.9: it walked the whole file system (17,520 images, 5.2 GB, then a MemoryError)."""
    from edgeshop.cli.enroll import main as enroll_main

    new = tmp_path / "new"
    new.mkdir()
    (new / "Everything").symlink_to("/", target_is_directory=True)
    argv = [str(Path(__file__).parent / "data" / "tiny_int8.tflite"), "--data", str(new),
            "--out", str(tmp_path / "out.tflite")]
    enroll_main(argv)  # once untraced: the modules it imports on first use are not the walk's memory
    started = time.monotonic()
    tracemalloc.start()
    code = enroll_main(argv)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert code == 2 and time.monotonic() - started < 10 and peak < 50 << 20
    assert not (tmp_path / "out.tflite").exists()


def test_product_folders_follow_links_and_take_only_their_own_photos(tmp_path, caplog):
    from edgeshop.adapt.enroll import new_class_photos

    for i in range(3):
        _image(tmp_path / "shoot" / "kiwi_photos" / f"k{i}.jpg")
        _image(tmp_path / "new" / "Lime" / f"l{i}.jpg")
    _image(tmp_path / "new" / "Lime" / "old" / "nested.jpg")
    (tmp_path / "new" / "Kiwi").symlink_to(tmp_path / "shoot" / "kiwi_photos", target_is_directory=True)
    (tmp_path / "new" / "Lime" / "again").symlink_to(tmp_path / "new" / "Lime", target_is_directory=True)
    with caplog.at_level(logging.WARNING, logger="edgeshop.adapt.enroll"):
        photos = new_class_photos(tmp_path / "new")
    assert _classes(photos) == {"Kiwi": ["k0.jpg", "k1.jpg", "k2.jpg"], "Lime": ["l0.jpg", "l1.jpg", "l2.jpg"]}
    assert "sub-folders of product folders are not searched" in caplog.text
    assert "1 product folder(s) lie outside it" in caplog.text and "kiwi_photos" in caplog.text


def test_more_than_twenty_photos_of_a_product_are_refused(tmp_path):
    from edgeshop.adapt.enroll import MAX_PHOTOS_PER_PRODUCT, new_class_photos

    for i in range(MAX_PHOTOS_PER_PRODUCT):
        _image(tmp_path / "new" / "Kiwi" / f"{i:02d}.jpg")
    assert len(new_class_photos(tmp_path / "new")) == MAX_PHOTOS_PER_PRODUCT == 20
    _image(tmp_path / "new" / "Kiwi" / "one_more.jpg")
    with pytest.raises(DataError, match="Kiwi: more than 20 photos; enrolment imprints 1-20 photos per product"):
        new_class_photos(tmp_path / "new")


@pytest.mark.parametrize("name, expected", [
    ("Kiwi\u2028", "U+2028"), ("Kiwi\u200d", "U+200D"), ("Kiwi ", "white space"), ("\u202eiwiK", "U+202E"),
])
def test_product_names_follow_the_label_rule(tmp_path, name, expected):
    from edgeshop.adapt.enroll import new_class_photos

    _image(tmp_path / "new" / name / "1.jpg")
    with pytest.raises(DataError, match=f"the product name .*{re.escape(expected)}.*rename the folder") as raised:
        new_class_photos(tmp_path / "new")
    assert str(raised.value).isprintable()  # the name shown escaped: the error stays one visible line


@pytest.mark.parametrize("name", ["BAR", "Bar", "\uff42\uff41\uff52"])
def test_a_product_named_like_a_label_of_the_model_is_refused_before_any_photo_is_read(tmp_path, capsys,
                                                                                       monkeypatch, name):
    from edgeshop.adapt import enroll
    from edgeshop.cli.enroll import main as enroll_main

    _image(tmp_path / "new" / name / "1.jpg")
    monkeypatch.setattr(enroll, "load_images", lambda *a, **k: pytest.fail("photos read before the names were checked"))
    code = enroll_main([str(Path(__file__).parent / "data" / "tiny_int8.tflite"), "--data", str(tmp_path / "new"),
                        "--out", str(tmp_path / "out.tflite")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert f"{name!r} looks like 'bar', a label of" in err and "--remove 'bar'" in err
