"""The commands, called in-process (`main([...])`) or as real processes where it matters."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO

from edgeshop.cli import export as export_cli
from edgeshop.cli import train as train_cli
from edgeshop.cli.dispatch import COMMANDS


def test_help_is_instant_and_does_not_import_tensorflow():
    # Every command's --help text, timed in a fresh interpreter from its first import; importing
    # TensorFlow alone takes several seconds on this machine, so the limit catches a stray import.
    code = ("import sys, time; t = time.perf_counter(); import importlib; "
            f"parsers = [importlib.import_module('edgeshop.cli.' + m).build_parser() for m in {COMMANDS!r}]; "
            "texts = [p.format_help() for p in parsers]; "
            "print(round(time.perf_counter() - t, 3), 'tensorflow' in sys.modules, sum(map(len, texts)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    seconds, tensorflow, characters = result.stdout.split()
    assert tensorflow == "False"
    assert float(seconds) < 2.0, f"--help of every command took {seconds} s"
    assert int(characters) > 2000


def test_export_refuses_to_overwrite_without_force(pipeline, tmp_path, capsys):
    target = tmp_path / "model.tflite"
    assert export_cli.main([str(pipeline["run"]), "--int8", "--out", str(target), "--no-verify"]) == 0
    before = target.read_bytes()
    assert export_cli.main([str(pipeline["run"]), "--int8", "--out", str(target)]) == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    assert target.read_bytes() == before
    assert export_cli.main([str(pipeline["run"]), "--float16", "--out", str(target), "--force",
                            "--json", str(tmp_path / "report.json")]) == 0
    assert json.loads((tmp_path / "report.json").read_text())["method"] == "float16"


def test_export_of_a_missing_run_is_a_one_line_error(tmp_path, capsys):
    assert export_cli.main([str(tmp_path / "nothing"), "--int8", "--out", str(tmp_path / "m.tflite")]) == 2
    assert "not an edgeshop run directory" in capsys.readouterr().err


def test_train_refuses_an_existing_run_and_reads_a_config_file(synthetic_data, tmp_path, capsys):
    out = tmp_path / "run"
    config = tmp_path / "train.json"
    config.write_text(json.dumps({"arch": "tiny", "epochs": 1, "batch_size": 32, "augment": False}))
    args = ["--config", str(config), "--data", str(synthetic_data["train"]), "--out", str(out)]
    assert train_cli.main(args) == 0
    saved = json.loads((out / "config.json").read_text())  # saved nested, by group
    assert saved["model"]["arch"] == "tiny" and saved["data"]["augment"] is False and saved["schedule"]["epochs"] == 1
    assert train_cli.main(args) == 2
    assert "--resume" in capsys.readouterr().err
    assert train_cli.main([*args, "--epochs", "2", "--force"]) == 0
    assert json.loads((out / "config.json").read_text())["schedule"]["epochs"] == 2  # flag beats file
    config.write_text(json.dumps({"arch": "tiny", "epochz": 1}))
    assert train_cli.main(args) == 2
    assert f"{config}: unknown key 'epochz'; did you mean 'epochs'?" in capsys.readouterr().err


def _log_rows(run):
    path = run / "training_log.csv"
    if not path.exists():
        return []
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_sigkilled_run_resumes_from_its_last_checkpoint(synthetic_data, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "edgeshop.cli.train", "--data", str(synthetic_data["train"]), "--out", str(run),
           "--arch", "tiny", "--epochs", "8", "--batch-size", "4", "--patience", "100", "--lr", "3e-3"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while len(_log_rows(run)) < 2 and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = len(_log_rows(run))
    assert 2 <= done_before < 8, "the run should have been killed mid-way"
    assert not (run / "metrics.json").exists()
    assert train_cli.main(["--out", str(run), "--resume"]) == 0
    epochs = [int(r["epoch"]) for r in _log_rows(run)]
    assert epochs[:done_before] == list(range(1, done_before + 1))
    assert sorted(set(epochs)) == list(range(1, 9))  # every epoch ran, none skipped
    assert epochs[done_before] >= done_before  # resumed, not restarted from epoch 1
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["val_top1_final"] > 0.8


def _checkpoints(run, phase) -> list[int]:
    """Epochs of the phase's committed checkpoints: the ones CheckpointManager's index file lists
    (it is written after the checkpoint's own files; a kill in between leaves no usable checkpoint)."""
    index = run / "checkpoints" / phase / "checkpoint"
    if not index.is_file():
        return []
    return sorted(int(n) for n in re.findall(r'all_model_checkpoint_paths: ".*?ckpt-(\d+)"', index.read_text()))


def _kill_when(cmd, run, phase, epochs):
    """Start a training process, SIGKILL it once ``phase`` has checkpointed an epoch; returns the
    last checkpointed epoch, which the resumed run must continue after, and the phase's log rows."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None and not _checkpoints(run, phase):
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    saved = _checkpoints(run, phase)
    assert saved and saved[-1] < epochs, f"the run should have been killed during {phase}: checkpoints {saved}"
    return saved[-1], sum(r["phase"] == phase for r in _log_rows(run))


def test_sigkilled_run_resumes_during_prune_and_during_qat(synthetic_data, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "edgeshop.cli.train", "--data", str(synthetic_data["train"]), "--out", str(run),
           "--arch", "tiny", "--epochs", "3", "--batch-size", "8", "--lr", "3e-3", "--sparsity", "0.5",
           "--prune-epochs", "3", "--qat", "--qat-epochs", "3"]
    resume = [sys.executable, "-m", "edgeshop.cli.train", "--out", str(run), "--resume"]
    killed = {"prune": _kill_when(cmd, run, "prune", 3)}
    assert json.loads((run / "state.json").read_text())["completed"] == ["train"]
    killed["qat"] = _kill_when(resume, run, "qat", 3)
    assert json.loads((run / "state.json").read_text())["completed"] == ["train", "prune"]
    assert train_cli.main(["--out", str(run), "--resume"]) == 0
    rows = _log_rows(run)
    for phase, (checkpointed, logged) in killed.items():
        epochs = [int(r["epoch"]) for r in rows if r["phase"] == phase]
        assert sorted(set(epochs)) == [1, 2, 3], (phase, epochs)  # every epoch ran
        # continued after its last checkpoint (an epoch logged but killed before its checkpoint runs
        # again), not from epoch 1
        assert epochs[logged:] == list(range(checkpointed + 1, 4)), (phase, epochs, checkpointed)
    state = json.loads((run / "state.json").read_text())
    assert state["completed"] == ["train", "prune", "qat"]
    assert state["sparsity_after_strip"] == pytest.approx(0.5, abs=0.02)  # the schedule survived the kill
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["val_top1_final"] > 0.8


def test_val_folder_and_yaml_config(synthetic_data, tmp_path, capsys):
    config = tmp_path / "train.yaml"
    config.write_text("# a YAML recipe\narch: tiny\nepochs: 2\nbatch_size: 32\naugment: false\n")
    out = tmp_path / "run"
    args = ["--config", str(config), "--data", str(synthetic_data["train"]), "--val", str(synthetic_data["test"]),
            "--out", str(out)]
    assert train_cli.main(args) == 0
    printed = capsys.readouterr().out
    saved = json.loads((out / "config.json").read_text())
    assert (saved["model"]["arch"], saved["schedule"]["epochs"], saved["data"]["augment"]) == ("tiny", 2, False)
    assert saved["data"]["val"] == str(synthetic_data["test"])
    report = json.loads((out / "data_report.json").read_text())
    # --val: every training image trains, the val folder validates; no random split, no warning about one
    assert (report["train_images"], report["val_images"]) == (120, 36)
    assert "120 training / 36 validation images" in printed and "a random" not in printed
    config.write_text("arch: tiny\nepochs: [1\n")
    assert train_cli.main([*args, "--force"]) == 2
    err = capsys.readouterr().err
    assert f"{config}: not valid YAML" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_mirrored_strategy_on_two_logical_cpus(synthetic_data, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "edgeshop.cli.train", "--data", str(synthetic_data["train"]), "--out", str(run),
           "--arch", "tiny", "--epochs", "3", "--batch-size", "16", "--lr", "3e-3", "--strategy", "mirrored",
           "--cpu-devices", "2", "--sparsity", "0.5", "--prune-epochs", "1", "--qat", "--qat-epochs", "1"]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MirroredStrategy over" in result.stdout and "CPU:1" in result.stdout
    assert json.loads((run / "state.json").read_text())["completed"] == ["train", "prune", "qat"]


@pytest.mark.parametrize(("flag", "message"), [
    ("--sparsity=1.5", "experimental.sparsity (--sparsity) must be in (0, 1), e.g. 0.5; got 1.5"),
    ("--strategy=bogus", "--strategy: invalid choice: 'bogus'"),
    ("--distill-weight=1.5", "distillation.distill_weight is a weight in [0, 1]; got 1.5"),
    ("--teacher=/nonexistent/run", "--teacher /nonexistent/run: expected an edgeshop run directory"),
    ("--val-grouping=bursts", "--val-grouping: invalid choice: 'bursts'"),
])
def test_invalid_settings_are_rejected(flag, message, synthetic_data, tmp_path, capsys):
    args = ["--data", str(synthetic_data["train"]), "--out", str(tmp_path / "r"), "--arch", "tiny", flag]
    try:
        code = train_cli.main(args)
    except SystemExit as exc:  # argparse choices
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()  # refused before anything was written


def test_runs_saved_before_a_setting_keep_their_old_behaviour():
    from edgeshop.train.config import TrainConfig

    old = TrainConfig.from_saved({"data": "d", "out": "o"})  # config.json from before `interpolation`
    assert old.model.interpolation == "area"
    assert TrainConfig.from_flat(data="d", out="o").model.interpolation == "linear"  # new runs: the fast rule
    assert TrainConfig.from_saved({"data": "d", "out": "o", "interpolation": "linear"}).model.interpolation == "linear"
