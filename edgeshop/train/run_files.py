"""The files of a run directory that export and resume read back, written atomically.

No TensorFlow here: these are plain files (numpy + the runtime's model card).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from edgeshop.errors import EdgeshopError
from edgeshop.tflite.modelcard import ModelCard
from edgeshop.utils import write_bytes_atomic


def require_run_dir(run_dir: str | Path) -> Path:
    """``run_dir`` if it holds a training run's card, else the one-line refusal (no TensorFlow:
    the commands call this before importing it)."""
    run_dir = Path(run_dir)
    if not (run_dir / "card.json").is_file():
        raise EdgeshopError(f"{run_dir}: not an edgeshop run directory (no card.json); run edgeshop-train first")
    return run_dir


def write_run_metadata(run_dir: Path, card: ModelCard, calibration: np.ndarray) -> None:
    """card.json, labels.txt and calibration.npy: each complete or not replaced at all
    (a crash or a full disk mid-write must not leave a half card that export embeds)."""
    write_bytes_atomic(run_dir / "card.json", card.to_json().encode("utf-8"))
    write_bytes_atomic(run_dir / "labels.txt", ("\n".join(card.labels) + "\n").encode("utf-8"))
    buffer = io.BytesIO()
    np.save(buffer, calibration, allow_pickle=False)
    write_bytes_atomic(run_dir / "calibration.npy", buffer.getvalue())
