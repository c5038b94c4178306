"""robust module."""

__all__: list[str] = []
