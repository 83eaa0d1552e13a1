"""TF-free changes to a finished model: calibrate (temperature and unknown threshold), enroll
(new products imprinted into the head), and the probe both use to read a model's features.

Above runtime/, data/ and report/; below train/. No TensorFlow. The names in ``__all__`` are
the public API (``from edgeshop.adapt import calibrate_file, enroll_file``); the modules are
private. Each name is imported when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeshop._lazy import lazy_names

if TYPE_CHECKING:  # what documentation tools and type checkers see; at run time, __getattr__ below
    from edgeshop.adapt.calibrate import (
        MIN_IMAGES,
        calibrate_content,
        calibrate_file,
        load_labelled,
        with_class_samples,
    )
    from edgeshop.adapt.enroll import (
        ENROL_VIEWS,
        IMPRINT_GAIN,
        REFIT_SCALE,
        REFIT_STEPS,
        VIEWS,
        enroll_content,
        enroll_file,
        fit_new_rows,
        imprint_rows,
        shot_views,
    )
    from edgeshop.adapt.probe import HeadProbe, loaded, model_scores
    from edgeshop.adapt.temperature import fit_beta, softmax

# Public name -> the module that defines it, imported on first use (PEP 562).
_LAZY = {
    # calibrating
    "calibrate_file": "edgeshop.adapt.calibrate",
    "calibrate_content": "edgeshop.adapt.calibrate",
    "load_labelled": "edgeshop.adapt.calibrate",
    "with_class_samples": "edgeshop.adapt.calibrate",
    "MIN_IMAGES": "edgeshop.adapt.calibrate",
    "softmax": "edgeshop.adapt.temperature",
    "fit_beta": "edgeshop.adapt.temperature",
    # enrolling new products
    "enroll_file": "edgeshop.adapt.enroll",
    "enroll_content": "edgeshop.adapt.enroll",
    "shot_views": "edgeshop.adapt.enroll",
    "imprint_rows": "edgeshop.adapt.enroll",
    "fit_new_rows": "edgeshop.adapt.enroll",
    "VIEWS": "edgeshop.adapt.enroll",
    "ENROL_VIEWS": "edgeshop.adapt.enroll",
    "IMPRINT_GAIN": "edgeshop.adapt.enroll",
    "REFIT_SCALE": "edgeshop.adapt.enroll",
    "REFIT_STEPS": "edgeshop.adapt.enroll",
    # reading a model's features and logits
    "HeadProbe": "edgeshop.adapt.probe",
    "loaded": "edgeshop.adapt.probe",
    "model_scores": "edgeshop.adapt.probe",
}

__all__ = [
    "ENROL_VIEWS", "HeadProbe", "IMPRINT_GAIN", "MIN_IMAGES", "REFIT_SCALE", "REFIT_STEPS", "VIEWS",
    "calibrate_content", "calibrate_file", "enroll_content", "enroll_file", "fit_beta", "fit_new_rows",
    "imprint_rows", "load_labelled", "loaded", "model_scores", "shot_views", "softmax", "with_class_samples",
]

__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
