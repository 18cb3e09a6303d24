"""Whether the command line can show a live view: a terminal, and the optional ``rich`` package.

``rich`` is an extra (``pip install 'streamfsm[demo]'``). The modules that draw live views import
it at their top and are loaded through :func:`load_live_view`; everything else prints plain
lines, so every command works without it.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Final

__all__ = ["RICH_HINT", "is_terminal", "load_live_view"]

#: Printed once when a terminal could show a live view but ``rich`` is missing.
RICH_HINT: Final = (
    "plain output: install the demo extra (pip install 'streamfsm[demo]') for the live view"
)


def is_terminal(stream: object) -> bool:
    """True when ``stream`` is an interactive terminal (its ``isatty()`` says so)."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty()) if callable(isatty) else False


def load_live_view(module: str) -> ModuleType | None:
    """Import ``module`` (one that needs ``rich``); None when ``rich`` is not installed.

    Raises:
        ModuleNotFoundError: when something other than ``rich`` is missing (a real bug).
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] != "rich":
            raise
        return None
