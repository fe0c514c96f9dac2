"""What the probes and grids have cached, and clearing it (``sslvgs cache list|clear``).

Caches live in three places (paths from ``training.rundir``):

- ``RUN/probes/activations/*.zarr``: activation stores of a run's checkpoints (kind ``activations``);
- ``RUN/analysis/grid-*.nc`` and ``RUN/analysis/recall-*.json``: grid cells and test recall of a run
  (kinds ``grids`` and ``recall``);
- ``$SSLVGS_CACHE/activations/*.zarr``: stores of models that have no run directory.

Only entries of these shapes are listed or removed: the user cache folder also holds other things
(the Makefile keeps its virtual environments there), which are never touched.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from probes.vocabulary import check_choice

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CACHE_KINDS", "CacheKind", "clear_caches", "list_caches"]

CacheKind = Literal["activations", "grids", "recall", "all"]
CACHE_KINDS = ("activations", "grids", "recall", "all")
COLUMNS = ("path", "kind", "model", "source", "layers", "size_bytes", "complete")


def list_caches(*runs: str | Path, kind: CacheKind = "all") -> pd.DataFrame:
    """One row per cache entry of `runs` (none given: the user cache, ``$SSLVGS_CACHE``).

    Args:
        runs: run directories; their activation stores and analysis caches are listed.
        kind: "activations", "grids", "recall" or "all".
    Returns:
        a DataFrame with columns path, kind, model (what was measured: a model description or a
        run), source (the utterances or the probe and its options), layers (a list, or None),
        size_bytes (on disk) and complete (False for an interrupted extraction).
    """
    import pandas as pd

    check_choice("kind", kind, CACHE_KINDS)
    rows = [_describe(path, found) for path, found in _entries(runs, kind)]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def clear_caches(*runs: str | Path, kind: CacheKind = "all") -> pd.DataFrame:
    """Delete the cache entries :func:`list_caches` lists (same arguments); returns what was removed.

    An entry another process is writing (its lock is held) is left alone and missing from the
    returned table, so a running extraction or grid is never pulled from under its writer.
    """
    from training.fileio import LockedError, exclusive

    table = list_caches(*runs, kind=kind)
    for path in map(Path, table.path):
        try:
            with exclusive(path, what="a cache entry", wait=0):
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        except LockedError:
            continue
        path.with_name(path.name + ".lock").unlink(missing_ok=True)
    gone = [not Path(path).exists() for path in table.path]
    return table[gone].reset_index(drop=True)


def _entries(runs: tuple[str | Path, ...], kind: str) -> Iterator[tuple[Path, str]]:
    from training.run.directory import activation_cache, analysis_cache, is_run, user_cache

    wanted = {"activations", "grids", "recall"} if kind == "all" else {kind}
    if not runs:
        if "activations" in wanted:
            yield from ((p, "activations") for p in _sorted(user_cache() / "activations", "*.zarr"))
        return
    for run in runs:
        if not is_run(run):
            raise FileNotFoundError(f"{run}: not a run directory (no config.json or checkpoints/)")
        if "activations" in wanted:
            yield from ((p, "activations") for p in _sorted(activation_cache(run), "*.zarr"))
        if "grids" in wanted:
            yield from ((p, "grids") for p in _sorted(analysis_cache(run), "grid-*.nc"))
        if "recall" in wanted:
            yield from ((p, "recall") for p in _sorted(analysis_cache(run), "recall-*.json"))


def _sorted(folder: Path, pattern: str) -> list[Path]:
    return sorted(folder.glob(pattern)) if folder.is_dir() else []


def _describe(path: Path, kind: str) -> dict:
    row = {"path": str(path), "kind": kind, "size_bytes": _size(path)}
    if kind == "activations":
        return row | _store_row(path)
    run = str(path.parent.parent)
    if kind == "recall":
        return row | _recall_row(path, run)
    return row | _grid_row(path, run)


def _store_row(path: Path) -> dict:
    from probes.store_check import read_header

    header = read_header(path)
    if header is None:  # a folder named *.zarr that is not one of ours: shown, never guessed at
        return {"model": None, "source": None, "layers": None, "complete": False}
    return {
        "model": header.get("model"),
        "source": header.get("source"),
        "layers": list(header.get("layers") or []) or None,
        "complete": bool(header.get("complete")),
    }


def _grid_row(path: Path, run: str) -> dict:
    import xarray as xr

    try:
        with xr.open_dataset(path, engine="scipy") as cache:
            options = json.loads(cache.attrs.get("options", "{}"))
            source = " ".join(
                [cache.attrs.get("probe", "?"), *(f"{k}={v}" for k, v in options.items())]
            )
            layers = [int(layer) for layer in cache.layer.values]
    except (
        OSError,
        ValueError,
        KeyError,
        AttributeError,
    ):  # unreadable: listed so it can be cleared
        return {"model": run, "source": None, "layers": None, "complete": False}
    return {"model": run, "source": source, "layers": layers, "complete": True}


def _recall_row(path: Path, run: str) -> dict:
    try:
        stored = json.loads(path.read_text())
        complete = "recall" in stored
    except (OSError, ValueError):
        complete = False
    split = path.stem.removeprefix("recall-")
    return {"model": run, "source": f"recall split={split}", "layers": None, "complete": complete}


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
