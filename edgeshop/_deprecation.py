"""Renamed keywords of the Python API: the old spelling keeps working for a while, with a
DeprecationWarning that names the new one (the commands do the same for renamed options)."""

from __future__ import annotations

import warnings
from typing import Any

UNSET: Any = object()  # "not passed": None is a meaningful value of several keywords


def renamed_keyword(owner: str, old: str, new: str, old_value: Any, new_value: Any, default: Any = None) -> Any:
    """The value meant for ``new``: ``new_value``, or ``old_value`` (with a warning) when only the
    old keyword was passed. Passing both is an error: which one was meant is not knowable."""
    if old_value is UNSET:
        return new_value
    if new_value is not default:
        raise TypeError(f"{owner}: pass {new}= only ({old}= is its deprecated old name)")
    warnings.warn(f"{owner}({old}=...) is deprecated and will be removed; use {new}=...", DeprecationWarning,
                  stacklevel=3)
    return old_value
