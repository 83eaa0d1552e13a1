"""The name people see for a model (issue 37 item 9): set by edgeshop-export --name, by default
the training data folder's name, never a run folder's; the browser page shows it."""

from __future__ import annotations

import pytest
from conftest import DATA

from edgeshop.cli import export as export_cli
from edgeshop.cli import web
from edgeshop.tflite.modelcard import default_display_name, display_name, read_card


def test_export_names_the_model_after_its_data_folder(pipeline, synthetic_data):
    # The run trained on <tmp>/synthetic0/train: "train" names a split, its parent the data set.
    expected = synthetic_data["train"].parent.name
    card = read_card(pipeline["int8"].read_bytes())
    assert card.extra["display_name"] == display_name(card) == expected
    assert card.name == pipeline["run"].name != expected  # the card's own name is the run folder's
    assert web.page_config(pipeline["int8"])["name"] == expected


def test_export_name_option_replaces_it(tmp_path, capsys):
    out = tmp_path / "named.tflite"
    assert export_cli.main(["--reexport", str(DATA / "tiny_int8.tflite"), "--out", str(out),
                            "--name", "Späti am Eck"]) == 0
    assert read_card(out.read_bytes()).extra["display_name"] == "Späti am Eck"
    assert web.page_config(out)["name"] == "Späti am Eck"


def test_older_models_are_not_called_by_their_run_folder():
    card = read_card((DATA / "tiny_int8.tflite").read_bytes())
    assert "display_name" not in card.extra
    assert display_name(card) == f"Product classifier ({len(card.labels)} products)"
    assert card.name not in display_name(card)


@pytest.mark.parametrize("name", ["", " padded", "two\nlines", "x" * 81])
def test_unusable_names_are_refused_before_any_work(tmp_path, capsys, name):
    with pytest.raises(SystemExit) as exit_code:
        export_cli.main(["--reexport", str(DATA / "tiny_int8.tflite"), "--out", str(tmp_path / "x.tflite"),
                         "--name", name])
    assert exit_code.value.code == 2
    assert "--name" in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (tmp_path / "x.tflite").exists()


def test_default_names_skip_split_folders(tmp_path):
    assert default_display_name(tmp_path / "Grocery" / "train") == "Grocery"
    assert default_display_name(tmp_path / "Corner shop") == "Corner shop"
