"""monitor module."""

__all__: list[str] = []
