"""ABX discrimination engine: items, cells, kernels, score (ZeroSpeech semantics, DESIGN.md)."""

__all__: list[str] = []
