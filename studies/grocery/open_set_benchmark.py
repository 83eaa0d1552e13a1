"""The open-set benchmark of the shipped grocery71 model: unknown products, then enrolment.

    python studies/grocery/open_set_benchmark.py            # (make open-set trains the model first)

The model (`models/grocery/open_set/grocery71_int8.tflite`, `studies/grocery/grocery_recipe.py
--exclude-classes ...`) never saw ten of the 81 Grocery classes. On the official val split:
1. Unknown products: how well each score (max softmax, max logit, energy, kNN on the
   embedding with the training images as reference) separates the 71 known classes' val
   images from the ten unseen classes' val images (edgeshop-eval --unknown's code), and,
   as a second estimate, from the ten classes' training photos (unseen by this model too),
   with the AUROC per unseen product;
2. Enrolment (edgeshop-enroll's code, in memory): the ten added from k photos each,
   k = 1 (the dataset's iconic catalogue image), 5 and 10 (training photos spread evenly
   over each class's sorted file list, since the files are bursts of near-identical shots
   and a user photographs a product from a few sides, not ten times from one); then the
   new classes' val accuracy among all 81 and the 71 old classes' top-1 before and after,
   at the head's imprint gain (edgeshop.adapt.enroll.IMPRINT_GAIN);
3. The gain study that chose that gain, on data the enrolment figures do not report: for
   gains 1.0-2.0, enrolment from 5 photos each, the old classes' top-1 on their calibration
   images (the 71 classes' val images, which calibration already fits the temperature on)
   and the new classes' training photos that were not enrolled (near-duplicates of the
   enrolled ones: an optimistic check that new images are won, not the figure to quote);
   the rule: the largest gain that costs the old classes at most 1 point.
Figures: studies/grocery/figures/open_set/open_set.json; the README table comes from it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import study_paths  # noqa: F401  (puts the repository root and tools/ on sys.path)
from readme_block import replace_block  # noqa: E402
from study_paths import FIGURES, ROOT

from edgeshop import (
    Classifier,
    write_json_atomic,
)
from edgeshop.adapt import (  # noqa: E402
    HeadProbe,
    enroll_content,
    loaded,
)
from edgeshop.data import LoadedImages, Sample, discover, load_images, read_class_names  # noqa: E402
from edgeshop.report import auroc, unknown_figures  # noqa: E402

SHOTS = (1, 5, 10)
GAINS = tuple(round(1.0 + 0.1 * i, 1) for i in range(11))  # the gain study's grid
STUDY_SHOTS, STUDY_MAX_OLD_LOSS = 5, 0.01
PREVIOUS = "open_set_previous.json"  # the figures of the open-set model the shipped one replaced, if any


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=str(ROOT.parent / "shared" / "datasets" / "grocery_store"))
    parser.add_argument("--model", default=str(ROOT / "models" / "grocery" / "open_set" / "grocery71_int8.tflite"))
    parser.add_argument("--out", default=str(FIGURES / "open_set" / "open_set.json"))
    parser.add_argument("--render-only", action="store_true",
                        help="only rewrite the README's open-set tables from the stored figures")
    args = parser.parse_args()
    if args.render_only:
        shipped = json.loads((FIGURES / "open_set" / "open_set.json").read_text())
        replace_block("open-set", render(shipped))
        replace_block("open-set-variants", render_variants(shipped))
        return 0
    dataset, model = Path(args.dataset), Path(args.model)
    started = time.time()
    figures_file = model.with_name(f"figures_{model.stem.split('_')[0]}.json")
    trained = json.loads(figures_file.read_text())
    excluded = trained["excluded_classes"]
    new_names = sorted(c["name"] for c in excluded)
    classifier = Classifier(model)
    old_names = classifier.labels
    val = discover(dataset / "val")
    all_names = [*old_names, *new_names]
    images = load_images(val, all_names, classifier.input_spec)
    is_new = images.labels >= len(old_names)

    probe = HeadProbe(classifier)
    known = probe.run_many(images.pixels[~is_new], "val, known classes")
    unknown = probe.run_many(images.pixels[is_new], "val, unseen classes")
    train_split = discover(dataset / "train")
    train = [s for s in train_split if s.label in old_names]
    reference = probe.run_many(load_images(train, old_names, classifier.input_spec).pixels, "train, known")
    open_set = unknown_figures(images.labels[~is_new], known, unknown, classifier.unknown_threshold,
                               reference=reference["embedding"])
    # The ten classes' training photos: never seen by this model either; ten times as many as
    # their val images (in bursts of near-identical shots): a second estimate of the same separation.
    unseen_train = load_images([s for s in train_split if s.label in new_names], new_names,
                               classifier.input_spec)
    more = probe.run_many(unseen_train.pixels, "train, unseen classes")
    more_figures = unknown_figures(images.labels[~is_new], known, more, classifier.unknown_threshold,
                                   reference=reference["embedding"])
    open_set["unseen_training_photos"] = {key: more_figures[key] for key in
                                          ("unknown_images", "unknown_rejected", "methods")}
    open_set["auroc_per_unseen_class"] = per_class_auroc(
        known["scores"].max(1), np.concatenate([unknown["scores"].max(1), more["scores"].max(1)]),
        [new_names[i] for i in np.concatenate([images.labels[is_new] - len(old_names), unseen_train.labels])])

    content = model.read_bytes()
    before = _predictions(content, images)
    old_mask = ~is_new
    figures = {
        "model": str(model.resolve().relative_to(ROOT)), "excluded_classes": excluded,
        "trained": {"int8_val_top1": trained["int8"]["val"]["top1"],
                    "wall_seconds": trained["wall_seconds_train_and_export"]},
        "val_known_images": int(old_mask.sum()), "val_unseen_images": int(is_new.sum()),
        "unknown": open_set,
        "old_top1_before": float(np.mean(np.array(old_names)[before[old_mask]] ==
                                         np.array(all_names)[images.labels[old_mask]])),
        "enrolment": [],
    }
    for k in SHOTS:
        shots = _shots(dataset, new_names, k)
        photos = load_images(shots, new_names, classifier.input_spec)
        enrolled, record = enroll_content(content, photos, new_names, source=str(model),
                                          data=f"{k} photo(s) per class")
        figures["gain"] = record["gain"]  # the head's default (edgeshop.adapt.enroll.IMPRINT_GAIN)
        predicted = _predictions(enrolled, images)  # indices into old_names + new_names
        correct = predicted == images.labels
        per_class = {name: float(np.mean(correct[images.labels == len(old_names) + i]))
                     for i, name in enumerate(new_names)}
        figures["enrolment"].append({
            "shots": k, "source": "iconic catalogue image" if k == 1 else "training photos, evenly spaced",
            "photos": int(len(photos.labels)), "skipped": len(photos.skipped),
            "new_top1": float(np.mean(correct[is_new])), "old_top1_after": float(np.mean(correct[old_mask])),
            "all_top1_after": float(np.mean(correct)),
            "old_taken_by_new": int(np.sum(predicted[old_mask] >= len(old_names))),
            "new_per_class": per_class,
        })
        row = figures["enrolment"][-1]
        print(f"k={k}: new {row['new_top1']:.3f}, old {figures['old_top1_before']:.4f} -> {row['old_top1_after']:.4f}")
    figures["head"] = classifier.card.extra.get("training", {}).get("head", {}).get("kind", "linear")
    figures["gain_study"] = gain_study(content, dataset, old_names, new_names, images.pixels[old_mask],
                                       images.labels[old_mask], classifier.input_spec)
    chosen = figures["gain_study"]["chosen"]
    if chosen != figures["gain"]:
        print(f"note: the gain study chose {chosen:g} on this model; enrolment's default for its head is "
              f"{figures['gain']:g} (edgeshop.adapt.enroll.IMPRINT_GAIN, chosen on the shipped open-set models)")
    figures["seconds"] = round(time.time() - started, 1)
    previous = Path(args.out).with_name(PREVIOUS)
    if previous.is_file():  # the model this one replaced, for the comparison line
        figures["previous"] = {**json.loads(previous.read_text()), "file": PREVIOUS}
        figures["previous"].pop("previous", None)
    write_json_atomic(args.out, figures)
    print(f"wrote {args.out}: unknown AUROC (max score) {open_set['unknown_auroc']:.3f}")
    if Path(args.out).resolve() == (FIGURES / "open_set" / "open_set.json").resolve():
        replace_block("open-set", render(figures))
    shipped = json.loads((FIGURES / "open_set" / "open_set.json").read_text())
    replace_block("open-set-variants", render_variants(shipped))
    return 0


METHOD_NAMES = {"max_score": "max calibrated score (the runtime's)", "max_logit": "max logit", "energy": "energy",
                "knn": "kNN distance (k=5, training embeddings)"}


def render(figures: dict) -> str:
    """The README block of the open-set figures: from open_set.json alone."""
    u, trained = figures["unknown"], figures["trained"]
    without_val = sum(1 for v in figures["enrolment"][0]["new_per_class"].values() if v != v)  # NaN: no val images
    lines = [f"The model: int8 val top-1 {trained['int8_val_top1']:.2%} on its 71 classes, "
             f"{trained['wall_seconds'] / 60:.1f} min to train and export here "
             "(`studies/grocery/figures/open_set/figures_grocery71.json`). "
             "`python studies/grocery/open_set_benchmark.py` (figures: "
             "`studies/grocery/figures/open_set/open_set.json`), official "
             f"val split: {figures['val_known_images']} images of the 71 known classes, "
             f"{figures['val_unseen_images']} of the ten unseen ones ({without_val} of the ten have no val "
             "images).", "",
             "| unknown score | AUROC | FPR at 95% TPR |", "|---|---|---|"]
    # a fixed row order: the runtime's score first (the figures file's order varies between runs)
    for method in sorted(u["methods"], key=lambda m: list(METHOD_NAMES).index(m) if m in METHOD_NAMES else 99):
        row = u["methods"][method]
        lines.append(f"| {METHOD_NAMES.get(method, method)} | {row['auroc']:.3f} | {row['fpr_at_95tpr']:.1%} |")
    interval = u.get("unknown_auroc_interval")
    if interval:
        lines += ["", f"The max calibrated score's AUROC on val, {u['unknown_auroc']:.3f}, rests on "
                  f"{u['unknown_images']} unseen images: its 95% bootstrap interval (images resampled, "
                  f"{u['interval_resamples']} times) is {interval[0]:.3f}-{interval[1]:.3f}, and the photos of one "
                  "product are not independent, so the real uncertainty is wider still."]
    lines += ["", f"At the card's threshold ({u['threshold']:.4f}) {u['known_accepted']:.1%} of the known images are "
              f"kept and {u['unknown_rejected']:.1%} of the unseen ones rejected."]
    lines += unseen_training_lines(u)
    lines += ["",
              "| enrolled from | new classes' val top-1 | old 71 classes' top-1 before -> after | old images taken "
              "by a new class |", "|---|---|---|---|"]
    for row in figures["enrolment"]:
        source = "1 iconic catalogue image" if row["shots"] == 1 else f"{row['shots']} training photos"
        lines.append(f"| {source} each | {row['new_top1']:.1%} | {figures['old_top1_before']:.2%} -> "
                     f"{row['old_top1_after']:.2%} | {row['old_taken_by_new']} of {figures['val_known_images']} |")
    study = figures.get("gain_study")
    if study:
        steps = ", ".join(f"{r['gain']:g}: {r['old_top1']:.2%} / {r['new_train_top1']:.0%}" for r in study["rows"])
        lines += ["", f"Imprint gain {figures['gain']:g}, the {figures['head']} head's default "
                  f"(`edgeshop-enroll --imprint-gain`). The gain study chose {study['chosen']:g}: the largest gain "
                  f"at which enrolling {study['shots']} photos each costs the old classes at most "
                  f"{100 * study['max_old_loss']:g} point on their {study['old_images']} calibration images (1.0 if "
                  f"none does). Per gain, old classes there (before {study['old_top1_before']:.2%}) / the new "
                  f"classes' {study['new_train_images']} training photos not enrolled (near-duplicates of the "
                  f"enrolled ones, so optimistic): {steps}."]
    previous = figures.get("previous")
    if previous:
        five = next((r for r in previous["enrolment"] if r["shots"] == 5), None)
        lines += ["", f"The open-set model before it ({previous.get('head', 'linear')} head, figures kept in "
                  f"`studies/grocery/figures/open_set/{previous['file']}`): int8 val top-1 "
                  f"{previous['trained']['int8_val_top1']:.2%}, unknown AUROC (max calibrated score) "
                  f"{previous['unknown']['methods']['max_score']['auroc']:.3f}"
                  + (f", 5 photos each: new classes {five['new_top1']:.1%}, old "
                     f"{previous['old_top1_before']:.2%} -> {five['old_top1_after']:.2%}" if five else "") + "."]
    return "\n".join(lines)


def unseen_training_lines(u: dict) -> list[str]:
    """The second estimate: the same known val images against the unseen classes' training photos."""
    more = u.get("unseen_training_photos")
    if not more:
        return []
    rows = ", ".join(f"{METHOD_NAMES[m].split(' (')[0]} {more['methods'][m]['auroc']:.3f}"
                     for m in METHOD_NAMES if m in more["methods"])
    hardest = sorted(u["auroc_per_unseen_class"].items(), key=lambda item: item[1]["auroc"])
    per_class = ", ".join(f"{name} {r['auroc']:.2f}" for name, r in hardest)
    gap = u["unknown_auroc"] - more["methods"]["max_score"]["auroc"]
    return ["", f"A second estimate: the ten classes' {more['unknown_images']} training photos, which this model "
            "never saw either, against the same known val images (bursts of near-identical shots, so fewer "
            f"independent views than the count says, but more products' angles than {u['unknown_images']} val "
            f"images): AUROC {rows}; {more['unknown_rejected']:.1%} rejected at the card's threshold. It reads "
            f"{abs(gap):.2f} {'below' if gap > 0 else 'above'} the val estimate. "
            + session_sentence(u["unknown_images"]) +
            f"Per unseen product (max calibrated score, its val and training photos): {per_class}. Products that "
            "look like a known one (a carton of a brand it knows, another apple or pear) are the ones it accepts."]


SESSION_CHECK = FIGURES / "open_set" / "session_check.json"


def session_sentence(unseen_val: int) -> str:
    """What studies/grocery/open_set_session_check.py found about the two estimates, if it was run."""
    if not SESSION_CHECK.is_file():
        return "Which of the two a store's new products resemble is not known here, so quote both. "
    check = json.loads(SESSION_CHECK.read_text())
    if check["images"]["unseen_val"] != unseen_val:
        raise SystemExit(f"{SESSION_CHECK} scored {check['images']['unseen_val']} unseen val photos, the benchmark "
                         f"{unseen_val}: rerun `{check['command']}`")
    closer = check["auroc_unseen_train"] < 0.5
    return ("Features never trained on this dataset (the ImageNet Lite0; each photo's distance to the "
            f"nearest known training photo; `{check['command']}`) separate the known val photos from the unseen "
            f"val photos at AUROC {check['auroc_unseen_val']:.3f} and from the unseen training photos at "
            f"{check['auroc_unseen_train']:.3f}"
            + (": the unseen training photos look more like the known training photos than the known products' "
               "own val photos do. The training photos share capture conditions the val photos lack, so the "
               "second estimate also asks the model to reject familiar conditions, not only a new product; the "
               "val estimate, where known and unseen photos alike are new to the model, is the fairer one, though "
               f"it rests on {unseen_val} unseen photos. " if closer else
               ". Quote both estimates. "))


VARIANTS = FIGURES / "open_set" / "variants"


def render_variants(shipped: dict) -> str:
    """The open-set variants tried (variants/open_set_<name>.json, with their training figures in
    variants/figures_<name>.json) beside the shipped open-set model, for the README and the card."""
    rows = [(f"shipped ({shipped.get('head', 'linear')} head)", shipped, None)]
    for path in sorted(VARIANTS.glob("open_set_*.json")):
        name = path.stem.removeprefix("open_set_")
        rows.append((name.replace("_", " "), json.loads(path.read_text()), VARIANTS / f"figures_{name}.json"))
    lines = ["| open-set model | int8 val top-1 (71 classes) | unknown AUROC (max score) | new classes, 1 / 5 / 10 "
             "photos | old classes after 1 / 5 / 10 | min to train |", "|---|---|---|---|---|---|"]
    for label, f, _ in rows:
        new = " / ".join(f"{r['new_top1']:.1%}" for r in f["enrolment"])
        old = " / ".join(f"{r['old_top1_after']:.2%}" for r in f["enrolment"])
        auroc = f["unknown"]["methods"]["max_score"]["auroc"]
        lines.append(f"| {label} | {f['trained']['int8_val_top1']:.2%} | {auroc:.3f} | {new} | {old} | "
                     f"{f['trained']['wall_seconds'] / 60:.1f} |")
    lines += ["", "The shipped open-set model: `make open-set` (the recipe with `--head cosine`, "
              "`configs/grocery_efficientnet_lite0_cosine.json`, then this benchmark); the linear-head variant "
              "(the open-set model shipped before it, enrolled at its gain 1.0): `make open-set-linear`; figures in "
              "`studies/grocery/figures/open_set/variants/` (`figures_<name>.json`: training, `open_set_<name>.json`: "
              "this "
              "benchmark). Training times are wall minutes on this 2-core machine while other jobs shared it."]
    return "\n".join(lines)


def per_class_auroc(known: np.ndarray, unknown: np.ndarray, unknown_names: list[str]) -> dict[str, dict]:
    """AUROC of the max score per unseen product (its val and training photos together): which
    products the model cannot tell from its own."""
    names = np.array(unknown_names)
    return {name: {"auroc": auroc(known, unknown[names == name]), "images": int(np.sum(names == name))}
            for name in sorted(set(unknown_names))}


def _predictions(content: bytes, images: LoadedImages) -> np.ndarray:
    return _predict_pixels(content, images.pixels)


def _predict_pixels(content: bytes, pixels: np.ndarray) -> np.ndarray:
    with loaded(content) as classifier:
        return np.array([int(classifier.scores_from_pixels(p).argmax()) for p in pixels])


def gain_study(content: bytes, dataset: Path, old_names: list[str], new_names: list[str], old_pixels: np.ndarray,
               old_labels: np.ndarray, spec) -> dict:
    """Per gain: the old classes' top-1 on their calibration images and the new classes' top-1 on
    their training photos not enrolled, after enrolling STUDY_SHOTS photos each; the chosen gain."""
    shots = _shots(dataset, new_names, STUDY_SHOTS)
    photos = load_images(shots, new_names, spec)
    enrolled = {s.path for s in shots}
    rest = [s for s in discover(dataset / "train") if s.label in new_names and s.path not in enrolled]
    held = load_images(rest, new_names, spec)
    before = float(np.mean(_predict_pixels(content, old_pixels) == old_labels))
    rows = []
    for gain in GAINS:
        model, _ = enroll_content(content, photos, new_names, gain=gain)
        rows.append({"gain": gain, "old_top1": float(np.mean(_predict_pixels(model, old_pixels) == old_labels)),
                     "new_train_top1": float(np.mean(_predict_pixels(model, held.pixels) ==
                                                     held.labels + len(old_names)))})
        print(f"gain {gain:g}: old {before:.4f} -> {rows[-1]['old_top1']:.4f}, "
              f"new (training photos not enrolled) {rows[-1]['new_train_top1']:.3f}")
    ok = [r["gain"] for r in rows if before - r["old_top1"] <= STUDY_MAX_OLD_LOSS + 1e-9]
    return {"shots": STUDY_SHOTS, "max_old_loss": STUDY_MAX_OLD_LOSS, "old_top1_before": before,
            "old_images": int(len(old_labels)), "new_train_images": int(len(held.labels)), "rows": rows,
            "chosen": max(ok) if ok else GAINS[0]}


def _shots(dataset: Path, names: list[str], k: int) -> list[Sample]:
    """k = 1: the iconic image of each class (classes.csv column 4); else k training photos spread
    evenly over the class's sorted files."""
    if k == 1:
        rows = read_iconic(dataset)
        return [Sample(rows[name], name) for name in names]
    by_class: dict[str, list[Path]] = {}
    for sample in discover(dataset / "train"):
        by_class.setdefault(sample.label, []).append(sample.path)
    shots = []
    for name in names:
        files = sorted(by_class[name])
        picks = np.linspace(0, len(files) - 1, k).round().astype(int)
        shots.extend(Sample(files[i], name) for i in picks)
    return shots


def read_iconic(dataset: Path) -> dict[str, Path]:
    """Class name -> its iconic catalogue image (the path column of Grocery's classes.csv)."""
    import csv

    names = set(read_class_names(dataset / "classes.csv").values())
    icons = {}
    with open(dataset / "classes.csv", newline="", encoding="utf-8") as handle:
        for row in csv.reader(handle):
            if len(row) >= 5 and row[0].strip() in names:
                icons[row[0].strip()] = dataset / row[4].strip().lstrip("/")
    return icons


if __name__ == "__main__":
    sys.exit(main())
