"""nlp module."""

__all__: list[str] = []
