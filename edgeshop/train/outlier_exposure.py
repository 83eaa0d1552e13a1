"""Outlier exposure without outlier photos: CutMix pictures of two different known classes,
trained toward a uniform output (Hendrycks et al. 2019's loss on data-free outliers).

A shelf camera meets products the model was never taught; a softmax trained only on known
classes still names one of them with confidence. Outlier exposure adds pictures that are
none of the classes and asks the model to be unsure on them: the cross-entropy to the
uniform distribution, -1/K sum_k log p_k, weighted by ``weight`` (lambda):

    loss = mean over known rows of CE(target, p) + weight x mean over outlier rows of CE(uniform, p)

The outliers come from the batch itself (no dataset to license or download): each of the
first ``count`` images gets a box of area 35-65% pasted from the nearest later image of a
*different* class, so no single class dominates the picture. This is not the recipe's CutMix
(`augment.mix_batch`), whose label is the mix of the two classes: here the target says
"neither". Rows whose batch holds no other class get weight 0.

Wiring (`with_outliers`): the outliers are appended to the batch with uniform targets and
Keras sample weights chosen so that Keras' mean over the batch equals the loss above. The
training accuracy Keras logs counts the outlier rows (their argmax is arbitrary); val has none.
With distillation the teacher half of an outlier's target is uniform too, so its row's loss is
(1 - w) CE(uniform, p) + w T^2 KL(uniform || p at T), both pulling the output flat.

Measured on Grocery with frozen features (studies/grocery/outlier-exposure.md) these outliers
lowered the AUROC of unseen products against known ones and cost known top-1, so it is off by
default; a full training with it has not been measured.
"""

from __future__ import annotations

import math

from edgeshop.train._keras import tf

MIN_AREA, MAX_AREA = 0.35, 0.65  # the pasted share of the picture: both classes clearly present
OUTLIER_SHARE = 0.25  # outliers appended per batch, as a share of its size: +25% compute per step


def outlier_count(batch_size: int) -> int:
    return max(1, math.ceil(OUTLIER_SHARE * batch_size))


def different_class_partners(classes):
    """[B] int class ids -> ([B] int partner index, [B] bool found): for row i the first row
    i+1, i+2, ... (cyclically) whose class differs; found is False when the batch has one class."""
    classes = tf.convert_to_tensor(classes)
    batch = tf.shape(classes)[0]
    shifts = tf.range(1, tf.maximum(batch, 2))  # s = 1..B-1 (one dummy shift for a batch of one)
    candidates = (tf.range(batch)[:, None] + shifts[None, :]) % batch  # [B, B-1]
    differs = tf.gather(classes, candidates) != classes[:, None]
    first = tf.argmax(tf.cast(differs, tf.int32), axis=1, output_type=tf.int32)
    partner = tf.gather(candidates, first, batch_dims=1)
    return partner, tf.reduce_any(differs, axis=1)


def cutmix_outliers(images, classes, batch_seed, count: int):
    """(outliers [m,H,W,3], found [m] bool), m = min(count, B): image i of the batch with a box of
    area MIN_AREA..MAX_AREA of the picture (same aspect as the picture, placed inside it) from
    its different-class partner."""
    images = tf.convert_to_tensor(images, tf.float32)
    partner, found = different_class_partners(classes)
    m = tf.minimum(count, tf.shape(images)[0])
    seed = tf.cast(batch_seed, tf.int32)
    draws = tf.random.stateless_uniform([m, 3], seed + [0, 7919])  # area, top, left: own stream
    height, width = tf.cast(tf.shape(images)[1], tf.float32), tf.cast(tf.shape(images)[2], tf.float32)
    side = tf.sqrt(MIN_AREA + (MAX_AREA - MIN_AREA) * draws[:, 0])  # fraction of height and of width
    box_h, box_w = tf.round(side * height), tf.round(side * width)
    top, left = tf.floor(draws[:, 1] * (height - box_h + 1)), tf.floor(draws[:, 2] * (width - box_w + 1))
    rows = tf.range(height)[None, :, None]
    cols = tf.range(width)[None, None, :]
    box = ((rows >= top[:, None, None]) & (rows < (top + box_h)[:, None, None])
           & (cols >= left[:, None, None]) & (cols < (left + box_w)[:, None, None]))
    box = tf.cast(box, tf.float32)[..., None]
    own, pasted = images[:m], tf.gather(images, partner[:m])
    return own * (1.0 - box) + pasted * box, found[:m]


def with_outliers(images, targets, outliers, found, weight: float, blocks: int = 1):
    """The batch with the outliers appended: (images, targets, sample_weight).

    Outlier targets are uniform over each of ``blocks`` side-by-side distributions in
    ``targets``' columns (with distillation the targets are [hard | teacher]: blocks=2, both
    halves uniform). Sample weights make Keras' mean over the B + m rows equal
    mean_known(CE) + weight x mean_outliers(CE to uniform); outliers without a partner get 0.
    """
    b = tf.cast(tf.shape(images)[0], tf.float32)
    found = tf.cast(found, tf.float32)
    total = b + tf.cast(tf.shape(found)[0], tf.float32)
    width = tf.cast(tf.shape(targets)[1] // blocks, targets.dtype)
    uniform = tf.ones([tf.shape(outliers)[0], tf.shape(targets)[1]], targets.dtype) / width
    known_w = tf.fill([tf.shape(images)[0]], total / b)
    outlier_w = found * weight * total / tf.maximum(tf.reduce_sum(found), 1.0)
    return (tf.concat([images, tf.cast(outliers, images.dtype)], 0), tf.concat([targets, uniform], 0),
            tf.concat([known_w, outlier_w], 0))
