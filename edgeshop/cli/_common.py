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
    except OSError as exc:  # a full disk or a file-size limit met by a temporary file, a vanished folder
        from edgeshop._io import os_error_line

        print(f"{name}: error: {os_error_line(exc)}", file=sys.stderr)
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


def add_verbose(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """-v/--verbose on every command: show TensorFlow's, CUDA's and LiteRT's own log lines."""
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show TensorFlow/CUDA/LiteRT log lines (hidden by default)")
    return parser


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """``parser.parse_args(argv)``, then hide the native libraries' chatter unless -v
    (edgeshop/native_logs.py); before anything imports TensorFlow or LiteRT."""
    from edgeshop.native_logs import set_verbose

    if not any(action.dest == "verbose" for action in parser._actions):
        add_verbose(parser)
    args = parser.parse_args(argv)
    set_verbose(args.verbose)
    return args


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
