"""What every command shares: error reporting and exit codes."""

from __future__ import annotations

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
