"""Training configuration in groups (edgeshop/train/config.py, edgeshop-train --print-config):
old flat config.json files load, nested and dotted files load, unknown keys name the nearest key,
experimental settings are warned about, and the reference page lists every key."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys

import pytest
from conftest import REPO

from edgeshop.cli import train as train_cli
from edgeshop.errors import EdgeshopError
from edgeshop.train.config import KEYS, TrainConfig, read_config_file

# config.json of a run written before the groups (the previous TrainConfig.to_dict(), verbatim).
FLAT_RUN_CONFIG = {
    "data": "photos", "out": "runs/a", "val": None, "val_fraction": 0.1, "val_grouping": "none",
    "val_group_size": 10, "classes": None, "arch": "efficientnet_lite0", "image_size": None,
    "train_image_size": None, "interpolation": "linear", "pretrained": True, "pretrained_weights": None,
    "epochs": 3, "head_epochs": 2, "batch_size": 32, "lr": 0.001, "fine_tune_lr": 0.0003, "weight_decay": 1e-05,
    "label_smoothing": 0.1, "hierarchy": None, "coarse_loss_weight": 0.0, "teacher": None,
    "distill_temperature": 4.0, "distill_weight": 0.5, "dropout": None, "head": "linear", "cosine_scale": 16.0,
    "patience": 4, "select_best_epoch": True, "average_last_epochs": 0, "augment": True, "mix": 0.0,
    "freeze_bn": False, "prune_channels": 0.0, "target_latency_ratio": 0.0, "reconstruct_channels": False,
    "prune_channels_epochs": 4, "prune_channels_lr": 0.0003, "prune_channels_average_last_epochs": 0,
    "prune": 0.5, "prune_epochs": 2, "prune_lr": 0.0001, "qat": True, "qat_epochs": 2, "qat_lr": 2e-05,
    "seed": 0, "deterministic": False, "strategy": "auto", "cpu_devices": 0, "connect_timeout": 300.0,
    "input_pipeline": "auto", "memory_budget_mb": None, "cache_dir": None, "workers": 4, "calibration_images": 200,
}


def test_a_flat_config_json_of_an_earlier_run_loads_into_the_groups():
    config = TrainConfig.from_saved(FLAT_RUN_CONFIG)
    assert (config.data.path, config.runtime.out, config.schedule.epochs) == ("photos", "runs/a", 3)
    assert (config.experimental.sparsity, config.experimental.sparsity_epochs, config.compression.qat) == (0.5, 2, True)
    # every flat value lands somewhere: the nested form holds the same 56 values (keys added later keep defaults)
    from edgeshop.train.config import FLAT_KEYS

    kept = {FLAT_KEYS[name] for name in FLAT_RUN_CONFIG}
    assert len(kept) == len(FLAT_RUN_CONFIG)
    assert (sorted(repr(v) for k, v in config.to_keys().items() if k in kept)
            == sorted(map(repr, FLAT_RUN_CONFIG.values())))
    assert TrainConfig.from_saved(config.to_dict()) == config  # and today's nested config.json reads back


def test_a_run_whose_config_json_is_flat_still_exports(pipeline, tmp_path):
    import shutil

    from edgeshop.runtime.classifier import Classifier
    from edgeshop.train.exporter import export

    run = tmp_path / "run"
    shutil.copytree(pipeline["run"], run, ignore=shutil.ignore_patterns("checkpoints", "tensorboard"))
    saved = TrainConfig.from_saved(json.loads((run / "config.json").read_text()))
    flat = {**FLAT_RUN_CONFIG, **{key.split(".", 1)[1]: value for key, value in saved.to_keys().items()},
            "data": saved.data.path, "out": str(run), "prune": saved.experimental.sparsity,
            "prune_epochs": saved.experimental.sparsity_epochs, "prune_lr": saved.experimental.sparsity_lr,
            "calibration_images": saved.compression.representative_images}
    for renamed in ("path", "sparsity", "sparsity_epochs", "sparsity_lr", "outlier_exposure",
                    "representative_images"):  # renamed, or newer
        flat.pop(renamed)
    assert set(flat) == set(FLAT_RUN_CONFIG)
    (run / "config.json").write_text(json.dumps(flat))
    export(run, tmp_path / "model.tflite", "int8", force=True)
    assert Classifier(tmp_path / "model.tflite").labels == ["bar", "disc", "square"]


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_a_nested_config_file_sets_its_groups_and_flags_win(suffix, tmp_path):
    values = {"schedule": {"epochs": 5, "lr": 0.01}, "model": {"arch": "tiny"}, "data.mix": 0.5}
    path = tmp_path / f"recipe{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(values))
    else:
        path.write_text("schedule:\n  epochs: 5\n  lr: 0.01\nmodel:\n  arch: tiny\ndata.mix: 0.5\n")
    config = TrainConfig.from_sources(read_config_file(path), {"data": "d", "out": "o", "epochs": 7, "lr": None})
    assert (config.schedule.epochs, config.schedule.lr, config.model.arch, config.data.mix) == (7, 0.01, "tiny", 0.5)
    assert config.schedule.batch_size == 32  # untouched keys keep their defaults


@pytest.mark.parametrize(("values", "message"), [
    ({"schedule": {"epoch": 3}}, "recipe.json: unknown key 'schedule.epoch'; did you mean 'schedule.epochs'?"),
    ({"epochz": 3}, "recipe.json: unknown key 'epochz'; did you mean 'epochs'?"),
    ({"shedule": {"epochs": 3}}, "recipe.json: unknown key 'shedule'"),
    ({"schedule.fine_tune": 3}, "did you mean 'schedule.fine_tune_lr'?"),
])
def test_an_unknown_key_is_an_error_naming_the_nearest_key(values, message):
    with pytest.raises(EdgeshopError) as caught:
        TrainConfig.from_sources(values, {"data": "d", "out": "o"}, source="recipe.json")
    assert message in str(caught.value)


def test_errors_about_a_value_name_its_config_key():
    with pytest.raises(EdgeshopError, match=r"^schedule\.batch_size must be >= 1; got 0$"):
        TrainConfig.from_dict({"schedule": {"batch_size": 0}}).validate()
    with pytest.raises(EdgeshopError, match=r"^data\.mix is a probability in \[0, 1\]; got 2"):
        TrainConfig.from_dict({"mix": 2}).validate()


def test_setting_an_experimental_key_logs_one_warning_naming_it(caplog):
    with caplog.at_level(logging.WARNING, logger="edgeshop"):
        TrainConfig.from_sources({"experimental": {"average_last_epochs": 3, "val_group_size": 10}},
                                 {"data": "d", "out": "o"})
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    # val_group_size is set to its default: nothing changes, nothing to warn about
    assert len(warnings) == 1 and warnings[0].startswith("experimental.average_last_epochs = 3 is an experimental")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="edgeshop"):
        TrainConfig.from_sources({"schedule": {"epochs": 3}}, {"data": "d", "out": "o"})
    assert not caplog.records


def test_sparsity_is_the_flag_and_prune_a_deprecated_alias(capsys):
    parser = train_cli.build_parser()
    assert vars(parser.parse_args(["--sparsity", "0.5"]))["experimental.sparsity"] == 0.5
    assert "--prune " not in parser.format_help() and "deprecated" not in capsys.readouterr().err
    assert vars(parser.parse_args(["--prune", "0.4"]))["experimental.sparsity"] == 0.4
    assert "--prune is deprecated: use --sparsity" in capsys.readouterr().err


def test_help_shows_the_user_options_in_groups():
    text = train_cli.build_parser().format_help()
    sections = re.findall(r"^(\w+):$", text, re.M)
    assert sections == ["options", "data", "model", "schedule", "compression", "distillation", "run"]
    shown = set(re.findall(r"^  (--[a-z-]+)", text, re.M))
    assert shown == {"--data", "--val", "--val-fraction", "--arch", "--image-size", "--head",
                     "--epochs", "--batch-size", "--qat", "--prune-channels", "--target-latency-ratio",
                     "--sparsity", "--teacher", "--out", "--config", "--print-config", "--seed",
                     "--input-pipeline", "--init-from", "--after", "--resume", "--force"}
    assert "--lr" not in text and "--print-config lists them all" in text


def test_print_config_lists_every_key_at_once_without_tensorflow():
    code = ("import sys, time; t = time.perf_counter(); from edgeshop.cli.train import main\n"
            "try:\n    main(['--print-config', '--data', 'never-read'])\n"
            "except SystemExit:\n    pass\n"
            "print('tensorflow' in sys.modules, round(time.perf_counter() - t, 3))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    *listing, last = result.stdout.strip().splitlines()
    tensorflow, seconds = last.split()
    assert tensorflow == "False" and float(seconds) < 2.0, (last, result.stderr)
    listed, group = [], None
    for line in listing:
        if not line.startswith(" "):
            group = line.split(":")[0]
        else:
            name, rest = line.strip().split(": ", 1)
            assert re.fullmatch(r"\S+  # \S.*: \S.*", rest), line  # value, type and meaning
            listed.append(f"{group}.{name}")
    assert listed == list(KEYS) and len(KEYS) == 57


def test_the_reference_page_lists_every_key_with_its_default_type_and_meaning():
    """Add, rename or redocument a key without updating docs/reference/config.md, and this fails."""
    from dataclasses import fields

    from edgeshop.train.config import GROUPS

    page = (REPO / "docs" / "reference" / "config.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([a-z_.]+)` \| (.+?) \| `(.+?)` \| (.+) \|$", page, re.M)
    expected = [(f"{group}.{f.name}", f.type.replace(" | ", " or "), json.dumps(getattr(cls(), f.name)),
                 f.metadata["help"].replace(" | ", " or "))
                for group, cls in GROUPS.items() for f in fields(cls)]
    assert rows == expected


def test_the_old_calibration_images_key_loads_as_representative_images():
    """"calibration" means calibrate.py's fitting; the converter's images were renamed. Drop the
    old names from RENAMED and this fails with an unknown-key error."""
    for saved in ({"calibration_images": 7}, {"compression.calibration_images": 7},
                  {"compression": {"calibration_images": 7}}):
        assert TrainConfig.from_saved(saved).compression.representative_images == 7
    assert TrainConfig.from_flat(representative_images=7).compression.representative_images == 7
