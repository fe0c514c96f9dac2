"""Layer-by-epoch grids of any probe over a run's checkpoints, cached beside the run.

``grid(run, "abx", speaker="across")`` probes every checkpoint of `run` at every layer and returns an
xarray DataArray with dims (epoch, layer). The cells are cached in RUN/analysis/grid-<probe>-<key>.nc,
where <key> hashes the probe and its options; each epoch's row also records the identity of what it
measured (`training.checkpoint_id` of the checkpoint, plus that of any reference checkpoint), so a
retrained or replaced checkpoint is measured again, and a second call computes only the cells that are
missing. The cache is written atomically after every checkpoint, so an interrupted grid resumes.

With a dask.distributed ``client`` the checkpoints are probed in parallel, one task per checkpoint; the
cache is only ever written by the calling process, under ``training.fileio.exclusive`` so that two grids
on one run never corrupt it. ABX cells come from the ABX fast path (abx_fast_path.py): one forward
pass per checkpoint, the engine's structures built once per process. An ABX grid also caches every
cell's counts (abx_cells.py), so ``bootstrap=N`` gives each cell a speaker-bootstrap interval,
coordinates ``low`` and ``high``, computed from the cache: a cached grid asked for intervals (or for
another N) runs no model (docs/grids.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from analysis.gridding.abx_cells import LayerCells, fill_intervals, has_counts, overlay_counts
from analysis.gridding.registry import ProbeSpec, make_spec, measure_checkpoint
from analysis.runs import run_name
from training.fileio import exclusive, write_atomic
from training.pretrained.trajectory import trajectory, trajectory_root
from training.progress import progress_bar as tqdm
from training.run.directory import analysis_cache

__all__ = ["grid", "grids", "stack", "cache_path", "num_layers"]

Epochs = str | int | Iterable[int]
Layers = str | int | Iterable[int]


def cache_path(run: Path | str, spec: ProbeSpec) -> Path:
    """Where the cells of `spec` on `run` are cached."""
    return analysis_cache(run) / f"grid-{spec.name}-{spec.key}.nc"


def grid(
    run: Path | str,
    probe: str | Callable[..., float],
    epochs: Epochs = "all",
    layers: Layers = "all",
    client: Any = None,
    *,
    progress: bool = True,
    **probe_options: Any,
) -> xr.DataArray:
    """The (epoch, layer) grid of `probe` on the checkpoints of `run`.

    probe: a name, "abx" (options: items = an item file or an ABX set name of the corpus, "captions" or
    "read", with corpus = the corpus root; speaker, context and any probes.abx_engine.score option), "phone"
    (probes.phone_probe options), "cka" (reference = a checkpoint: CKA of each layer with the same
    layer of the reference; source = the utterances, wavs = where an item file's #files are),
    "cka_run" (other = a run dir: CKA with the other run's checkpoint at the same epoch), "drift"
    (reference_epoch: CKA with the same run's checkpoint at that epoch; default: the checkpoint its
    second stage started from, its own at the switch or, for a variant, its init_from), "recall"
    (split, k, corpus, bootstrap, confidence, regions as probes.recall: a grid of dims (epoch,
    direction, k), the image bootstrap's interval as coords ``low``/``high``; ``layers`` does not
    apply); or a callable ``f(model, layer, **probe_options) -> float``.
    epochs: "all", "last", an epoch or epochs. layers: "all" (0 = the feature encoder's output, 1..N the
    transformer layers), a layer, a list or a range. client: a dask.distributed Client to fan out over checkpoints.
    Returns float64 values with attrs ``probe``, ``options`` (JSON) and each scalar option.
    """
    if probe == "recall":
        from analysis.gridding.recall_grid import recall_grid

        dim, available = trajectory(run)
        paths = _select_epochs(available, epochs, trajectory_root(run))
        return recall_grid(run, paths, dim, progress=progress, **probe_options)
    # A list of checkpoints has no corpus of its own: its common folder is asked (as in grids).
    spec = make_spec(probe, probe_options, trajectory_root(run))
    return grids(run, {spec.name: spec}, epochs, layers, client, progress=progress)[spec.name]


def grids(
    run: Path | str,
    probes: Mapping[str, ProbeSpec | Mapping[str, Any]],
    epochs: Epochs = "all",
    layers: Layers = "all",
    client: Any = None,
    *,
    progress: bool = True,
) -> dict[str, xr.DataArray]:
    """Several grids on one run at once, each checkpoint loaded once for all of them.

    probes: name -> a ProbeSpec or a mapping ``{"probe": name_or_callable, **options}``. Returns name ->
    the grid that ``grid(run, ...)`` would return.
    """
    return _grids(run, probes, epochs, layers, client, progress=progress)


def _grids(run, probes, epochs, layers, client, *, progress: bool, counts: bool = False):
    """``grids``; counts: ABX cells must hold their counts (``abx_results.abx_results`` reads them)."""
    dim, available = trajectory(run)  # any run, folder or list of checkpoints; epoch or step
    run = trajectory_root(run)
    specs = {
        name: spec
        if isinstance(spec, ProbeSpec)
        else make_spec(spec["probe"], _options_of(spec), run)
        for name, spec in probes.items()
    }
    paths = _select_epochs(available, epochs, run)
    layer_list = _select_layers(layers, paths)
    # Grids that differ only in their intervals share one cache: it is measured once, for the first.
    first: dict[Path, str] = {}
    for name, spec in specs.items():
        first.setdefault(cache_path(run, spec), name)
    measured = {name: specs[name] for name in first.values()}
    counts_needed = {  # those whose cells must hold counts
        first[cache_path(run, spec)]
        for spec in specs.values()
        if spec.intervals or (counts and spec.keeps_counts)
    }
    caches = {name: _load_cache(cache_path(run, spec)) for name, spec in measured.items()}
    identities = {
        name: {epoch: spec.identity(path, epoch) for epoch, path in paths.items()}
        for name, spec in measured.items()
    }
    todo = _missing_work(measured, caches, identities, paths, layer_list, counts_needed)
    for epoch, results in _run_work(todo, paths, measured, client, progress, run):
        for name, values in results.items():
            cells = todo[epoch][name]
            caches[name] = _merge(caches[name], epoch, identities[name][epoch], cells, values)
            caches[name] = _save_cache(cache_path(run, specs[name]), caches[name], specs[name])
    out = {}
    for name, spec in specs.items():
        path = cache_path(run, spec)
        owner = first[path]
        if spec.intervals:  # from the cached counts: no model runs for them
            cells = [(e, layer) for e in paths for layer in layer_list]
            caches[owner], changed = fill_intervals(caches[owner], cells, _condition(spec),
                                                    *spec.intervals)  # fmt: skip
            if changed:
                caches[owner] = _save_cache(path, caches[owner], spec)
        out[name] = _grid_from_cache(caches[owner], spec, identities[owner], layer_list, run)
    return {name: g.rename(epoch=dim) if dim != "epoch" else g for name, g in out.items()}


def stack(
    runs: Mapping[str, xr.DataArray | Mapping[int, xr.DataArray]] | Sequence[xr.DataArray],
    dim: str = "run",
) -> xr.DataArray:
    """Grids of several runs as one DataArray (run, epoch, layer), NaN where a run lacks an epoch.

    runs: run name -> grid, or a list of grids (named by their ``run`` attr); or run name -> {seed:
    grid}, which gives dims (run, seed, epoch, layer) (NaN where a run lacks a seed). Interval coords
    (`low`, `high`, same dims as the values) are stacked with the values.
    """
    if not isinstance(runs, Mapping):
        runs = {grid.attrs.get("run", str(i)): grid for i, grid in enumerate(runs)}
    if not runs:
        raise ValueError("stack: no grids given")
    arrays = [
        stack({int(s): g for s, g in grid.items()}, dim="seed")
        if isinstance(grid, Mapping)
        else grid.drop_vars("checkpoint", errors="ignore")
        for grid in runs.values()
    ]
    stacked = xr.concat(
        arrays, dim=dim, join="outer", coords="different", compat="equals",
        combine_attrs="drop_conflicts",
    )  # fmt: skip
    stacked = stacked.assign_coords({dim: list(runs)})
    switches = [
        g.attrs.get("switch") if not isinstance(g, Mapping) else None for g in runs.values()
    ]
    if dim == "run" and any(s is not None for s in switches):  # heatmaps mark each run's switch
        values = [np.nan if s is None else float(s) for s in switches]
        stacked = stacked.assign_coords(switch=(dim, values))
    stacked.attrs.pop("run", None)
    stacked.attrs.pop("switch", None)
    return stacked


def num_layers(checkpoint: Path | str) -> int:
    """The number of transformer layers of the model in `checkpoint`."""
    import training

    return int(training.load_pretrained(checkpoint).num_layers)


def _options_of(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k != "probe"}


def _select_epochs(available: dict[int, Path], epochs: Epochs, run: Path) -> dict[int, Path]:
    if isinstance(epochs, str):
        if epochs == "all":
            return available
        if epochs == "last":
            last = max(available)
            return {last: available[last]}
        raise ValueError(f"epochs must be 'all', 'last' or epoch numbers, not {epochs!r}")
    wanted = (
        [int(epochs)] if isinstance(epochs, int | np.integer) else sorted(int(e) for e in epochs)
    )
    missing = [e for e in wanted if e not in available]
    if missing:
        raise FileNotFoundError(
            f"{run}: no checkpoint for epoch(s) {missing} (has {list(available)})"
        )
    return {e: available[e] for e in wanted}


def _select_layers(layers: Layers, paths: dict[int, Path]) -> list[int]:
    if isinstance(layers, str):
        if layers != "all":
            raise ValueError(f"layers must be 'all' or layer numbers, not {layers!r}")
        return list(range(num_layers(next(iter(paths.values()))) + 1))
    wanted = (
        [int(layers)]
        if isinstance(layers, int | np.integer)
        else sorted(int(layer) for layer in layers)
    )
    first = next(iter(paths.values()))
    top = num_layers(first)
    outside = [layer for layer in wanted if not 0 <= layer <= top]
    if outside:  # refused before any cell is measured, naming the layers the model has
        raise ValueError(
            f"layer(s) {outside} out of range: {first} has layers 0-{top} (0: the feature "
            f"encoder's output, 1-{top}: its transformer layers)"
        )
    return wanted


def _load_cache(path: Path) -> xr.Dataset | None:
    if not path.is_file():
        return None
    with xr.open_dataset(path, engine="scipy") as opened:
        return opened.load()


def _condition(spec: ProbeSpec):
    """The ABX condition of a grid's options (speaker, context or the general form)."""
    from probes.abx_engine.conditions import make_condition

    keys = ("speaker", "context", "on", "by", "across", "levels")
    return make_condition(**{k: spec.options[k] for k in keys if k in spec.options})


def _missing_work(
    specs, caches, identities, paths, layers, counts_needed=()
) -> dict[int, dict[str, list[int]]]:
    """epoch -> probe name -> the layers whose cell is missing or was measured on something else
    (or, for the grids in `counts_needed`, was cached without the counts intervals come from)."""
    todo: dict[int, dict[str, list[int]]] = {}
    for epoch in paths:
        for name in specs:
            missing = [
                layer
                for layer in layers
                if not _is_done(caches[name], epoch, layer, identities[name][epoch])
                or (name in counts_needed and not _is_counted(caches[name], epoch, layer))
            ]
            if missing:
                todo.setdefault(epoch, {})[name] = missing
    return todo


def _is_done(cache: xr.Dataset | None, epoch: int, layer: int, identity: str) -> bool:
    if cache is None or epoch not in cache.epoch or layer not in cache.layer:
        return False
    if str(cache.identity.sel(epoch=epoch).item()) != identity:
        return False
    return bool(cache.done.sel(epoch=epoch, layer=layer).item())


def _is_counted(cache: xr.Dataset, epoch: int, layer: int) -> bool:
    """Whether the cache holds the cell's counts (caches written before they were kept do not)."""
    return has_counts(cache) and bool(cache.counted.sel(epoch=epoch, layer=layer).item())


def _run_work(todo, paths, specs, client, progress, run):
    """Yield (epoch, {probe name: values}) as checkpoints finish, serially or on a dask client."""
    if not todo:
        return
    bar = tqdm(total=len(todo), desc=f"grid {run_name(run)}", unit="ckpt", disable=not progress)
    jobs = {
        epoch: (paths[epoch], epoch, {name: (specs[name], cells) for name, cells in work.items()})
        for epoch, work in todo.items()
    }
    try:
        if client is None:
            for epoch, job in jobs.items():
                yield epoch, measure_checkpoint(*job)
                bar.update()
        else:
            from distributed import as_completed

            futures = {
                client.submit(measure_checkpoint, *job, pure=False): e for e, job in jobs.items()
            }
            for future in as_completed(futures):
                yield futures[future], future.result()
                bar.update()
    finally:
        bar.close()


def _merge(cache, epoch: int, identity: str, layers: list[int], values) -> xr.Dataset:
    """The cache with the cells (epoch, layers) set to `values` ([layers], or [layers, 3] with the
    interval's low and high, or an ABX probe's LayerCells: the errors and the cells' counts)."""
    counts = values if isinstance(values, LayerCells) else None
    values = np.asarray(counts.values if counts is not None else values, dtype=np.float64)
    columns = values[:, None] if values.ndim == 1 else values
    data = {
        name: (("epoch", "layer"), columns[None, :, k])
        for k, name in enumerate(("value", "low", "high")[: columns.shape[1]])
    }
    new = xr.Dataset(
        data | {"done": (("epoch", "layer"), np.ones((1, len(layers)), dtype=np.int8))},
        coords={"epoch": [epoch], "layer": layers, "identity": ("epoch", [identity])},
    )
    return _overlay(counts.into(new) if counts is not None else new, cache)


def _overlay(top: xr.Dataset | None, bottom: xr.Dataset | None) -> xr.Dataset | None:
    """Cells done in `top`, else those done in `bottom`. An epoch that the two measured on different
    checkpoints keeps `top`'s cells only: `bottom`'s are stale."""
    if top is None or bottom is None:
        return bottom if top is None else top
    top_ids = top.identity.to_series()
    bottom_ids = bottom.identity.to_series()
    shared = top_ids.index.intersection(bottom_ids.index)
    stale = shared[top_ids[shared].astype(str) != bottom_ids[shared].astype(str)]
    bottom = bottom.drop_sel(epoch=list(stale))
    bottom_ids = bottom_ids.drop(stale)
    epochs = np.union1d(top.epoch.values, bottom.epoch.values)
    layers = np.union1d(top.layer.values, bottom.layer.values)
    upper = top.reindex(epoch=epochs, layer=layers)
    lower = bottom.reindex(epoch=epochs, layer=layers)
    upper_done = upper.done.fillna(0).astype(bool)
    lower_done = lower.done.fillna(0).astype(bool)
    identity = top_ids.combine_first(bottom_ids).reindex(epochs).astype(str)
    cells = {}
    for name in INTERVAL_VARIABLES:  # a variable only one side has is NaN on the other
        if name in upper or name in lower:
            up = upper[name] if name in upper else xr.full_like(upper.value, np.nan)
            low = lower[name] if name in lower else xr.full_like(lower.value, np.nan)
            cells[name] = xr.where(upper_done, up, low)
    cells |= overlay_counts(upper, lower, upper_done)
    return xr.Dataset(
        cells | {"done": (upper_done | lower_done).astype(np.int8)},
        coords={"identity": ("epoch", identity.to_numpy())},
    )


# Per-cell variables that follow the cell's value (the counts are overlay_counts's).
INTERVAL_VARIABLES = ("value", "low", "high", "interval_boot", "interval_confidence")


def _save_cache(path: Path, cache: xr.Dataset, spec: ProbeSpec) -> xr.Dataset:
    with exclusive(path, what="the grid cache"):
        # Another process may have added cells since we read the file: keep them where ours are
        # missing (read again under the lock, so two grids on one run never lose each other's cells).
        cache = _overlay(cache, _load_cache(path))
        cache.attrs = {"probe": spec.name, "options": spec.options_json, "key": spec.key}
        write_atomic(path, lambda tmp: cache.to_netcdf(tmp, engine="scipy"))
    return cache


def _grid_from_cache(cache, spec: ProbeSpec, identities, layers, run: Path) -> xr.DataArray:
    epochs = list(identities)
    values = cache.value.reindex(epoch=epochs, layer=layers)
    values = values.drop_vars("identity", errors="ignore").astype(np.float64)
    values = values.assign_coords(checkpoint=("epoch", [identities[e] for e in epochs]))
    # Intervals, as training.retrieval.recall_at_k gives them: an ABX grid's only when asked for
    # (the cache may hold those of another number of resamples).
    bounds = ("low", "high") if spec.intervals or not spec.keeps_counts else ()
    for bound in bounds:
        if bound in cache:
            values = values.assign_coords(
                {
                    bound: cache[bound]
                    .reindex(epoch=epochs, layer=layers)
                    .drop_vars("identity", errors="ignore")
                }
            )
    values.name = spec.name
    values.attrs = {"probe": spec.name, "options": spec.options_json, "run": run_name(run)}
    values.attrs.update(spec.scalar_options())
    if spec.intervals:
        values.attrs.update(bootstrap=spec.intervals[0], confidence=spec.intervals[1])
    return values
