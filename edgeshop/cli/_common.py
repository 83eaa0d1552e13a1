"""What every command shares: error reporting, exit codes, number flags."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from edgeshop.errors import EdgeshopError


def run_command(name: str, body: Callable[[], int]) -> int:
    """Run ``body``; an EdgeshopError becomes one line on stderr and exit code 2."""
    try:
        return body()
    except EdgeshopError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130


def run_and_record(name: str, compute: Callable[[], dict], render: Callable[[dict], str],
                   json_path: str | None) -> int:
    """``run_command`` for commands that produce a record: print ``render(record)`` and, with
    ``json_path``, also write the record there (edgeshop-calibrate, edgeshop-enroll)."""
    def body() -> int:
        from edgeshop.utils import write_json_atomic

        record = compute()
        print(render(record))
        if json_path:
            write_json_atomic(json_path, record)
        return 0

    return run_command(name, body)


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1 (a count of threads, frames, ...)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def show_warnings(name: str) -> None:
    """Print edgeshop's warnings (skipped files, reconnects) as '<name>: warning: ...' lines."""
    logger = logging.getLogger("edgeshop")
    logger.handlers = [handler for handler in logger.handlers if not isinstance(handler, _Stderr)]
    handler = _Stderr()
    handler.setFormatter(logging.Formatter(f"{name}: warning: %(message)s"))
    logger.addHandler(handler)


class _Stderr(logging.Handler):
    """Writes to the sys.stderr of the moment (tests swap it), not the one at creation."""

    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record), file=sys.stderr)
