"""Everything across checkpoints and runs: grids, forgetting, sharing, plots, reports.

Names are imported on first use (PEP 562), so `sslvgs --help` does not pay for xarray and seaborn.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> the module that defines it
_EXPORTS = {
    "grid": "analysis.grid",
    "grids": "analysis.grid",
    "stack": "analysis.grid",
    "forgetting": "analysis.forgetting",
    "forgetting_table": "analysis.forgetting",
    "drift": "analysis.sharing",
    "similarity_between_runs": "analysis.sharing",
    "recall_table": "analysis.tables",
    "best_layer_table": "analysis.tables",
    "to_markdown": "analysis.tables",
    "write_table": "analysis.tables",
    "checkpoints": "analysis.runs",
    "read_metrics": "analysis.runs",
    "switch_epoch": "analysis.runs",
}
_SUBMODULES = ("plots",)

__all__ = sorted([*_EXPORTS, *_SUBMODULES])


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"analysis.{name}")
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
