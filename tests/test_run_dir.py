"""The run folder (edgeshop/train/run_dir.py): runs written before split.json and
representative_images.npy still resume and export; export reads the recorded split;
--init-from RUN --after PHASE continues a run with changed settings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from synthetic import make_dataset

from edgeshop.errors import EdgeshopError
from edgeshop.train.config import TrainConfig

OLD_RUN = Path(__file__).parent / "data" / "old_run" / "run"  # made by edgeshop 3c8c35c (make_old_run.py there)


@pytest.fixture()
def old_run(tmp_path, monkeypatch) -> Path:
    """The committed old run beside the images its config names (``data``, relative: regenerated here)."""
    shutil.copytree(OLD_RUN, tmp_path / "run")
    make_dataset(tmp_path / "data", per_class=8, size=32, seed=5)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "run"


def test_the_committed_old_run_has_the_old_layout():
    names = {p.name for p in OLD_RUN.iterdir()}
    assert "calibration.npy" in names and "split.json" not in names and "representative_images.npy" not in names
    assert json.loads((OLD_RUN / "state.json").read_text())["completed"] == ["train"]


def test_an_old_run_exports_as_it_is(old_run, tmp_path):
    """No split.json, the representative images under their old name: export reads both ways."""
    from edgeshop.runtime.classifier import Classifier
    from edgeshop.train.exporter import export

    # check=False: a 2-epoch tiny net's int8 twin need not pass the 90% agreement gate; the layout is the point
    report = export(old_run, tmp_path / "old.tflite", "int8", calibrate=True, check=False)
    assert report["method"] == "ptq_int8" and report["audit"]["fully_integer"]
    assert report["calibration"].startswith("not calibrated: the run has 6 validation images")  # split derived again
    assert Classifier(tmp_path / "old.tflite").labels == ["bar", "disc", "square"]
    assert not (old_run / "split.json").exists()  # export writes nothing into the run


def test_an_old_run_resumes_into_its_qat_phase_and_records_its_split(old_run, tmp_path):
    from edgeshop.train.config import TrainConfig
    from edgeshop.train.exporter import export
    from edgeshop.train.fit import resume, split_samples

    train_weights = (old_run / "stages" / "train.weights.npz").read_bytes()
    lines: list[str] = []
    metrics = resume(old_run, log=lambda line: lines.append(str(line)))
    assert "[train] already done, skipping" in lines
    assert metrics["phases"] == ["train", "qat"]
    assert (old_run / "stages" / "train.weights.npz").read_bytes() == train_weights
    config = TrainConfig.from_saved(json.loads((old_run / "config.json").read_text()))
    recorded = json.loads((old_run / "split.json").read_text())
    train, val = split_samples(config)
    assert recorded == {"train": [[str(s.path), s.label] for s in train], "val": [[str(s.path), s.label] for s in val]}
    old = np.load(old_run / "calibration.npy")
    np.testing.assert_array_equal(np.load(old_run / "representative_images.npy"), old)  # the same images
    report = export(old_run, tmp_path / "qat.tflite", "int8", check=False)
    assert report["method"] == "qat_int8" and report["audit"]["fully_integer"]


def test_export_calibrates_on_the_recorded_split_without_deriving_it(pipeline, tmp_path, monkeypatch):
    """The validation images come from split.json: deriving them again (for a similarity split,
    ImageNet features of every image) is not called."""
    from edgeshop.train import run_data
    from edgeshop.train.exporter import export

    def refuse(config):
        raise AssertionError("export derived the split again")

    monkeypatch.setattr(run_data, "split_samples", refuse)
    recorded = json.loads((pipeline["run"] / "split.json").read_text())
    report = export(pipeline["run"], tmp_path / "m.tflite", "int8", calibrate=True, check=False)
    assert report["calibration"]["calibration"]["images"] == len(recorded["val"]) == 24


def test_every_run_file_is_one_force_may_replace():
    """RunDir names the files; edgeshop/_io.py's RUN_FOLDER must own each (else --force refuses a run)."""
    from edgeshop._io import RUN_FOLDER
    from edgeshop.train import run_dir

    names = [value for key, value in vars(run_dir).items() if key.isupper() and isinstance(value, str)]
    names.append(run_dir.RunDir(".").teacher_logits(1).name)
    assert "representative_images.npy" in names and "split.json" in names
    assert [n for n in names if not RUN_FOLDER.owns(n)] == []


def test_init_from_after_continues_a_run_with_other_settings(pipeline, tmp_path, capsys):
    """edgeshop-train --init-from RUN --after PHASE: RUN's phases up to PHASE kept as they are, the
    rest trained under the new settings, in a new run folder."""
    from edgeshop.cli.train import main

    base = pipeline["run"]
    new = tmp_path / "branch"
    assert main(["--init-from", str(base), "--after", "sparsity", "--out", str(new), "--qat-epochs", "1"]) == 0
    state = json.loads((new / "state.json").read_text())
    assert state["completed"] == ["train", "prune", "qat"]
    assert state["branched_from"] == {"run": str(base), "after": "prune"}
    assert set(state["seconds"]) == {"train", "prune", "qat"}
    for stage in ("train", "prune"):
        assert (new / "stages" / f"{stage}.weights.npz").read_bytes() == \
            (base / "stages" / f"{stage}.weights.npz").read_bytes()
    assert (new / "stages" / "qat.weights.npz").read_bytes() != (base / "stages" / "qat.weights.npz").read_bytes()
    config = TrainConfig.from_saved(json.loads((new / "config.json").read_text())).to_keys()
    base_config = TrainConfig.from_saved(json.loads((base / "config.json").read_text())).to_keys()
    assert config == {**base_config, "runtime.out": str(new), "compression.qat_epochs": 1}
    assert (new / "split.json").read_text() == (base / "split.json").read_text()
    rows = (new / "training_log.csv").read_text().splitlines()
    base_rows = (base / "training_log.csv").read_text().splitlines()
    assert [r for r in rows if not r.startswith("qat,")] == [r for r in base_rows if not r.startswith("qat,")]
    assert [r.split(",")[:2] for r in rows if r.startswith("qat,")] == [["qat", "1"]]


@pytest.mark.parametrize(("args", "message"), [
    (["--after", "warmup"], "--after warmup: unknown phase; one of head, train, prune_channels, prune, qat"),
    (["--after", "head"], "phase head did not finish there (finished: train, prune, qat)"),
    (["--after", "train", "--epochs", "-1"], "schedule.epochs must be >= 0"),
])
def test_init_from_refuses_in_one_line_and_writes_nothing(pipeline, tmp_path, capsys, args, message):
    from edgeshop.cli.train import main

    new = tmp_path / "branch"
    assert main(["--init-from", str(pipeline["run"]), "--out", str(new), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgeshop-train: error:") and message in err and len(err.splitlines()) == 1, err
    assert not new.exists()


def test_init_from_a_folder_that_is_no_run(tmp_path, capsys):
    from edgeshop.cli.train import main

    (tmp_path / "photos").mkdir()
    assert main(["--init-from", str(tmp_path / "photos"), "--after", "train", "--out", str(tmp_path / "b")]) == 2
    assert "not an edgeshop run folder (no state.json/config.json)" in capsys.readouterr().err
    with pytest.raises(EdgeshopError, match="--init-from RUN and --after PHASE go together"):
        from edgeshop.cli.train import branched_run, build_parser

        branched_run(build_parser().parse_args(["--init-from", str(tmp_path), "--out", "x"]))


def test_the_training_guide_shows_the_layout_run_dir_names():
    """docs/training.md's run folder block is the layout in run_dir.py's docstring, line for line."""
    from edgeshop.train import run_dir

    doc = run_dir.__doc__
    layout = doc[doc.index("Layout (what"):doc.index("\n\nRuns written before")].splitlines()[2:]
    guide = (Path(__file__).parents[1] / "docs" / "training.md").read_text()
    block = guide.split("<!-- run-folder-layout")[1].split("```")[1].strip("\n").splitlines()
    assert block == [line[4:] for line in layout]
    named = [value for key, value in vars(run_dir).items() if key.isupper() and isinstance(value, str)
             and key != "LEGACY_REPRESENTATIVE_IMAGES"]
    assert [name for name in named if not any(line.startswith(name) or f" {name}" in line for line in block)] == []
