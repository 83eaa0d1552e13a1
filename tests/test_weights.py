"""The pretrained-weights registry: download on first use into the user cache, sha256-checked,
offline overrides; the repository's files are what the release serves. No TensorFlow, no network
beyond a local server."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from file_server import closed_port_url, serve_folder

from edgeshop.errors import EdgeshopError
from edgeshop.train import weights

REPO = Path(__file__).resolve().parents[1]
LITE0 = "efficientnet_lite0_imagenet.npz"


@pytest.fixture
def installed(tmp_path, monkeypatch) -> Path:
    """As in an installed wheel: no checkout models/, an empty user cache; returns the cache."""
    monkeypatch.setattr(weights, "CHECKOUT_MODELS", None)
    monkeypatch.setenv("EDGESHOP_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("EDGESHOP_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("EDGESHOP_WEIGHTS_URL", closed_port_url())
    return tmp_path / "cache"


def _release(tmp_path: Path, content: bytes | None = None) -> Path:
    """A folder laid out as the release: the asset named like models/<name>."""
    release = tmp_path / "release"
    release.mkdir()
    if content is None:
        shutil.copy(REPO / "models" / LITE0, release / LITE0)
    else:
        (release / LITE0).write_bytes(content)
    return release


def test_registry_matches_the_committed_files():
    assert weights.REGISTRY
    for name, entry in weights.REGISTRY.items():
        path = REPO / "models" / name
        assert path.stat().st_size == entry.size, name
        assert weights.sha256_of(path) == entry.sha256, name
        assert entry.licence.startswith("Apache-2.0") and (REPO / entry.licence.split("(")[1].rstrip(")")).is_file()


def test_a_checkout_uses_its_committed_files_without_network(monkeypatch):
    monkeypatch.delenv("EDGESHOP_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("EDGESHOP_WEIGHTS_URL", closed_port_url())
    assert weights.weights_path(LITE0) == REPO / "models" / LITE0


def test_first_use_downloads_into_the_cache_then_reuses_it(installed, tmp_path, monkeypatch):
    with serve_folder(_release(tmp_path)) as url:
        monkeypatch.setenv("EDGESHOP_WEIGHTS_URL", url)
        path = weights.weights_path(LITE0)
    assert path == installed / LITE0
    assert path.read_bytes() == (REPO / "models" / LITE0).read_bytes()
    assert sorted(p.name for p in installed.iterdir()) == [LITE0]  # no temporary file left
    monkeypatch.setenv("EDGESHOP_WEIGHTS_URL", closed_port_url())  # the server is gone: the cache answers
    assert weights.weights_path(LITE0) == path


@pytest.mark.parametrize("damage", ["truncated", "corrupted"])
def test_a_bad_download_is_refused_by_its_hash_and_removed(installed, tmp_path, monkeypatch, damage):
    good = (REPO / "models" / LITE0).read_bytes()
    bad = good[: len(good) // 2] if damage == "truncated" else good[:1000] + b"\0" + good[1001:]
    with serve_folder(_release(tmp_path, bad)) as url:
        monkeypatch.setenv("EDGESHOP_WEIGHTS_URL", url)
        with pytest.raises(EdgeshopError, match=f"{url}/{LITE0}.*truncated or corrupted, removed"):
            weights.weights_path(LITE0)
    assert list(installed.iterdir()) == []  # neither the file nor a .part


def test_a_damaged_cache_file_is_replaced_by_a_fresh_download(installed, tmp_path, monkeypatch):
    installed.mkdir(parents=True)
    (installed / LITE0).write_bytes(b"not weights")
    with serve_folder(_release(tmp_path)) as url:
        monkeypatch.setenv("EDGESHOP_WEIGHTS_URL", url)
        path = weights.weights_path(LITE0)
    assert weights.sha256_of(path) == weights.REGISTRY[LITE0].sha256


def test_no_network_names_the_url_the_cache_and_the_offline_override(installed):
    url = weights.url_for(LITE0)
    with pytest.raises(EdgeshopError) as error:
        weights.weights_path(LITE0)
    message = str(error.value)
    assert url in message and str(installed) in message and "EDGESHOP_WEIGHTS_DIR" in message
    assert "--no-pretrained" in message and "\n" not in message
    assert not installed.exists() or list(installed.iterdir()) == []


def test_an_unwritable_cache_says_to_set_edgeshop_cache(installed, monkeypatch):
    installed.parent.mkdir(parents=True, exist_ok=True)
    installed.write_bytes(b"a file where the cache folder should be")
    with pytest.raises(EdgeshopError, match="cannot write the weights cache .*set EDGESHOP_CACHE"):
        weights.weights_path(LITE0)


def test_an_offline_folder_is_used_and_checked_by_hash(installed, tmp_path, monkeypatch):
    store = _release(tmp_path)
    monkeypatch.setenv("EDGESHOP_WEIGHTS_DIR", str(store))
    assert weights.weights_path(LITE0) == store / LITE0  # no download: the URL answers nothing
    assert weights.weights_path(LITE0, override=store) == store / LITE0
    (store / LITE0).write_bytes(b"damaged")
    with pytest.raises(EdgeshopError, match="sha256 .* is not that of"):
        weights.weights_path(LITE0)
    (store / LITE0).unlink()
    with pytest.raises(EdgeshopError, match=f"{LITE0} not found .*EDGESHOP_WEIGHTS_DIR"):
        weights.weights_path(LITE0)


def test_an_explicit_file_wins_and_is_used_as_given(installed, tmp_path, monkeypatch):
    own = tmp_path / "my_backbone.npz"
    own.write_bytes(b"the user's own weights")
    monkeypatch.setenv("EDGESHOP_WEIGHTS_DIR", str(tmp_path / "missing"))
    assert weights.weights_path(LITE0, override=own) == own
    with pytest.raises(EdgeshopError, match="missing .*EDGESHOP_WEIGHTS_DIR.*no such file or directory"):
        weights.weights_path(LITE0)


def test_the_install_guide_lists_every_registry_entry_as_it_is():
    guide = (REPO / "docs" / "install.md").read_text()
    for entry in weights.REGISTRY.values():
        assert f"| `{entry.name}` | {entry.size:,} bytes | `{entry.sha256}` |" in guide, entry.name
    assert weights.DEFAULT_URL_BASE.rsplit("/", 1)[1] in guide  # the release tag


def test_edgeshop_train_takes_the_weights_from_pretrained_weights(tmp_path, capsys, monkeypatch):
    """The option reaches the run: the folder's file is the one loaded, not the checkout's."""
    from synthetic import make_dataset

    from edgeshop.cli.train import main

    monkeypatch.setenv("EDGESHOP_WEIGHTS_URL", closed_port_url())
    store = _release(tmp_path)
    data = make_dataset(tmp_path / "photos", per_class=4, size=32)
    assert main(["--data", str(data), "--out", str(tmp_path / "run"), "--arch", "efficientnet_lite0",
                 "--image-size", "32", "--head-epochs", "1", "--epochs", "0", "--val-fraction", "0.25",
                 "--batch-size", "8", "--pretrained-weights", str(store)]) == 0
    assert f"initialised from ImageNet weights ({store / LITE0})" in capsys.readouterr().out
