"""Every export is a model standard clients open as it is: standard TFLite Metadata that is right
for a graph normalising itself, labels attached to the output, one stored archive that the
card shares, and a re-export path for files written by earlier versions."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edgeshop.runtime.audit import audit_model
from edgeshop.runtime.classifier import Classifier
from edgeshop.tflite.modelcard import CARD_ENTRY, LABELS_ENTRY, embed_card, read_card, split_archive

FORMATS = ("float32", "float16", "int8", "int8_io", "ptq_int8")
TENSOR_AXIS_LABELS = 2  # tflite metadata AssociatedFileType
RGB = 1  # tflite metadata ColorSpaceType


@pytest.mark.parametrize("key", FORMATS)
def test_every_export_carries_standard_metadata(pipeline, key):
    from edgeshop.train.tflite_metadata import read_metadata

    data = pipeline[key].read_bytes()
    meta = read_metadata(split_archive(data)[0])
    assert meta is not None, "no TFLITE_METADATA entry"
    assert meta["name"] == "run" and "3 classes" in meta["description"]
    assert meta["version"].startswith("edgeshop ")
    assert meta["input_color_space"] == RGB
    # The graph normalises itself: a client must feed raw pixels, i.e. (p - 0) / 1.
    assert meta["input_mean"] == [0.0] and meta["input_std"] == [1.0]
    assert meta["input_range"] == [0.0, 255.0]
    assert meta["output_range"] == [0.0, 1.0]
    assert meta["label_files"] == [(LABELS_ENTRY, TENSOR_AXIS_LABELS)]
    assert meta["model_files"] == [CARD_ENTRY]
    assert meta["min_parser_version"] == "1.0.0"


@pytest.mark.parametrize("key", FORMATS)
def test_one_stored_archive_holds_labels_and_card(pipeline, key):
    data = pipeline[key].read_bytes()
    assert data.count(b"PK\x05\x06") == 1
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert sorted(archive.namelist()) == sorted([LABELS_ENTRY, CARD_ENTRY])
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}
        assert archive.read(LABELS_ENTRY).decode().splitlines() == ["bar", "disc", "square"]
    assert read_card(data).labels == ("bar", "disc", "square")


def _normalization_read_independently(flatbuffer: bytes) -> dict[str, list[float]]:
    """The input's NormalizationOptions and value range as a standard client finds them: the
    TFLITE_METADATA buffer located with the TFLite schema, read with the metadata schema's own
    accessors (not edgeshop's read_metadata). MediaPipe's copy of those accessors where it is
    installed (the developer venv no longer needs it), else edgeshop's vendored copy, which
    test_the_vendored_schema_* shows writes byte for byte what MediaPipe's wrote."""
    try:
        from mediapipe.tasks.metadata import metadata_schema_py_generated as md
    except ImportError:
        from edgeshop._vendor import metadata_schema_py_generated as md
    from tensorflow.lite.python import schema_py_generated as tfl

    model = tfl.Model.GetRootAs(flatbuffer, 0)
    entries = [model.Metadata(i) for i in range(model.MetadataLength())]
    [entry] = [e for e in entries if e.Name() == b"TFLITE_METADATA"]
    raw = model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
    image = md.ModelMetadata.GetRootAs(raw, 0).SubgraphMetadata(0).InputTensorMetadata(0)
    [unit] = [image.ProcessUnits(i) for i in range(image.ProcessUnitsLength())]
    assert unit.OptionsType() == md.ProcessUnitOptions.NormalizationOptions
    options = md.NormalizationOptions()
    options.Init(unit.Options().Bytes, unit.Options().Pos)
    return {"mean": options.MeanAsNumpy().tolist(), "std": options.StdAsNumpy().tolist(),
            "min": image.Stats().MinAsNumpy().tolist(), "max": image.Stats().MaxAsNumpy().tolist()}


def test_metadata_describes_a_model_that_does_not_normalise_itself(fixture_model):
    """Cards with normalization_in_graph false hand their mean/std to the client, each in its own
    field: a client computes (pixel - mean) / std. ImageNet's per-channel values, mean != std, so
    a swap shows: pixel 0 -> -123.675 / 58.395 = -2.1179, pixel 255 -> (255 - 123.675) / 58.395 = 2.2489."""
    from dataclasses import replace

    from edgeshop.train.tflite_metadata import metadata_buffer, read_metadata, with_metadata

    mean, std = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)
    card = read_card(fixture_model.read_bytes())
    external = replace(card, input=replace(card.input, normalization_in_graph=False, mean=mean, std=std))
    written = with_metadata(split_archive(fixture_model.read_bytes())[0], metadata_buffer(external, "float32"))
    found = _normalization_read_independently(written)
    assert found["mean"] == pytest.approx(mean) and found["std"] == pytest.approx(std)
    assert found["min"] == pytest.approx([-2.117904, -2.035714, -1.804444], abs=1e-5)
    assert found["max"] == pytest.approx([2.248908, 2.428571, 2.640000], abs=1e-5)
    meta = read_metadata(written)  # edgeshop's own reader agrees
    assert meta["input_mean"] == pytest.approx(mean) and meta["input_std"] == pytest.approx(std)
    # and a graph that normalises itself is fed raw pixels: mean 0, std 1, in the same fields
    assert card.input.normalization_in_graph
    found = _normalization_read_independently(
        with_metadata(split_archive(fixture_model.read_bytes())[0], metadata_buffer(card, "uint8")))
    assert (found["mean"], found["std"], found["min"], found["max"]) == ([0.0], [1.0], [0.0], [255.0])


def test_rewriting_metadata_replaces_it_instead_of_adding_a_second(pipeline):
    from tensorflow.lite.tools import flatbuffer_utils

    from edgeshop.train.tflite_metadata import METADATA_NAME, metadata_buffer, with_metadata

    flatbuffer = split_archive(pipeline["int8"].read_bytes())[0]
    again = with_metadata(flatbuffer, metadata_buffer(read_card(pipeline["int8"].read_bytes()), "uint8"))
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(again))
    names = [m.name.decode() if isinstance(m.name, bytes) else m.name for m in model.metadata]
    assert names.count(METADATA_NAME) == 1


def test_benchmark_rewrite_keeps_the_whole_archive_and_metadata(pipeline):
    from edgeshop.train.tflite_metadata import read_metadata
    from edgeshop.train.tflite_rewrite import float16_to_float32

    original = pipeline["float16"].read_bytes()
    rewritten = float16_to_float32(original)
    assert split_archive(rewritten)[1] == split_archive(original)[1]
    assert read_metadata(split_archive(rewritten)[0]) == read_metadata(split_archive(original)[0])
    assert "DEQUANTIZE" not in audit_model(rewritten)["op_counts"]


def _old_format(model: Path, tmp_path: Path) -> Path:
    """The model as edgeshop wrote it before uint8 I/O and metadata: int8 I/O, deflated card zip only."""
    from tensorflow.lite.tools import flatbuffer_utils

    data = model.read_bytes()
    flatbuffer = split_archive(data)[0]
    stripped = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    stripped.metadata = [m for m in stripped.metadata if m.name not in (b"TFLITE_METADATA", "TFLITE_METADATA")]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(CARD_ENTRY, read_card(data).to_json())
    old = tmp_path / "old.tflite"
    old.write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(stripped)) + buffer.getvalue())
    return old


def test_reexport_gives_uint8_io_metadata_and_identical_scores(pipeline, synthetic_data, tmp_path):
    from edgeshop.train.exporter import reexport
    from edgeshop.train.tflite_metadata import read_metadata

    old = _old_format(pipeline["int8_io"], tmp_path)
    assert read_metadata(split_archive(old.read_bytes())[0]) is None
    new = tmp_path / "new.tflite"
    report = reexport(old, new)
    audit = audit_model(new.read_bytes())
    assert audit["fully_integer"] and audit["input"]["dtype"] == "uint8" and audit["output"]["dtype"] == "uint8"
    assert report["max_abs_score_diff_vs_original"] == 0.0
    assert read_metadata(split_archive(new.read_bytes())[0])["label_files"] == [(LABELS_ENTRY, TENSOR_AXIS_LABELS)]
    before, after = Classifier(old), Classifier(new)
    for image in sorted(Path(synthetic_data["test"]).rglob("*.png"))[:6]:
        import cv2

        frame = cv2.imread(str(image))
        np.testing.assert_array_equal(before.scores(frame), after.scores(frame))
    assert after.card.extra["export"]["reexported"]["from_io"] == "int8"


def test_reexport_refuses_overwrite_and_files_without_a_card(pipeline, tmp_path):
    from edgeshop.errors import EdgeshopError, OverwriteError
    from edgeshop.train.exporter import reexport

    target = tmp_path / "exists.tflite"
    target.write_bytes(b"mine")
    with pytest.raises(OverwriteError):
        reexport(pipeline["int8"], target)
    assert target.read_bytes() == b"mine"
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(split_archive(pipeline["int8"].read_bytes())[0])
    with pytest.raises(EdgeshopError, match="no edgeshop model card"):
        reexport(bare, tmp_path / "out.tflite")
    assert not (tmp_path / "out.tflite").exists()


def test_reexport_refuses_a_rewrite_that_changes_scores(pipeline, tmp_path, monkeypatch):
    """The score comparison is a gate: a broken I/O rewrite must not be written."""
    from edgeshop.errors import EdgeshopError
    from edgeshop.train import exporter as export_module
    from edgeshop.train import tflite_rewrite

    old = _old_format(pipeline["int8_io"], tmp_path)
    correct = tflite_rewrite.int8_io_to_uint8

    def shifted(content: bytes) -> bytes:  # the uint8 rewrite with a wrong zero point
        rewritten = correct(content)
        from tensorflow.lite.tools import flatbuffer_utils

        model = flatbuffer_utils.read_model_from_bytearray(bytearray(split_archive(rewritten)[0]))
        subgraph = model.subgraphs[0]
        subgraph.tensors[subgraph.inputs[0]].quantization.zeroPoint[0] += 40
        return bytes(flatbuffer_utils.convert_object_to_bytearray(model))

    monkeypatch.setattr(export_module, "int8_io_to_uint8", shifted)  # the name reexport calls
    with pytest.raises(EdgeshopError, match="differ"):
        export_module.reexport(old, tmp_path / "bad.tflite")
    assert not (tmp_path / "bad.tflite").exists()


def test_export_cli_reexport_and_int8_io(pipeline, tmp_path, capsys):
    from edgeshop.cli import export as export_cli

    old = _old_format(pipeline["int8_io"], tmp_path)
    out = tmp_path / "upgraded.tflite"
    assert export_cli.main(["--reexport", str(old), "--out", str(out), "--author", "Shelf team",
                            "--license", "CC-BY-4.0"]) == 0
    assert "max score diff 0.00e+00" in capsys.readouterr().out
    from edgeshop.train.tflite_metadata import read_metadata

    meta = read_metadata(split_archive(out.read_bytes())[0])
    assert (meta["author"], meta["license"]) == ("Shelf team", "CC-BY-4.0")
    with pytest.raises(SystemExit) as exit_info:
        export_cli.main(["--reexport", str(old), str(pipeline["run"]), "--out", str(tmp_path / "x.tflite")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "one of them" in err


def test_card_edit_keeps_standard_metadata(pipeline):
    """Anything that re-embeds a card (calibration, enrolment) keeps the flatbuffer's metadata as it is."""
    data = pipeline["int8"].read_bytes()
    card = read_card(data)
    again = embed_card(data, card)
    assert split_archive(again)[0] == split_archive(data)[0]


@pytest.mark.parametrize("name", ["grocery_int8.tflite", "grocery_fp16.tflite", "grocery_int8_fast.tflite"])
def test_the_vendored_schema_writes_the_metadata_mediapipes_module_wrote(name, monkeypatch):
    """The shipped models were packaged with MediaPipe's generated schema module: packaging
    them again with edgeshop's own copy gives the same flatbuffer, metadata byte for byte.
    MediaPipe is made unimportable meanwhile (other tests may have imported it already)."""
    import sys

    monkeypatch.setitem(sys.modules, "mediapipe", None)  # any import of mediapipe.* now fails
    from edgeshop.train.exporter import package
    from edgeshop.train.tflite_metadata import Provenance, read_metadata

    shipped = (Path(__file__).resolve().parents[1] / "models" / "grocery" / name).read_bytes()
    flatbuffer = split_archive(shipped)[0]
    meta = read_metadata(flatbuffer)
    again = package(flatbuffer, read_card(shipped), Provenance(meta["author"], meta["license"], meta["description"]))
    assert split_archive(again)[0] == flatbuffer
