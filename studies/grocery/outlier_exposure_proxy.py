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
- folds_imagenet: leave-classes-out folds as the unknown-scoring protocol defines them
  (open_set_protocol.py, estimate B: class i in fold i % 8) on frozen ImageNet Lite0 features
  (pooled, 224 px, never trained on Grocery, so nothing about a held-out class leaks): head on the
  other classes' training photos, outliers from those classes only (cutmix_pixels: the CutMix
  pictures' ImageNet features); known = their val photos, unknown = every photo of the fold's
  classes;
- folds_shipped: the open-set study's 7 folds (class i in fold i % 7) on the shipped model's
  features, whose backbone saw every fold class: optimistic, reported only.
Intervals: 95% percentile bootstrap over bursts (open_set_study.grouped_interval), the
difference OE - no OE paired (the same resampled bursts for both).

DECISION RULE (fixed before any figure was computed):
A kind of outlier wins clearly when, against the no-OE head,
  (1) AUROC on `ten` rises by >= 0.02 and the paired interval of the rise is above 0,
  (2) the mean folds_imagenet AUROC does not fall by more than 0.005, and
  (3) the 71 classes' val top-1 does not fall by more than 0.5 point.
The full 71-class recipe with OE (`outlier_exposure` in the training config) is trained only if
cutmix_pixels wins (the recipe has no feature-space outliers); a win of feature_mix or vos
alone is reported as a lead, not acted on. No winner: a negative result, reported as such.
(Amended before any figure was computed: the fold guard moved from the leaky shipped-feature
folds to the ImageNet-feature folds of the unknown-scoring protocol.)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from open_set_embeddings import cache_path  # noqa: E402
from open_set_study import FOLDS, fold_of, grouped_interval, load  # noqa: E402
from readme_block import replace_block  # noqa: E402
from study_paths import FIGURES, ROOT  # noqa: E402  (this folder is on sys.path when run as a script)

from edgeshop import write_json_atomic  # noqa: E402
from edgeshop.data import Sample, iter_decoded  # noqa: E402
from edgeshop.report import auroc, fpr_at_tpr  # noqa: E402

LAMBDA = 0.5
SCALE = 16.0  # the shipped open-set model's cosine scale
STEPS, LR, WEIGHT_DECAY = 300, 0.05, 1e-4
CUTMIX_OUTLIERS = 1500
SAMPLES_PER_CLASS, VOS_KEEP, SHRINK = 400, 20, 0.5
KINDS = ("cutmix_pixels", "feature_mix", "vos")
IMAGENET_FOLDS, IMAGENET_SIZE = 8, 224  # the unknown-scoring protocol's estimate B


def train_head(x: np.ndarray, y: np.ndarray, n_classes: int, outliers: np.ndarray | None, weight: float,
               seed: int = 0) -> np.ndarray:
    """Cosine-head rows W (n_classes x D) for L2-normalised x, by full-batch Adam on
    mean CE(y) + weight x mean CE(uniform) over ``outliers``."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.01, (n_classes, x.shape[1])).astype(np.float32)
    m, v = np.zeros_like(w), np.zeros_like(w)
    onehot = np.eye(n_classes, dtype=np.float32)[y]
    for step in range(1, STEPS + 1):
        norms = np.linalg.norm(w, axis=1, keepdims=True)
        wn = w / norms
        g = _grad_logits(x, onehot, wn).T @ x / len(x)  # dL/dWn, [K, D]
        if outliers is not None and weight > 0:
            uniform = np.full((len(outliers), n_classes), 1.0 / n_classes, np.float32)
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
    return normalised(lam * x[a[keep]] + (1 - lam) * x[b[keep]]).astype(np.float32)


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
        mahalanobis = ((d @ precision) * d).sum(1)
        out.append(draws[np.argsort(-mahalanobis)[:VOS_KEEP]])
    return normalised(np.concatenate(out)).astype(np.float32)


def training_pixels(d: dict, dataset: Path, spec) -> tuple[np.ndarray, np.ndarray]:
    """Model-ready pixels (``spec``) and old-class index of every known class's training photo."""
    old = list(d["old_labels"])
    rows = np.flatnonzero((d["split"] == "train") & (d["view"] == 0) & np.isin(d["label"], old))
    pixels, labels = [], []
    for sample, image in iter_decoded([Sample(dataset / d["path"][i], d["label"][i]) for i in rows], spec):
        if not isinstance(image, str):
            pixels.append(image)
            labels.append(old.index(sample.label))
    return np.stack(pixels), np.array(labels)


def cutmix_batches(pixels: np.ndarray, labels: np.ndarray, embed) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings [N, D], source classes [N, 2]) of CUTMIX_OUTLIERS pictures mixing two known
    classes' photos, made by the recipe's own outlier function; ``embed`` maps a batch of pictures
    to features."""
    from edgeshop.train import cutmix_outliers, different_class_partners

    rng = np.random.default_rng(1)
    embeddings, classes = [], []
    batch = 32
    while sum(len(e) for e in embeddings) < CUTMIX_OUTLIERS:
        pick = rng.choice(len(pixels), batch, replace=False)
        images, found = cutmix_outliers(pixels[pick].astype(np.float32), labels[pick],
                                        rng.integers(0, 2**31 - 1, 2), batch)
        partner = different_class_partners(labels[pick])[0].numpy()
        ok = found.numpy()
        embeddings.append(embed(images.numpy()[ok]))
        classes.append(np.stack([labels[pick], labels[pick][partner]], 1)[ok])
        print(f"{sum(len(e) for e in embeddings)}/{CUTMIX_OUTLIERS} outliers", flush=True)
    return np.concatenate(embeddings)[:CUTMIX_OUTLIERS], np.concatenate(classes)[:CUTMIX_OUTLIERS]


def cached(path: Path, make) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        embedding, classes = make()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, embedding=embedding, classes=classes)
        tmp.replace(path)
    saved = np.load(path)
    return saved["embedding"], saved["classes"]


def shipped_cutmix(d: dict, model: Path, dataset: Path) -> tuple[np.ndarray, np.ndarray]:
    """CutMix outliers through the shipped open-set model (its penultimate embedding)."""
    def make():
        from edgeshop import Classifier
        from edgeshop.adapt import HeadProbe

        classifier = Classifier(model)
        probe = HeadProbe(classifier)
        pixels, labels = training_pixels(d, dataset, classifier.input_spec)
        return cutmix_batches(pixels, labels, lambda images: np.stack(
            [probe.run(np.clip(i, 0, 255).astype(pixels.dtype))["embedding"] for i in images]))
    return cached(cache_path(model).with_name(f"cutmix_outliers_{model.stem}.npz"), make)


def imagenet_pooled(size: int):
    from edgeshop.train import (
        build_efficientnet_lite0,
        find_pretrained_weights,
        get_architecture,
        keras,
        load_weights_npz,
    )
    model = build_efficientnet_lite0(2, size, dropout=0.0)
    load_weights_npz(model, find_pretrained_weights(get_architecture("efficientnet_lite0")))
    return keras.Model(model.input, model.get_layer("pool").output)


def imagenet_features(d: dict, model: Path) -> np.ndarray:
    """The protocol's cached ImageNet Lite0 features of every train/val row (NaN elsewhere)."""
    path = cache_path(model).with_name(f"{cache_path(model).stem}_imagenet_lite0_{IMAGENET_SIZE}.npy")
    if not path.is_file():
        raise SystemExit(f"{path}: missing; `make open-set-protocol` (studies/grocery/open_set_protocol.py) caches it")
    features = np.load(path)
    if len(features) != len(d["path"]):
        raise SystemExit(f"{path}: {len(features)} rows for {len(d['path'])} cached photos; delete it and rerun")
    return features


def imagenet_cutmix(d: dict, model: Path, dataset: Path) -> tuple[np.ndarray, np.ndarray]:
    """CutMix outliers through the frozen ImageNet Lite0 (pooled features at IMAGENET_SIZE px)."""
    def make():
        from edgeshop.tflite import InputSpec
        from edgeshop.train import LITE0_MEAN, LITE0_STD

        spec = InputSpec(IMAGENET_SIZE, IMAGENET_SIZE, interpolation="linear", mean=LITE0_MEAN, std=LITE0_STD)
        pixels, labels = training_pixels(d, dataset, spec)
        pooled = imagenet_pooled(IMAGENET_SIZE)
        return cutmix_batches(pixels, labels, lambda images: pooled.predict(images, batch_size=32, verbose=0))
    return cached(cache_path(model).with_name(f"cutmix_outliers_imagenet_lite0_{IMAGENET_SIZE}.npz"), make)


def outliers_for(kind: str, x: np.ndarray, y: np.ndarray, known: np.ndarray, cutmix: tuple, seed: int) -> np.ndarray:
    """Outliers of ``kind`` from the classes ``known`` only (x, y: their training features)."""
    rng = np.random.default_rng(seed)
    if kind == "cutmix_pixels":
        embedding, classes = cutmix
        return normalised(embedding[np.isin(classes, known).all(1)]).astype(np.float32)
    if kind == "feature_mix":
        return feature_mix(x, y, CUTMIX_OUTLIERS, rng)
    return vos(x, y, rng)


def evaluate(d: dict, features: np.ndarray, keep: np.ndarray, unknown_rows: dict, cutmix: tuple) -> dict:
    """Heads without and with each kind of OE on the classes ``keep`` (unit-length ``features``);
    per head the known val top-1, the max-softmax scores and the figures per unknown set."""
    old = list(d["old_labels"])
    truth = np.array([old.index(n) if n in old else -1 for n in d["label"]])
    base = d["view"] == 0
    known_classes = np.flatnonzero(keep)
    position = np.cumsum(keep) - 1
    train = base & np.isin(truth, known_classes) & (d["split"] == "train")
    val = base & np.isin(truth, known_classes) & (d["split"] == "val")
    x, y = features[train], position[truth[train]]
    heads = {"no_oe": train_head(x, y, len(known_classes), None, 0.0)}
    for kind in KINDS:
        outliers = outliers_for(kind, x, y, known_classes, cutmix, seed=int(keep.sum()))
        heads[kind] = train_head(x, y, len(known_classes), outliers, LAMBDA)
    result = {"_val": val}
    for name, head in heads.items():
        s = max_score(head, np.nan_to_num(features))
        top1 = float(np.mean(np.argmax(features[val] @ head.T, 1) == position[truth[val]]))
        row = {"known_top1": top1, "_scores": s}
        for set_name, rows in unknown_rows.items():
            row[set_name] = {"auroc": auroc(s[val], s[rows]), "fpr_at_95tpr": fpr_at_tpr(s[val], s[rows])}
        result[name] = row
    return result


def folds_figures(d: dict, features: np.ndarray, assignment: np.ndarray, cutmix: tuple, tag: str) -> list[dict]:
    old = list(d["old_labels"])
    usable = (d["view"] == 0) & np.isin(d["split"], ("train", "val")) & np.isfinite(features).all(1)
    rows, started = [], time.time()
    for f in range(assignment.max() + 1):
        held = np.isin(d["label"], [old[i] for i in np.flatnonzero(assignment == f)])
        rows.append(evaluate(d, features, assignment != f, {"fold": usable & held}, cutmix))
        print(f"{tag} fold {f + 1}/{assignment.max() + 1} ({time.time() - started:.0f} s)", flush=True)
    return rows


def seed_spread(d: dict, unknown: np.ndarray, seeds: int) -> dict:
    """Known top-1 and AUROC of the no-OE head on the 71 classes from ``seeds`` initial weights."""
    old = list(d["old_labels"])
    truth = np.array([old.index(n) if n in old else -1 for n in d["label"]])
    base = (d["view"] == 0) & (truth >= 0)
    train, val = base & (d["split"] == "train"), base & (d["split"] == "val")
    rows = []
    for seed in range(seeds):
        head = train_head(d["embedding"][train], truth[train], len(old), None, 0.0, seed=seed)
        s = max_score(head, d["embedding"])
        top1 = float(np.mean(np.argmax(d["embedding"][val] @ head.T, 1) == truth[val]))
        rows.append({"seed": seed, "known_top1": top1, "auroc_unseen_train": auroc(s[val], s[unknown])})
    return {"head": "no_oe", "seeds": rows}


def paired_difference(d: dict, a: np.ndarray, b: np.ndarray, val: np.ndarray, unknown: np.ndarray) -> list[float]:
    """Burst-resampled interval of AUROC(a) - AUROC(b), the same resampled bursts for both."""
    both = np.stack([a, b], 1)
    return grouped_interval(lambda k, u: auroc(k[:, 0], u[:, 0]) - auroc(k[:, 1], u[:, 1]),
                            both[val], both[unknown], d["group"][val], d["group"][unknown])


def main() -> int:
    global LAMBDA  # --weight: the heads of evaluate() read it
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=str(ROOT.parent / "shared" / "datasets" / "grocery_store"))
    parser.add_argument("--model", default=str(ROOT / "models" / "grocery" / "open_set" / "grocery71_int8.tflite"))
    parser.add_argument("--out", default=str(FIGURES / "open_set" / "outlier_exposure_proxy.json"))
    parser.add_argument("--weight", type=float, default=LAMBDA,
                        help="OE weight lambda (the decision rule was fixed for 0.5; other values are exploratory)")
    parser.add_argument("--no-folds", action="store_true", help="the ten unseen products' estimate only (minutes)")
    parser.add_argument("--render-only", action="store_true",
                        help="only rewrite studies/grocery/outlier-exposure.md's tables from the stored figures")
    parser.add_argument("--seed-spread", type=int, metavar="N",
                        help="only the no-OE head from N initial seeds on the unseen estimate: the probe's own noise")
    args = parser.parse_args()
    LAMBDA = args.weight
    if args.render_only:
        render_blocks()
        return 0
    model, dataset = Path(args.model), Path(args.dataset)
    d = load(model, dataset)
    imagenet = normalised(imagenet_features(d, model)).astype(np.float32)
    shipped_outliers, imagenet_outliers = shipped_cutmix(d, model, dataset), imagenet_cutmix(d, model, dataset)
    old = list(d["old_labels"])
    unseen = (d["view"] == 0) & ~np.isin(d["label"], old)
    ten_train = unseen & (d["split"] == "train")

    if args.seed_spread:
        write_json_atomic(Path(args.out), seed_spread(d, ten_train, args.seed_spread))
        print(f"wrote {args.out}")
        return 0
    ten = evaluate(d, d["embedding"], np.ones(len(old), bool),
                   {"ten_train": ten_train, "ten_val": unseen & (d["split"] == "val")}, shipped_outliers)
    folds = {} if args.no_folds else {
        "folds_imagenet": folds_figures(d, imagenet, np.arange(len(old)) % IMAGENET_FOLDS, imagenet_outliers,
                                        "imagenet"),
        "folds_shipped": folds_figures(d, d["embedding"], fold_of(d["old_labels"]), shipped_outliers, "shipped")}
    figures = {"lambda": LAMBDA, "steps": STEPS, "outlier_kinds": list(KINDS), "cutmix_outliers": CUTMIX_OUTLIERS,
               "known_val_photos": int(ten["_val"].sum()), "ten_train_photos": int(ten_train.sum()),
               "ten_val_photos": int((unseen & (d["split"] == "val")).sum()),
               "folds": {"folds_imagenet": IMAGENET_FOLDS, "folds_shipped": FOLDS}, "heads": {}}
    for name in ("no_oe", *KINDS):
        row = {"known_top1": ten[name]["known_top1"], "ten_train": ten[name]["ten_train"],
               "ten_val": ten[name]["ten_val"]}
        row["ten_train"]["auroc_interval"] = grouped_interval(
            auroc, ten[name]["_scores"][ten["_val"]], ten[name]["_scores"][ten_train],
            d["group"][ten["_val"]], d["group"][ten_train])
        if name != "no_oe":
            row["ten_train_auroc_gain_interval"] = paired_difference(
                d, ten[name]["_scores"], ten["no_oe"]["_scores"], ten["_val"], ten_train)
        for tag, rows in folds.items():
            row[tag] = {"mean_auroc": float(np.mean([r[name]["fold"]["auroc"] for r in rows])),
                        "mean_fpr_at_95tpr": float(np.mean([r[name]["fold"]["fpr_at_95tpr"] for r in rows])),
                        "mean_known_top1": float(np.mean([r[name]["known_top1"] for r in rows])),
                        "auroc_per_fold": [round(r[name]["fold"]["auroc"], 4) for r in rows]}
        figures["heads"][name] = row
    if folds:
        figures["winners"] = [k for k in KINDS if wins(figures["heads"][k], figures["heads"]["no_oe"])]
        figures["full_recipe_run"] = "cutmix_pixels" in figures["winners"]
    if LAMBDA != 0.5 or not folds:
        figures["exploratory"] = "not the pre-registered setting (lambda 0.5 with folds): never used to choose"
    write_json_atomic(Path(args.out), figures)
    if Path(args.out).resolve() in {PROXY.resolve(), *(p.resolve() for p in EXPLORATORY)}:
        render_blocks()
    print(f"wrote {args.out}; winners: {figures.get('winners') or 'none'}")
    return 0


PROXY = FIGURES / "open_set" / "outlier_exposure_proxy.json"
EXPLORATORY = [FIGURES / "open_set" / "variants" / f"outlier_exposure_proxy_lambda{w}.json" for w in ("0.1", "0.25")]


def _gain(row: dict) -> str:
    """The paired interval of the OE head's AUROC gain, as [low, high]."""
    low, high = row["ten_train_auroc_gain_interval"]
    return f"[{low:+.3f}, {high:+.3f}]"


def render(figures: dict) -> str:
    """The write-up's table of the pre-registered run (lambda 0.5, folds)."""
    base = figures["heads"]["no_oe"]["ten_train"]["auroc"]
    lines = ["| head | known top-1 (71 val) | AUROC, unseen train photos [95%] | OE gain [95%, paired] | FPR@95TPR "
             "| AUROC, ImageNet folds | AUROC, shipped-feature folds | AUROC, unseen val |",
             "|---|---|---|---|---|---|---|---|"]
    for name in ("no_oe", *KINDS):
        row, t = figures["heads"][name], figures["heads"][name]["ten_train"]
        gain = "-" if name == "no_oe" else f"{t['auroc'] - base:+.3f} {_gain(row)}"
        lines.append(f"| {'no OE' if name == 'no_oe' else name} | {100 * row['known_top1']:.2f}% "
                     f"| {t['auroc']:.3f} [{t['auroc_interval'][0]:.3f}, {t['auroc_interval'][1]:.3f}] | {gain} "
                     f"| {t['fpr_at_95tpr']:.3f} | {row['folds_imagenet']['mean_auroc']:.3f} "
                     f"| {row['folds_shipped']['mean_auroc']:.3f} | {row['ten_val']['auroc']:.3f} |")
    lines += ["", f"Known: the 71 classes' {figures['known_val_photos']} val photos; unknown: the ten products' "
              f"{figures['ten_train_photos']} training photos ({figures['ten_val_photos']} val photos in the last "
              "column); "
              f"lambda {figures['lambda']}. Winners under the rule: {', '.join(figures['winners']) or 'none'}."]
    return "\n".join(lines)


def render_exploratory(files: list[dict]) -> str:
    """The write-up's table of the exploratory lambdas (never used to choose)."""
    lines = ["| lambda | head | known top-1 | AUROC, unseen train photos | OE gain [95%, paired] | FPR@95TPR "
             "| AUROC, unseen val |", "|---|---|---|---|---|---|---|"]
    for figures in files:
        base = figures["heads"]["no_oe"]["ten_train"]["auroc"]
        for name in KINDS:
            row, t = figures["heads"][name], figures["heads"][name]["ten_train"]
            lines.append(f"| {figures['lambda']} | {name} | {100 * row['known_top1']:.2f}% | {t['auroc']:.3f} "
                         f"| {t['auroc'] - base:+.3f} {_gain(row)} | {t['fpr_at_95tpr']:.3f} "
                         f"| {row['ten_val']['auroc']:.3f} |")
    return "\n".join(lines)


def render_blocks() -> None:
    import json

    replace_block("outlier-exposure-proxy", render(json.loads(PROXY.read_text())))
    found = [json.loads(p.read_text()) for p in EXPLORATORY if p.is_file()]
    replace_block("outlier-exposure-lambdas", render_exploratory(found))


def wins(oe: dict, no_oe: dict) -> bool:
    """The module docstring's decision rule."""
    return (oe["ten_train"]["auroc"] - no_oe["ten_train"]["auroc"] >= 0.02
            and oe["ten_train_auroc_gain_interval"][0] > 0
            and oe["folds_imagenet"]["mean_auroc"] >= no_oe["folds_imagenet"]["mean_auroc"] - 0.005
            and oe["known_top1"] >= no_oe["known_top1"] - 0.005)


if __name__ == "__main__":
    sys.exit(main())
