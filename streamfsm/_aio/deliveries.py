"""Which user callback receives each market-data type, converted as the model mode asks.

The controller builds this table once from its ``on_*`` arguments; the dispatcher looks each
message's fast struct type up in it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streamfsm._aio.dispatch import Delivery
from streamfsm._validate import member
from streamfsm.config import ModelMode
from streamfsm.models import (
    Bar,
    DailyBar,
    MarketData,
    Quote,
    Trade,
    UpdatedBar,
    alpaca_converter,
    raw_converter,
)

__all__ = ["Callback", "deliveries_for", "model_mode"]

_MODEL_MODE = member(ModelMode, "models")

Callback = Callable[[Any], object]


def model_mode(models: ModelMode | str) -> ModelMode:
    """The model mode named by ``models``.

    Raises:
        ConfigurationError: when it names none.
    """
    return _MODEL_MODE(models)


def deliveries_for(
    mode: ModelMode, on_quote: Callback | None, on_trade: Callback | None, on_bar: Callback | None
) -> dict[type, Delivery]:
    """The callback of each fast struct type, with the conversion its model mode asks for."""
    wanted: list[tuple[str, Callback | None, tuple[type[MarketData], ...]]] = [
        ("on_quote", on_quote, (Quote,)),
        ("on_trade", on_trade, (Trade,)),
        ("on_bar", on_bar, (Bar, UpdatedBar, DailyBar)),
    ]
    deliveries: dict[type, Delivery] = {}
    for name, callback, kinds in wanted:
        if callback is None:
            continue
        for kind in kinds:
            convert: Callable[[Any], Any] | None = None
            if mode is ModelMode.ALPACA:
                convert = alpaca_converter(kind)
            elif mode is ModelMode.RAW:
                convert = raw_converter(kind)
            deliveries[kind] = Delivery(name, callback, convert)
    return deliveries
