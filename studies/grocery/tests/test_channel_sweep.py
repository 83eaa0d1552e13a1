"""The channel-pruning sweep (studies/grocery/channel_sweep.py): how it chooses, branches and
re-measures levels, and the study's channel table and hand-written notes against the committed
studies/grocery/figures/channel_pruning.json."""

from __future__ import annotations

import json
from pathlib import Path

import channel_sweep
import pytest
import readme_block

from .conftest import FIGURES

SWEEP = FIGURES / "channel_pruning.json"


def test_the_sweep_ships_the_most_accurate_level_that_meets_both_targets():
    choose_level = channel_sweep.choose_level

    def level(top1, r1, r2):
        return {"val": {"top1": top1}, "ratio_1t": r1, "ratio_2t": r2}

    figures = {"shipped": level(0.875, 1, 1), "35%": level(0.872, 0.72, 0.70), "45%": level(0.865, 0.64, 0.66),
               "55%": level(0.850, 0.55, 0.58)}
    assert choose_level(figures, ["35%", "45%", "55%"]) == "45%"  # 35% is too slow at 1 thread
    figures["45%"]["val"]["top1"] = 0.84  # now nothing fast loses <= 1.5 points: the most accurate fast one
    assert choose_level(figures, ["35%", "45%", "55%"]) == "55%"
    figures["45%"]["ratio_1t"] = figures["55%"]["ratio_2t"] = 0.9
    assert choose_level(figures, ["35%", "45%", "55%"]) is None


def test_measuring_keeps_the_recorded_figures_of_levels_trained_in_earlier_sessions():
    """--measure re-times the levels whose files are here; a level trained in an earlier session
    keeps its recorded figures and gets that session's provenance (its own, where recorded)."""
    sweep = channel_sweep
    shipped = {"latency_1t": {"p50_ms": 3.751}, "latency_2t": {"p50_ms": 2.084}}
    previous = {"models": {"shipped": shipped,
                           "0.80x": {"val": {"top1": 0.885}},
                           "0.70x": {"val": {"top1": 0.87}, "measured": "on 2026-11-30", "cpu": "AMD EPYC"},
                           "0.67x": {"val": {"top1": 0.83}}},
                "machine": {"cpu": "AMD EPYC 7B13"}, "base_val_top1_float": 0.8851}
    earlier = sweep.earlier_levels(previous, {"0.67x": Path("here.tflite")}, ["0.80x", "0.70x", "0.67x", "0.60x"])
    assert sorted(earlier) == ["0.70x", "0.80x"]  # 0.67x is measured again; 0.60x was never trained
    assert earlier["0.80x"] == {"val": {"top1": 0.885}, "base_val_top1_float": 0.8851, "cpu": "AMD EPYC 7B13",
                                "measured": "in an earlier session", "shipped_p50_ms": [3.75, 2.08]}
    assert earlier["0.70x"]["measured"] == "on 2026-11-30" and earlier["0.70x"]["cpu"] == "AMD EPYC"
    assert "measured" not in previous["models"]["0.80x"]  # the previous record is left as it was
    assert sweep.earlier_levels(None, {}, ["0.80x"]) == {}


def _saved(run: Path):
    from edgeshop.train import TrainConfig

    return TrainConfig.from_saved(json.loads((run / "config.json").read_text()))


def test_a_level_branches_after_its_bases_main_phase_with_its_teachers(tmp_path):
    """A level copies its base's head and train stages (never the base's own QAT), and is
    distilled from the base itself or, for an ensemble-taught level, from the recipe's
    teachers, whose cached logits it takes over from the base."""
    sweep = channel_sweep
    base = tmp_path / "grocery_distilled"
    (base / "stages").mkdir(parents=True)
    for name in sweep.BASE_FILES:
        (base / name).write_text("{}")
    for stage in ("head", "train", "qat"):
        (base / "stages" / f"{stage}.weights.npz").write_bytes(stage.encode())
    (base / "state.json").write_text(json.dumps({"completed": ["head", "train", "qat"], "phase": None}))
    (base / "config.json").write_text(json.dumps({"data": "", "out": str(base), "qat": True,
                                                  "teacher": ["a", "b"]}))
    for name in ("teacher_logits.npz", "teacher_logits_1.npz"):
        (base / name).write_bytes(name.encode())
    recipe = {"qat": True, "teacher": ["x", "y", "z"]}  # the recipe file edited since: the base's teachers count

    run = tmp_path / "grocery_channels_t70_e10_kd"  # a sibling the plain levels must not take caches from
    sweep.branch(base, sweep.Level(0.7, "kd", base=base.name, ensemble_teacher=True), run, recipe)
    assert sorted(p.name for p in (run / "stages").iterdir()) == ["head.weights.npz", "train.weights.npz"]
    assert json.loads((run / "state.json").read_text())["completed"] == ["head", "train"]
    config = _saved(run)
    assert (config.distillation.teacher == ["a", "b"] and config.compression.target_latency_ratio == 0.7
            and config.runtime.out == str(run))
    for name in ("teacher_logits.npz", "teacher_logits_1.npz"):
        assert (run / name).read_bytes() == name.encode()

    plain = tmp_path / "plain"
    sweep.branch(base, sweep.Level(0.7), plain, recipe)
    assert _saved(plain).distillation.teacher == str(base)
    assert not (plain / "teacher_logits.npz").exists()  # the kd level's cache is of other teachers
    sibling = tmp_path / "grocery_channels_t80_e10"
    sibling.mkdir()
    (sibling / "config.json").write_text(json.dumps({"teacher": str(base)}))
    (sibling / "teacher_logits.npz").write_bytes(b"taught by the base")
    again = tmp_path / "plain2"
    sweep.branch(base, sweep.Level(0.7), again, recipe)
    assert (again / "teacher_logits.npz").read_bytes() == b"taught by the base"

    # a level that retrains another level's network: its plan is copied (the fit then skips the search)
    (run / "channels.json").write_text('{"fraction": {"block1_expand_conv": 0.5}}')
    longer = sweep.DISTILLED_LONGER
    assert longer.plan_from == "0.70x-kd" and longer.base == base.name
    again = tmp_path / "longer"
    sweep.branch(base, longer, again, recipe)
    assert (again / "channels.json").read_text() == (run / "channels.json").read_text()
    assert _saved(again).compression.prune_channels_epochs == longer.epochs == 20
    assert sweep.level_run(tmp_path, longer).name == "grocery_channels_t70_e20_kd20"
    refit = sweep.DISTILLED_REFIT  # the same network again, its projections refitted before fine-tuning
    again = tmp_path / "refit"
    sweep.branch(base, refit, again, recipe)
    assert (again / "channels.json").read_text() == (run / "channels.json").read_text()
    config = _saved(again)
    assert config.experimental.reconstruct_channels is True and config.compression.prune_channels_epochs == 10
    assert _saved(run).experimental.reconstruct_channels is False
    smaller = sweep.DISTILLED_256  # resolution and width together: validated and exported at 256 px
    again = tmp_path / "smaller"
    sweep.branch(base, smaller, again, recipe)
    assert _saved(again).model.image_size == smaller.image_size == 256
    assert _saved(run).model.image_size == \
        json.loads((base / "config.json").read_text()).get("image_size")  # the others keep the base's


def test_the_readme_and_card_channel_tables_are_rendered_from_the_committed_sweep():
    """Edit the sweep's figures by hand, or commit channel_pruning.json without re-rendering,
    and this fails: rerun `python studies/grocery/channel_sweep.py --render-only`."""
    text = channel_sweep.render(json.loads(SWEEP.read_text()))
    assert readme_block.read_block("channels").strip() == text.strip()


def test_the_readme_notes_on_the_fast_model_agree_with_the_committed_sweep():
    """The paragraph under the channel table is hand-written: the level it names, its ratios,
    accuracy and drop must be those of studies/grocery/figures/channel_pruning.json (a re-measure that
    changes them fails here until the paragraph is updated)."""
    sweep = json.loads(SWEEP.read_text())
    readme = readme_block.block_file("channels").read_text()
    notes = readme[readme.index("<!-- channels:end -->"):readme.index("### Input resolution")]
    notes = " ".join(notes.split())  # line breaks fall anywhere in a wrapped paragraph
    chosen, models = sweep["chosen"], sweep["models"]
    fast, shipped = models[chosen], models["shipped"]
    assert f"The shipped fast model is now the {chosen} level" in notes
    assert f"reads {fast['ratio_1t']:.3f}x / {fast['ratio_2t']:.3f}x the shipped model in this measurement" in notes
    before = models["0.70x-kd"]
    ratios = f"{before['ratio_1t']:.3f}x / {before['ratio_2t']:.3f}x"
    assert f"reads {ratios} and {100 * before['val']['top1']:.2f}%" in notes
    assert f"This sweep has now tried {len(sweep['levels'])} levels" in notes
    drop = 100 * (shipped["val"]["top1"] - fast["val"]["top1"])
    assert f"scores {100 * fast['val']['top1']:.2f}%" in notes and f"{drop:.2f} points" in notes
    assert ("target is missed" in notes) == (drop > 100 * sweep["target_drop"])
    assert f"int8 {100 * models['0.70x-kd20']['val']['top1']:.2f}%" in notes
    refit = models["0.70x-kd-ls"]
    assert f"scores int8 {100 * refit['val']['top1']:.2f}%" in notes
    paired = refit["drop_vs_plan"]
    low, high = (100 * x for x in paired["interval"])
    assert (f"its float model scores {100 * refit['val_top1_float']:.2f}% against "
            f"{100 * before['val_top1_float']:.2f}%") in notes
    assert f"{100 * paired['drop']:.2f} points lower (paired 95% interval {low:.2f} to {high:.2f}" in notes
    assert f"({refit['refitted_projections'][0]} of {refit['refitted_projections'][1]} projections refitted)" in notes
    described_refit = " ".join(readme[readme.index("With `--reconstruct-channels`"):][:1500].split())
    assert (f"float model still leads, {100 * refit['val_top1_float']:.2f}% against "
            f"{100 * before['val_top1_float']:.2f}%, "
            f"but after QAT its int8 model scores {100 * refit['val']['top1']:.2f}% against "
            f"{100 * before['val']['top1']:.2f}%") in described_refit  # the option's description: the same level
    check = refit["before_fine_tuning"]
    assert f"from {100 * check['removed']:.2f}% to {100 * check['refitted']:.2f}%" in notes
    low, high = (100 * x for x in fast["drop_interval"])
    assert f"runs from {low:.2f} to {high:.2f} points" in notes
    averaged, plain = models["0.85x-kd-256-swa"], models["0.85x-kd-256"]
    swing = plain["fine_tune_val_top1"][-5:]
    assert f"swung between {100 * min(swing):.2f}% and {100 * max(swing):.2f}%" in notes
    paired = averaged["drop_vs_plan"]
    low, high = (100 * x for x in paired["interval"])
    assert (f"The mean scored {100 * averaged['val_top1_averaged']:.2f}% float before QAT against "
            f"{100 * plain['val_top1_float']:.2f}% for the last epoch of 0.85x-kd-256, but int8 "
            f"{100 * averaged['val']['top1']:.2f}% against {100 * plain['val']['top1']:.2f}%: "
            f"{100 * paired['drop']:.2f} points lower, paired 95% interval {low:.2f} to {high:.2f}") in notes
    option = " ".join(readme[readme.index("`--prune-channels-average-last-epochs N`"):].split())
    assert option.startswith("`--prune-channels-average-last-epochs N` keeps the mean")
    assert (f"{100 * averaged['val']['top1']:.2f}% int8 against {100 * plain['val']['top1']:.2f}%"
            in option[:600])  # the option's description quotes the same level
    described = f"{100 * check['removed']:.2f}%\n   val top-1 before fine-tuning and the refit at "
    assert described + f"{100 * check['refitted']:.2f}%" in readme  # the option's description quotes the same check


def test_the_committed_drop_intervals_contain_their_drops():
    """Each interval is shipped (or the plan's level) minus the level, in that order: a
    swapped pair would give an interval around minus the drop, which fails here."""
    models = json.loads(SWEEP.read_text())["models"]
    shipped = models["shipped"]["val"]["top1"]
    measured = [f for f in models.values() if "drop_interval" in f]
    assert len(measured) >= 2
    for f in measured:
        low, high = f["drop_interval"]
        assert low <= shipped - f["val"]["top1"] <= high
    paired = [f for f in models.values() if "drop_vs_plan" in f]
    assert paired
    for f in paired:
        other = models[f["drop_vs_plan"]["against"]]["val"]["top1"]
        assert f["drop_vs_plan"]["drop"] == pytest.approx(other - f["val"]["top1"])
        low, high = f["drop_vs_plan"]["interval"]
        assert low <= f["drop_vs_plan"]["drop"] <= high
