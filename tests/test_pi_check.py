"""`make pi-check`: the runtime, installed with `pip install .` in emulated arm64 Debian roots,
classifies like x86. Slow (debootstrap and pip under qemu) and needs root; not run in CI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "tools"))
from pi_check import agreement  # noqa: E402

SUITES = {"bookworm": "3.11.", "trixie": "3.13."}
CPUS = ("cortex-a72", "cortex-a76")


def test_agreement_allows_one_output_step_and_nothing_else():
    step = 1 / 256
    ref = [["a", 0.5], ["b", 0.25], ["c", 0.125]]
    assert agreement([(ref, ref)], step) == (True, "1/1 same labels, 1/1 identical scores")
    one_step = [["a", 0.5 + step], ["b", 0.25], ["c", 0.125]]
    assert agreement([(ref, one_step), (ref, ref)], step)[0]
    assert not agreement([(ref, [["a", 0.5 + 2 * step], ["b", 0.25], ["c", 0.125]])], step)[0]
    swapped = [["a", 0.5], ["c", 0.25], ["b", 0.125]]  # same scores, labels in another order
    assert agreement([(ref, swapped)], step) == (False, "0/1 same labels, 0/1 identical scores")


@pytest.mark.slow
@pytest.mark.timeout(3 * 3600)
@pytest.mark.parametrize("suite", sorted(SUITES))
def test_pi_check_runtime_on_emulated_arm64_matches_x86(tmp_path, suite):
    if os.geteuid() != 0:
        pytest.skip("pi-check needs root (debootstrap, chroot, mounts)")
    out = tmp_path / "pi_check.json"
    result = subprocess.run([sys.executable, "tools/pi_check.py", "--suite", suite, "--json", str(out)], cwd=REPO,
                            capture_output=True, text=True)
    print(result.stdout)  # the table, for `pytest -s`
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "| Debian (Python) | QEMU_CPU" in result.stdout and "all checks passed" in result.stdout
    report = json.loads(out.read_text())
    reference, rows = report["reference"], report["rows"]
    assert reference["machine"] == "x86_64"
    assert [(row["label"].split(",")[0], row["checks"]["cpu"]) for row in rows] == [(suite, cpu) for cpu in CPUS]
    for row in rows:
        probe = row["probe"]
        assert row["failed"] == []
        assert probe["machine"] == "aarch64" and probe["python"].startswith(SUITES[suite])
        assert probe["xnnpack"] == reference["xnnpack"]
        assert probe["edgeshop_file"].startswith("/opt/edgeshop/venv/")  # the pip-installed copy, not the tree
        assert probe["backend"] == "litert"
        assert not probe["tensorflow_installed"] and probe["tensorflow_modules_loaded"] == []
        # the Pi 5's core has the dot-product instructions, the Pi 4's does not: QEMU_CPU took effect
        assert ("asimddp" in probe["cpu_features"]) == (row["checks"]["cpu"] == "cortex-a76")
        for name, ranked in reference["predictions"].items():
            got = probe["predictions"][name]
            assert [label for label, _ in got] == [label for label, _ in ranked], name
            assert max(abs(g[1] - r[1]) for g, r in zip(got, ranked, strict=True)) <= reference["output_scale"], name
