"""Every public module says exactly what it exports, and exports only what exists."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import streamfsm

MODULES = sorted(
    name
    for _, name, _ in pkgutil.walk_packages(streamfsm.__path__, prefix="streamfsm.")
    if not any(part.startswith("_") for part in name.split("."))
)


@pytest.mark.parametrize("name", MODULES)
def test_public_module_declares_an_exact_all(name: str) -> None:
    """Each public module has an __all__ without duplicates that names existing objects."""
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert len(exported) == len(set(exported)), f"{name}.__all__ repeats a name"
    missing = [item for item in exported if not hasattr(module, item)]
    assert missing == [], f"{name}.__all__ names missing objects: {missing}"


def test_top_level_names_of_the_design_are_exported() -> None:
    """The public names the design promises are importable from the package."""
    for name in ("StreamController", "StreamConfig", "Credentials", "State", "errors"):
        assert name in streamfsm.__all__
    for module in ("streamfsm.sim", "streamfsm.pricing.service", "streamfsm.testing"):
        importlib.import_module(module)
