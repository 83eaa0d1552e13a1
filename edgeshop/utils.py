"""Small shared helpers: progress bars, the user cache folder (atomic writes live in edgeshop/_io.py,
re-exported here)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgeshop._io import write_bytes_atomic, write_json_atomic

__all__ = ["cache_dir", "progress_bar", "write_bytes_atomic", "write_json_atomic"]


def cache_dir() -> Path:
    """edgeshop's user cache (downloaded weights, the browser page's JS runtime):
    $EDGESHOP_CACHE, else ~/.cache/edgeshop."""
    return Path(os.environ.get("EDGESHOP_CACHE") or Path.home() / ".cache" / "edgeshop")


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
