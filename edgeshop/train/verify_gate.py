"""Export's gate: a .tflite whose predictions disagree with its Keras model is not written.

``export.verify`` runs the candidate through the runtime's Classifier on up to 64
training images and compares its top-1 class with the Keras model's. Below the minimum
agreement for its format, the export stops with nothing written. Float32 only differs by
rounding, float16 and int8 by quantisation; a broken conversion, representative set or card
falls far below (a mismatched card scores near chance). ``--no-verify`` skips the check.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeshop.errors import EdgeshopError
from edgeshop.train.run_dir import CARD, REPRESENTATIVE_IMAGES

MIN_TOP1_AGREEMENT = {"float32": 0.98, "float16": 0.95, "dynamic": 0.90, "int8": 0.90}


class VerificationError(EdgeshopError):
    """The exported model does not reproduce its Keras model."""


def require_agreement(result: dict[str, Any], fmt: str, run_dir: str | Path) -> None:
    """Raise VerificationError when ``result`` (from ``export.verify``) is below ``fmt``'s minimum."""
    minimum = MIN_TOP1_AGREEMENT[fmt]
    agreement = result["top1_agreement"]
    if agreement < minimum:
        raise VerificationError(
            f"{run_dir}: the {fmt} export agrees with the Keras model on {agreement:.1%} of {result['images']} "
            f"training images, below the {minimum:.0%} required; nothing was written. {_advice(fmt)}"
        )


def _advice(fmt: str) -> str:
    if fmt == "int8":
        return ("An int8 model after few QAT epochs often disagrees: train more QAT epochs (--qat-epochs 5 or more), "
                "or export with --ptq; for a pipeline check (e.g. --arch tiny) pass --no-verify. Far below, near "
                f"chance, points at the run's {CARD} or {REPRESENTATIVE_IMAGES}")
    return (f"Check the run's {CARD} and {REPRESENTATIVE_IMAGES} (a mismatch scores near chance), or pass --no-verify "
            "for a pipeline check")
