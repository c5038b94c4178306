"""scan module."""

__all__: list[str] = []
