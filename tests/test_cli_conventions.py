"""One `edgeshop <command>` and the conventions every command shares (issue 35 item 5;
docs/reference/cli.md): the dispatcher and its aliases, --version, help text on every option,
renamed options and API keywords that still work and warn."""

from __future__ import annotations

import argparse
import importlib
import json
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
from conftest import DATA, REPO

import edgeshop
from edgeshop.cli import _common, dispatch
from edgeshop.cli.dispatch import COMMANDS

MODEL = str(DATA / "tiny_int8.tflite")
PHOTOS = str(DATA / "synthetic")


def _exit_output(capsys, call) -> tuple[int, str, str]:
    """Run ``call()`` (which argparse may end with SystemExit): its code, stdout and stderr."""
    try:
        code = call()
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def _parser(command: str) -> argparse.ArgumentParser:
    return _common.complete(importlib.import_module(f"edgeshop.cli.{command}").build_parser())


def test_edgeshop_help_lists_every_command_at_once_without_importing_them():
    code = ("import sys, time, contextlib, io; t = time.perf_counter(); from edgeshop.cli import dispatch\n"
            "out = io.StringIO()\n"
            "with contextlib.redirect_stdout(out):\n"
            "    try: dispatch.main(['--help'])\n"
            "    except SystemExit: pass\n"
            "loaded = sorted(m for m in sys.modules if m.startswith('edgeshop.cli.') and m.count('.') == 2)\n"
            "print(repr((round(time.perf_counter() - t, 2), 'tensorflow' in sys.modules, loaded, out.getvalue())))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    seconds, tensorflow, loaded, text = eval(done.stdout)  # noqa: S307 - our own repr
    assert tensorflow is False and seconds < 2.0
    assert loaded == ["edgeshop.cli.dispatch"]  # no command module imported
    listing = text.split("commands:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert [line.split()[0] for line in listing] == list(COMMANDS)
    assert all(len(line.split()) > 3 for line in listing), listing  # each with its summary


@pytest.mark.parametrize("command", COMMANDS)
def test_edgeshop_command_is_the_edgeshop_dash_command_program(command, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    module = importlib.import_module(f"edgeshop.cli.{command}")
    code, via_dispatcher, _ = _exit_output(capsys, lambda: dispatch.main([command, "--help"]))
    assert code == 0
    code, via_alias, _ = _exit_output(capsys, lambda: module.main(["--help"]))
    assert code == 0
    assert via_dispatcher.startswith(f"usage: edgeshop {command} ")  # it names itself as it was called
    # "edgeshop X" and "edgeshop-X" have the same length: the help is the same to the character
    assert via_dispatcher.replace(f"edgeshop {command}", f"edgeshop-{command}") == via_alias
    assert _common.invoked_as is None  # the dispatcher leaves no trace for the next call


def test_every_command_is_installed_under_both_names():
    section = (REPO / "pyproject.toml").read_text().split("[project.scripts]\n", 1)[1].split("\n[", 1)[0]
    scripts = dict(re.findall(r'^([\w-]+) = "([\w.:]+)"', section, flags=re.M))  # tomllib needs Python 3.11
    assert scripts["edgeshop"] == "edgeshop.cli.dispatch:main"
    assert {name: target for name, target in scripts.items() if name != "edgeshop"} == {
        f"edgeshop-{command}": f"edgeshop.cli.{command}:main" for command in COMMANDS}


def test_an_unknown_command_is_one_usage_error(capsys):
    code, out, err = _exit_output(capsys, lambda: dispatch.main(["evaluate", MODEL]))
    assert code == 2 and out == ""
    assert "invalid choice: 'evaluate'" in err and "'eval'" in err


def test_version_of_edgeshop_of_python_m_and_of_every_command(capsys):
    done = subprocess.run([sys.executable, "-m", "edgeshop", "--version"], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert done.returncode == 0 and done.stdout == f"edgeshop {edgeshop.__version__}\n"
    for command in COMMANDS:
        module = importlib.import_module(f"edgeshop.cli.{command}")
        assert _exit_output(capsys, lambda m=module: m.main(["--version"]))[:2] == (
            0, f"edgeshop-{command} {edgeshop.__version__}\n")
    assert _exit_output(capsys, lambda: dispatch.main(["bench", "--version"]))[:2] == (
        0, f"edgeshop bench {edgeshop.__version__}\n")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_has_help_and_required_ones_are_listed_as_required(command):
    parser = _parser(command)
    missing = [action.option_strings or action.dest for action in parser._actions if not action.help]
    assert not missing, f"edgeshop {command}: options without help text: {missing}"
    required = {a.dest for a in parser._actions if a.required and a.option_strings}
    listed = {a.dest for g in parser._action_groups if g.title == _common.REQUIRED_TITLE for a in g._group_actions}
    assert listed == required
    if required:
        assert "required options:" in parser.format_help()


@pytest.mark.parametrize("command", COMMANDS)
def test_the_same_word_for_the_same_thing_in_every_command(command):
    options = {o for action in _parser(command)._actions if action.help != argparse.SUPPRESS
               for o in action.option_strings}
    assert not options & {"--model", "--threshold", "--num-threads"}, "the model is positional; one word each"
    if "--threads" in options:
        threads = next(a for a in _parser(command)._actions if "--threads" in a.option_strings)
        assert threads.metavar in (None, "N")
    writes = options & {"--out", "--json", "--report", "--save-video", "--save-dir"}
    if writes:
        assert "--force" in options, f"edgeshop {command} writes {sorted(writes)} but has no --force"


def test_the_help_walker_sees_an_option_without_help():
    parser = _parser("eval")
    parser.add_argument("--undocumented")
    assert [a.dest for a in parser._actions if not a.help] == ["undocumented"]


def test_web_and_card_take_the_model_as_a_positional_and_still_accept_model(tmp_path, capsys):
    from edgeshop.cli import card, web

    missing = str(tmp_path / "missing.tflite")
    for argv in ([missing, "--port", "0"], ["--port", "0", "--model", missing], [f"--model={missing}"]):
        code, _, err = _exit_output(capsys, lambda a=argv: web.main(a))
        assert code == 2 and f"{missing}: model file not found" in err, (argv, err)
        assert ("--model is deprecated" in err) == any(a.startswith("--model") for a in argv)
    for argv in ([str(tmp_path), MODEL, "--data", PHOTOS], [str(tmp_path), "--model", MODEL, "--data", PHOTOS]):
        code, _, err = _exit_output(capsys, lambda a=argv: card.main(a))
        assert code == 2 and "not a finished edgeshop run directory" in err, (argv, err)
        assert ("--model is deprecated" in err) == ("--model" in argv)
    code, _, err = _exit_output(capsys, lambda: web.main(["--port", "0"]))
    assert code == 2 and "the following arguments are required: model" in err


def test_classify_threshold_is_score_threshold_with_a_warning(tmp_path, capsys):
    import cv2

    from edgeshop.cli import classify

    photo = tmp_path / "disc.png"
    image = np.zeros((64, 64, 3), np.uint8)
    cv2.circle(image, (32, 32), 20, (255, 255, 255), -1)
    cv2.imwrite(str(photo), image)

    def predictions(*flags: str) -> tuple[list, str]:
        code, out, err = _exit_output(capsys, lambda: classify.main([MODEL, str(photo), "--top-k", "3", *flags]))
        assert code == 0, err
        return json.loads(out)["predictions"], err

    everything, _ = predictions()
    cut = (everything[0]["score"] + everything[-1]["score"]) / 2  # between the best and the worst score
    new, quiet = predictions("--score-threshold", str(cut))
    old, warned = predictions("--threshold", str(cut))
    assert 1 <= len(new) < len(everything) and old == new
    assert "--score-threshold" not in quiet
    assert "warning: --threshold is deprecated and will be removed; use --score-threshold" in warned


def test_bench_threads_is_one_count_and_a_list_is_a_deprecated_sweep(tmp_path, capsys):
    from edgeshop.cli import bench

    def threads(*flags: str) -> tuple[list[int], str]:
        out = tmp_path / "bench.json"
        code, _, err = _exit_output(capsys, lambda: bench.main([MODEL, "--runs", "2", "--warmup", "0", *flags,
                                                                 "--json", str(out), "--force"]))
        assert code == 0, err
        result = json.loads(out.read_text())
        return [r["threads"] for r in result.get("sweep", [result])], err

    assert threads() == ([1], "")
    assert threads("--threads", "2") == ([2], "")
    assert threads("--threads-sweep", "1,2") == ([1, 2], "")
    sweep, err = threads("--threads", "1,2")
    assert sweep == [1, 2] and "--threads 1,2 is deprecated and will be removed; use --threads-sweep 1,2" in err
    code, _, err = _exit_output(capsys, lambda: bench.main([MODEL, "--threads", "1", "--threads-sweep", "1,2"]))
    assert code == 2 and "not both" in err


def test_classifier_num_threads_and_rank_threshold_still_work_and_warn():
    from edgeshop import Classifier

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new words warn about nothing
        new = Classifier(MODEL, threads=2, score_threshold=0.1)
    with pytest.warns(DeprecationWarning, match=r"Classifier\(num_threads=\.\.\.\) is deprecated.*use threads="):
        old = Classifier(MODEL, num_threads=2, score_threshold=0.1)
    assert old.threads == new.threads == 2 and new.info["threads"] == 2
    with pytest.warns(DeprecationWarning, match="use Classifier.threads"):
        assert old.num_threads == 2
    with pytest.raises(TypeError, match="pass threads= only"):
        Classifier(MODEL, threads=1, num_threads=2)
    scores = np.array([0.6, 0.3, 0.1], np.float32)
    with pytest.warns(DeprecationWarning, match=r"rank\(threshold=\.\.\.\) is deprecated"):
        ranked = new.rank(scores, threshold=0.25)
    assert ranked == new.rank(scores, score_threshold=0.25) and [p.label for p in ranked] == new.labels[:2]
