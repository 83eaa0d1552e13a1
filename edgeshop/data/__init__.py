"""Datasets on disk: one discovery rule (class folders, split files, CSV manifests), validation
splits, and decoding into model pixels. Below report/, adapt/ and train/; no TensorFlow.

The public names are re-exported here, so callers write ``from edgeshop.data import discover``.
"""

from edgeshop.data.discovery import (
    MAX_CLASS_DEPTH,
    MAX_IMAGES_PER_CLASS,
    Sample,
    class_names_of,
    coarse_index,
    describe,
    discover,
    read_class_names,
    read_hierarchy,
    unlabelled_samples,
)
from edgeshop.data.loading import (
    LoadedImages,
    classes_without_images,
    decode_sample,
    iter_decoded,
    load_images,
    unreadable_classes,
)
from edgeshop.data.splits import (
    BURST_DISTANCE,
    MAX_HASH_BYTES,
    VAL_GROUPINGS,
    Duplicates,
    duplicate_files,
    file_order_groups,
    find_duplicates,
    grouped_split,
    similarity_groups,
    stratified_split,
    thumbnail,
)

__all__ = [
    "BURST_DISTANCE", "MAX_CLASS_DEPTH", "MAX_HASH_BYTES", "MAX_IMAGES_PER_CLASS", "VAL_GROUPINGS", "Duplicates",
    "LoadedImages", "Sample", "class_names_of", "classes_without_images", "coarse_index", "decode_sample",
    "describe", "discover", "duplicate_files", "file_order_groups", "find_duplicates", "grouped_split",
    "iter_decoded", "load_images", "read_class_names", "read_hierarchy", "similarity_groups", "stratified_split",
    "thumbnail", "unlabelled_samples", "unreadable_classes",
]
