"""Knowledge distillation (--teacher): the student's loss uses the teacher's soft targets,
the teacher's logits are cached once, and a teacher with other classes is refused."""

from __future__ import annotations

import cv2
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
    train(TrainConfig.from_flat(data=str(swapped), out=str(run), epochs=8, **TINY), log=lambda *_: None)
    return run, shift


def _predictions(run, test_root):
    from edgeshop.data import discover, load_images
    from edgeshop.tflite.modelcard import ModelCard
    from edgeshop.train.run_model import load_run_model

    card = ModelCard.from_json((run / "card.json").read_text())
    samples = discover(test_root)
    loaded = load_images(samples, list(card.labels), card.input)
    probs = load_run_model(run).predict(loaded.pixels.astype(np.float32), verbose=0)
    return [card.labels[i] for i in np.argmax(probs, axis=1)], [s.label for s in samples]


def test_the_loss_is_hintons_mix_of_hard_labels_and_softened_teacher(data):
    from edgeshop.train._keras import keras
    from edgeshop.train.distill import DistillationLoss

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 3)).astype(np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    hard = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]
    teacher_logits_ = rng.normal(size=(4, 3)) * 3 / 4.0  # already divided by T = 4
    teacher = (np.exp(teacher_logits_) / np.exp(teacher_logits_).sum(1, keepdims=True)).astype(np.float32)
    loss = DistillationLoss(3, 4.0, 0.3, keras.losses.CategoricalCrossentropy())
    value = float(loss(np.concatenate([hard, teacher], 1), probs))
    student_t = np.exp(logits / 4) / np.exp(logits / 4).sum(1, keepdims=True)
    ce = -(hard * np.log(probs)).sum(1)
    kl = (teacher * (np.log(teacher) - np.log(student_t))).sum(1)
    assert value == pytest.approx(float(np.mean(0.7 * ce + 0.3 * 16 * kl)), rel=1e-4)
    # a teacher that agrees with the labels costs less than one that puts its mass on a wrong class
    agree, wrong = hard * 0.98 + 0.01, np.roll(hard, 1, axis=1) * 0.98 + 0.01
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
        train(TrainConfig.from_flat(data=str(data["train"]), out=str(run), epochs=8, teacher=str(teacher),
                          distill_temperature=2.0, distill_weight=weight, **TINY), log=lambda *_: None)
        predicted, truth = _predictions(run, data["test"])
        followed[weight] = np.mean([p == shift[t] for p, t in zip(predicted, truth, strict=True)])
        assert (run / CACHE_FILE).is_file()
    assert followed[1.0] > 0.8 and followed[0.0] < 0.2, followed

    messages = []
    resume(tmp_path / "student_w1", log=messages.append)
    assert any("read from" in m and CACHE_FILE in m for m in messages), messages


def test_soft_targets_by_hand():
    """softmax(logits / T): [4, 0, 0] at T = 4 is softmax([1, 0, 0]) = [e, 1, 1] / (e + 2)
    = [0.576117, 0.211942, 0.211942]; without the temperature it would be [0.9647, 0.0177, 0.0177]."""
    from edgeshop.train.distill import soft_targets

    e = np.e
    by_hand = np.array([[e / (e + 2), 1 / (e + 2), 1 / (e + 2)]])
    assert soft_targets(np.array([[4.0, 0.0, 0.0]]), 4.0) == pytest.approx(by_hand, rel=1e-6)
    assert soft_targets(np.array([[4.0, 0.0, 0.0]]), 4.0)[0, 0] == pytest.approx(0.576117, abs=1e-6)
    assert soft_targets(np.array([[4.0, 0.0, 0.0]]), 1.0)[0, 0] == pytest.approx(0.964663, abs=1e-6)


def test_ensemble_soft_targets_average_probabilities_not_logits():
    """At T = 2: [9, 0, 0] -> softmax([4.5, 0, 0]) = [e^4.5, 1, 1] / (e^4.5 + 2) = [0.978265, 0.010868, 0.010868];
    [0, 0.5, 0] -> softmax([0, 0.25, 0]) = [1, e^0.25, 1] / (e^0.25 + 2) = [0.304504, 0.390991, 0.304504];
    their mean [0.641385, 0.200929, 0.157686]. The mean logits [4.5, 0.25, 0] / 2 would give [0.845, 0.084, 0.071]."""
    from edgeshop.train.distill import ensemble_soft_targets

    sharp, flat = np.array([[9.0, 0.0, 0.0]]), np.array([[0.0, 0.5, 0.0]])
    mean, single = np.array([[0.641385, 0.200929, 0.157686]]), np.array([[0.978265, 0.010868, 0.010868]])
    assert ensemble_soft_targets([sharp, flat], 2.0) == pytest.approx(mean, abs=1e-6)
    assert ensemble_soft_targets([sharp], 2.0) == pytest.approx(single, abs=1e-6)


def test_an_ensemble_teacher_caches_each_teachers_logits_and_averages_them(data, wrong_teacher, tmp_path):
    """Two teachers (a wrong one, a right one): each one's logits cached in its own file, the
    student's soft targets their mean, and the card names both."""
    import json

    from edgeshop import data as datasets
    from edgeshop.data import load_images
    from edgeshop.tflite.modelcard import ModelCard
    from edgeshop.train.config import TrainConfig
    from edgeshop.train.distill import cache_file
    from edgeshop.train.fit import TrainingRun, train
    from edgeshop.train.run_model import load_run_model

    right = tmp_path / "right"
    train(TrainConfig.from_flat(data=str(data["train"]), out=str(right), epochs=4, **TINY), log=lambda *_: None)
    wrong, _shift = wrong_teacher
    run = tmp_path / "student"
    config = TrainConfig.from_flat(data=str(data["train"]), out=str(run), epochs=1, teacher=[str(wrong), str(right)],
                         distill_temperature=2.0, **TINY)
    train(config, log=lambda *_: None)
    assert (run / cache_file(0)).is_file() and (run / cache_file(1)).is_file()
    record = json.loads((run / "card.json").read_text())["extra"]["training"]["distillation"]
    assert record["teacher"] == ["teacher", "right"], record

    trainer = TrainingRun(TrainConfig.from_flat(data="", out=str(run)), resume=True, log=lambda *_: None)
    trainer._load_data()
    # Each teacher's probabilities from its own Keras model, softened by hand:
    # softmax(logits / T) = softmax(log(p) / T), with T = 2; the target is their mean.
    softened = []
    for source in (wrong, right):
        card = ModelCard.from_json((source / "card.json").read_text())
        images = load_images([datasets.Sample(p, "") for p in trainer.data.train.paths], [""], card.input)
        probs = load_run_model(source).predict(images.pixels.astype(np.float32), verbose=0).astype(np.float64)
        z = np.log(probs) / 2.0
        softened.append(np.exp(z) / np.exp(z).sum(1, keepdims=True))
    assert trainer.data.train_soft == pytest.approx(np.mean(softened, axis=0), abs=1e-4)
    assert np.abs(softened[0] - softened[1]).max() > 0.3  # the two teachers disagree: the mean is not either


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
    assert json.loads((one / "config.json").read_text())["distillation"]["teacher"] == str(teacher)
    assert json.loads((two / "config.json").read_text())["distillation"]["teacher"] == [str(teacher), str(one)]
    assert (two / cache_file(0)).is_file() and (two / cache_file(1)).is_file()


def test_a_teacher_with_other_classes_is_refused_before_anything_is_written(data, tmp_path):
    from edgeshop.train.config import TrainConfig
    from edgeshop.train.fit import train

    two = make_dataset(tmp_path / "two", per_class=6, size=32, classes=("disc", "square"))
    teacher = tmp_path / "teacher2"
    train(TrainConfig.from_flat(data=str(two), out=str(teacher), epochs=1, **TINY), log=lambda *_: None)
    student = tmp_path / "student"
    with pytest.raises(EdgeshopError, match=r"labels differ.*only the data has \['bar'\]"):
        train(TrainConfig.from_flat(data=str(data["train"]), out=str(student), epochs=1, teacher=str(teacher), **TINY))
    assert not student.exists()
    with pytest.raises(EdgeshopError, match="expected an edgeshop run directory"):
        train(TrainConfig.from_flat(data=str(data["train"]), out=str(student), epochs=1, teacher=str(two), **TINY))


def _reordered_model(fixture_model, path, order, labels_follow: bool):
    """The committed tiny model with its classifier rows in ``order``. ``labels_follow``: the card's
    labels move with the rows (the same classifier, its labels in another order, as after
    enrolment); else they stay (a different classifier under the same names)."""
    from dataclasses import replace

    from edgeshop.tflite.head_weights import read_head_weights, with_head_weights
    from edgeshop.tflite.modelcard import embed_card, read_card

    content = fixture_model.read_bytes()
    head, card = read_head_weights(content), read_card(content)
    labels = tuple(card.labels[i] for i in order) if labels_follow else card.labels
    path.write_bytes(embed_card(with_head_weights(content, head.weights[order], head.bias[order]),
                                replace(card, labels=labels)))
    return path


def test_a_teacher_in_another_label_order_gives_the_same_top_label_by_name(data, fixture_model, tmp_path):
    """The committed tiny model with its labels (and rows) reordered to square, bar, disc: as a
    teacher of data whose classes are bar, disc, square it must name the same product as the
    original model does for every image."""
    from edgeshop.data import discover, load_images
    from edgeshop.runtime.classifier import Classifier
    from edgeshop.train.distill import check_labels, load_teacher, teacher_logits

    reordered = _reordered_model(fixture_model, tmp_path / "reordered.tflite", [2, 0, 1], labels_follow=True)
    teacher, classes = load_teacher(reordered), sorted(CLASSES)
    assert teacher.labels == ("square", "bar", "disc")
    check_labels(teacher, classes)
    loaded = load_images(discover(data["test"]), classes, teacher.input)
    logits = teacher_logits(teacher, tmp_path / "run", loaded.paths, classes, log=lambda *_: None)
    original = Classifier(fixture_model)
    assert original.labels == classes
    expected = [original.classify(cv2.imread(str(p)), top_k=1)[0].label for p in loaded.paths]
    assert [classes[i] for i in logits.argmax(1)] == expected
    assert np.mean([label == s.parent.name for label, s in zip(expected, loaded.paths, strict=True)]) > 0.8


def test_another_teacher_never_reuses_a_teachers_cached_logits(data, fixture_model, tmp_path):
    """Two .tflite teachers with the same labels but different rows (so different answers), one
    after the other in the same run directory: the second gets its own logits, not the first's."""
    from edgeshop.data import discover, load_images
    from edgeshop.train.distill import load_teacher, teacher_logits

    other = _reordered_model(fixture_model, tmp_path / "other.tflite", [1, 2, 0], labels_follow=False)
    first, second = load_teacher(fixture_model), load_teacher(other)
    classes = sorted(CLASSES)
    paths = load_images(discover(data["test"]), classes, first.input).paths
    run = tmp_path / "run"
    cached_first = teacher_logits(first, run, paths, classes, log=lambda *_: None)
    messages = []
    then_second = teacher_logits(second, run, paths, classes, log=messages.append)
    alone = teacher_logits(second, tmp_path / "fresh", paths, classes, log=lambda *_: None)
    np.testing.assert_array_equal(then_second, alone)
    assert not any("read from" in m for m in messages), messages
    assert (then_second.argmax(1) != cached_first.argmax(1)).mean() > 0.8  # the two teachers do differ


def test_a_teacher_with_the_streamed_pipeline_is_refused_before_any_work(tmp_path):
    from edgeshop.train.config import TrainConfig

    config = TrainConfig.from_flat(data=str(tmp_path), out=str(tmp_path / "run"), teacher=str(tmp_path / "teacher"),
                         input_pipeline="stream")
    with pytest.raises(EdgeshopError, match="distillation.teacher needs runtime.input_pipeline memory"):
        config.validate()
    assert not (tmp_path / "run").exists()
