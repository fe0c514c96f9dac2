"""Everything across checkpoints and runs: grids, forgetting, sharing, plots, reports.

Names are imported on first use (PEP 562), so `sslvgs --help` does not pay for xarray and seaborn.
No module is named like a function it exports (the grid function lives in `analysis.gridding`), so
`analysis.grid` is always the function, whatever was imported before.
"""

from __future__ import annotations

import importlib
from typing import Any

# module -> the public names it defines
_MODULES = {
    "analysis.gridding": ("grid", "grids", "stack", "cache_path", "num_layers"),
    "analysis.grid_probes": ("ProbeSpec", "make_spec", "measure_checkpoint", "BUILTIN_PROBES"),
    "analysis.forgetting_metrics": (
        "forgetting",
        "forgetting_table",
        "higher_is_better",
        "is_tracked_metric",
        "metric_series",
    ),
    "analysis.sharing": ("drift", "similarity_between_runs", "switch_checkpoint"),
    "analysis.tables": (
        "recall_table",
        "best_layer_table",
        "best_layer",
        "to_markdown",
        "write_table",
    ),
    "analysis.runs": (
        "checkpoints",
        "read_metrics",
        "switch_epoch",
        "run_name",
        "RunNotFoundError",
    ),
    "analysis.study": (
        "RunSpec",
        "Study",
        "collect",
        "abx_conditions",
        "probe_epochs",
        "final_recall",
    ),
    "analysis.claims": ("claims_markdown",),
    "analysis.report": ("write_report", "report_runs", "forgetting_tables", "sharing_table"),
    "analysis.reproduction": ("reproduce", "Plan", "PLANS", "variant_name", "run_dir_name"),
    "analysis.atomic": ("write_atomic", "write_bytes_atomic", "write_text_atomic"),
}
_EXPORTS = {name: module for module, names in _MODULES.items() for name in names}
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
