"""The single TensorFlow import shim.

tensorflow-model-optimization only works with Keras 2 (``tf_keras``); TensorFlow picks
its Keras at import time from ``TF_USE_LEGACY_KERAS``, so it is set here, once, before
anything imports TensorFlow. Everything in ``edgeshop.train`` imports tf/keras/tfmot
from this module.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TF's C++ banner out of CLI output

from edgeshop.errors import MissingExtraError  # noqa: E402

if os.environ["TF_USE_LEGACY_KERAS"] != "1":
    raise MissingExtraError("train", "Keras 2 (TF_USE_LEGACY_KERAS is set to something other than 1)")

from edgeshop.native_logs import chatter_hidden, hidden_chatter  # noqa: E402

try:
    with hidden_chatter():  # absl's pre-init lines and the CUDA probe (the commands' -v shows them)
        import tensorflow as tf  # noqa: E402
        import tensorflow_model_optimization as tfmot  # noqa: E402
        import tf_keras as keras  # noqa: E402
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("train", exc.name or "tensorflow") from exc
if chatter_hidden():
    import absl.logging  # noqa: E402 - TensorFlow's own dependency

    tf.get_logger().setLevel("ERROR")
    absl.logging.set_verbosity(absl.logging.ERROR)

__all__ = ["tf", "keras", "tfmot"]
