"""Names renamed in a release stay importable for one more, with a warning naming the new one.

A leaf module (it imports nothing of the package), so that the SDK and the emulator, which must
not import each other, can both use it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["deprecated_names"]


def deprecated_names(
    module: str, aliases: Mapping[str, str], namespace: Mapping[str, Any]
) -> Callable[[str], object]:
    """A module ``__getattr__`` serving ``aliases`` (old name to new) from ``namespace``.

    Each access warns with ``DeprecationWarning``; any other name raises ``AttributeError``.
    """

    def __getattr__(name: str) -> object:
        new_name = aliases.get(name)
        if new_name is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        warnings.warn(
            f"{module}.{name} is deprecated and will be removed: use {module}.{new_name} instead",
            DeprecationWarning,
            stacklevel=2,
        )
        return namespace[new_name]

    return __getattr__
