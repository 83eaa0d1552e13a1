"""What every command shares: error reporting, exit codes, number flags, and the conventions
(docs/reference/cli.md): the model is the first positional argument, ``--threads N`` is one
thread count (``--threads-sweep`` where several are timed), ``-v``, ``--version``, required
options listed as such, renamed options still accepted with a warning."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from edgeshop import __version__
from edgeshop.errors import EdgeshopError

# Set by the `edgeshop` dispatcher: the parsers then call themselves "edgeshop <command>".
invoked_as: str | None = None
REQUIRED_TITLE = "required options"


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


def complete(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add what every command has (-v, --version) and list required options under their own
    heading; idempotent. ``parse`` calls it; so do the docs hook and the tests."""
    if invoked_as and parser.prog.startswith("edgeshop-"):
        parser.prog = f"{invoked_as} {parser.prog.removeprefix('edgeshop-')}"
    dests = {action.dest for action in parser._actions}
    if "verbose" not in dests:
        add_verbose(parser)
    if "version" not in dests:
        parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}",
                            help="print the edgeshop version and exit")
    required = [a for a in parser._actions if a.required and a.option_strings]
    if required and not any(group.title == REQUIRED_TITLE for group in parser._action_groups):
        # argparse lists every option under "options"; the ones a command cannot run without
        # get a heading of their own, right after the positional arguments
        group = parser.add_argument_group(REQUIRED_TITLE)
        parser._action_groups.insert(1, parser._action_groups.pop())
        for action in required:
            for other in parser._action_groups:
                if action in other._group_actions:
                    other._group_actions.remove(action)
            group._group_actions.append(action)
    return parser


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """``parser.parse_args(argv)`` with the shared conventions (``complete``, a deprecated
    ``--model`` moved to its positional place), then hide the native libraries' chatter unless
    -v (edgeshop/native_logs.py); before anything imports TensorFlow or LiteRT."""
    from edgeshop.native_logs import set_verbose

    complete(parser)
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(action.dest == MODEL_OPTION for action in parser._actions):
        argv = _model_option_moved(parser, argv)
    args = parser.parse_args(argv)
    if hasattr(args, MODEL_OPTION):
        delattr(args, MODEL_OPTION)
    set_verbose(args.verbose)
    return args


def deprecated(parser: argparse.ArgumentParser, old: str, replacement: str) -> None:
    """One line on stderr: ``old`` still works, ``replacement`` is what to write from now on."""
    print(f"{parser.prog}: warning: {old} is deprecated and will be removed; use {replacement}", file=sys.stderr)


class DeprecatedAlias(argparse.Action):
    """A renamed option's old spelling: hidden from --help, stores into the new option's
    ``dest`` and warns (``add_deprecated_alias``)."""

    def __init__(self, option_strings: list[str], dest: str, replacement: str = "", **kwargs) -> None:
        kwargs["help"] = argparse.SUPPRESS
        super().__init__(option_strings, dest, **kwargs)
        self.replacement = replacement

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # noqa: ANN001 (argparse's)
        deprecated(parser, option_string or self.option_strings[0], self.replacement)
        setattr(namespace, self.dest, values)


def add_deprecated_alias(parser: argparse.ArgumentParser, old: str, new: str) -> None:
    """Accept ``old`` as a hidden, warned spelling of the already-added option ``new``."""
    target = next(a for a in parser._actions if new in a.option_strings)
    parser.add_argument(old, dest=target.dest, action=DeprecatedAlias, replacement=new, type=target.type,
                        metavar=target.metavar, default=argparse.SUPPRESS)


MODEL_OPTION = "deprecated_model_option"


def add_model(parser: argparse.ArgumentParser, help: str) -> None:  # noqa: A002 (argparse's word)
    """The model, positional as in every command; ``--model M`` (the old spelling of
    edgeshop-web and edgeshop-card) still works, with a warning."""
    parser.add_argument("model", help=help)
    parser.add_argument("--model", dest=MODEL_OPTION, help=argparse.SUPPRESS)


def _model_option_moved(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """``argv`` with ``--model M`` / ``--model=M`` taken out and M appended as a positional:
    argparse fills positionals in order, wherever they stand between options."""
    rest, models, i = [], [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest += argv[i:]
            break
        if arg == "--model" and i + 1 < len(argv):
            models.append(argv[i + 1])
            i += 2
            continue
        if arg.startswith("--model="):
            models.append(arg.split("=", 1)[1])
        else:
            rest.append(arg)
        i += 1
    if not models:
        return argv
    deprecated(parser, "--model", f"the model as a positional argument ({parser.prog} ... MODEL ...)")
    if len(models) > 1:
        parser.error("--model given more than once; give the model once, as a positional argument")
    if "--" in rest:
        return [*rest[:rest.index("--")], models[0], *rest[rest.index("--"):]]
    return [*rest, models[0]]


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1 (a count of threads, frames, ...)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def thread_counts(text: str) -> list[int]:
    """argparse type: one thread count or a comma-separated sweep of them, each >= 1."""
    try:
        return [positive_int(part.strip()) for part in text.split(",")]
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"expected thread counts like 2 or 1,2,4 ({exc})") from None


def add_threads(parser: argparse.ArgumentParser, sweep_default: Sequence[int] | None = None) -> None:
    """``--threads N``; with ``sweep_default``, the command times several counts and also takes
    ``--threads-sweep 1,2,4`` (read both with ``timed_threads``)."""
    if sweep_default is None:
        parser.add_argument("--threads", type=positive_int, default=None,
                            help="interpreter threads (>= 1; default: the interpreter's own choice)")
        return
    default = ",".join(map(str, sweep_default))
    parser.add_argument("--threads", type=thread_counts, metavar="N", help="time with N interpreter threads")
    parser.add_argument("--threads-sweep", type=thread_counts, metavar="N,N,...",
                        help=f"time with each of these thread counts in turn (default {default})")
    parser.set_defaults(threads_default=list(sweep_default))


def timed_threads(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[int]:
    """The thread counts to time: --threads N, --threads-sweep A,B or the default sweep. A list
    given to --threads (its meaning before --threads-sweep existed) still works, with a warning."""
    if args.threads and args.threads_sweep:
        parser.error("give --threads N or --threads-sweep A,B,..., not both")
    if args.threads and len(args.threads) > 1:
        joined = ",".join(map(str, args.threads))
        deprecated(parser, f"--threads {joined}", f"--threads-sweep {joined}")
    return args.threads or args.threads_sweep or args.threads_default


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
