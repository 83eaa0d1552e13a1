"""Hardening, round 3: crafted model files (issue 34 items 2, 4, 5, 6, 11, 17, 18, 19; issue 40 item 2).

Any bytes give a working classifier or one edgeshop error naming the file; never a crash,
a hang or a raw exception. Every crafted model is loaded in a child process
(tests/crafted_models.py), so a segfault or a double free is a failing exit code, not a
dead test run.
"""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import DATA, REPO
from crafted_models import (
    CARD_ONLY,
    CRAFTED,
    TINY,
    edited,
    larger_input,
    quantization_edit,
    run_models,
    shared_table_model,
)
from test_hardening_model_files import craft_zip, member

from edgeshop import Classifier
from edgeshop.adapt.probe import HeadProbe
from edgeshop.errors import EdgeshopError, ImageInputError, ModelCardError
from edgeshop.tflite.archive import MAX_MEMBERS
from edgeshop.tflite.modelcard import CARD_ENTRY, LABELS_ENTRY, attach_archive, read_card, split_archive

FLATBUFFER, MEMBERS = split_archive(TINY.read_bytes())


def _file_name(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name) + ".tflite"


@pytest.fixture(scope="module")
def crafted(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("crafted")
    paths = {}
    for name, (base, edit, _) in CRAFTED.items():
        path = folder / _file_name(name)
        path.write_bytes(edited(base, edit))
        paths[name] = str(path)
    return paths


@pytest.fixture(scope="module")
def loaded_in_children(crafted) -> dict[str, dict]:
    """Every crafted model through Classifier, a frame, HeadProbe and the head readers."""
    return run_models(list(crafted.values()), timeout=60)


@pytest.fixture(scope="module")
def heads_read_in_children(crafted) -> dict[str, dict]:
    """Every crafted model through the head readers only (what enroll/calibrate/eval parse first)."""
    return run_models(list(crafted.values()), timeout=60, head_only=True)


@pytest.mark.parametrize("name", list(CRAFTED))
def test_a_crafted_model_is_one_error_naming_the_file_never_a_crash(name, crafted, loaded_in_children):
    """Before the check, 7 of these killed the process in LiteRT's XNNPACK delegate (exit -11
    or -6, 'double free or corruption') and one hung; the rest loaded with wrong scores or
    ended in raw ValueError/IndexError."""
    result = loaded_in_children[crafted[name]]
    assert result["outcome"] == "error", result
    assert result["message"].startswith(crafted[name] + ": "), result
    assert CRAFTED[name][2] in result["message"], result
    assert "\n" not in result["message"]


@pytest.mark.parametrize("name", [name for name in CRAFTED if name not in CARD_ONLY])
def test_the_head_readers_refuse_a_crafted_model_with_one_error(name, crafted, heads_read_in_children):
    """softmax_beta / with_head_outputs / read_head_weights (enroll, calibrate, eval): before,
    a QUANTIZE reading its own output looped forever and wrong shapes raised raw errors."""
    result = heads_read_in_children[crafted[name]]
    assert result["outcome"] == "error", result
    assert result["message"].startswith(crafted[name] + ": "), result


def _run_child(code: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=REPO,
                          timeout=timeout)


@pytest.mark.parametrize(("count", "rank", "size"), [(4000, None, 60_000), (1_000_000, 4, 4_100_000)],
                         ids=["4000-tensors-of-rank-4000", "a-million-tensors"])
def test_a_flatbuffer_pointing_at_one_table_over_and_over_is_refused_fast(count, rank, size, tmp_path):
    """4,000 tensors that are all one table with a 4,000-entry shape: 16 million elements
    from 48 KB. The object API unpacked every one of them (minutes, GBs); the bounded
    reader stops when it has read more than the file holds. A million tensors that are one
    table (4 MB) are refused by their count before anything is built for them."""
    model = tmp_path / "shared.tflite"
    model.write_bytes(shared_table_model(count, rank))
    assert model.stat().st_size < size
    code = f"""
        import resource, time
        from edgeshop.errors import ModelLoadError
        from edgeshop.tflite.tflite_head import softmax_beta
        from edgeshop.tflite.head_weights import read_head_weights
        from edgeshop import Classifier
        content = open(r"{model}", "rb").read()
        for call in (lambda: softmax_beta(content, r"{model}"), lambda: read_head_weights(content, r"{model}"),
                     lambda: Classifier(r"{model}")):
            start = time.perf_counter()
            try:
                call()
            except ModelLoadError as exc:
                assert str(exc).startswith(r"{model}: "), exc
                assert "same data over and over" in str(exc) or "lists {count} entries" in str(exc), exc
            else:
                raise AssertionError("loaded")
            assert time.perf_counter() - start < 1.0, time.perf_counter() - start
        # VmHWM, not ru_maxrss: ru_maxrss survives exec, so a child of a large pytest process
        # would report the parent's peak
        status = open("/proc/self/status").read().splitlines()
        print("peak MB", next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) // 1024)
    """
    result = _run_child(code, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout.split()[-1]) < 300


def test_a_model_whose_layers_grow_with_a_larger_input_is_refused_under_300_mb(tmp_path):
    """The tiny model re-declared for 4000 x 4000 frames (card included): XNNPACK sized every
    layer from the input while loading, 830 MB before the first frame. The plain kernels
    size them without touching the memory, and the total is a limit."""
    model = tmp_path / "large_input.tflite"
    model.write_bytes(larger_input(4000))
    code = f"""
        import resource
        from edgeshop import Classifier
        from edgeshop.errors import ModelLoadError
        try:
            Classifier(r"{model}")
        except ModelLoadError as exc:
            assert str(exc).startswith(r"{model}: running it needs") and "MB of tensors" in str(exc), exc
        else:
            raise AssertionError("loaded")
        # VmHWM, not ru_maxrss: ru_maxrss survives exec, so a child of a large pytest process
        # would report the parent's peak
        status = open("/proc/self/status").read().splitlines()
        print("peak MB", next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) // 1024)
    """
    result = _run_child(code, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout.split()[-1]) < 300, result.stdout


def _mutations(count: int, seed: int = 34) -> list[bytes]:
    """``count`` copies of the tiny model with 1-4 random edits each: a random byte, or four
    bytes set to a value that breaks things (NaN, inf, 0, -1, 1e30 as float, a huge index)."""
    rng = random.Random(seed)
    nasty = [bytes.fromhex(h) for h in ("0000c07f", "0000807f", "00000000", "ffffffff", "cff2c97f", "ffffff7f",
                                        "01000000", "00000080")]
    archive = TINY.read_bytes()[len(FLATBUFFER):]
    models = []
    for _ in range(count):
        data = bytearray(FLATBUFFER)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data) - 4)
            if rng.random() < 0.5:
                data[at] = rng.randrange(256)
            else:
                at -= at % 4  # flatbuffer scalars and offsets are 4-aligned
                data[at:at + 4] = rng.choice(nasty)
        models.append(bytes(data) + archive)
    return models


def test_random_mutations_of_a_model_load_or_fail_cleanly_never_crash(tmp_path):
    """240 mutated copies of the tiny model: each is a working classifier (finite scores)
    or one edgeshop error naming the file."""
    paths = []
    for i, data in enumerate(_mutations(240)):
        paths.append(tmp_path / f"mutant_{i:03d}.tflite")
        paths[-1].write_bytes(data)
    results = run_models(paths, timeout=60)
    outcomes = {}
    for path in paths:
        result = results[str(path)]
        outcomes[result["outcome"]] = outcomes.get(result["outcome"], 0) + 1
        assert result["outcome"] in ("ok", "error"), result
        if result["outcome"] == "error":
            assert result["message"].startswith(str(path) + ": "), result
    assert outcomes.get("ok", 0) > 20 and outcomes.get("error", 0) > 20, outcomes  # both kinds exercised


def test_random_quantization_edits_load_or_fail_cleanly_never_crash(tmp_path):
    """150 tiny models with random scales (x 10^-12 .. 10^12), zero points and types: the
    crafted inputs of the issue's kind. Before the check, 1 in 6 killed the process."""
    rng = random.Random(40)
    paths = []
    for i in range(150):
        paths.append(tmp_path / f"quantization_{i:03d}.tflite")
        paths[-1].write_bytes(edited(TINY, quantization_edit(rng)))
    results = run_models(paths, timeout=60)
    outcomes = [results[str(path)]["outcome"] for path in paths]
    bad = [results[str(path)] for path in paths if results[str(path)]["outcome"] not in ("ok", "error")]
    assert not bad, bad[:3]
    assert outcomes.count("ok") > 20 and outcomes.count("error") > 20, outcomes


def _with_labels_txt(text: bytes) -> bytes:
    return attach_archive(FLATBUFFER, {**MEMBERS, LABELS_ENTRY: text})


def test_labels_txt_that_disagrees_with_the_card_is_refused_naming_both(tmp_path):
    """Rotated by one, MediaPipe (browser page, phones) said 'Leek' where edgeshop said 'Kiwi'."""
    labels = read_card(TINY.read_bytes()).labels
    rotated = (labels[1:] + labels[:1])
    model = tmp_path / "rotated.tflite"
    model.write_bytes(_with_labels_txt(("\n".join(rotated) + "\n").encode()))
    with pytest.raises(ModelCardError) as info:
        Classifier(model)
    message = str(info.value)
    assert message.startswith(f"{model}: ") and "labels.txt" in message and "card" in message
    assert repr(rotated[0]) in message and repr(labels[0]) in message
    model.write_bytes(_with_labels_txt(("\n".join(labels[:-1]) + "\n").encode()))
    with pytest.raises(ModelCardError, match=f"labels.txt lists {len(labels) - 1} labels but its card {len(labels)}"):
        Classifier(model)
    model.write_bytes(_with_labels_txt(("\n".join(labels) + "\n").encode()))  # the form edgeshop writes
    assert Classifier(model).labels == list(labels)


def test_an_archive_holding_a_member_twice_is_refused():
    labels = member(LABELS_ENTRY, MEMBERS[LABELS_ENTRY])
    data = FLATBUFFER + craft_zip([labels, member(CARD_ENTRY, MEMBERS[CARD_ENTRY]), labels])
    with pytest.raises(ModelCardError, match="holds 'labels.txt' more than once"):
        read_card(data, source="twice.tflite")


@pytest.mark.parametrize("lie", [False, True], ids=["count-honest", "count-says-2"])
def test_exactly_the_member_limit_is_read_and_one_more_refused(lie, tmp_path):
    """The end record's count was the only one checked: a directory of 1,300 entries whose
    end record says 2 was listed in full. Both counts are now limits."""
    def archive(members: int) -> bytes:
        extras = [member(f"extra/{i}.txt", b"x") for i in range(members - 2)]
        parts = [member(LABELS_ENTRY, MEMBERS[LABELS_ENTRY]), member(CARD_ENTRY, MEMBERS[CARD_ENTRY]), *extras]
        return FLATBUFFER + craft_zip(parts, declared_count=2 if lie else None)

    at_limit = tmp_path / "at_limit.tflite"
    at_limit.write_bytes(archive(MAX_MEMBERS))
    assert len(split_archive(at_limit.read_bytes())[1]) == MAX_MEMBERS
    assert Classifier(at_limit).labels == list(read_card(TINY.read_bytes()).labels)
    over = archive(MAX_MEMBERS + 1)
    assert len(over) - len(FLATBUFFER) < 8_000  # far below the directory-size limit
    for call in (read_card, split_archive):
        with pytest.raises(ModelCardError, match=f"over.tflite: .*{MAX_MEMBERS + 1} members"):
            call(over, source="over.tflite")


def test_head_probe_runs_the_bytes_the_classifier_loaded_not_the_path(tmp_path):
    """Replacing the file after loading made HeadProbe probe the new file instead."""
    model = tmp_path / "model.tflite"
    model.write_bytes(TINY.read_bytes())
    classifier = Classifier(model)
    model.write_bytes((REPO / "models" / "grocery" / "grocery_int8.tflite").read_bytes())
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    probed = HeadProbe(classifier).run(pixels)
    np.testing.assert_allclose(probed["scores"], classifier.scores_from_pixels(pixels), atol=1e-6)


@pytest.mark.parametrize("pixels", [
    np.zeros((31, 32, 3), np.uint8), np.zeros((32, 32, 4), np.uint8), np.zeros((32, 32, 3), np.float32),
    np.zeros((1, 32, 32, 3), np.uint8), [[0, 0, 0]],
], ids=["wrong-height", "four-channels", "float32", "batched", "a-list"])
def test_scores_from_pixels_says_what_it_expects_instead_of_litert_errors(pixels):
    classifier = Classifier(DATA / "tiny_int8.tflite")
    with pytest.raises(ImageInputError, match=r"model-ready pixels must be a uint8 array of shape \(32, 32, 3\)"):
        classifier.scores_from_pixels(pixels)
    with pytest.raises(ImageInputError, match="model-ready pixels"):
        HeadProbe(classifier).run(pixels)


def test_reexport_of_a_card_only_zip_is_one_error(tmp_path):
    """`edgeshop-export --reexport` on a zip holding only a card handed LiteRT 0 bytes."""
    from edgeshop.train.exporter import reexport

    card_only = tmp_path / "card_only.tflite"
    card_only.write_bytes(attach_archive(b"", MEMBERS))
    with pytest.raises(EdgeshopError, match=f"{card_only}: not a TFLite model"):
        reexport(card_only, tmp_path / "out.tflite")
    assert not (tmp_path / "out.tflite").exists()
