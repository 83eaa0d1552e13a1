"""Training losses: fine cross-entropy, optionally plus a coarse-level term.

With a class hierarchy (Grocery's classes.csv maps each fine class to a coarse one),
the coarse term is the cross-entropy of the summed probabilities per coarse class:
-log(sum of p over the fine classes of the true coarse class). It is near zero when
the net confuses two fine classes of one coarse class (Oatly oat milk vs Arla milk
is a milk either way) and large when it crosses coarse classes, so it pushes the
remaining mistakes to be near-misses. The model's output, and so the exported file,
stays the fine softmax. Measured on the Grocery recipe, weight 1 lowered both fine and
coarse top-1 on val (models/grocery/README.md, "Variants tried"), so it is off by default.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgeshop.train._keras import keras, tf


class FineAndCoarseCrossentropy(keras.losses.Loss):
    """Fine cross-entropy (label-smoothed) + ``coarse_weight`` x coarse cross-entropy.

    Targets may be soft (MixUp/CutMix): the coarse target is the fine target summed
    per coarse class, like the prediction.
    """

    def __init__(self, coarse_of: Sequence[int], coarse_weight: float, label_smoothing: float = 0.0,
                 name: str = "fine_and_coarse_crossentropy", **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.coarse_of = [int(i) for i in coarse_of]
        self.coarse_weight = float(coarse_weight)
        self.label_smoothing = float(label_smoothing)
        # [fine, coarse] 0/1 matrix: probabilities @ matrix = probabilities per coarse class
        self._to_coarse = tf.one_hot(self.coarse_of, max(self.coarse_of) + 1, dtype=tf.float32)

    def call(self, y_true, y_pred):
        y_true = tf.cast(y_true, y_pred.dtype)
        fine = keras.losses.categorical_crossentropy(y_true, y_pred, label_smoothing=self.label_smoothing)
        to_coarse = tf.cast(self._to_coarse, y_pred.dtype)
        coarse = keras.losses.categorical_crossentropy(y_true @ to_coarse, y_pred @ to_coarse)
        return fine + self.coarse_weight * coarse

    def get_config(self) -> dict:
        return {**super().get_config(), "coarse_of": self.coarse_of, "coarse_weight": self.coarse_weight,
                "label_smoothing": self.label_smoothing}


def make_loss(label_smoothing: float, coarse_of: np.ndarray | None = None, coarse_weight: float = 0.0):
    """The training loss: plain cross-entropy unless a coarse term is asked for."""
    if coarse_of is None or coarse_weight <= 0:
        return keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)
    return FineAndCoarseCrossentropy(coarse_of, coarse_weight, label_smoothing)
