"""`import edgeshop` and Classifier must work on a device with no TensorFlow at all."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from conftest import DATA, REPO


def test_classifier_runs_with_tensorflow_blocked():
    script = textwrap.dedent(
        f"""
        import sys
        for name in ("tensorflow", "tf_keras", "tensorflow_model_optimization", "keras"):
            sys.modules[name] = None  # any import of these now raises ImportError
        import cv2
        import edgeshop
        from edgeshop.tflite import modelcard  # noqa: F401
        from edgeshop.runtime import audit, bench, classifier, preprocess  # noqa: F401
        from edgeshop.adapt import calibrate, enroll, probe  # noqa: F401
        from edgeshop.report import evaluate, markdown, metrics, model_card_document, openset  # noqa: F401
        c = edgeshop.Classifier(r"{DATA / 'tiny_int8.tflite'}")
        frame = cv2.imread(r"{DATA / 'synthetic' / 'disc' / 'disc_000.png'}")
        predictions = c.classify(frame, top_k=3)
        assert c.backend == "litert", c.backend
        assert predictions[0].label == "disc", predictions
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tf_keras", "keras"))
        assert not [m for m in loaded if sys.modules[m] is not None], loaded
        print("ok", predictions[0])
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ok Prediction(label='disc'" in result.stdout
