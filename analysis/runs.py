"""Reading run directories: their checkpoints by epoch, their metrics table, their stage switch.

A run directory (DESIGN.md "On-disk formats") holds config.json, checkpoints/epoch_NNNN.pt and
metrics.jsonl. Only these files are read here, so analysis works on runs from any machine.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

__all__ = ["checkpoints", "read_metrics", "switch_epoch", "run_name", "RunNotFoundError"]

_CHECKPOINT = re.compile(r"epoch_(\d+)\.pt$")


class RunNotFoundError(FileNotFoundError):
    """A path that is not a run directory (or has no checkpoints)."""


def run_name(run: Path | str) -> str:
    """The short name of a run: its directory name."""
    return Path(run).resolve().name


def checkpoints(run: Path | str) -> dict[int, Path]:
    """The run's checkpoint files by epoch, in epoch order."""
    folder = Path(run) / "checkpoints"
    if not folder.is_dir():
        raise RunNotFoundError(f"{run}: not a run directory (no checkpoints/ folder)")
    found = {}
    for path in folder.iterdir():
        match = _CHECKPOINT.search(path.name)
        if match:
            found[int(match.group(1))] = path
    if not found:
        raise RunNotFoundError(f"{folder}: no checkpoints (epoch_NNNN.pt)")
    return dict(sorted(found.items()))


def read_metrics(run: Path | str) -> pd.DataFrame:
    """The run's metrics.jsonl as a table with one row per epoch, sorted by epoch.

    Lines without an ``epoch`` are skipped; where several lines share an epoch (per-step logging, a
    resumed run), the last non-missing value of each column wins. Nested objects (``{"recall":
    {"r1": ...}}``) are flattened with ``_`` (``recall_r1``).
    """
    path = Path(run) / "metrics.jsonl" if Path(run).is_dir() else Path(run)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no metrics file")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}, line {number}: not JSON ({err.msg})") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path}, line {number}: expected a JSON object")
        if "epoch" in record:
            rows.append(_flatten(record))
    if not rows:
        raise ValueError(f"{path}: no line has an 'epoch'")
    table = pd.DataFrame(rows)
    table["epoch"] = table["epoch"].astype(int)
    return table.groupby("epoch", sort=True).last().reset_index()


def _flatten(record: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}_"))
        else:
            flat[name] = value
    return flat


def switch_epoch(metrics: pd.DataFrame) -> int | None:
    """The last epoch of the first stage (the checkpoint the second stage starts from), or None.

    Read from the ``stage`` column; without one, from a change of ``alpha``.
    """
    for column in ("stage", "alpha"):
        if column in metrics.columns and metrics[column].notna().any():
            table = metrics.dropna(subset=[column]).sort_values("epoch")
            first = table[column].iloc[0]
            changed = table[table[column] != first]
            if changed.empty:
                return None
            before = table[table["epoch"] < changed["epoch"].iloc[0]]
            return int(before["epoch"].iloc[-1]) if not before.empty else None
    return None
