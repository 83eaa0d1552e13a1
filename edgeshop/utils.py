"""Small shared helpers: atomic file writes, progress bars, the user cache folder."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write via a temp file in the same folder + fsync + rename: all or nothing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def cache_dir() -> Path:
    """edgeshop's user cache (downloaded weights, the browser page's JS runtime):
    $EDGESHOP_CACHE, else ~/.cache/edgeshop."""
    return Path(os.environ.get("EDGESHOP_CACHE") or Path.home() / ".cache" / "edgeshop")


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    write_bytes_atomic(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


class _NullBar:
    def update(self, n: int = 1) -> None:
        pass


@contextlib.contextmanager
def progress_bar(total: int, description: str) -> Iterator[Any]:
    """A tqdm bar on a terminal (or when tqdm is present), silent otherwise."""
    try:
        from tqdm import tqdm
    except ImportError:
        yield _NullBar()
        return
    with tqdm(total=total, desc=description, unit="img", disable=None, file=sys.stderr) as bar:
        yield bar
