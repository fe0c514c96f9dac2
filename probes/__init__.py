"""Everything that measures one model: activations, ABX, retrieval, similarity."""

__all__: list[str] = []
