"""The clients phone developers use open edgeshop models as they are and agree with edgeshop.

MediaPipe Tasks' ImageClassifier (its C++ is the one Android, iOS and the web run) and the
TFLite Task Library run in their own environment (`make clients`: mediapipe would replace
this environment's OpenCV), through tools/client_classify.py. `make test` sets
EDGESHOP_REQUIRE_CLIENTS, so a missing client environment fails there instead of skipping.

Both clients stretch the whole image to the input size; edgeshop centre-crops. The test
images are square, so both see the same pixels up to the resize filter.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import cv2
import pytest
from conftest import CLEAR_MARGIN, MAX_NEAR_TIES, require_client

from edgeshop.cli.demo import DEFAULT_DATA as DEMO_DATA
from edgeshop.runtime.classifier import Classifier

REPO = Path(__file__).resolve().parents[1]
CLIENT_PYTHON = Path(os.environ.get("EDGESHOP_CLIENTS_PYTHON", REPO / ".venv-clients" / "bin" / "python"))
SHIPPED = {"int8": REPO / "models" / "grocery" / "grocery_int8.tflite",
           "float16": REPO / "models" / "grocery" / "grocery_fp16.tflite",
           "int8_fast": REPO / "models" / "grocery" / "grocery_int8_fast.tflite"}
DEMO_TEST = DEMO_DATA / "test"


@pytest.fixture(scope="module")
def client_python() -> Path:
    require_client(CLIENT_PYTHON.is_file(),
                   f"{CLIENT_PYTHON} is missing: `make clients` builds the MediaPipe / Task Library environment")
    return CLIENT_PYTHON


def _client(python: Path, model: Path, images: list[Path], client: str = "mediapipe") -> dict:
    command = [str(python), str(REPO / "tools" / "client_classify.py"), str(model), *map(str, images),
               "--client", client]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.stdout.strip(), done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _edgeshop_top1(model: Path, images: list[Path]) -> dict[str, str]:
    classifier = Classifier(model)
    return {str(image): classifier.classify(cv2.imread(str(image)), top_k=1)[0].label for image in images}


def _edgeshop_top2(model: Path, images: list[Path]) -> dict[str, list]:
    classifier = Classifier(model)
    return {str(image): classifier.classify(cv2.imread(str(image)), top_k=2) for image in images}


def _agreement(client: dict, ours: dict[str, str]) -> float:
    return sum(client[image][0][0] == label for image, label in ours.items()) / len(ours)


def _synthetic_images(synthetic_data) -> list[Path]:
    return sorted(Path(synthetic_data["test"]).rglob("*.png"))


@pytest.mark.parametrize("key", ["int8", "float16", "float32", "ptq_int8"])
def test_mediapipe_opens_every_export_and_agrees(client_python, pipeline, synthetic_data, key):
    images = _synthetic_images(synthetic_data)
    result = _client(client_python, pipeline[key], images)
    assert "error" not in result, result
    ours = _edgeshop_top1(pipeline[key], images)
    # The labels come from the model's own metadata: MediaPipe knows nothing else of edgeshop.
    assert {pairs[0][0] for pairs in result.values()} <= {"bar", "disc", "square"}
    assert _agreement(result, ours) >= 0.95


def test_mediapipe_refuses_int8_io_which_is_why_uint8_is_the_default(client_python, pipeline, synthetic_data):
    result = _client(client_python, pipeline["int8_io"], _synthetic_images(synthetic_data)[:1])
    assert "INT8" in result.get("error", ""), result


@pytest.mark.parametrize("key", ["int8", "float16"])
def test_task_library_opens_exports_and_agrees(client_python, pipeline, synthetic_data, key):
    images = _synthetic_images(synthetic_data)
    result = _client(client_python, pipeline[key], images, client="task-library")
    assert "error" not in result, result
    assert _agreement(result, _edgeshop_top1(pipeline[key], images)) >= 0.95


@pytest.mark.parametrize("fmt", ["int8", "float16", "int8_fast"])
def test_shipped_grocery_models_give_edgeshops_top1_in_mediapipe(client_python, fmt):
    images = sorted(DEMO_TEST.rglob("*.jpg"))
    result = _client(client_python, SHIPPED[fmt], images)
    assert "error" not in result, result
    ours = _edgeshop_top2(SHIPPED[fmt], images)
    near_ties = {i for i, (first, second) in ours.items()
                 if first.score - second.score < CLEAR_MARGIN or result[i][0][1] - result[i][1][1] < CLEAR_MARGIN}
    assert len(near_ties) <= MAX_NEAR_TIES * len(images), f"{len(near_ties)} near ties of {len(images)}"
    disagree = [(Path(i).name, result[i][0][0], top[0].label) for i, top in ours.items()
                if i not in near_ties and result[i][0][0] != top[0].label]
    assert not disagree, disagree


def test_wrong_normalisation_metadata_would_give_wrong_answers(client_python, pipeline, synthetic_data, tmp_path):
    """Why the metadata says mean 0 / std 1: the graph normalises itself, and a client applies
    whatever the metadata says on top. Written as a typical (-1, 1) model's, MediaPipe still
    loads the model and answers, but the answers stop matching."""
    from dataclasses import replace

    from edgeshop.tflite.modelcard import embed_card, read_card, split_archive
    from edgeshop.train.tflite_metadata import metadata_buffer, with_metadata

    data = pipeline["float32"].read_bytes()
    card = read_card(data)
    wrong = replace(card, input=replace(card.input, normalization_in_graph=False,
                                        mean=(127.5, 127.5, 127.5), std=(127.5, 127.5, 127.5)))
    model = tmp_path / "wrong_norm.tflite"
    model.write_bytes(embed_card(with_metadata(split_archive(data)[0], metadata_buffer(wrong, "float32")), card))
    images = _synthetic_images(synthetic_data)
    result = _client(client_python, model, images)
    assert "error" not in result, result
    assert _agreement(result, _edgeshop_top1(pipeline["float32"], images)) < 0.9
