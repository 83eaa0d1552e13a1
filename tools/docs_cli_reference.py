"""MkDocs hook: the command-line reference is generated from the commands' own parsers, so
it cannot drift from `--help`."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

MARKER = "<!-- cli-reference -->"
ROOT = str(Path(__file__).resolve().parents[1])


def reference() -> str:
    """`edgeshop --help`, then `edgeshop <command> --help` for every command, as the user sees them."""
    if ROOT not in sys.path:  # the checkout being built, not whichever edgeshop the environment installed
        sys.path.insert(0, ROOT)
    from edgeshop.cli import _common, dispatch

    os.environ["COLUMNS"] = "100"  # argparse wraps help to the terminal; fix it for the page
    sections = [f"## edgeshop\n\n```text\n{dispatch.build_parser().format_help().rstrip()}\n```\n"]
    previous, _common.invoked_as = _common.invoked_as, "edgeshop"
    try:
        for name in dispatch.COMMANDS:
            parser = _common.complete(importlib.import_module(dispatch.module_name(name)).build_parser())
            sections.append(f"## edgeshop {name}\n\n```text\n{parser.format_help().rstrip()}\n```\n")
    finally:
        _common.invoked_as = previous
    return "\n".join(sections)


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 (MkDocs hook signature)
    return markdown.replace(MARKER, reference()) if MARKER in markdown else markdown
