"""For auditors: journal verification against the table, the outage timeline, diagram export."""

__all__: list[str] = []
