"""Everything across checkpoints and runs: grids, forgetting, sharing, plots, reports."""

__all__: list[str] = []
