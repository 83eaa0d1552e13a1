"""Rewrite one generated block of the README: the text between <!-- NAME:begin --> and
<!-- NAME:end -->, so generated tables stay next to the prose that explains them."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgeshop.utils import write_bytes_atomic  # noqa: E402


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def replace_block(readme: Path, name: str, text: str) -> None:
    begin, end = markers(name)
    content = readme.read_text(encoding="utf-8")
    if begin not in content or end not in content:
        raise SystemExit(f"{readme}: no {begin} ... {end} block to fill")
    head, rest = content.split(begin, 1)
    _, tail = rest.split(end, 1)
    write_bytes_atomic(readme, f"{head}{begin}\n{text}\n{end}{tail}".encode())
