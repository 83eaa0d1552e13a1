"""MkDocs hook: the command-line reference is generated from the commands' own parsers, so
it cannot drift from `--help`."""

from __future__ import annotations

import importlib
import os
from importlib.metadata import entry_points

MARKER = "<!-- cli-reference -->"


def commands() -> list[tuple[str, str]]:
    """(command name, module) for every installed edgeshop console script, by name."""
    scripts = entry_points(group="console_scripts")
    return sorted((ep.name, ep.module) for ep in scripts if ep.module.startswith("edgeshop.cli"))


def reference() -> str:
    os.environ["COLUMNS"] = "100"  # argparse wraps help to the terminal; fix it for the page
    sections = []
    for name, module in commands():
        parser = importlib.import_module(module).build_parser()
        sections.append(f"## {name}\n\n```text\n{parser.format_help().rstrip()}\n```\n")
    return "\n".join(sections)


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 (MkDocs hook signature)
    return markdown.replace(MARKER, reference()) if MARKER in markdown else markdown
