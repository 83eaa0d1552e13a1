"""Why the open-set benchmark's two AUROC estimates differ: a check with features never trained on this dataset.

    python studies/grocery/open_set_session_check.py  # about 2 min here

writes studies/grocery/figures/open_set/session_check.json.

The benchmark (studies/grocery/open_set_benchmark.py) scores the 71 known classes' val photos
against the ten unseen classes' val photos (estimate 1) and against their training photos
(estimate 2). Estimate 2 reads lower. The Grocery Store Dataset's train and val photos
were taken in different sessions, so estimate 2 may compare products *and* sessions.

This check separates the two with features never trained on this dataset: the
ImageNet EfficientNet-Lite0 that edgeshop ships, pooled as the look-alike finder of
--val-grouping similarity pools it (edgeshop.train.similarity.imagenet_features), at
224 px. Each photo's score is edgeshop-eval's kNN score with k = 1: how close it is to the
nearest of the 71 known classes' training photos. With these features, AUROC (known val
photos over unseen ones) well below 0.5 means the unseen photos look more like the known
training photos than the known products' own val photos do: the session, not the
product, dominates.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import study_paths  # noqa: F401  (puts the repository root and tools/ on sys.path)
from study_paths import FIGURES, ROOT

from edgeshop import write_json_atomic  # noqa: E402
from edgeshop.data import discover  # noqa: E402
from edgeshop.report import auroc, known_scores  # noqa: E402

IMAGE_SIZE = 224  # the ImageNet weights' own size
OPEN_SET = FIGURES / "open_set"
OUT = OPEN_SET / "session_check.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=str(ROOT.parent / "shared" / "datasets" / "grocery_store"))
    args = parser.parse_args()
    started = time.time()
    dataset = Path(args.dataset)
    benchmark = json.loads((OPEN_SET / "open_set.json").read_text())
    unseen = {c["name"] for c in benchmark["excluded_classes"]}
    from edgeshop.train import imagenet_features  # the look-alike finder's features (needs TF)

    train, val = discover(dataset / "train"), discover(dataset / "val")
    parts = {"known_train": [s for s in train if s.label not in unseen],
             "known_val": [s for s in val if s.label not in unseen],
             "unseen_val": [s for s in val if s.label in unseen],
             "unseen_train": [s for s in train if s.label in unseen]}
    features = {}
    for part, samples in parts.items():
        print(f"{part}: {len(samples)} photos", flush=True)
        features[part] = imagenet_features(samples, IMAGE_SIZE, workers=2)[0]
    # edgeshop-eval's kNN score with k = 1: minus the distance to the nearest known training photo
    scores = {part: known_scores("knn", {"embedding": features[part]}, reference=features["known_train"], k=1)
              for part in ("known_val", "unseen_val", "unseen_train")}
    result = {
        "features": f"ImageNet EfficientNet-Lite0, pooled (edgeshop.train.similarity.imagenet_features), "
                    f"{IMAGE_SIZE} px",
        "score": "edgeshop.report.openset kNN score, k = 1 (minus the L2 distance of unit-length features)",
        "reference": f"{len(parts['known_train'])} training photos of the 71 known classes",
        "images": {part: len(samples) for part, samples in parts.items()},
        "auroc_unseen_val": auroc(scores["known_val"], scores["unseen_val"]),
        "auroc_unseen_train": auroc(scores["known_val"], scores["unseen_train"]),
        "mean_score": {part: float(s.mean()) for part, s in scores.items()},
        "command": "python studies/grocery/open_set_session_check.py",
        "seconds": round(time.time() - started, 1),
    }
    write_json_atomic(OUT, result)
    print(f"wrote {OUT}: AUROC with ImageNet features, unseen val {result['auroc_unseen_val']:.3f}, "
          f"unseen training photos {result['auroc_unseen_train']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
