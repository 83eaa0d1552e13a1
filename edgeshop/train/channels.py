"""Structured (channel) pruning: remove whole channels, so the network itself gets smaller.

Magnitude pruning leaves a dense network full of zeros, which no int8 runtime runs faster.
This module removes channels for real and returns a narrower Keras model, so every
runtime (LiteRT, MediaPipe, the browser) runs a smaller dense network.

Which channels can go is read off the graph (a small dependency analysis in the spirit of
DepGraph, Fang et al. 2023): a *group* is a convolution whose output channels pass only
through channel-wise layers (BatchNorm, ReLU) into one depthwise convolution and then,
again channel-wise, into one ordinary convolution, with no other reader on the way. In
EfficientNet-Lite these are the expansion channels of each inverted-residual block (the
expand conv's outputs, the depthwise channels and the projection's inputs) and the stem's
channels feeding block 0. Widths joined by a residual Add are never in a group, so they stay.

Channels are ranked by their measured contribution to the next layer: the mean absolute
activation entering the consumer convolution (over the representative images) times the L1 norm
of the consumer's weights reading that channel. The lowest are removed: the same fraction
in every group (--prune-channels), or per-group fractions chosen for a latency target
(train/latency_target.py, which uses group_damage below). Kept widths are multiples of 8,
the SIMD width int8 kernels like.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeshop.errors import EdgeshopError
from edgeshop.train._keras import keras

CRITERION = "mean |activation| x L1 of the consumer's weights"
CHANNEL_WISE = ("BatchNormalization", "ReLU", "Activation")
WIDTH_MULTIPLE = 8
RECONSTRUCTION_POSITIONS = 256  # spatial positions sampled per image: rows of the least-squares fit
RECONSTRUCTION_RIDGE = 1e-3  # relative to the mean diagonal of the normal equations
MIN_ROWS_PER_UNKNOWN = 4  # a projection is refitted only from at least this many rows per kept channel


@dataclass(frozen=True)
class ChannelGroup:
    """Layers that share one set of channels: remove channel c from all of them at once."""

    producer: str  # Conv2D whose output channels these are
    producer_followers: tuple[str, ...]  # channel-wise layers between producer and depthwise
    depthwise: str
    depthwise_followers: tuple[str, ...]  # channel-wise layers between depthwise and consumer
    consumer: str  # Conv2D reading the channels (its input axis is sliced)
    width: int

    @property
    def sliced(self) -> tuple[str, ...]:
        """Layers whose parameters have one entry per channel of the group."""
        return (self.producer, *self.producer_followers, self.depthwise, *self.depthwise_followers)


def _graph(model: keras.Model) -> tuple[dict[str, dict], dict[str, list[str]], set[str]]:
    """(layer config by name, readers of each layer's output, names of the model's outputs)."""
    config = model.get_config()
    layers = {entry["name"]: entry for entry in config["layers"]}
    readers: dict[str, list[str]] = {name: [] for name in layers}
    for entry in config["layers"]:
        for node in entry["inbound_nodes"]:
            for inbound in node:
                readers[inbound[0]].append(entry["name"])
    outputs = {out[0] for out in config["output_layers"]}
    return layers, readers, outputs


def find_groups(model: keras.Model) -> list[ChannelGroup]:
    """Every channel group of ``model`` (see the module docstring), in graph order."""
    layers, readers, outputs = _graph(model)

    def single_reader(name: str) -> str | None:
        if name in outputs or len(readers[name]) != 1:
            return None
        return readers[name][0]

    def walk_channel_wise(name: str) -> tuple[list[str], str | None]:
        """Follow channel-wise layers from ``name``; (those layers, first other layer)."""
        passed = []
        nxt = single_reader(name)
        while nxt is not None and layers[nxt]["class_name"] in CHANNEL_WISE:
            passed.append(nxt)
            nxt = single_reader(nxt)
        return passed, nxt

    groups = []
    for name, entry in layers.items():
        if entry["class_name"] != "Conv2D" or entry["config"].get("groups", 1) != 1:
            continue
        followers, depthwise = walk_channel_wise(name)
        if depthwise is None or layers[depthwise]["class_name"] != "DepthwiseConv2D":
            continue
        if layers[depthwise]["config"].get("depth_multiplier", 1) != 1:
            continue
        dw_followers, consumer = walk_channel_wise(depthwise)
        if consumer is None or layers[consumer]["class_name"] != "Conv2D" \
                or layers[consumer]["config"].get("groups", 1) != 1:
            continue
        groups.append(ChannelGroup(name, tuple(followers), depthwise, tuple(dw_followers), consumer,
                                   int(entry["config"]["filters"])))
    return groups


def require_groups(model: keras.Model, arch_name: str) -> list[ChannelGroup]:
    """The groups of ``model``, or a clear refusal naming why nothing can be removed."""
    groups = find_groups(model)
    if not groups:
        kinds = [type(layer).__name__ for layer in model.layers]
        convs, depthwise = kinds.count("Conv2D"), kinds.count("DepthwiseConv2D")
        raise EdgeshopError(
            f"--prune-channels: {arch_name} has no channels that can be removed exactly: it needs a convolution "
            "whose channels pass through a depthwise convolution into one other convolution and nowhere else "
            f"(EfficientNet-Lite's expansion channels); this graph has {convs} convolution(s) and {depthwise} "
            "depthwise one(s) and no such chain. Use --sparsity (magnitude pruning) for this architecture")
    return groups


def kept_width(width: int, fraction: float) -> int:
    """Channels kept when removing ``fraction`` of ``width``: a multiple of 8 (never fewer
    than 8, never more than the width)."""
    if fraction <= 0 or width <= WIDTH_MULTIPLE:
        return width  # untouched groups keep their width even when it is no multiple of 8
    keep = width * (1.0 - fraction)
    return int(min(width, max(WIDTH_MULTIPLE, WIDTH_MULTIPLE * round(keep / WIDTH_MULTIPLE))))


def channel_scores(model: keras.Model, groups: list[ChannelGroup], images: np.ndarray,
                   batch_size: int = 8) -> dict[str, np.ndarray]:
    """Per group (by producer name), each channel's score: mean |activation| entering the
    consumer over ``images`` x the L1 norm of the consumer's kernel slice for it."""
    entering = [model.get_layer(g.depthwise_followers[-1] if g.depthwise_followers else g.depthwise).output
                for g in groups]
    probe = keras.Model(model.inputs, entering)
    sums = [np.zeros(g.width, np.float64) for g in groups]
    for start in range(0, len(images), batch_size):
        outputs = probe(images[start:start + batch_size].astype(np.float32), training=False)
        outputs = outputs if isinstance(outputs, list) else [outputs]
        for i, out in enumerate(outputs):
            sums[i] += np.abs(out.numpy()).mean(axis=(1, 2)).sum(axis=0)
    scores = {}
    for group, total in zip(groups, sums, strict=True):
        kernel = model.get_layer(group.consumer).get_weights()[0]  # (kh, kw, in, out)
        scores[group.producer] = total / max(len(images), 1) * np.abs(kernel).sum(axis=(0, 1, 3))
    return scores


def make_plan(model: keras.Model, groups: list[ChannelGroup], fraction: float | dict[str, float],
              images: np.ndarray) -> dict[str, Any]:
    """Which channels each group keeps (the highest-scoring, in their original order).
    ``fraction``: removed from every group, or {producer: fraction} per group."""
    per_group = fraction if isinstance(fraction, dict) else {g.producer: fraction for g in groups}
    if not all(0 <= f < 1 for f in per_group.values()) or not any(per_group.values()):
        raise EdgeshopError(f"--prune-channels must be a fraction in (0, 1), e.g. 0.3; got {fraction}")
    scores = channel_scores(model, groups, images)
    plan = {"fraction": fraction, "criterion": CRITERION, "images": int(len(images)), "groups": {}}
    for group in groups:
        keep = kept_width(group.width, per_group.get(group.producer, 0.0))
        order = np.argsort(-scores[group.producer], kind="stable")
        plan["groups"][group.producer] = {"width": group.width,
                                          "kept": sorted(int(i) for i in order[:keep])}
    return plan


def group_damage(model: keras.Model, groups: list[ChannelGroup], images: np.ndarray,
                 fractions: tuple[float, ...]) -> dict[str, list[float]]:
    """How much the network's output changes when one group alone loses each of
    ``fractions`` of its channels (the lowest-ranked, as make_plan removes them): mean
    KL(full || pruned) of the class probabilities over ``images``. The pruned function is
    computed by zeroing the consumer's weights for the removed channels, which is exact
    (see mask_channels), then the weights are put back."""
    scores = channel_scores(model, groups, images)

    def probabilities() -> np.ndarray:
        out = [model(images[i:i + 16].astype(np.float32), training=False).numpy() for i in range(0, len(images), 16)]
        return np.clip(np.concatenate(out).astype(np.float64), 1e-8, 1.0)

    reference = probabilities()
    damage: dict[str, list[float]] = {}
    for group in groups:
        consumer = model.get_layer(group.consumer)
        original = consumer.get_weights()
        lowest_first = np.argsort(scores[group.producer], kind="stable")
        damage[group.producer] = []
        try:
            for fraction in fractions:
                removed = lowest_first[:group.width - kept_width(group.width, fraction)]
                weights = [w.copy() for w in original]
                weights[0][:, :, removed, :] = 0
                consumer.set_weights(weights)
                pruned = probabilities()
                damage[group.producer].append(float((reference * np.log(reference / pruned)).sum(axis=1).mean()))
        finally:
            consumer.set_weights(original)
    return damage


def plan_widths(plan: dict[str, Any]) -> dict[str, int]:
    """{producer conv: kept filters}: all a model builder needs to rebuild the narrow net."""
    return {name: len(entry["kept"]) for name, entry in plan["groups"].items()}


def narrow_architecture(model: keras.Model, widths: dict[str, int]) -> keras.Model:
    """A fresh model like ``model`` whose producer convolutions have ``widths`` filters
    (depthwise and BatchNorm layers take their width from their input)."""
    config = model.get_config()
    found = set()
    for entry in config["layers"]:
        if entry["name"] in widths:
            entry["config"]["filters"] = int(widths[entry["name"]])
            found.add(entry["name"])
    missing = sorted(set(widths) - found)
    if missing:
        raise EdgeshopError(f"the channel plan names layers {missing[:3]} this architecture does not have; "
                            "was the run's architecture changed?")
    return keras.Model.from_config(config)


def _slice_layer(layer_class: str, weights: list[np.ndarray], kept: np.ndarray) -> list[np.ndarray]:
    """A per-channel layer's weights restricted to the ``kept`` channels (output axis)."""
    if layer_class == "Conv2D":  # kernel (kh, kw, in, out)[, bias (out,)]
        return [weights[0][..., kept], *[b[kept] for b in weights[1:]]]
    if layer_class == "DepthwiseConv2D":  # kernel (kh, kw, channels, 1)[, bias]
        return [weights[0][:, :, kept, :], *[b[kept] for b in weights[1:]]]
    return [w[kept] for w in weights]  # BatchNorm: gamma, beta, mean, variance


def prune_channels(model: keras.Model, groups: list[ChannelGroup], plan: dict[str, Any]) -> keras.Model:
    """The narrower model of ``plan`` carrying ``model``'s weights: exactly the function of
    ``model`` with the removed channels masked (mask_channels)."""
    narrow = narrow_architecture(model, plan_widths(plan))
    by_layer: dict[str, list[np.ndarray]] = {}
    for group in groups:
        kept = np.asarray(plan["groups"][group.producer]["kept"])
        for name in group.sliced:
            layer = model.get_layer(name)
            # a layer may be the consumer of one group and the producer of the next: slice what is sliced already
            by_layer[name] = _slice_layer(type(layer).__name__, by_layer.get(name, layer.get_weights()), kept)
        consumer = by_layer.get(group.consumer, model.get_layer(group.consumer).get_weights())
        by_layer[group.consumer] = [consumer[0][:, :, kept, :], *consumer[1:]]
    for layer in narrow.layers:
        source = by_layer.get(layer.name)
        layer.set_weights(source if source is not None else model.get_layer(layer.name).get_weights())
    return narrow


def mask_channels(model: keras.Model, groups: list[ChannelGroup], plan: dict[str, Any]) -> keras.Model:
    """A copy of ``model`` at full width in which the removed channels contribute nothing
    (the consumer's weights reading them are zero): what prune_channels must equal."""
    masked = keras.models.clone_model(model)
    masked.set_weights(model.get_weights())
    for group in groups:
        removed = np.setdiff1d(np.arange(group.width), plan["groups"][group.producer]["kept"])
        layer = masked.get_layer(group.consumer)
        weights = layer.get_weights()
        weights[0][:, :, removed, :] = 0
        layer.set_weights(weights)
    return masked


def reconstruct_consumers(full: keras.Model, masked: keras.Model, groups: list[ChannelGroup],
                          plan: dict[str, Any], images: np.ndarray, positions: int = RECONSTRUCTION_POSITIONS,
                          seed: int = 0) -> dict[str, dict[str, float]]:
    """Refit, in ``masked`` (mask_channels of ``full``), each consumer's weights on its kept
    channels so its output stays as close as least squares allows to the full network's
    (He, Zhang & Sun, ICCV 2017; ThiNet, Luo et al. 2017): plain removal drops the removed
    channels' share of every output; the kept channels can carry most of it. Groups are
    refitted in graph order, each from the inputs of the network refitted so far, so an
    earlier group's error is corrected downstream. The fit's constant term goes into the
    consumer's bias or, without one, the moving mean of the BatchNorm reading it. Only 1x1
    consumers (EfficientNet-Lite's projections) are refitted, and only where the fit has
    enough rows and, fitted on half the images, lowers the error on the other half; the
    others keep their weights. Returns, for every group that lost channels and has a 1x1
    consumer, the mean squared error of its output on those held-out rows with the
    channels removed ("before") and refitted ("after"), and whether it was refitted."""
    rng = np.random.default_rng(seed)
    errors: dict[str, dict[str, float]] = {}
    for group in groups:
        kept = np.asarray(plan["groups"][group.producer]["kept"])
        kernel = full.get_layer(group.consumer).get_weights()[0]
        if len(kept) == group.width or kernel.shape[:2] != (1, 1):
            continue
        entering = group.depthwise_followers[-1] if group.depthwise_followers else group.depthwise
        positions_state = rng.bit_generator.state  # both networks sampled at the same positions
        target_inputs = _sampled_activations(full, entering, images, positions, rng, positions_state)
        inputs = _sampled_activations(masked, entering, images, positions, rng, positions_state)
        target = target_inputs @ kernel[0, 0].astype(np.float64)
        absorber = _constant_absorber(masked, group.consumer)
        design = inputs[:, kept]
        if absorber is not None:  # a constant column: the fit's offset
            design = np.concatenate([design, np.ones((len(design), 1))], axis=1)
        # decided on images the fit did not see: fitted on the first half of the images, the
        # refit must beat plain removal on the second half (rows run image by image)
        split = len(design) // len(images) * (len(images) // 2)
        plain = inputs[split:, kept] @ kernel[0, 0, kept]
        before = float(np.mean((plain - target[split:]) ** 2))
        errors[group.producer] = {"before": before, "after": before, "refitted": False}
        if split < MIN_ROWS_PER_UNKNOWN * design.shape[1]:
            continue  # too few positions (a small input's last stages): the fit would follow noise
        after = float(np.mean((design[split:] @ _ridge_fit(design[:split], target[:split]) - target[split:]) ** 2))
        if after >= before:
            errors[group.producer]["after"] = after
            continue
        solution = _ridge_fit(design, target)  # the weights written: fitted on every row
        errors[group.producer].update(after=after, refitted=True)
        consumer = masked.get_layer(group.consumer)
        weights = consumer.get_weights()
        weights[0] = np.zeros_like(weights[0])
        weights[0][0, 0, kept] = solution[:len(kept)]
        consumer.set_weights(weights)
        if absorber is not None:
            absorber(solution[len(kept)])
    return errors


def refitted_copy(model: keras.Model, groups: list[ChannelGroup], plan: dict[str, Any],
                  images: np.ndarray) -> tuple[keras.Model, dict[str, dict[str, float]]]:
    """``model`` with the plan's channels masked and its projections refitted
    (reconstruct_consumers), and the refit's errors: what --reconstruct-channels narrows."""
    masked = mask_channels(model, groups, plan)
    return masked, reconstruct_consumers(model, masked, groups, plan, images)


def _ridge_fit(design: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least squares with a small ridge (relative to the design's scale), which keeps
    near-collinear channels stable."""
    gram = design.T @ design
    ridge = RECONSTRUCTION_RIDGE * np.trace(gram) / len(gram)
    return np.linalg.solve(gram + ridge * np.eye(len(gram)), design.T @ target)


def _sampled_activations(model: keras.Model, layer: str, images: np.ndarray, positions: int,
                         rng: np.random.Generator, state: dict | None = None, batch_size: int = 16) -> np.ndarray:
    """``layer``'s output at ``positions`` random spatial positions per image, as rows
    (positions drawn from ``rng``, restarted at ``state`` when given)."""
    if state is not None:
        rng.bit_generator.state = state
    probe = keras.Model(model.inputs, model.get_layer(layer).output)
    rows = []
    for start in range(0, len(images), batch_size):
        out = probe(images[start:start + batch_size].astype(np.float32), training=False).numpy()
        n, h, w, c = out.shape
        chosen = rng.choice(h * w, size=min(h * w, positions), replace=False)
        rows.append(out.reshape(n, h * w, c)[:, chosen].reshape(-1, c))
    return np.concatenate(rows).astype(np.float64)


def _constant_absorber(model: keras.Model, name: str) -> Callable[[np.ndarray], None] | None:
    """A function adding a constant to the output of layer ``name``: through its bias, or
    the moving mean of the one BatchNorm reading it; None if neither exists (then the fit
    has no constant term)."""
    layer = model.get_layer(name)
    if getattr(layer, "use_bias", False):
        return lambda constant: layer.bias.assign_add(constant.astype(np.float32))
    readers = [node.outbound_layer for node in layer.outbound_nodes]
    if len(readers) == 1 and isinstance(readers[0], keras.layers.BatchNormalization):
        norm = readers[0]  # (x + c - mean) == (x - (mean - c))
        return lambda constant: norm.moving_mean.assign_sub(constant.astype(np.float32))
    return None


def summary(plan: dict[str, Any]) -> dict[str, Any]:
    """Channels kept over all groups, for the log and the model card."""
    total = sum(entry["width"] for entry in plan["groups"].values())
    kept = sum(len(entry["kept"]) for entry in plan["groups"].values())
    info = {"fraction": plan["fraction"], "criterion": plan["criterion"], "groups": len(plan["groups"]),
            "channels": total, "kept": kept, "kept_fraction": round(kept / total, 4) if total else math.nan}
    if isinstance(plan["fraction"], dict):  # per group (a latency target's allocation)
        info["fraction"] = round(1 - info["kept_fraction"], 4)
        # per group, the fraction of its channels KEPT (1.0 = untouched), unlike "fraction" (removed)
        info["per_group"] = {name: len(entry["kept"]) / entry["width"] for name, entry in plan["groups"].items()}
    if "latency_target" in plan:  # chosen by timing (train/latency_target.py)
        info["latency_target"] = plan["latency_target"]["target"]
    return info
