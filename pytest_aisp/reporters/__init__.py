"""reporters module."""

__all__: list[str] = []
