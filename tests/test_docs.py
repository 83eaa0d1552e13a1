"""The user documentation's shape: a README that is a quickstart, a short model card, and a
README whose commands and code actually run (the five-minute tour)."""

from __future__ import annotations

import re

import pytest
from conftest import REPO

README = REPO / "README.md"
CARD = REPO / "models" / "grocery" / "README.md"


@pytest.mark.parametrize("path", [README, CARD], ids=["README", "model card"])
def test_quickstart_documents_stay_short(path):
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 150, f"{path.name}: {len(lines)} lines; move detail to docs/ or studies/"
    long = [i + 1 for i, line in enumerate(lines) if len(line) > 300]
    assert not long, f"{path.name}: lines over 300 characters: {long}"


def test_readme_reaches_classify_my_own_photo_on_the_first_screen():
    first_screen = "\n".join(README.read_text(encoding="utf-8").splitlines()[:50])
    assert "edgeshop classify" in first_screen and "Classifier(" in first_screen


def test_every_doc_link_in_the_readme_points_at_a_file():
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    missing = [t for t in targets if "://" not in t and not (REPO / t).exists()]
    assert targets and not missing, missing


def test_readme_figures_are_what_the_committed_figures_files_render():
    """Edit a figure in the README by hand, or commit new figures without re-rendering, and this
    fails: rerun `python tools/render_docs.py`."""
    import json
    import sys

    sys.path.insert(0, str(REPO / "tools"))
    try:
        import render_docs
        from readme_block import read_block
    finally:
        sys.path.remove(str(REPO / "tools"))
    load = lambda path: json.loads(path.read_text())  # noqa: E731
    assert read_block("figures") == render_docs.figures_block(load(render_docs.BENCH), load(render_docs.CHANNELS))
    assert read_block("recipes") == render_docs.recipes_block(load(render_docs.DEMO), load(render_docs.GROCERY))


def test_readme_latency_names_its_machine_and_cpu_class_and_points_other_cpus_elsewhere():
    """A latency figure is one CPU class's figure: the block names the machine and its class (from
    `make bench`'s record) and sends AVX2/arm64 users to export --for auto and bench."""
    import json
    import sys

    sys.path.insert(0, str(REPO / "tools"))
    try:
        import render_docs
    finally:
        sys.path.remove(str(REPO / "tools"))
    bench = json.loads(render_docs.BENCH.read_text())
    channels = json.loads(render_docs.CHANNELS.read_text())
    bench["machine"] = {**bench["machine"], "cpu": "AMD EPYC", "cores": 2, "cpu_class": "cpu-avx2"}
    block = render_docs.figures_block(bench, channels)
    assert "on one machine, a 2-core AMD EPYC (CPU class `cpu-avx2`)" in block
    assert "--for auto" in block and "`edgeshop bench`" in block
    assert "docs/evaluation.md#which-format-on-which-cpu" in block


def test_the_training_guides_yaml_config_example_loads_and_sets_every_key_it_names(tmp_path):
    """docs/training.md's nested YAML example, loaded as `edgeshop train --config` loads it: a
    misspelt or ungrouped key in the example fails here (unknown key), a value that does not land
    where the file puts it fails the comparison."""
    pytest.importorskip("yaml")
    from edgeshop.train.config import TrainConfig, flatten, read_config_file

    page = (REPO / "docs" / "training.md").read_text(encoding="utf-8")
    examples = re.findall(r"```yaml\n(.*?)```", page, flags=re.S)
    assert len(examples) == 1, "the guide has one YAML config example"
    path = tmp_path / "shop.yaml"
    path.write_text(examples[0], encoding="utf-8")
    values = read_config_file(path)
    assert all(isinstance(group, dict) for group in values.values()), "the example nests every key in its group"
    config = TrainConfig.from_sources(values, {"data": "photos", "out": "runs/shop"}, source=str(path))
    keys = config.to_keys()
    assert {key: keys[key] for key in flatten(values)} == flatten(values)
