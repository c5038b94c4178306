"""multimodal module."""

__all__: list[str] = []
