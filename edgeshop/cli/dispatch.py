"""edgeshop: one command, ``edgeshop <command> [options]``; ``edgeshop-<command>`` is the same program.

``edgeshop --help`` reads each command's one-line summary from its module's docstring
without importing it, so it is instant; a command's own module is imported only when run.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path

from edgeshop import __version__

# In the order a user meets them: make a model, change it, measure it, use it.
COMMANDS = ("train", "export", "calibrate", "enroll", "eval", "bench", "classify", "compare", "card", "web", "demo")


def module_name(command: str) -> str:
    return f"edgeshop.cli.{command}"


def summary(command: str) -> str:
    """The first line of the command module's docstring, without its ``edgeshop-<command>:`` prefix."""
    origin = importlib.util.find_spec(module_name(command)).origin
    docstring = ast.get_docstring(ast.parse(Path(origin).read_text(encoding="utf-8"))) or ""
    return docstring.splitlines()[0].removeprefix(f"edgeshop-{command}:").strip() if docstring else ""


def build_parser() -> argparse.ArgumentParser:
    width = max(map(len, COMMANDS)) + 2
    listing = "\n".join(f"  {name:{width}}{summary(name)}" for name in COMMANDS)
    p = argparse.ArgumentParser(
        prog="edgeshop", usage="edgeshop <command> [options]",
        description="Product photos in, a compressed on-device shelf classifier out.",
        epilog=f"commands:\n{listing}\n\n`edgeshop <command> --help` lists a command's options. Each command is\n"
               "also installed as edgeshop-<command> (e.g. edgeshop-train), the same program.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("command", choices=COMMANDS, metavar="<command>", help="one of the commands listed below")
    p.add_argument("options", nargs=argparse.REMAINDER, help="the command's own arguments and options")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}",
                   help="print the edgeshop version and exit")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        parser = build_parser()
        if not argv:
            parser.print_help(sys.stderr)
            return 2
        parser.parse_args(argv)  # --help, --version, or an unknown command: argparse answers and exits
        return 2
    from edgeshop.cli import _common

    previous, _common.invoked_as = _common.invoked_as, "edgeshop"  # its --help says "edgeshop <command>"
    try:
        return importlib.import_module(module_name(argv[0])).main(argv[1:])
    finally:
        _common.invoked_as = previous


if __name__ == "__main__":
    sys.exit(main())
