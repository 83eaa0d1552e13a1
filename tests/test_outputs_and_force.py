"""--force replaces only edgeshop's own outputs; writes are atomic, keep modes, fail in one line
(issue 34 items 1, 14, 15; issue 35 item 5; issue 37 item 7). docs/outputs-and-force.md."""

from __future__ import annotations

import json
import os
import resource
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import DATA, REPO
from synthetic import make_dataset

from edgeshop._io import RUN_MARKER, check_output_folder, write_bytes_atomic
from edgeshop.cli import bench as bench_cli
from edgeshop.cli import calibrate as calibrate_cli
from edgeshop.cli import enroll as enroll_cli
from edgeshop.cli import eval as eval_cli
from edgeshop.cli import export as export_cli
from edgeshop.cli import train as train_cli
from edgeshop.errors import OutputError

MODEL = str(DATA / "tiny_int8.tflite")
PHOTOS = str(DATA / "synthetic")


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _one_line_error(capsys, *expected: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for text in expected:
        assert text in err, err
    return err


# --- the run folder: --force never deletes what edgeshop did not write -------------------------------
def test_train_force_into_the_folder_holding_the_dataset_deletes_nothing(tmp_path, capsys):
    project = tmp_path / "project"
    make_dataset(project / "photos", per_class=3)
    (project / "notes.txt").write_text("the user's notes")
    before = _tree(project)
    for out in (project, project / "photos"):  # --out contains --data, --out is --data
        assert train_cli.main(["--data", str(project / "photos"), "--out", str(out), "--arch", "tiny",
                               "--force"]) == 2
        _one_line_error(capsys, "the input", "write the output somewhere else")
    assert _tree(project) == before


def test_train_force_refuses_a_folder_that_is_not_an_edgeshop_run(synthetic_data, tmp_path, capsys):
    data = str(synthetic_data["train"])
    other = tmp_path / "someone"
    other.mkdir()
    (other / "thesis.tex").write_text("years of work")
    assert train_cli.main(["--data", data, "--out", str(other), "--arch", "tiny", "--force"]) == 2
    _one_line_error(capsys, "not an edgeshop training run folder", RUN_MARKER)
    # a run folder with a file edgeshop did not write in it: refused, naming the file
    run = tmp_path / "run"
    run.mkdir()
    (run / RUN_MARKER).write_text("{}")
    (run / "config.json").write_text("{}")
    (run / "photo.jpg").write_bytes(b"\xff\xd8 a photo")
    assert train_cli.main(["--data", data, "--out", str(run), "--arch", "tiny", "--force"]) == 2
    _one_line_error(capsys, "photo.jpg", "edgeshop did not write there")
    assert (other / "thesis.tex").read_text() == "years of work" and (run / "photo.jpg").exists()


def test_only_a_runs_own_entries_are_replaced(tmp_path):
    legacy = tmp_path / "legacy"  # a run written before the marker: recognised by its own files
    (legacy / "checkpoints" / "train").mkdir(parents=True)
    for name in ("config.json", "state.json", "metrics.json", "model_int8.tflite", "teacher_logits_1.npz"):
        (legacy / name).write_text("x")
    assert sorted(p.name for p in check_output_folder(legacy, force=True)) == sorted(
        ["checkpoints", "config.json", "metrics.json", "model_int8.tflite", "state.json", "teacher_logits_1.npz"])
    with pytest.raises(OutputError, match="already exists; pass --force"):
        check_output_folder(legacy, force=False)
    (legacy / "state.json").unlink()  # config.json alone: any folder could hold one
    with pytest.raises(OutputError, match="not an edgeshop training run"):
        check_output_folder(legacy, force=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert check_output_folder(empty, force=False) == [] and check_output_folder(tmp_path / "new", force=False) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="--out is a file"):
        check_output_folder(tmp_path / "file", force=True)


def test_train_refuses_bad_settings_in_seconds_without_tensorflow(synthetic_data, tmp_path):
    data = str(synthetic_data["train"])
    code = ("import sys, time; t = time.perf_counter(); from edgeshop.cli.train import main; "
            "codes = [main(a) for a in ARGS]; "
            "print(round(time.perf_counter() - t, 3), 'tensorflow' in sys.modules, codes)")
    cases = [["--data", data, "--arch", "tiny"],  # no --out
             ["--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r")],
             ["--data", data, "--out", str(tmp_path / "r"), "--sparsity", "1.5"],
             ["--data", data, "--out", str(tmp_path / "r"), "--teacher", str(tmp_path / "none")],
             ["--data", data, "--out", data, "--force"]]
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code.replace("ARGS", repr(cases))], capture_output=True,
                            text=True, cwd=REPO, timeout=60)
    wall = time.perf_counter() - started
    seconds, tensorflow, codes = result.stdout.split(maxsplit=2)
    assert (tensorflow, codes.strip()) == ("False", "[2, 2, 2, 2, 2]"), result.stderr
    assert wall < 2.0, f"five refused commands took {wall:.1f} s"
    assert "missing required setting(s): runtime.out (--out)" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "r").exists()


# --- output files ---------------------------------------------------------------------------------------
def test_eval_and_bench_do_not_overwrite_without_force(tmp_path, capsys):
    for name, main, args in (("eval", eval_cli.main, [MODEL, "--data", PHOTOS]),
                             ("bench", bench_cli.main, [MODEL, "--runs", "2", "--warmup", "0"])):
        target = tmp_path / f"{name}.json"
        target.write_text('{"kept": true}')
        assert main([*args, "--json", str(target)]) == 2
        _one_line_error(capsys, "already exists; pass --force")
        assert target.read_text() == '{"kept": true}'
        assert main([*args, "--json", str(target), "--force"]) == 0
        assert "kept" not in json.loads(target.read_text())
        capsys.readouterr()
        notes = tmp_path / f"{name}-notes.json"  # --force replaces a JSON file only
        notes.write_text("my notes")
        assert main([*args, "--json", str(notes), "--force"]) == 2
        _one_line_error(capsys, "not a JSON file", "--force only replaces")
        assert notes.read_text() == "my notes"


def test_model_outputs_never_replace_an_input_or_a_non_model(tmp_path, capsys):
    model = tmp_path / "model.tflite"
    shutil.copy(MODEL, model)
    original = model.read_bytes()
    assert calibrate_cli.main([str(model), "--data", PHOTOS, "--out", str(model), "--force"]) == 2
    _one_line_error(capsys, "--out is the input")
    assert enroll_cli.main([str(model), "--remove", "bar", "--out", str(model), "--force"]) == 2
    _one_line_error(capsys, "--out is the input")
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0 a holiday photo")
    assert enroll_cli.main([str(model), "--remove", "bar", "--out", str(photo), "--force"]) == 2
    _one_line_error(capsys, "not an edgeshop/TFLite model")
    assert model.read_bytes() == original and photo.read_bytes() == b"\xff\xd8\xff\xe0 a holiday photo"
    assert export_cli.main([str(tmp_path), "--int8", "--out", str(tmp_path), "--force"]) == 2
    _one_line_error(capsys, "--out is the input")


def test_write_failures_are_one_line_and_write_nothing(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    out = tmp_path / "model.tflite"
    cases = [(["--out", str(tmp_path)], "is a folder"),
             (["--out", str(tmp_path / "file" / "m.tflite")], "file is a file, not a folder"),
             # --json a folder: refused before the model is written, not after
             (["--out", str(out), "--json", str(tmp_path)], "--json is a folder")]
    for extra, expected in cases:
        assert enroll_cli.main([MODEL, "--remove", "bar", *extra]) == 2
        _one_line_error(capsys, expected)
    assert not out.exists()
    with pytest.raises(OutputError, match="is a folder; give a file name; nothing was written"):
        write_bytes_atomic(tmp_path, b"data")
    with pytest.raises(OutputError, match="file is a file, not a folder"):
        write_bytes_atomic(tmp_path / "file" / "x", b"data")


def _limited(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    return apply


def test_a_file_too_large_keeps_the_previous_output(tmp_path):
    target = tmp_path / "bench.json"
    target.write_text('{"previous": true}')  # the previous output, replaced with --force
    result = subprocess.run([sys.executable, "-m", "edgeshop.cli.bench", MODEL, "--runs", "2", "--json", str(target),
                             "--force"], capture_output=True, text=True, cwd=REPO, timeout=120,
                            preexec_fn=_limited(64))  # the results are ~1 KB
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(f"edgeshop-bench: error: {target}: cannot be written: file too large")
    assert "the existing file is kept" in result.stderr
    assert target.read_text() == '{"previous": true}' and [p.name for p in tmp_path.iterdir()] == [target.name]
    # a temporary file meeting the limit (enrolment checks its result from one): one line too
    result = subprocess.run([sys.executable, "-m", "edgeshop.cli.enroll", MODEL, "--remove", "bar", "--out",
                             str(tmp_path / "enrolled.tflite")], capture_output=True, text=True, cwd=REPO,
                            timeout=120, preexec_fn=_limited(4096))  # the model is ~19 KB
    assert result.returncode == 2 and "File too large" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "enrolled.tflite").exists()


def test_a_full_disk_keeps_the_previous_output(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        target = disk / "enrolled.tflite"
        shutil.copy(MODEL, target)
        # fill the disk to the last block
        with open(disk / "filler", "wb", buffering=0) as filler, pytest.raises(OSError):
            while True:
                filler.write(b"\0" * 4096)
        previous = target.read_bytes()
        result = subprocess.run([sys.executable, "-m", "edgeshop.cli.enroll", MODEL, "--remove", "bar", "--out",
                                 str(target), "--force"], capture_output=True, text=True, cwd=REPO, timeout=120)
        assert result.returncode == 2, result.stderr
        assert "no space left on the device" in result.stderr and "Traceback" not in result.stderr
        assert target.read_bytes() == previous
        assert sorted(p.name for p in disk.iterdir()) == ["enrolled.tflite", "filler"]  # no partial file
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_outputs_respect_the_umask_and_keep_a_replaced_files_mode(tmp_path):
    old = os.umask(0o027)
    try:
        write_bytes_atomic(tmp_path / "new.json", b"{}")
        kept = tmp_path / "shared.json"
        kept.write_bytes(b"{}")
        kept.chmod(0o664)
        write_bytes_atomic(kept, b"[]")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == 0o640
    assert stat.S_IMODE(kept.stat().st_mode) == 0o664 and kept.read_bytes() == b"[]"


def test_reexport_of_a_device_says_what_it_is(tmp_path, capsys):
    assert export_cli.main(["--reexport", "/dev/zero", "--out", str(tmp_path / "m.tflite")]) == 2
    err = _one_line_error(capsys, "/dev/zero", "is not a file")
    assert "not found" not in err


# --- messages ------------------------------------------------------------------------------------------
def test_runtime_commands_are_quiet_unless_verbose(tmp_path):
    command = [sys.executable, "-m", "edgeshop.cli.classify", MODEL, str(DATA / "synthetic" / "bar")]
    quiet = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=120)
    loud = subprocess.run([*command, "-v"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert quiet.returncode == loud.returncode == 0, quiet.stderr + loud.stderr
    assert "XNNPACK" not in quiet.stderr and quiet.stdout.count("\n") == loud.stdout.count("\n") > 0
    assert "Created TensorFlow Lite XNNPACK delegate" in loud.stderr  # hidden, not gone


@pytest.mark.parametrize(("flag", "expected"), [
    (["--top-k", "0"], "--top-k must be >= 1"),
    (["--top-k", "9"], "knows 3 products"),
    (["--score-threshold", "1.5"], "--score-threshold is a score in [0, 1]")])
def test_classify_refuses_top_k_and_threshold_it_cannot_honour(flag, expected, capsys):
    from edgeshop.cli import classify as classify_cli

    try:
        code = classify_cli.main([MODEL, PHOTOS, *flag])
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    assert code == 2
    out, err = capsys.readouterr()
    assert expected in err and out == "" and "Traceback" not in err


def test_no_python_api_names_in_command_messages(tmp_path, capsys):
    target = tmp_path / "out.json"
    target.write_text("{}")
    assert bench_cli.main([MODEL, "--runs", "1", "--json", str(target)]) == 2
    err = _one_line_error(capsys, "pass --force")
    assert "force=True" not in err


def test_hidden_chatter_drops_the_libraries_lines_and_keeps_real_errors():
    lines = ["WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
             "I0000 00:00:1796542995.567145    8547 port.cc:153] oneDNN custom operations are on.",
             "E0000 00:00:1796543000.446025    8547 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error",
             "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
             "E0000 00:00:1796543000.446025    8547 kernel.cc:12] a real failure", "a line of the model's own",
             "INFO: an application's own log line, written while the block runs"]
    code = ("import os, sys; from edgeshop.native_logs import hidden_chatter, set_verbose; "
            "set_verbose(sys.argv[1] == '1'); "
            "exec('with hidden_chatter():\\n    os.write(2, sys.argv[2].encode())')")
    for verbose, expected in (("0", lines[4:]), ("1", lines)):
        result = subprocess.run([sys.executable, "-c", code, verbose, "\n".join(lines) + "\n"], capture_output=True,
                                text=True, cwd=REPO, timeout=60)
        assert result.stderr.splitlines() == expected


def test_every_command_refuses_bad_paths_before_importing_tensorflow(tmp_path):
    missing = str(tmp_path / "missing")
    cases = [("export", [missing, "--int8", "--out", str(tmp_path / "m.tflite")], "not an edgeshop run directory"),
             ("export", ["--reexport", "/dev/zero", "--out", str(tmp_path / "m.tflite")], "is not a file"),
             ("compare", [missing, "--data", PHOTOS, "--out", str(tmp_path / "c")], "not an edgeshop run directory"),
             ("demo", ["--data", missing, "--out", str(tmp_path / "d")], "dataset path does not exist"),
             ("calibrate", [missing, "--data", PHOTOS, "--out", str(tmp_path / "m.tflite")], "model file not found"),
             ("enroll", [MODEL, "--out", str(tmp_path / "m.tflite")], "nothing to do"),
             ("eval", [MODEL, "--data", missing], "dataset path does not exist"),
             ("card", [missing, MODEL, "--data", PHOTOS], "not a finished edgeshop run directory")]
    code = ("import contextlib, io, sys, time, importlib; t = time.perf_counter(); results = []\n"
            "for name, args, _ in CASES:\n"
            "    err = io.StringIO()\n"
            "    with contextlib.redirect_stderr(err):\n"
            "        results.append((importlib.import_module('edgeshop.cli.' + name).main(args), err.getvalue()))\n"
            "print(repr((round(time.perf_counter() - t, 2), 'tensorflow' in sys.modules, results)))")
    result = subprocess.run([sys.executable, "-c", code.replace("CASES", repr(cases))], capture_output=True,
                            text=True, cwd=REPO, timeout=60)
    seconds, tensorflow, results = eval(result.stdout)  # noqa: S307 - our own repr
    assert tensorflow is False, result.stderr
    for (name, _, expected), (code_, err) in zip(cases, results, strict=True):
        assert code_ == 2 and expected in err and len(err.strip().splitlines()) == 1, (name, err)
    assert seconds < 2.0 * len(cases), f"{len(cases)} refusals took {seconds} s"


def test_hidden_chatter_from_many_threads_gives_stderr_back():
    code = ("import os, sys, threading, time; from edgeshop.native_logs import hidden_chatter, set_verbose\n"
            "set_verbose(False); before = os.fstat(2).st_ino\n"
            "def work(i):\n"
            "    for _ in range(200):\n"
            "        with hidden_chatter():\n"
            "            time.sleep(0.0002)  # let another thread in while fd 2 is redirected\n"
            "            os.write(2, b'INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n')\n"
            "threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]\n"
            "[t.start() for t in threads]; [t.join() for t in threads]\n"
            "os.write(2, b'still here\\n'); print(os.fstat(2).st_ino == before)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.stdout.strip() == "True" and result.stderr == "still here\n", result.stderr[-500:]


def test_tensorflows_python_warnings_are_hidden_unless_verbose():
    code = ("import sys, warnings; from edgeshop.native_logs import set_verbose; set_verbose(sys.argv[1] == '1'); "
            "warnings.warn_explicit('Statistics for quantized inputs were expected', UserWarning, 'convert.py', 846, "
            "module='tensorflow.lite.python.convert'); "
            "warnings.warn_explicit('an edgeshop warning', UserWarning, 'x.py', 1, module='edgeshop.x')")
    quiet, loud = (subprocess.run([sys.executable, "-c", code, flag], capture_output=True, text=True, cwd=REPO,
                                  timeout=60).stderr for flag in ("0", "1"))
    assert "Statistics" not in quiet and "an edgeshop warning" in quiet
    assert "Statistics" in loud and "an edgeshop warning" in loud


def test_train_out_that_is_a_file_or_below_one_is_one_line(synthetic_data, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    for out, expected in ((notes, "--out is a file"), (notes / "run", "notes.txt is a file, not a folder")):
        assert train_cli.main(["--data", str(synthetic_data["train"]), "--out", str(out), "--arch", "tiny",
                               "--force"]) == 2
        _one_line_error(capsys, expected)
    assert notes.read_text() == "mine"


def test_classify_names_its_options_in_setting_errors(tmp_path):
    """--unknown-threshold outside [0, 1] is refused (2 marked every frame unknown, a negative value
    turned the check off), and smoothing errors name the options, not the Python parameters."""
    photo = REPO / "edgeshop" / "demo_data" / "test" / "Kiwi"
    for argv, expected in ((["--unknown-threshold", "2"], "--unknown-threshold is a score in [0, 1]"),
                           (["--smooth", "ema", "--alpha", "0"], "--alpha")):
        done = subprocess.run([sys.executable, "-m", "edgeshop.cli.classify", str(DATA / "tiny_int8.tflite"),
                               str(photo), *argv], capture_output=True, text=True, cwd=REPO, timeout=120)
        assert done.returncode == 2 and expected in done.stderr, done.stderr


def test_a_training_without_v_prints_no_library_chatter(tmp_path):
    """On a CPU machine TensorFlow logs 'failed call to cuInit' at its ERROR level and LiteRT its
    XNNPACK line: a command without -v shows neither (nor anything else on stderr)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-m", "edgeshop.cli.train", "--data", PHOTOS, "--out", str(tmp_path / "run"),
                           "--arch", "tiny", "--image-size", "64", "--epochs", "1"],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr == "", done.stderr[-2000:]
