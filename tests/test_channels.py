"""Structured (channel) pruning, --prune-channels: whole channels leave the network, the
removal is exact (the narrow model computes what the masked original computes), the export
is a smaller dense model, a killed run resumes inside the phase, and a graph without
removable channels is refused with the reason."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from test_cli import _kill_when, _log_rows

from edgeshop.errors import EdgeshopError

REPO_ARGS = ["--arch", "tiny", "--batch-size", "8", "--lr", "3e-3", "--head-epochs", "0"]


def _pixels(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype(np.float32)


def _lite0(size: int):
    from edgeshop.train.architectures import (
        build_efficientnet_lite0,
        find_pretrained_weights,
        get_architecture,
        load_weights_npz,
    )

    model = build_efficientnet_lite0(7, size)
    load_weights_npz(model, find_pretrained_weights(get_architecture("efficientnet_lite0")))
    return model


def test_groups_of_efficientnet_lite0_are_its_expansions_and_residual_widths_stay():
    from edgeshop.train import channels

    model = _lite0(64)
    groups = channels.find_groups(model)
    producers = [g.producer for g in groups]
    # the stem feeding block 0's depthwise, then every block's expansion (blocks 1-15)
    assert producers == ["stem_conv"] + [f"block{i}_expand_conv" for i in range(1, 16)]
    assert all(g.consumer.endswith("_project_conv") for g in groups)
    # projections write the widths residual Adds join: never removed
    assert not any("project" in name for g in groups for name in g.sliced)


def test_removal_is_exact_the_narrow_model_equals_the_masked_original():
    from edgeshop.train import channels

    model = _lite0(64)
    groups = channels.find_groups(model)
    images = _pixels(4, 64)
    plan = channels.make_plan(model, groups, 0.3, images)
    narrow = channels.prune_channels(model, groups, plan)
    for group in groups:
        kept = len(plan["groups"][group.producer]["kept"])
        assert narrow.get_layer(group.producer).filters == kept < group.width
        assert narrow.get_layer(group.depthwise).get_weights()[0].shape[2] == kept
    assert narrow.count_params() < 0.8 * model.count_params()
    masked = channels.mask_channels(model, groups, plan)
    test = _pixels(3, 64, seed=1)
    narrow_out, masked_out, full_out = (m.predict(test, verbose=0) for m in (narrow, masked, model))
    np.testing.assert_allclose(narrow_out, masked_out, atol=2e-5)
    assert np.abs(full_out - masked_out).max() > 1e-3  # the removed channels did contribute


def test_least_squares_refit_brings_the_pruned_network_closer_and_removal_stays_exact():
    """--reconstruct-channels: each projection refitted on its kept channels moves less
    from the full network's output than plain removal (on images the fit never saw), its
    offset lands in the BatchNorm's moving mean, and the narrow model still computes
    exactly what the refitted masked model computes."""
    from edgeshop.train import channels
    from edgeshop.train._keras import keras

    model = _lite0(64)
    groups = channels.find_groups(model)
    images, unseen = _pixels(16, 64), _pixels(6, 64, seed=3)
    plan = channels.make_plan(model, groups, 0.5, images)
    plain = channels.mask_channels(model, groups, plan)
    refitted, errors = channels.refitted_copy(model, groups, plan, images)
    assert sorted(errors) == sorted(g.producer for g in groups)
    refit = [name for name, e in errors.items() if e["refitted"]]
    # at 64 px the later stages have 16 or 4 positions an image: too few rows, so those keep their weights
    assert 4 <= len(refit) < len(groups) and "block15_expand_conv" not in refit
    # the backbone's features (the 7-class head is freshly initialised, so its scores vary run to run)
    full_f, plain_f, refit_f = (keras.Model(m.inputs, m.get_layer("top_relu").output).predict(unseen, verbose=0)
                                for m in (model, plain, refitted))
    assert np.abs(refit_f - full_f).mean() < 0.5 * np.abs(plain_f - full_f).mean()  # 0.29 here
    refit_out = refitted.predict(unseen, verbose=0)
    moved = [g.producer for g in groups if not np.allclose(model.get_layer(g.consumer.replace("_conv", "_bn"))
                                                           .moving_mean.numpy(),
                                                           refitted.get_layer(g.consumer.replace("_conv", "_bn"))
                                                           .moving_mean.numpy())]
    assert moved == refit
    for group in groups:  # removed channels stay unread
        removed = np.setdiff1d(np.arange(group.width), plan["groups"][group.producer]["kept"])
        assert not refitted.get_layer(group.consumer).get_weights()[0][:, :, removed, :].any()
    narrow = channels.prune_channels(refitted, groups, plan)
    np.testing.assert_allclose(narrow.predict(unseen, verbose=0), refit_out, atol=2e-5)


def test_channels_that_contribute_nothing_are_the_ones_removed():
    """The criterion ranks by contribution: with the consumer's weights for eight channels
    zeroed, exactly those go, and the network's function does not change at all."""
    from edgeshop.train import channels
    from edgeshop.train.architectures import build_tiny

    model = build_tiny(3, 32)
    (group,) = channels.find_groups(model)
    # a random depthwise kernel can be negative everywhere, and after ReLU such a channel is
    # silent too: make every live channel's depthwise positive so only the zeroed ones tie at 0
    depthwise = model.get_layer(group.depthwise)
    depthwise.set_weights([np.abs(w) + 0.01 for w in depthwise.get_weights()])
    consumer = model.get_layer(group.consumer)
    weights = consumer.get_weights()
    dead = [1, 3, 4, 6, 9, 11, 12, 15]
    weights[0][:, :, dead, :] = 0
    consumer.set_weights(weights)
    plan = channels.make_plan(model, [group], 0.5, _pixels(8, 32))
    assert plan["groups"][group.producer]["kept"] == sorted(set(range(16)) - set(dead))
    narrow = channels.prune_channels(model, [group], plan)
    test = _pixels(4, 32, seed=2)
    np.testing.assert_allclose(narrow.predict(test, verbose=0), model.predict(test, verbose=0), atol=1e-6)


def test_an_unreachable_latency_target_is_refused_before_training(synthetic_data, tmp_path, capsys):
    """edgeshop-train --target-latency-ratio: the fastest network the search may reach is
    timed before anything is trained or written."""
    from edgeshop.cli import train as train_cli

    run = tmp_path / "run"
    code = train_cli.main(["--data", str(synthetic_data["train"]), "--out", str(run), *REPO_ARGS, "--image-size", "48",
                           "--epochs", "1", "--target-latency-ratio", "0.2"])
    assert code == 2 and not run.exists()
    assert "--target-latency-ratio 0.2: removing 75% of every group's channels gives" in capsys.readouterr().err


def test_kept_widths_are_multiples_of_eight():
    from edgeshop.train.channels import kept_width

    assert [kept_width(w, 0.3) for w in (8, 16, 96, 144, 1152)] == [8, 8, 64, 104, 808]  # nearest multiple of 8
    assert kept_width(16, 0.5) == 8 and kept_width(96, 0.9) == 8


def test_a_graph_without_removable_channels_is_refused_with_the_reason(synthetic_data, tmp_path):
    from edgeshop.train.config import TrainConfig
    from edgeshop.train.fit import train

    run = tmp_path / "run"
    config = TrainConfig.from_flat(data=str(synthetic_data["train"]), out=str(run), arch="seed_cnn", image_size=48,
                         epochs=1, prune_channels=0.3)
    with pytest.raises(EdgeshopError, match="seed_cnn has no channels that can be removed.*--sparsity"):
        train(config, log=lambda *_: None)
    assert not run.exists()  # refused before the run folder was made
    with pytest.raises(EdgeshopError, match="fraction of channels in \\(0, 1\\)"):
        TrainConfig.from_flat(data="d", out="o", prune_channels=1.0).validate()
    with pytest.raises(EdgeshopError, match="experimental.reconstruct_channels refits what channel pruning leaves"):
        TrainConfig.from_flat(data="d", out="o", reconstruct_channels=True).validate()


@pytest.fixture(scope="module")
def pruned_run(synthetic_data, tmp_path_factory):
    """Tiny net: train, remove half the stem's channels, fine-tune, QAT, int8 export; and
    the same recipe without channel pruning."""
    from edgeshop.train.config import TrainConfig
    from edgeshop.train.exporter import export
    from edgeshop.train.fit import train

    root = tmp_path_factory.mktemp("channels")
    runs = {}
    for name, fraction in (("full", 0.0), ("pruned", 0.5)):
        run = root / name
        config = TrainConfig.from_flat(data=str(synthetic_data["train"]), out=str(run), val_fraction=0.2, arch="tiny",
                             epochs=6, batch_size=16, lr=3e-3, prune_channels=fraction, prune_channels_epochs=2,
                             qat=True, qat_epochs=1, qat_lr=1e-4)
        metrics = train(config, log=lambda *_: None)
        model = root / f"{name}_int8.tflite"
        export(run, model, "int8")
        runs[name] = {"run": run, "metrics": metrics, "model": model}
    return runs


def _tensor_shapes(model_path) -> list[tuple[int, ...]]:
    from edgeshop.runtime.backend import make_interpreter

    _, interpreter = make_interpreter(model_path.read_bytes(), 1)
    return [tuple(d["shape"]) for d in interpreter.get_tensor_details()]


def test_the_exported_model_is_narrower_smaller_and_still_classifies(pruned_run, synthetic_data):
    from edgeshop.data import discover
    from edgeshop.report.model_card_document import summary
    from edgeshop.tflite.modelcard import read_card

    full, pruned = pruned_run["full"], pruned_run["pruned"]
    assert pruned["metrics"]["phases"] == ["train", "prune_channels", "qat"]
    assert json.loads((pruned["run"] / "channels.json").read_text())["groups"]["stem_conv"]["kept"].__len__() == 8
    # the stem's 16-channel activations are gone from the int8 graph: 8 remain
    full_channels = {s[-1] for s in _tensor_shapes(full["model"]) if len(s) == 4 and s[1] == 16}
    pruned_channels = {s[-1] for s in _tensor_shapes(pruned["model"]) if len(s) == 4 and s[1] == 16}
    assert 16 in full_channels and 16 not in pruned_channels and 8 in pruned_channels
    assert pruned["model"].stat().st_size < full["model"].stat().st_size
    card = read_card(pruned["model"].read_bytes())
    assert card.extra["training"]["channels"]["kept"] == 8
    assert card.extra["training"]["prune_channels"] == 0.5
    assert card.extra["training"]["reconstruct_channels"] is False  # plain removal, and the card says so
    assert summary(pruned["model"], discover(synthetic_data["test"]), None)["top1"] > 0.8  # fine-tuning recovered


def test_run_killed_inside_prune_channels_resumes_there(synthetic_data, tmp_path, capsys):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "edgeshop.cli.train", "--data", str(synthetic_data["train"]), "--out", str(run),
           *REPO_ARGS, "--epochs", "2", "--prune-channels", "0.5", "--prune-channels-epochs", "3",
           "--reconstruct-channels", "--prune-channels-average-last-epochs", "3"]
    checkpointed, logged = _kill_when(cmd, run, "prune_channels", 3)
    plan_before = (run / "channels.json").read_text()
    refit = json.loads(plan_before)["reconstruction"]["projections"]["stem_conv"]  # the stem feeds the one group
    assert refit["refitted"]
    from edgeshop.cli import train as train_cli

    capsys.readouterr()
    assert train_cli.main(["--out", str(run), "--resume"]) == 0
    assert "[prune_channels] least squares" not in capsys.readouterr().out  # the checkpoint has the refitted weights
    assert json.loads((run / "config.json").read_text())["experimental"]["reconstruct_channels"] is True
    assert json.loads((run / "card.json").read_text())["extra"]["training"]["reconstruct_channels"] is True
    epochs = [int(r["epoch"]) for r in _log_rows(run) if r["phase"] == "prune_channels"]
    assert epochs[logged:] == list(range(checkpointed + 1, 4)), epochs  # continued, not restarted
    assert (run / "channels.json").read_text() == plan_before  # the same channels, not re-ranked
    state = json.loads((run / "state.json").read_text())
    assert state["completed"] == ["train", "prune_channels"]
    from edgeshop.train.run_model import load_run_model

    assert load_run_model(run, final=False).get_layer("stem_conv").filters == 8
    # the resumed run continued the weight average from its file: each of the 3 epochs in it once, none lost
    with np.load(run / "checkpoints" / "prune_channels" / "average.weights.npz") as average:
        assert (int(average["count"]), int(average["last_epoch"])) == (3, 3)


def test_the_allocation_spends_removals_where_they_cost_least_damage_per_saving():
    """The greedy walk: a group that saves much latency and barely matters is cut to its
    limit before a group whose channels matter is touched, a group that saves nothing is
    cut only after every group that saves something, and the predicted saving reaches what
    was asked."""
    from edgeshop.train.channels import ChannelGroup
    from edgeshop.train.latency_target import MAX_GROUP_FRACTION, allocation_path

    def allocate(groups, savings, damage, wanted_saving):
        """The first state on the walk predicted to save ``wanted_saving`` (or the last one)."""
        path = allocation_path(groups, savings, damage)
        return next((state for state in path if state[1] >= wanted_saving), path[-1])

    def group(name):
        return ChannelGroup(name, (), f"{name}_dw", (), f"{name}_project", 96)

    groups = [group("cheap"), group("costly"), group("useless")]
    savings = {"cheap": 0.10, "costly": 0.10, "useless": -0.001}  # at SAVING_PROBE; noise can be negative
    damage = {"cheap": [0.001, 0.002, 0.004], "costly": [0.2, 0.5, 1.0], "useless": [0.001, 0.002, 0.003]}
    fractions, predicted = allocate(groups, savings, damage, wanted_saving=0.08)
    assert fractions["cheap"] == 0.625 and predicted >= 0.08  # 0.10 at 0.75 removed, pro rata
    assert fractions["costly"] == 0 and fractions["useless"] == 0
    fractions, predicted = allocate(groups, savings, damage, wanted_saving=0.15)
    assert fractions["cheap"] == MAX_GROUP_FRACTION and 0 < fractions["costly"] < MAX_GROUP_FRACTION
    assert predicted >= 0.15 and fractions["useless"] == 0
    fractions, predicted = allocate(groups, savings, damage, wanted_saving=0.9)  # beyond reach
    assert predicted < 0.9 and fractions["costly"] == MAX_GROUP_FRACTION


def test_group_damage_is_zero_for_dead_channels_and_positive_for_live_ones():
    from edgeshop.train import channels
    from edgeshop.train.architectures import build_tiny

    model = build_tiny(3, 32)
    (group,) = channels.find_groups(model)  # 16 channels: half of them leave at 0.5
    depthwise = model.get_layer(group.depthwise)
    depthwise.set_weights([np.abs(w) + 0.01 for w in depthwise.get_weights()])
    consumer = model.get_layer(group.consumer)
    live = consumer.get_weights()
    images = _pixels(8, 32)
    assert channels.group_damage(model, [group], images, (0.5,))[group.producer][0] > 1e-6
    for now, then in zip(consumer.get_weights(), live, strict=True):
        np.testing.assert_array_equal(now, then)  # the model is given back as it was
    dead = [w.copy() for w in live]
    dead[0][:, :, 8:, :] = 0  # half of the channels are read by nobody
    consumer.set_weights(dead)
    assert channels.group_damage(model, [group], images, (0.5,))[group.producer][0] < 1e-9


def _chain_net(size: int = 128, width: int = 128, blocks: int = 4):
    """conv -> depthwise -> conv chains, EfficientNet-Lite's groups in small: quick to
    convert, so the timing search runs in seconds."""
    from edgeshop.train._keras import keras

    layers = keras.layers
    inputs = keras.Input((size, size, 3), name="image")
    x = layers.Conv2D(16, 3, strides=2, padding="same", name="stem")(inputs)
    for i in range(blocks):
        y = layers.ReLU(6.0, name=f"b{i}_relu")(layers.Conv2D(width, 1, name=f"b{i}_expand")(x))
        y = layers.DepthwiseConv2D(3, padding="same", name=f"b{i}_dw")(y)
        x = layers.Conv2D(16, 1, name=f"b{i}_project")(y)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, layers.Dense(5, activation="softmax", name="probs")(x))


def test_a_latency_target_is_met_on_this_machine():
    """--target-latency-ratio: the allocation's answer, converted again and timed on its
    own against the unpruned model, is about as fast as asked (timing noise allowed), and
    an unreachable target is refused with the floor it hit."""
    from edgeshop.train import channels, latency_target

    def build(widths):
        model = _chain_net()
        return channels.narrow_architecture(model, widths) if widths else model

    model = build(None)
    groups = channels.find_groups(model)
    assert [g.producer for g in groups] == [f"b{i}_expand" for i in range(4)]
    images = _pixels(4, 128)
    fractions, record = latency_target.allocate_for_latency(build, model, groups, 0.7, images, log=lambda *_: None)
    assert set(fractions) == set(record["savings"]) == {g.producer for g in groups} and any(fractions.values())
    chosen = next(t for t in record["trials"] if t["step"] == record["chosen_step"])
    assert set(chosen["ratio_by_threads"]) == {"1", "2"}  # the target holds on one core and on two
    assert max(chosen["ratio_by_threads"].values()) == chosen["ratio"] <= 0.7
    reference = latency_target.int8_flatbuffer(build(None), images)
    pruned = latency_target.int8_flatbuffer(build(latency_target.widths_at(groups, fractions)), images)
    for threads in (1, 2):
        assert latency_target.latency_ratio(pruned, reference, threads, runs=100) <= 0.7 + 0.08
    with pytest.raises(EdgeshopError, match="ask for a larger ratio"):
        latency_target.allocate_for_latency(build, model, groups[:1], 0.3, images, log=lambda *_: None)
    with pytest.raises(EdgeshopError, match="drop compression.prune_channels"):
        from edgeshop.train.config import TrainConfig

        TrainConfig.from_flat(data="d", out="o", prune_channels=0.3, target_latency_ratio=0.7).validate()


def test_the_search_clock_gives_the_wall_clock_ratio():
    """The latency search times one-thread invokes with the thread's CPU time (time spent
    descheduled left out); on a quiet machine its ratio is the wall-clock one."""
    import time

    from edgeshop.runtime.bench import time_models
    from edgeshop.train import latency_target

    images = _pixels(2, 128)
    wide = latency_target.int8_flatbuffer(_chain_net(width=256), images)
    narrow = latency_target.int8_flatbuffer(_chain_net(width=64), images)
    ratios = {}
    for clock in (time.perf_counter, time.thread_time):
        stats = time_models({"wide": wide, "narrow": narrow}, 1, 60, clock=clock)
        ratios[clock.__name__] = stats["narrow"].p50_ms / stats["wide"].p50_ms
    assert ratios["thread_time"] < 0.6  # it does measure the work
    assert abs(ratios["thread_time"] - ratios["perf_counter"]) < 0.1, ratios


