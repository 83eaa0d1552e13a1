"""The cosine (normalised) classifier head, `--head cosine`.

A plain head scores an image with w_k . e + b_k: rows of any length, embeddings of any
length, all-positive ReLU features. A class added later from a few photos (weight
imprinting, `edgeshop.adapt.enroll`) then has no principled length or bias. The cosine head
(Qi, Brown & Lowe, CVPR 2018; Gidaris & Komodakis 2018) makes every score
``scale x cos(w_k, e)``:

    pool -> embedding_bn (standardises the features) -> [dropout] -> embedding_norm (unit length)
         -> embedding_scale (x ``scale``) -> classifier (unit rows, no bias) -> softmax

so an imprinted row (a normalised mean of a new product's embeddings) is on a comparable
footing with a trained one (adapt/imprint.py measures its length and folds in the bias the layer
lacks). Everything converts to builtin int8 TFLite ops
(MUL/ADD, L2_NORMALIZATION, FULLY_CONNECTED): the exported model is an ordinary edgeshop
model for every client. The layer names are the contract with phases/head.py (the head
phase trains them) and compress.py (QAT leaves the layers tfmot has no config for to the
converter, which measures their ranges on the representative images, as it does the input
normalisation's).
"""

from __future__ import annotations

from edgeshop.train._keras import keras, tf
from edgeshop.train.config_groups import DEFAULT_COSINE_SCALE as DEFAULT_SCALE

EMBEDDING_BN = "embedding_bn"
EMBEDDING_NORM = "embedding_norm"
EMBEDDING_SCALE = "embedding_scale"
NEW_HEAD_LAYERS = ("classifier", EMBEDDING_BN)  # trained from scratch in the head phase

layers = keras.layers


@keras.utils.register_keras_serializable("edgeshop")
class RowLength(keras.constraints.Constraint):
    """Keeps every class's weight vector (a kernel column) at length ``length``."""

    def __init__(self, length: float) -> None:
        self.length = float(length)

    def __call__(self, w):
        return self.length * tf.math.l2_normalize(w, axis=0)

    def get_config(self) -> dict:
        return {"length": self.length}


def cosine_head(x, num_classes: int, dropout: float, scale: float = DEFAULT_SCALE):
    """Class probabilities from a pooled feature vector ``x`` through the cosine head."""
    x = layers.BatchNormalization(name=EMBEDDING_BN)(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    x = layers.UnitNormalization(name=EMBEDDING_NORM)(x)
    # The scale multiplies the embedding, not the rows: rows of length ``scale`` would make
    # every optimiser step tiny relative to the weights (the head phase did not learn).
    x = layers.Rescaling(scale, name=EMBEDDING_SCALE)(x)
    x = layers.Dense(num_classes, use_bias=False, kernel_constraint=RowLength(1.0), name="classifier")(x)
    return layers.Softmax(name="probs")(x)


def is_left_to_the_converter(layer) -> bool:
    """Layers QAT does not annotate: the int8 converter measures their ranges on its
    representative images instead. The centring BatchNorm and the normalisation have no
    tfmot config; the classifier is left too because the converter folds the scale into its
    weights, and weight ranges fixed by QAT for unit rows would clip the folded ones."""
    return (isinstance(layer, layers.UnitNormalization) or layer.name == EMBEDDING_BN
            or isinstance(getattr(layer, "kernel_constraint", None), RowLength))

