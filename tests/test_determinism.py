"""--deterministic: two runs of the same config give identical weights. In a subprocess,
because TensorFlow's op determinism is process-wide and cannot be switched off again."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
import numpy as np
from edgeshop.train.config import TrainConfig
from edgeshop.train.fit import train

data, out = sys.argv[1], sys.argv[2]
for run in ("a", "b"):
    train(TrainConfig.from_flat(data=data, out=f"{out}/{run}", val_fraction=0.2, arch="tiny", image_size=48, epochs=3,
                      batch_size=16, lr=3e-3, mix=0.5, deterministic=True), log=lambda line: None)
with np.load(f"{out}/a/stages/train.weights.npz") as a, np.load(f"{out}/b/stages/train.weights.npz") as b:
    assert a.files == b.files and len(a.files) > 2
    assert all(np.array_equal(a[k], b[k]) for k in a.files), "weights differ between the two runs"
print("identical")
"""


def test_deterministic_runs_give_identical_weights(synthetic_data, tmp_path):
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(synthetic_data["train"]), str(tmp_path)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("identical")
