"""``streamfsm demo``: a pricing service on the embedded simulator while faults are injected."""

__all__: list[str] = []
