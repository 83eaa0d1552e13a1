"""Cache the open-set model's outputs (scores, logits, embedding) for every Grocery photo.

    nice -n 10 python studies/grocery/open_set_embeddings.py     # ~3,000 photos, a few minutes

Every train and val photo of the 81 classes, every class's iconic catalogue image, and for
the enrolment shots (the first 5 training photos of each class, sorted by name, and the
iconic image) each augmented view edgeshop-enroll uses (`edgeshop.adapt.shot_views`).
The study (studies/grocery/open_set_study.py) then chooses and measures on these arrays without
running the model again. Output: runs/open_set/embeddings_<model stem>.npz, or in $OPEN_SET_CACHE (never committed).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
from open_set_benchmark import read_iconic  # noqa: E402
from study_paths import ROOT  # noqa: E402  (this folder is on sys.path when run as a script)

from edgeshop import Classifier  # noqa: E402
from edgeshop.adapt import (
    HeadProbe,
    shot_views,
)
from edgeshop.data import Sample, discover, iter_decoded  # noqa: E402

SHOTS = 5  # the first SHOTS training photos of each class get their augmented views cached


def cache_path(model: Path) -> Path:
    """runs/open_set/ of the checkout, or $OPEN_SET_CACHE (e.g. /tmp on a shared machine)."""
    folder = Path(os.environ.get("OPEN_SET_CACHE") or ROOT / "runs" / "open_set")
    return folder / f"embeddings_{model.stem}.npz"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=str(ROOT.parent / "shared" / "datasets" / "grocery_store"))
    parser.add_argument("--model", default=str(ROOT / "models" / "grocery" / "open_set" / "grocery71_int8.tflite"))
    args = parser.parse_args()
    build_cache(Path(args.dataset), Path(args.model))
    return 0


def build_cache(dataset: Path, model: Path) -> Path:
    """Probe every photo (and the shots' views) once; returns the cache file."""
    out = cache_path(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    classifier = Classifier(model)
    probe = HeadProbe(classifier)
    rows: dict[str, list] = {"path": [], "label": [], "split": [], "view": []}
    outputs: dict[str, list] = {}

    def add(sample: Sample, split: str, view: int, pixels: np.ndarray) -> None:
        for name, value in probe.run(pixels).items():
            outputs.setdefault(name, []).append(value)
        rows["path"].append(str(sample.path.relative_to(dataset)))
        rows["label"].append(sample.label)
        rows["split"].append(split)
        rows["view"].append(view)

    iconic = read_iconic(dataset)
    splits = [("train", discover(dataset / "train")), ("val", discover(dataset / "val")),
              ("iconic", [Sample(path, name) for name, path in sorted(iconic.items())])]
    first = {s.path for name in {s.label for s in splits[0][1]}
             for s in sorted((s for s in splits[0][1] if s.label == name), key=lambda s: s.path.name)[:SHOTS]}
    total = sum(len(samples) for _, samples in splits)
    done = 0
    for split, samples in splits:
        for sample, pixels in iter_decoded(samples, classifier.input_spec):
            done += 1
            if isinstance(pixels, str):
                print(f"skipped {pixels}")
                continue
            views = shot_views(pixels) if split == "iconic" or sample.path in first else [pixels]
            for view, image in enumerate(views):
                add(sample, split, view, image)
            if done % 200 == 0:
                print(f"{done}/{total}", flush=True)
    arrays = {name: np.stack(values).astype(np.float32) for name, values in outputs.items()}
    arrays.update({name: np.asarray(values) for name, values in rows.items()})
    arrays["old_labels"] = np.asarray(classifier.labels)
    tmp = out.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(out)
    print(f"wrote {out}: {len(rows['path'])} rows")
    return out


if __name__ == "__main__":
    sys.exit(main())
