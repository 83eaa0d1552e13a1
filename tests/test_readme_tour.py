"""The README's five-minute tour is run as written: every shell command and every Python block
of its "Five-minute tour" section, from the repository root. The only changes are where outputs
go (a temporary folder instead of runs/ and the working directory) and NEW_PRODUCTS, which the
reader supplies: here a folder of demo photos under a new product name."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import REPO

from edgeshop.cli.demo import DEFAULT_DATA as DEMO_DATA

BIN = Path(sys.executable).parent
TOUR = REPO / "README.md"


def tour_blocks() -> list[tuple[str, str]]:
    """(language, code) of every fenced block in the README's tour section."""
    text = TOUR.read_text(encoding="utf-8")
    section = text.split("## Five-minute tour", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(bash|python)\n(.*?)```", section, flags=re.S)


def shell_commands() -> list[list[str]]:
    commands = []
    for language, code in tour_blocks():
        if language == "bash":
            commands += [shlex.split(line, comments=True) for line in code.splitlines() if line.strip()]
    return [c for c in commands if c]


def subcommand(command: list[str]) -> str:
    """The edgeshop command a tour line runs: `edgeshop classify ...` -> classify (the form the tour
    uses); `edgeshop-classify ...`, its alias, names the same command."""
    return command[1] if command[0] == "edgeshop" else command[0].removeprefix("edgeshop-")


def test_the_tour_has_the_steps_a_new_user_needs():
    assert all(c[0] == "edgeshop" for c in shell_commands()), "the tour uses the one `edgeshop <command>` form"
    names = [subcommand(c) for c in shell_commands()]
    assert names[:1] == ["classify"]
    for step in ("train", "export", "enroll", "web"):
        assert step in names, step
    assert sum(language == "python" for language, _ in tour_blocks()) >= 2


@pytest.mark.parametrize("index", range(2))
def test_the_tour_python_blocks_run(index):
    code = [c for language, c in tour_blocks() if language == "python"][index]
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip(), "the block printed nothing"


def _new_products(root: Path) -> Path:
    """NEW_PRODUCTS as a reader would make it: one folder of photos per new product."""
    product = root / "new" / "Demo-Banana-Pack"
    product.mkdir(parents=True)
    for photo in sorted((DEMO_DATA / "test" / "Banana").glob("*.jpg"))[:5]:
        shutil.copy(photo, product / photo.name)
    return product.parent


def _wait_for(url: str, seconds: float = 60) -> bytes:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                assert response.status == 200
                return response.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_the_tour_shell_commands_run(tmp_path):
    replace = {"runs/quick": str(tmp_path / "quick"), "my_model.tflite": str(tmp_path / "my_model.tflite"),
               "enrolled.tflite": str(tmp_path / "enrolled.tflite"), "NEW_PRODUCTS": str(_new_products(tmp_path)),
               "8000": "8765"}
    for command in shell_commands():
        argv = [replace.get(arg, arg) for arg in command]
        argv[0] = str(BIN / argv[0])
        if subcommand(command) == "web":
            server = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            try:
                assert b"<html" in _wait_for("http://127.0.0.1:8765/").lower()
                assert _wait_for("http://127.0.0.1:8765/model.tflite")[4:8] == b"TFL3"
            finally:
                server.terminate()
                server.wait(timeout=30)
            continue
        done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=1200)
        assert done.returncode == 0, f"{' '.join(command)}\n{done.stderr[-3000:]}"
        if subcommand(command) == "classify":
            assert "Banana" in done.stdout
    assert (tmp_path / "my_model.tflite").stat().st_size > 0 and (tmp_path / "enrolled.tflite").stat().st_size > 0
