"""Architectures and the shipped ImageNet weights of EfficientNet-Lite0."""

from __future__ import annotations

import json

import cv2
import numpy as np
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
    tools/convert_efficientnet_lite0.py) describes these weights."""
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
