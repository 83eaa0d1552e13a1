"""Knowledge distillation (--teacher): the student's loss uses the teacher's soft targets,
the teacher's logits are cached once, and a teacher with other classes is refused."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import CLASSES, make_dataset

from edgeshop.errors import EdgeshopError

TINY = {"arch": "tiny", "batch_size": 16, "lr": 3e-3, "head_epochs": 0, "val_fraction": 0.2, "augment": False,
        "select_best_epoch": False}  # keep the last epoch: validation (hard labels) must not pick it


def _relabelled(root, source, mapping):
    """``source``'s images filed under other class names (the teacher learns a wrong mapping)."""
    for old, new in mapping.items():
        (root / new).mkdir(parents=True)
        for image in sorted((source / old).iterdir()):
            (root / new / image.name).write_bytes(image.read_bytes())
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("distill")
    train = make_dataset(root / "train", per_class=30, size=32, seed=0)
    test = make_dataset(root / "test", per_class=15, size=32, seed=1)
    return {"root": root, "train": train, "test": test}


@pytest.fixture(scope="module")
def wrong_teacher(data):
    """A tiny teacher that learnt every shape under the next class's name (disc -> square ...)."""
    from edgeshop.train.config import TrainConfig
    from edgeshop.train.fit import train

    shift = dict(zip(CLASSES, CLASSES[1:] + CLASSES[:1], strict=True))
    swapped = _relabelled(data["root"] / "swapped", data["train"], shift)
    run = data["root"] / "teacher"
    train(TrainConfig(data=str(swapped), out=str(run), epochs=8, **TINY), log=lambda *_: None)
    return run, shift


def _predictions(run, test_root):
    from edgeshop.datasets import discover, load_images
    from edgeshop.runtime.modelcard import ModelCard
    from edgeshop.train.run_model import load_run_model

    card = ModelCard.from_json((run / "card.json").read_text())
    samples = discover(test_root)
    loaded = load_images(samples, list(card.labels), card.input)
    probs = load_run_model(run).predict(loaded.pixels.astype(np.float32), verbose=0)
    return [card.labels[i] for i in np.argmax(probs, axis=1)], [s.label for s in samples]


def test_the_loss_is_hintons_mix_of_hard_labels_and_softened_teacher(data):
    from edgeshop.train._keras import keras
    from edgeshop.train.distill import DistillationLoss, soft_targets

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 3)).astype(np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    hard = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]
    teacher = soft_targets(rng.normal(size=(4, 3)) * 3, 4.0)
    loss = DistillationLoss(3, 4.0, 0.3, keras.losses.CategoricalCrossentropy())
    value = float(loss(np.concatenate([hard, teacher], 1), probs))
    student_t = np.exp(logits / 4) / np.exp(logits / 4).sum(1, keepdims=True)
    ce = -(hard * np.log(probs)).sum(1)
    kl = (teacher * (np.log(teacher) - np.log(student_t))).sum(1)
    assert value == pytest.approx(float(np.mean(0.7 * ce + 0.3 * 16 * kl)), rel=1e-4)
    # a teacher that agrees with the labels costs less than one that puts its mass on a wrong class
    agree, wrong = soft_targets(hard * 20, 4.0), soft_targets(np.roll(hard, 1, axis=1) * 20, 4.0)
    targets_p = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]] * 0.9 + 0.1 / 3
    assert float(loss(np.concatenate([hard, agree], 1), targets_p)) < \
        float(loss(np.concatenate([hard, wrong], 1), targets_p))


def test_a_student_follows_its_teachers_soft_targets_and_the_logits_are_cached(data, wrong_teacher, tmp_path):
    """With weight 1 the student learns the teacher's (wrong) classes, not the folder labels;
    with weight 0 the same run learns the labels. The logits are computed once: a resume reads them."""
    from edgeshop.train.config import TrainConfig
    from edgeshop.train.distill import CACHE_FILE
    from edgeshop.train.fit import resume, train

    teacher, shift = wrong_teacher
    predicted, truth = _predictions(teacher, data["test"])
    assert np.mean([p == shift[t] for p, t in zip(predicted, truth, strict=True)]) > 0.8  # a confident, wrong teacher

    followed = {}
    for weight in (1.0, 0.0):
        run = tmp_path / f"student_w{weight:g}"
        train(TrainConfig(data=str(data["train"]), out=str(run), epochs=8, teacher=str(teacher),
                          distill_temperature=2.0, distill_weight=weight, **TINY), log=lambda *_: None)
        predicted, truth = _predictions(run, data["test"])
        followed[weight] = np.mean([p == shift[t] for p, t in zip(predicted, truth, strict=True)])
        assert (run / CACHE_FILE).is_file()
    assert followed[1.0] > 0.8 and followed[0.0] < 0.2, followed

    messages = []
    resume(tmp_path / "student_w1", log=messages.append)
    assert any("read from" in m and CACHE_FILE in m for m in messages), messages


def test_ensemble_soft_targets_average_probabilities_not_logits():
    from edgeshop.train.distill import ensemble_soft_targets, soft_targets

    sharp, flat = np.array([[9.0, 0.0, 0.0]]), np.array([[0.0, 0.5, 0.0]])
    mean = ensemble_soft_targets([sharp, flat], 2.0)
    assert mean == pytest.approx((soft_targets(sharp, 2.0) + soft_targets(flat, 2.0)) / 2)
    assert mean != pytest.approx(soft_targets((sharp + flat) / 2, 2.0), abs=1e-3)  # averaged logits differ
    assert ensemble_soft_targets([sharp], 2.0) == pytest.approx(soft_targets(sharp, 2.0))


def test_an_ensemble_teacher_caches_each_teachers_logits_and_averages_them(data, wrong_teacher, tmp_path):
    """Two teachers (a wrong one, a right one): each one's logits cached in its own file, the
    student's soft targets their mean, and the card names both."""
    import json

    from edgeshop.datasets import discover, load_images
    from edgeshop.train.config import TrainConfig
    from edgeshop.train.distill import cache_file, ensemble_soft_targets, load_teacher, teacher_logits
    from edgeshop.train.fit import TrainingRun, train

    right = tmp_path / "right"
    train(TrainConfig(data=str(data["train"]), out=str(right), epochs=4, **TINY), log=lambda *_: None)
    wrong, _shift = wrong_teacher
    run = tmp_path / "student"
    config = TrainConfig(data=str(data["train"]), out=str(run), epochs=1, teacher=[str(wrong), str(right)],
                         distill_temperature=2.0, **TINY)
    train(config, log=lambda *_: None)
    assert (run / cache_file(0)).is_file() and (run / cache_file(1)).is_file()
    record = json.loads((run / "card.json").read_text())["extra"]["training"]["distillation"]
    assert record["teacher"] == ["teacher", "right"], record

    trainer = TrainingRun(TrainConfig(data="", out=str(run)), resume=True, log=lambda *_: None)
    trainer._load_data()
    classes = sorted(CLASSES)
    singles = []
    for i, source in enumerate((wrong, right)):
        teacher = load_teacher(source)
        samples = discover(data["train"])
        loaded = load_images([s for s in samples if s.path in set(trainer.train.paths)], classes, teacher.input)
        fresh = teacher_logits(teacher, tmp_path / f"fresh{i}", loaded.paths, classes, log=lambda *_: None)
        cached = teacher_logits(teacher, run, loaded.paths, classes, log=lambda *_: None, cache_name=cache_file(i))
        assert cached == pytest.approx(fresh, abs=1e-4)
        singles.append(dict(zip(map(str, loaded.paths), cached, strict=True)))
    expected = ensemble_soft_targets([np.stack([s[str(p)] for p in trainer.train.paths]) for s in singles], 2.0)
    assert trainer.train_soft == pytest.approx(expected, abs=1e-5)


def test_the_cli_saves_one_teacher_as_before_and_several_as_a_list(data, wrong_teacher, tmp_path, capsys):
    """edgeshop-train --teacher A: saved as a string (older runs' form); --teacher A --teacher B: a list,
    and both teachers' logits are cached."""
    import json

    from edgeshop.cli import train as train_cli
    from edgeshop.train.distill import cache_file

    teacher, _ = wrong_teacher
    common = ["--data", str(data["train"]), "--arch", "tiny", "--epochs", "1", "--head-epochs", "0",
              "--batch-size", "16", "--val-fraction", "0.2", "--no-augment"]
    one, two = tmp_path / "one", tmp_path / "two"
    assert train_cli.main([*common, "--out", str(one), "--teacher", str(teacher)]) == 0
    assert train_cli.main([*common, "--out", str(two), "--teacher", str(teacher), "--teacher", str(one)]) == 0
    capsys.readouterr()
    assert json.loads((one / "config.json").read_text())["teacher"] == str(teacher)
    assert json.loads((two / "config.json").read_text())["teacher"] == [str(teacher), str(one)]
    assert (two / cache_file(0)).is_file() and (two / cache_file(1)).is_file()


def test_a_teacher_with_other_classes_is_refused_before_anything_is_written(data, tmp_path):
    from edgeshop.train.config import TrainConfig
    from edgeshop.train.fit import train

    two = make_dataset(tmp_path / "two", per_class=6, size=32, classes=("disc", "square"))
    teacher = tmp_path / "teacher2"
    train(TrainConfig(data=str(two), out=str(teacher), epochs=1, **TINY), log=lambda *_: None)
    student = tmp_path / "student"
    with pytest.raises(EdgeshopError, match=r"labels differ.*only the data has \['bar'\]"):
        train(TrainConfig(data=str(data["train"]), out=str(student), epochs=1, teacher=str(teacher), **TINY))
    assert not student.exists()
    with pytest.raises(EdgeshopError, match="expected an edgeshop run directory"):
        train(TrainConfig(data=str(data["train"]), out=str(student), epochs=1, teacher=str(two), **TINY))


def test_a_tflite_teacher_gives_its_logits_through_the_runtime_probe(data, fixture_model, tmp_path):
    """The committed tiny int8 model as a teacher: its cached logits rank classes as its own scores do."""
    from edgeshop.datasets import discover, load_images
    from edgeshop.runtime.classifier import Classifier
    from edgeshop.train.distill import check_labels, load_teacher, teacher_logits

    teacher = load_teacher(fixture_model)
    check_labels(teacher, sorted(CLASSES))
    samples = discover(data["test"])[:12]
    loaded = load_images(samples, sorted(CLASSES), teacher.input)
    logits = teacher_logits(teacher, tmp_path, loaded.paths, sorted(CLASSES), log=lambda *_: None)
    classifier = Classifier(fixture_model)
    scores = np.stack([classifier.scores_from_pixels(p) for p in loaded.pixels])
    order = [teacher.labels.index(c) for c in sorted(CLASSES)]
    assert (np.argmax(logits, 1) == np.argmax(scores[:, order], 1)).mean() >= 0.9


def test_a_teacher_with_the_streamed_pipeline_is_refused_before_any_work(tmp_path):
    from edgeshop.train.config import TrainConfig

    config = TrainConfig(data=str(tmp_path), out=str(tmp_path / "run"), teacher=str(tmp_path / "teacher"),
                         input_pipeline="stream")
    with pytest.raises(EdgeshopError, match="--teacher needs --input-pipeline memory"):
        config.validate()
    assert not (tmp_path / "run").exists()
