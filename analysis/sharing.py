"""What two objectives share: CKA between runs at matching epochs, and drift after a stage switch.

Both are grids (analysis.grid), so they are cached beside the run and computed only once:
- `similarity_between_runs(a, b)`: CKA of each layer of run `a` with the same layer of run `b`, at each
  epoch both have (e.g. VGS vs W2V2: where do the two objectives build the same representation?);
- `drift(run, reference)`: CKA of each layer with the same layer of the checkpoint at the switch, at every
  epoch (1 = unchanged; how far the second objective moves what the first one built).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import xarray as xr

from analysis.gridding.driver import Layers, grid
from analysis.runs import checkpoints, read_metrics, switch_epoch

__all__ = ["similarity_between_runs", "drift", "switch_checkpoint"]


def similarity_between_runs(
    run_a: Path | str,
    run_b: Path | str,
    *,
    epochs: Any = "common",
    layers: Layers = "all",
    client: Any = None,
    progress: bool = True,
    **options: Any,
) -> xr.DataArray:
    """(epoch, layer) CKA between the runs' same layers, at `epochs` ("common": every epoch both runs
    have a checkpoint for). options go to probes.similarity (e.g. the utterances to compare on).
    """
    common = sorted(set(checkpoints(run_a)) & set(checkpoints(run_b)))
    if not common:
        raise ValueError(f"{run_a} and {run_b} have no epoch in common")
    epochs = common if epochs == "common" else epochs
    result = grid(
        run_a, "cka_run", epochs, layers, client, progress=progress, other=str(run_b), **options
    )
    result.attrs["other"] = str(run_b)
    return result


def switch_checkpoint(run: Path | str, switch: int | None = None) -> Path:
    """The checkpoint a run's second stage started from: the run's own checkpoint at `switch` (read
    from its metrics when omitted)."""
    if switch is None:
        switch = switch_epoch(read_metrics(run))
        if switch is None:
            raise ValueError(f"{run}: a single stage, no switch; pass the reference checkpoint")
    found = checkpoints(run)
    if switch not in found:
        raise FileNotFoundError(f"{run}: no checkpoint at the switch epoch {switch}")
    return found[switch]


def drift(
    run: Path | str,
    reference: Path | str | None = None,
    *,
    epochs: Any = "all",
    layers: Layers = "all",
    client: Any = None,
    progress: bool = True,
    **options: Any,
) -> xr.DataArray:
    """(epoch, layer) CKA of each layer with the same layer of `reference` (default: the run's own
    checkpoint at its stage switch; for a run started from another run's checkpoint, pass that one)."""
    reference = Path(reference) if reference is not None else switch_checkpoint(run)
    result = grid(
        run, "cka", epochs, layers, client, progress=progress, reference=str(reference), **options
    )
    result.attrs["reference"] = str(reference)
    return result
