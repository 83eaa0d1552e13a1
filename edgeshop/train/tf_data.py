"""The tf.data pipelines a run trains and validates on, from its RunData (decoded or streamed)."""

from __future__ import annotations

from edgeshop.train._keras import tf
from edgeshop.train.augment import AugmentConfig, make_augmenter, mix_batch
from edgeshop.train.config import TrainConfig
from edgeshop.train.outlier_exposure import cutmix_outliers, outlier_count, with_outliers
from edgeshop.train.run_data import RunData
from edgeshop.train.streamed_images import stream_images

Shard = tuple[int, int] | None  # (tasks, this task's rank) under multi_worker


def as_inputs(pixels, labels, n_classes: int):
    """Model inputs from cached uint8 pixels and class indices: float32 images, one-hot targets."""
    return tf.cast(pixels, tf.float32), tf.one_hot(labels, n_classes)


def train_batches(data: RunData, config: TrainConfig, image_size: int, size: int, shard: Shard, soft: bool):
    """Augmented training batches at ``size`` (the cached pixels are at ``image_size``); with
    ``soft``, each target is [one-hot | the teacher's soft targets]."""
    n_classes = len(data.class_names)
    resize_to = None if size == image_size else size
    augment = make_augmenter(AugmentConfig(), config.runtime.seed, resize_to) if config.data.augment else None
    outlier_weight = config.experimental.outlier_exposure

    def to_inputs(pixels, labels, seed=None, soft=None):
        images, targets = as_inputs(pixels, labels, n_classes)
        if soft is not None:  # [hard | teacher]: mixed together below
            targets = tf.concat([targets, soft], axis=-1)
        if augment is not None and seed is not None:
            images = augment(images, seed)
            if outlier_weight > 0:  # outliers from the unmixed batch, appended after mixing
                outliers = cutmix_outliers(images, labels, seed, outlier_count(config.schedule.batch_size))
            if config.data.mix > 0:
                images, targets = mix_batch(images, targets, seed, config.data.mix)
            if outlier_weight > 0:
                return with_outliers(images, targets, *outliers, outlier_weight, blocks=1 if soft is None else 2)
        elif resize_to is not None:
            images = tf.image.resize(images, (resize_to, resize_to), antialias=True)
        return images, targets

    train = train_images(data, config, shard, soft)
    if shard is not None:
        # Shards differ by an image or two (and by skipped files): an endless stream cut into
        # epochs of `steps` batches gives every task the same number of steps, so their
        # collectives stay in step (a task that ran out first would stall the others).
        train = train.repeat()
    train = train.batch(config.schedule.batch_size)
    if augment is not None:
        seeds = tf.data.Dataset.random(seed=config.runtime.seed, rerandomize_each_iteration=True).batch(2)
        train = tf.data.Dataset.zip((train, seeds)).map(
            lambda batch, seed: to_inputs(batch[0], batch[1], seed, *batch[2:]),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    else:
        train = train.map(lambda *batch: to_inputs(batch[0], batch[1], None, *batch[2:]),
                          num_parallel_calls=tf.data.AUTOTUNE)
    return with_sharding(train.prefetch(tf.data.AUTOTUNE), shard)


def train_images(data: RunData, config: TrainConfig, shard: Shard, soft: bool):
    """(uint8 pixels, label[, teacher soft targets]) per training image, in a new order every
    epoch (the same permutation for both pipelines); with several workers, this worker's share of it."""
    if data.streamed():
        return stream_images(data.train_samples, data.class_names, data.spec, data.skips,
                             seed=config.runtime.seed, shard=shard, cache_dir=config.runtime.cache_dir)
    columns = (data.train.pixels, data.train.labels)
    if soft:
        columns += (data.train_soft,)
    train = tf.data.Dataset.from_tensor_slices(columns)
    train = train.shuffle(len(data.train.labels), seed=config.runtime.seed, reshuffle_each_iteration=True)
    return train.shard(*shard) if shard else train


def val_batches(data: RunData, config: TrainConfig, shard: Shard, soft: bool):
    """Validation batches at the run's image size, the exported model's input, in every phase
    (None without validation images)."""
    n_classes = len(data.class_names)
    if data.streamed():
        if not data.val_samples:
            return None
        # Not cached in memory (it would grow with the data); --cache-dir caches it on disk.
        val = stream_images(
            data.val_samples, data.class_names, data.spec, data.skips, cache_dir=config.runtime.cache_dir
        )
        return with_sharding(
            val.batch(config.schedule.batch_size)
            .map(lambda p, y: as_inputs(p, y, n_classes), num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(2),
            shard,
        )
    if not len(data.val.labels):
        return None
    if soft:  # the same [hard | teacher] targets as training, so val_loss is comparable
        val = tf.data.Dataset.from_tensor_slices((data.val.pixels, data.val.labels, data.val_soft))

        def to_inputs(p, y, soft):
            images, targets = as_inputs(p, y, n_classes)
            return images, tf.concat([targets, soft], axis=-1)

        return with_sharding(val.batch(config.schedule.batch_size).map(to_inputs).cache(), shard)
    val = tf.data.Dataset.from_tensor_slices((data.val.pixels, data.val.labels))
    return with_sharding(
        val.batch(config.schedule.batch_size).map(lambda p, y: as_inputs(p, y, n_classes)).cache(), shard
    )


def with_sharding(data, shard: Shard):
    """The batches as they are: training data is already sharded per task (tf.data's own
    auto-sharding would shard it a second time), and every task validates on all of val
    (the same steps on each; accuracy, summed over tasks, is unchanged)."""
    if shard is None:
        return data
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return data.with_options(options)
