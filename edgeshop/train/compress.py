"""Magnitude pruning and int8 quantization-aware training (tfmot), as small functions."""

from __future__ import annotations

import numpy as np

from edgeshop.train._keras import keras, tfmot
from edgeshop.train.cosine_head import is_left_to_the_converter

PRUNABLE = (keras.layers.Conv2D, keras.layers.Dense)  # depthwise kernels stay dense: tiny, fragile
_sparsity = tfmot.sparsity.keras
_quant = tfmot.quantization.keras


def apply_pruning(model: keras.Model, target: float, begin_step: int, end_step: int) -> keras.Model:
    """Wrap every Conv2D/Dense for magnitude pruning, ramping 0 -> ``target`` sparsity.

    The ramp is tfmot's PolynomialDecay (cubic): fast early, gentle near the target,
    so the network has steps at full sparsity left to recover.
    """
    if not 0 < target < 1:
        raise ValueError(f"pruning sparsity must be in (0, 1), got {target}")
    schedule = _sparsity.PolynomialDecay(
        initial_sparsity=0.0,
        final_sparsity=target,
        begin_step=begin_step,
        end_step=max(end_step, begin_step + 1),
        frequency=max(1, (end_step - begin_step) // 20),
    )

    def wrap(layer):
        if isinstance(layer, PRUNABLE):
            return _sparsity.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer

    return keras.models.clone_model(model, clone_function=wrap)


def pruning_callbacks(log_dir: str | None = None) -> list:
    callbacks = [_sparsity.UpdatePruningStep()]
    if log_dir:
        callbacks.append(_sparsity.PruningSummaries(log_dir=log_dir))
    return callbacks


def strip_pruning(model: keras.Model) -> keras.Model:
    return _sparsity.strip_pruning(model)


class _PrunePreserveScheme(tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme):
    """tfmot's prune-preserving scheme, minus its claim to support every weightless layer.

    Its registry says yes to any layer without trainable weights and then fails on
    Rescaling; declining it (as the default registry does) leaves the in-graph
    normalisation float in QAT, and the converter quantizes it into int8 MUL/ADD.
    """

    def get_quantize_registry(self):
        registry = super().get_quantize_registry()
        claims = registry.supports

        def supports(layer):
            return not _left_float(layer) and claims(layer)

        registry.supports = supports
        return registry


def _left_float(layer) -> bool:
    """Layers QAT leaves un-annotated for the converter to quantize: the input
    normalisation, and the cosine head's layers (cosine_head.is_left_to_the_converter)."""
    return isinstance(layer, keras.layers.Rescaling) or is_left_to_the_converter(layer)


def apply_qat(model: keras.Model, preserve_sparsity: bool) -> keras.Model:
    """Insert fake-quant for int8 QAT; with ``preserve_sparsity`` pruned zeros stay zero.

    The normalisation layer is left un-annotated: a fake-quant on the raw-pixel input
    would learn a range that disagrees with the int8 input's and force a float
    dequantize/requantize pair into the converted model.
    """

    def annotate(layer):
        if _left_float(layer):
            return layer
        return _quant.quantize_annotate_layer(layer)

    annotated = keras.models.clone_model(model, clone_function=annotate)
    scheme = _PrunePreserveScheme() if preserve_sparsity else _quant.default_8bit.Default8BitQuantizeScheme()
    with _quant.quantize_scope():
        return _quant.quantize_apply(annotated, scheme)


def init_quantization_ranges(qat_model: keras.Model, float_model: keras.Model, images: np.ndarray,
                             batch_size: int = 8) -> int:
    """Set every QAT activation range to the float model's observed range on ``images``.

    tfmot starts activation ranges at [-6, 6] and moves them by an EMA with decay
    0.999, so a QAT phase of a few hundred steps would export ranges that are still
    mostly the initial guess. Starting from measured ranges makes short QAT sound.
    Returns the number of ranges set.
    """
    targets = []  # (min variable, max variable, float layer name)
    for layer in qat_model.layers:
        inner = getattr(layer, "layer", None)
        if inner is None:
            continue
        for prefix in ("output", "post_activation"):
            found = {w.name.split("/")[-1].split(":")[0]: w for w in layer.non_trainable_weights}
            if f"{prefix}_min" in found and f"{prefix}_max" in found:
                targets.append((found[f"{prefix}_min"], found[f"{prefix}_max"], inner.name))
    if not targets:
        return 0
    names = sorted({name for _, _, name in targets})
    probe = keras.Model(float_model.input, [float_model.get_layer(n).output for n in names])
    low = {n: np.inf for n in names}
    high = {n: -np.inf for n in names}
    for start in range(0, len(images), batch_size):
        outputs = probe.predict_on_batch(images[start : start + batch_size].astype(np.float32))
        for name, value in zip(names, outputs if len(names) > 1 else [outputs], strict=True):
            low[name] = min(low[name], float(np.min(value)))
            high[name] = max(high[name], float(np.max(value)))
    for min_var, max_var, name in targets:
        min_var.assign(min(low[name], 0.0))  # the int8 range must contain 0
        max_var.assign(max(high[name], 0.0))
    return len(targets)


def set_batchnorm_momentum(model: keras.Model, steps: int) -> float:
    """Pick BN momentum so the moving statistics forget the previous phase within ``steps``.

    Pruning and QAT shift activation statistics; with Keras' 0.99 a short phase ends
    with stale moving averages and inference (not training) accuracy collapses.
    momentum**steps <= e**-10, clipped to [0.9, 0.99].
    """
    momentum = float(np.clip(1.0 - 10.0 / max(steps, 1), 0.9, 0.99))
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum
    return momentum


def kernel_sparsity(model: keras.Model) -> float:
    """Fraction of exact zeros over the kernels of prunable layers (wrappers unwrapped)."""
    zeros = total = 0
    for layer in model.layers:
        if not isinstance(getattr(layer, "layer", layer), PRUNABLE):  # QuantizeWrapper / PruneLowMagnitude
            continue
        for weight in layer.weights:
            if weight.name.split("/")[-1].startswith("kernel"):
                kernel = weight.numpy()
                zeros += int(np.count_nonzero(kernel == 0))
                total += kernel.size
    return zeros / total if total else 0.0
