"""Rewrite one generated block of the documentation: the text between <!-- NAME:begin --> and
<!-- NAME:end -->, so generated tables stay next to the prose that explains them. Each block
lives in exactly one Markdown file (the README, a page of docs/ or a study's README); it is found
by its markers, so a block can move between pages without its renderer changing."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgeshop import write_bytes_atomic  # noqa: E402

DOCUMENTS = ("README.md", "docs/**/*.md", "studies/**/*.md", "models/**/README.md")


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def block_file(name: str, root: Path = ROOT) -> Path:
    """The one Markdown file that holds block NAME."""
    begin, _ = markers(name)
    found = sorted({path for pattern in DOCUMENTS for path in root.glob(pattern)
                    if begin in path.read_text(encoding="utf-8")})
    if len(found) != 1:
        where = ", ".join(str(p.relative_to(root)) for p in found) or "no document"
        raise SystemExit(f"block {name!r} must be in exactly one document; found in {where}")
    return found[0]


def read_block(name: str, root: Path = ROOT) -> str:
    """The text of block NAME, without its markers and surrounding blank lines."""
    begin, end = markers(name)
    content = block_file(name, root).read_text(encoding="utf-8")
    return content[content.index(begin) + len(begin):content.index(end)].strip("\n")


def replace_block(name: str, text: str, root: Path = ROOT) -> Path:
    """Write TEXT into block NAME wherever it lives; returns that file."""
    path = block_file(name, root)
    begin, end = markers(name)
    content = path.read_text(encoding="utf-8")
    if end not in content:
        raise SystemExit(f"{path}: {begin} has no {end}")
    head, rest = content.split(begin, 1)
    _, tail = rest.split(end, 1)
    write_bytes_atomic(path, f"{head}{begin}\n{text}\n{end}{tail}".encode())
    return path
