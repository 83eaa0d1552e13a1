"""Does outlier exposure help reject unknown products? A cheap proxy on frozen features (#38.2).

    OPENBLAS_NUM_THREADS=1 nice -n 5 python studies/grocery/outlier_exposure_proxy.py
    # -> studies/grocery/figures/open_set/outlier_exposure_proxy.json (~10 min on 2 busy cores)

Frozen features: the penultimate (L2-normalised) embedding of the shipped open-set model
(`models/grocery/open_set/grocery71_int8.tflite`), cached by open_set_embeddings.py. On them a
cosine head (scale 16, like the shipped one) is trained by full-batch Adam, once without and
once with outlier exposure (OE: + LAMBDA x cross-entropy to uniform on outliers), everything
else equal (steps, learning rate, seed). Unknown score: the max softmax of that head.

Outliers, all built from the known classes' training photos only (never an unknown class):
- cutmix_pixels: the recipe's outliers (`edgeshop.train.outlier_exposure.cutmix_outliers`):
  photos of two different classes, a 35-65% box of one pasted into the other, run through
  the shipped model; the only kind the training recipe implements;
- feature_mix: the same idea in feature space, lam*a + (1-lam)*b, lam in [0.35, 0.65], normalised;
- vos: virtual outliers (Du et al. 2022): class Gaussians with a shared, shrunk covariance
  fitted on the embeddings; of SAMPLES_PER_CLASS draws per class the VOS_KEEP least likely
  (under their own class) are kept, normalised.

Evaluations:
- ten: head on all 71 classes' training photos; known = the 71 classes' val photos,
  unknown = the ten never-seen products' TRAINING photos (the open-set study's choosing set;
  their 33 val photos are reported, never used to choose);
- folds: the open-set study's 7 leave-classes-out folds (class i in fold i % 7): head on the
  other classes' training photos, outliers from those classes only; known = their val photos,
  unknown = every photo of the fold's classes. The backbone saw these classes, so folds are
  optimistic (the open-set study's amendment): a guard, not the ranking.
Intervals: 95% percentile bootstrap over bursts (open_set_study.grouped_interval), the
difference OE - no OE paired (the same resampled bursts for both).

DECISION RULE (fixed before any figure was computed):
A kind of outlier wins clearly when, against the no-OE head,
  (1) AUROC on `ten` rises by >= 0.02 and the paired interval of the rise is above 0,
  (2) the mean fold AUROC does not fall by more than 0.005, and
  (3) the 71 classes' val top-1 does not fall by more than 0.5 point.
The full 71-class recipe with OE (`outlier_exposure` in the training config) is trained only if
cutmix_pixels wins (the recipe has no feature-space outliers); a win of feature_mix or vos
alone is reported as a lead, not acted on. No winner: a negative result, reported as such.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from open_set_study import FOLDS, fold_of, grouped_interval, load  # noqa: E402
from study_paths import FIGURES, ROOT  # noqa: E402  (this folder is on sys.path when run as a script)

from edgeshop.datasets import Sample, iter_decoded  # noqa: E402
from edgeshop.report.openset import auroc, fpr_at_tpr  # noqa: E402
from edgeshop.utils import write_json_atomic  # noqa: E402

LAMBDA = 0.5
SCALE = 16.0  # the shipped open-set model's cosine scale
STEPS, LR, WEIGHT_DECAY = 300, 0.05, 1e-4
CUTMIX_OUTLIERS = 1500
SAMPLES_PER_CLASS, VOS_KEEP, SHRINK = 400, 20, 0.5
KINDS = ("cutmix_pixels", "feature_mix", "vos")


def train_head(x: np.ndarray, y: np.ndarray, n_classes: int, outliers: np.ndarray | None, weight: float,
               seed: int = 0) -> np.ndarray:
    """Cosine-head rows W (n_classes x D) for L2-normalised x, by full-batch Adam on
    mean CE(y) + weight x mean CE(uniform) over ``outliers``."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.01, (n_classes, x.shape[1]))
    m, v = np.zeros_like(w), np.zeros_like(w)
    onehot = np.eye(n_classes)[y]
    for step in range(1, STEPS + 1):
        norms = np.linalg.norm(w, axis=1, keepdims=True)
        wn = w / norms
        g = _grad_logits(x, onehot, wn).T @ x / len(x)  # dL/dWn, [K, D]
        if outliers is not None and weight > 0:
            uniform = np.full((len(outliers), n_classes), 1.0 / n_classes)
            g += weight * _grad_logits(outliers, uniform, wn).T @ outliers / len(outliers)
        g = SCALE * (g - (g * wn).sum(1, keepdims=True) * wn) / norms  # through the row normalisation
        g += WEIGHT_DECAY * w
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        w -= LR * (m / (1 - 0.9 ** step)) / (np.sqrt(v / (1 - 0.999 ** step)) + 1e-8)
    return w / np.linalg.norm(w, axis=1, keepdims=True)


def _grad_logits(x: np.ndarray, targets: np.ndarray, wn: np.ndarray) -> np.ndarray:
    """d CE / d logits for logits = SCALE x @ wn.T (softmax - target), per row."""
    return softmax(SCALE * x @ wn.T) - targets


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(1, keepdims=True)


def max_score(head: np.ndarray, x: np.ndarray) -> np.ndarray:
    return softmax(SCALE * x @ head.T).max(1)


def normalised(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def feature_mix(x: np.ndarray, y: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    a = rng.integers(0, len(x), count * 3)
    b = rng.integers(0, len(x), count * 3)
    keep = np.flatnonzero(y[a] != y[b])[:count]
    lam = rng.uniform(0.35, 0.65, (len(keep), 1))
    return normalised(lam * x[a[keep]] + (1 - lam) * x[b[keep]])


def vos(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The VOS_KEEP least likely of SAMPLES_PER_CLASS draws from each class's Gaussian."""
    classes = np.unique(y)
    means = np.stack([x[y == c].mean(0) for c in classes])
    centred = x - means[np.searchsorted(classes, y)]
    cov = centred.T @ centred / len(x)
    cov = (1 - SHRINK) * cov + SHRINK * np.trace(cov) / len(cov) * np.eye(len(cov))  # 1280-d from ~2k photos
    root = np.linalg.cholesky(cov)
    precision = np.linalg.inv(cov)
    out = []
    for mean in means:
        draws = mean + rng.standard_normal((SAMPLES_PER_CLASS, len(mean))) @ root.T
        d = draws - mean
        mahalanobis = np.einsum("ij,jk,ik->i", d, precision, d)
        out.append(draws[np.argsort(-mahalanobis)[:VOS_KEEP]])
    return normalised(np.concatenate(out))


def cutmix_pixel_embeddings(d: dict, model: Path, dataset: Path, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings [N, D], source classes [N, 2]) of CUTMIX_OUTLIERS pictures mixing two known
    classes' training photos, from the recipe's own outlier function; cached."""
    if cache.is_file():
        saved = np.load(cache)
        return saved["embedding"], saved["classes"]
    from edgeshop.runtime.classifier import Classifier
    from edgeshop.runtime.probe import HeadProbe
    from edgeshop.train.outlier_exposure import cutmix_outliers

    old = list(d["old_labels"])
    rows = np.flatnonzero((d["split"] == "train") & (d["view"] == 0) & np.isin(d["label"], old))
    classifier = Classifier(model)
    probe = HeadProbe(classifier)
    samples = [Sample(dataset / d["path"][i], d["label"][i]) for i in rows]
    pixels, labels = [], []
    for sample, image in iter_decoded(samples, classifier.input_spec):
        if not isinstance(image, str):
            pixels.append(image)
            labels.append(old.index(sample.label))
    pixels, labels = np.stack(pixels), np.array(labels)
    rng = np.random.default_rng(1)
    embeddings, classes = [], []
    batch = 32
    while len(embeddings) < CUTMIX_OUTLIERS:
        pick = rng.choice(len(pixels), batch, replace=False)
        images, found = cutmix_outliers(pixels[pick].astype(np.float32), labels[pick],
                                        rng.integers(0, 2**31 - 1, 2), batch)
        partner = _partners(labels[pick])
        for j, (image, ok) in enumerate(zip(images.numpy(), found.numpy(), strict=True)):
            if ok:
                embeddings.append(probe.run(np.clip(image, 0, 255).astype(pixels.dtype))["embedding"])
                classes.append((labels[pick][j], labels[pick][partner[j]]))
        print(f"{len(embeddings)}/{CUTMIX_OUTLIERS} outliers", flush=True)
    embeddings, classes = np.stack(embeddings)[:CUTMIX_OUTLIERS], np.array(classes)[:CUTMIX_OUTLIERS]
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, embedding=embeddings, classes=classes)
    tmp.replace(cache)
    return embeddings, classes


def _partners(classes: np.ndarray) -> np.ndarray:
    from edgeshop.train.outlier_exposure import different_class_partners
    return different_class_partners(classes)[0].numpy()


def outliers_for(kind: str, x: np.ndarray, y: np.ndarray, known: np.ndarray, cutmix: tuple, seed: int) -> np.ndarray:
    """Outliers of ``kind`` from the classes ``known`` only (x, y: their training embeddings)."""
    rng = np.random.default_rng(seed)
    if kind == "cutmix_pixels":
        embedding, classes = cutmix
        return normalised(embedding[np.isin(classes, known).all(1)])
    if kind == "feature_mix":
        return feature_mix(x, y, CUTMIX_OUTLIERS, rng)
    return vos(x, y, rng)


def evaluate(d: dict, keep: np.ndarray, unknown_rows: dict, cutmix: tuple) -> dict:
    """Heads without and with each kind of OE on the classes ``keep``; figures per unknown set."""
    old = list(d["old_labels"])
    truth = np.array([old.index(n) if n in old else -1 for n in d["label"]])
    base = d["view"] == 0
    known_classes = np.flatnonzero(keep)
    position = np.cumsum(keep) - 1
    train = base & np.isin(truth, known_classes) & (d["split"] == "train")
    val = base & np.isin(truth, known_classes) & (d["split"] == "val")
    x, y = d["embedding"][train].astype(np.float64), position[truth[train]]
    heads = {"no_oe": train_head(x, y, len(known_classes), None, 0.0)}
    for kind in KINDS:
        outliers = outliers_for(kind, x, y, known_classes, cutmix, seed=int(keep.sum()))
        heads[kind] = train_head(x, y, len(known_classes), outliers, LAMBDA)
    result = {}
    for name, head in heads.items():
        s = max_score(head, d["embedding"].astype(np.float64))
        top1 = float(np.mean(np.argmax(d["embedding"][val] @ head.T, 1) == position[truth[val]]))
        row = {"known_top1": top1, "_scores": s}
        for set_name, rows in unknown_rows.items():
            row[set_name] = {"auroc": auroc(s[val], s[rows]), "fpr_at_95tpr": fpr_at_tpr(s[val], s[rows])}
        result[name] = row
    result["_val"] = val
    return result


def paired_difference(d: dict, a: np.ndarray, b: np.ndarray, val: np.ndarray, unknown: np.ndarray) -> list[float]:
    """Burst-resampled interval of AUROC(a) - AUROC(b), the same resampled bursts for both."""
    both = np.stack([a, b], 1)
    return grouped_interval(lambda k, u: auroc(k[:, 0], u[:, 0]) - auroc(k[:, 1], u[:, 1]),
                            both[val], both[unknown], d["group"][val], d["group"][unknown])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=str(ROOT.parent / "shared" / "datasets" / "grocery_store"))
    parser.add_argument("--model", default=str(ROOT / "models" / "grocery" / "open_set" / "grocery71_int8.tflite"))
    parser.add_argument("--out", default=str(FIGURES / "open_set" / "outlier_exposure_proxy.json"))
    args = parser.parse_args()
    model, dataset = Path(args.model), Path(args.dataset)
    d = load(model, dataset)
    cache = ROOT / "runs" / "open_set" / f"cutmix_outliers_{model.stem}.npz"
    cutmix = cutmix_pixel_embeddings(d, model, dataset, cache)
    old = list(d["old_labels"])
    base = d["view"] == 0
    unseen = base & ~np.isin(d["label"], old)

    ten = evaluate(d, np.ones(len(old), bool), {"ten_train": unseen & (d["split"] == "train"),
                                                 "ten_val": unseen & (d["split"] == "val")}, cutmix)
    folds = fold_of(d["old_labels"])
    fold_rows = []
    for f in range(FOLDS):
        held = np.isin(d["label"], [old[i] for i in np.flatnonzero(folds == f)])
        fold_rows.append(evaluate(d, folds != f, {"fold": base & held & (d["split"] != "iconic")}, cutmix))
        print(f"fold {f + 1}/{FOLDS}", flush=True)

    figures = {"lambda": LAMBDA, "steps": STEPS, "outlier_kinds": list(KINDS), "cutmix_outliers": int(len(cutmix[0])),
               "known_val_photos": int(ten["_val"].sum()),
               "ten_train_photos": int((unseen & (d["split"] == "train")).sum()),
               "ten_val_photos": int((unseen & (d["split"] == "val")).sum()), "heads": {}}
    ten_train = unseen & (d["split"] == "train")
    for name in ("no_oe", *KINDS):
        row = {"known_top1": ten[name]["known_top1"], "ten_train": ten[name]["ten_train"],
               "ten_val": ten[name]["ten_val"],
               "fold_mean_auroc": float(np.mean([r[name]["fold"]["auroc"] for r in fold_rows])),
               "fold_mean_fpr_at_95tpr": float(np.mean([r[name]["fold"]["fpr_at_95tpr"] for r in fold_rows])),
               "fold_mean_known_top1": float(np.mean([r[name]["known_top1"] for r in fold_rows]))}
        row["ten_train"]["auroc_interval"] = grouped_interval(
            auroc, ten[name]["_scores"][ten["_val"]], ten[name]["_scores"][ten_train],
            d["group"][ten["_val"]], d["group"][ten_train])
        if name != "no_oe":
            row["ten_train_auroc_gain_interval"] = paired_difference(
                d, ten[name]["_scores"], ten["no_oe"]["_scores"], ten["_val"], ten_train)
        figures["heads"][name] = row
    figures["winners"] = [k for k in KINDS if wins(figures["heads"][k], figures["heads"]["no_oe"])]
    figures["full_recipe_run"] = "cutmix_pixels" in figures["winners"]
    write_json_atomic(Path(args.out), figures)
    print(f"wrote {args.out}; winners: {figures['winners'] or 'none'}")
    return 0


def wins(oe: dict, no_oe: dict) -> bool:
    """The module docstring's decision rule."""
    return (oe["ten_train"]["auroc"] - no_oe["ten_train"]["auroc"] >= 0.02
            and oe["ten_train_auroc_gain_interval"][0] > 0
            and oe["fold_mean_auroc"] >= no_oe["fold_mean_auroc"] - 0.005
            and oe["known_top1"] >= no_oe["known_top1"] - 0.005)


if __name__ == "__main__":
    sys.exit(main())
