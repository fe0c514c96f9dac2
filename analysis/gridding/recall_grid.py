"""The `recall` grid probe: retrieval recall@k of every checkpoint of a run, cached beside it.

``analysis.grid(run, "recall", split="val")`` gives a DataArray (epoch, direction, k) of recall in
0..1 (`probes.recall` at each checkpoint), with the image bootstrap's interval as coords ``low`` and
``high`` when ``bootstrap=N``. It has no layer dimension: recall is the model's, not a layer's. The
cells are cached in RUN/analysis/grid-recall-<key>.nc, keyed by the options and by what the corpus
and region features hold (not where they are); each epoch's row records its checkpoint's checksum,
so a second call computes only new or replaced checkpoints.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from training.fileio import exclusive, write_atomic
from training.progress import progress_bar as tqdm

__all__ = ["recall_grid"]

RECALL_GRID_VERSION = 1


def recall_grid(
    run: Any,
    paths: dict[int, Path],
    dim: str = "epoch",
    *,
    split: str = "test",
    k: Sequence[int] = (1, 5, 10),
    corpus: str | Path | None = None,
    bootstrap: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
    regions: Any = None,
    progress: bool = True,
    **options: Any,
) -> xr.DataArray:
    """(epoch, direction, k) recall of the checkpoints `paths` (epoch -> file, as `analysis.grid`
    selects them) of `run` on `split`; see the module docstring. dim: "epoch" or "step".

    options: any other `probes.recall` option (batch_size, device, resample, allow_outside).
    """
    import probes
    import training
    from analysis.gridding.identity import _canonical, _path_identity
    from analysis.runs import run_name
    from training.pretrained.trajectory import trajectory_root
    from training.run.directory import analysis_cache, run_corpus

    root = trajectory_root(run)
    if corpus is None:
        corpus = run_corpus(next(iter(paths.values())), check=True)
        if corpus is None:
            raise ValueError(f"{root}: no corpus recorded for its checkpoints; pass corpus=")
    ks = [int(v) for v in ([k] if isinstance(k, int) else k)]
    runtime = {"batch_size", "device"}
    keyed = {
        "version": RECALL_GRID_VERSION, "split": split, "k": ks, "bootstrap": int(bootstrap),
        "confidence": float(confidence) if bootstrap else None, "seed": int(seed) if bootstrap else None,
        "corpus": _path_identity(str(corpus)),
        "regions": _path_identity(regions) if regions is not None else None,
        "options": {n: _canonical(v) for n, v in sorted(options.items()) if n not in runtime},
    }  # fmt: skip
    text = json.dumps(keyed, sort_keys=True)
    key = hashlib.sha256(text.encode()).hexdigest()[:16]
    cache = analysis_cache(root) / f"grid-recall-{key}.nc"
    stored = _load(cache)
    rows: dict[int, xr.Dataset] = {}
    todo = []
    for epoch, path in paths.items():
        identity = training.model_identity(path)
        if stored is not None and epoch in stored.epoch and _identity(stored, epoch) == identity:
            rows[epoch] = stored.sel(epoch=[epoch])
        else:
            todo.append((epoch, path, identity))
    extra = {"regions": regions} if regions is not None else {}
    bar = tqdm(todo, desc=f"recall grid {run_name(root)}", unit="ckpt", disable=not progress)
    for epoch, path, identity in bar:
        result = probes.recall(
            path, split, ks, corpus, bootstrap=bootstrap, confidence=confidence, seed=seed,
            progress=False, **extra, **options,
        )  # fmt: skip
        rows[epoch] = _row(result, epoch, identity)
        stored = _save(cache, rows, text)
    data = xr.concat([rows[e] for e in paths], dim="epoch")
    out = data["value"].drop_vars("identity", errors="ignore")
    if bootstrap:
        out = out.assign_coords(low=data["low"].drop_vars("identity", errors="ignore"),
                                high=data["high"].drop_vars("identity", errors="ignore"))  # fmt: skip
    out = out.assign_coords(
        checkpoint=("epoch", [str(data.identity.sel(epoch=e).item()) for e in paths])
    )
    out.name = "recall"
    out.attrs = {"probe": "recall", "options": text, "run": run_name(root), "split": split}
    return out.rename(epoch=dim) if dim != "epoch" else out


def _identity(stored: xr.Dataset, epoch: int) -> str:
    return str(stored.identity.sel(epoch=epoch).item())


def _row(result: xr.DataArray, epoch: int, identity: str) -> xr.Dataset:
    values = result.astype(np.float64).drop_vars(["low", "high"], errors="ignore")
    data = {"value": values}
    for bound in ("low", "high"):
        data[bound] = result[bound] if bound in result.coords else xr.full_like(values, np.nan)
    row = xr.Dataset(
        {n: v.drop_vars(["low", "high"], errors="ignore").copy() for n, v in data.items()}
    )
    for variable in row.data_vars.values():  # the ranks and names stay with probes.recall's result
        variable.attrs = {}
    row.attrs = {}
    return row.expand_dims(epoch=[epoch]).assign_coords(identity=("epoch", [identity]))


def _load(path: Path) -> xr.Dataset | None:
    if not path.is_file():
        return None
    with xr.open_dataset(path, engine="scipy") as opened:
        return opened.load()


def _save(path: Path, rows: dict[int, xr.Dataset], options: str) -> xr.Dataset:
    """The cache with `rows` over what is on disk (read again under the lock), written atomically."""
    new = xr.concat([row for _, row in sorted(rows.items())], dim="epoch")
    with exclusive(path, what="the recall grid cache"):
        old = _load(path)
        if old is not None:
            keep = [e for e in old.epoch.values.tolist() if e not in rows]
            if keep:
                new = xr.concat([old.sel(epoch=keep), new], dim="epoch").sortby("epoch")
        new.attrs = {"probe": "recall", "options": options}
        write_atomic(path, lambda tmp: new.to_netcdf(tmp, engine="scipy"))
    return new
