"""Public names resolved on first use (PEP 562), so that importing a package stays cheap.

Each layer's ``__init__`` maps its public names to the modules that define them; a name is
imported only when someone reads it. ``import edgeshop`` then loads no runtime, and
``import edgeshop.train`` loads no TensorFlow, until a name that needs them is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(package: str, names: Mapping[str, str],
               namespace: dict[str, Any]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``, whose public ``names`` map to the module
    defining each; ``namespace`` is the package's ``globals()``, where a resolved name is cached."""

    def __getattr__(name: str) -> Any:
        if name in names:
            value = getattr(importlib.import_module(names[name]), name)
            namespace[name] = value  # later look-ups skip this function
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(names))

    return __getattr__, __dir__
