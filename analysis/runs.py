"""Reading run directories: their checkpoints by epoch, their metrics table, their stage switch.

A run directory (docs/formats.md; its layout is owned by training.rundir) holds config.json,
checkpoints/epoch_NNNN.pt and metrics.jsonl. Only these files are read here, so analysis works on runs
from any machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from training.run.directory import METRICS, RunNotFoundError, list_checkpoints

__all__ = ["checkpoints", "read_metrics", "switch_epoch", "run_name", "RunNotFoundError"]


def run_name(run: Path | str) -> str:
    """The short name of a run: its directory name."""
    return Path(run).resolve().name


def checkpoints(run: Path | str) -> dict[int, Path]:
    """The run's checkpoint files by epoch, in epoch order; RunNotFoundError if it has none."""
    found = list_checkpoints(run)
    if not found:
        raise RunNotFoundError(
            f"{run}: not a run directory with checkpoints (checkpoints/epoch_NNNN.pt)"
        )
    return found


def read_metrics(run: Path | str) -> pd.DataFrame:
    """The run's metrics.jsonl as a table with one row per epoch, sorted by epoch.

    Lines without an ``epoch`` are skipped; where several lines share an epoch (per-step logging, a
    resumed run), the last non-missing value of each column wins. Nested objects (``{"recall":
    {"r1": ...}}``) are flattened with ``_`` (``recall_r1``).
    """
    path = Path(run) / METRICS if Path(run).is_dir() else Path(run)
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


def switch_epoch(run_or_metrics: pd.DataFrame | Path | str) -> int | None:
    """The last epoch of the first stage (the checkpoint the second stage starts from), or None.

    Args:
        run_or_metrics: a run directory, its metrics.jsonl, or the table `read_metrics` returns.
    Read from the ``stage`` column; without one, from a change of ``alpha``. A run directory started
    from another run's checkpoint (`train(init_from=...)`, config.json's ``init_from``) that has one
    stage of its own switched at that checkpoint's epoch.
    """
    metrics = (
        run_or_metrics if isinstance(run_or_metrics, pd.DataFrame) else read_metrics(run_or_metrics)
    )
    for column in ("stage", "alpha"):
        if column in metrics.columns and metrics[column].notna().any():
            table = metrics.dropna(subset=[column]).sort_values("epoch")
            first = table[column].iloc[0]
            changed = table[table[column] != first]
            if changed.empty:
                break
            before = table[table["epoch"] < changed["epoch"].iloc[0]]
            return int(before["epoch"].iloc[-1]) if not before.empty else None
    if isinstance(run_or_metrics, pd.DataFrame):
        return None
    return _init_epoch(Path(run_or_metrics))


def _init_epoch(path: Path) -> int | None:
    """The epoch of the checkpoint a run directory was started from, if any."""
    from training.run.directory import read_config

    run = path if path.is_dir() else path.parent
    if not (run / "config.json").is_file():
        return None
    init = read_config(run).get("init_from")
    return int(init["epoch"]) if isinstance(init, dict) and "epoch" in init else None
