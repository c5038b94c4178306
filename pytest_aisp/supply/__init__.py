"""supply module."""

__all__: list[str] = []
