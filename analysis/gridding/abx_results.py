"""The engine's full ABX result of grid cells, read from the grid cache (measured first if missing).

A grid keeps every cell's counts (abx_cells.py); this rebuilds the ``AbxResult`` of chosen cells from
them, for what needs more than the error: a paired interval over speakers and files (claim 3), or a
cell's own table.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from analysis.gridding.abx_cells import result_at
from analysis.gridding.driver import _condition, _grids, _load_cache, cache_path
from analysis.gridding.registry import make_spec
from training.pretrained.trajectory import trajectory_root

__all__ = ["abx_results"]


def abx_results(
    run: Path | str,
    specs: Mapping[str, Mapping[str, Any]],
    epoch: int,
    layers: Mapping[str, int],
    *,
    client: Any = None,
    progress: bool = True,
) -> dict:
    """name -> the engine's AbxResult (every cell, split by X's file) of the grid `specs[name]`
    (``analysis.grid``'s abx options) at `epoch` and layer `layers[name]`: read from the grid cache,
    measured first if missing (one forward pass of that checkpoint serves every name)."""
    root = trajectory_root(run)
    built = {name: make_spec("abx", {k: v for k, v in spec.items() if k != "probe"}, root)
             for name, spec in specs.items()}  # fmt: skip
    wanted = sorted(set(layers.values()))
    _grids(run, built, [epoch], wanted, client, progress=progress, counts=True)
    return {
        name: result_at(_load_cache(cache_path(root, spec)), epoch, layers[name], _condition(spec))
        for name, spec in built.items()
    }
