"""llm module."""

__all__: list[str] = []
