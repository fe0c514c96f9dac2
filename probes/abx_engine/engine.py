"""``score``: the ABX error of features on an item file, with every cell's counts.

Pipeline: read items -> slice frames -> sort into groups and runs (cells.py) -> for each block of item
pairs: frame distances as one sgemm per tile, DTW for each pair once (both orientations), per-x counting
by sorting (kernels.py) -> per-cell int64 counts -> AbxResult (result.py) averages them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed

import numba
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits
from training.progress import progress_bar as tqdm

from probes.abx_engine import kernels as parallel_kernels
from probes.abx_engine import small
from probes.abx_engine.cells import Block, Layout, build_layout, cell_table, plan_blocks
from probes.abx_engine.conditions import Condition, zerospeech_condition
from probes.abx_engine.distances import frame_distance_tile, prepare_frames
from probes.abx_engine.kernels import SERIAL
from probes.abx_engine.ragged import FeatureFileError, Ragged
from probes.abx_engine.result import AbxResult
from probes.abx_engine.slicing import check_finite, slice_items
from probes.abx_engine.subsample import Subsampling, count_subsampled, x_thresholds

__all__ = ["score", "NoValidCellError", "prepare_items", "make_condition"]

TILE_ELEMENTS = 1 << 22  # frame pairs per distance tile (16 MB of float32)
SMALL_BLOCK = 1 << 20  # frame pairs below which a block runs single-threaded
PACK_FRAMES = (
    384  # within-type conditions: consecutive small groups share one block up to these frames
)
BLOCK_POOL = True  # large blocks on a pool of single-threaded workers when there are enough of them


class NoValidCellError(ValueError):
    """The condition forms no cell on these items (e.g. no phone with two items in any group)."""


def prepare_items(items: pd.DataFrame | str | os.PathLike) -> pd.DataFrame:
    """An item table from a path (``training.data.read_items``) or a table, checked for its columns."""
    if not isinstance(items, pd.DataFrame):
        from training.data.items import read_items

        items = read_items(items)
    missing = [c for c in ("file", "onset", "offset") if c not in items]
    if missing:
        raise ValueError(
            f"{items.attrs.get('path', 'item table')}: no column(s) {', '.join(missing)}"
        )
    return items


def make_condition(
    speaker: str = "within",
    context: str = "within",
    on: str | None = None,
    by: list[str] | tuple[str, ...] | None = None,
    across: list[str] | tuple[str, ...] | None = None,
    levels: list | tuple | None = None,
) -> Condition:
    """A ZeroSpeech condition, or the general form when ``on`` is given (``levels`` default: by, across)."""
    if on is None:
        if by is not None or across is not None:
            raise ValueError(
                "by/across need on= (the general form); speaker/context name the ZeroSpeech ones"
            )
        condition = zerospeech_condition(speaker, context)
        if levels is None:
            return condition
        return Condition(
            condition.on, condition.by, condition.across, tuple(levels), speaker, context
        )
    by, across = tuple(by or ()), tuple(across or ())
    return Condition(on, by, across, tuple(levels) if levels is not None else (*by, *across))


def _features(features: Mapping[str, np.ndarray] | Ragged, names: list[str]) -> Ragged:
    if isinstance(features, Ragged):
        return features
    present = [n for n in names if n in features]
    return Ragged.from_mapping(features, present)


def _item_frames(
    data: np.ndarray, start: np.ndarray, length: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.concatenate([[0], np.cumsum(length)]).astype(np.int64)
    index = np.repeat(start - offsets[:-1], length) + np.arange(offsets[-1])
    return np.ascontiguousarray(data[index], dtype=np.float32), offsets


def score(
    features: Mapping[str, np.ndarray] | Ragged,
    items: pd.DataFrame | str | os.PathLike,
    *,
    frequency: float = 50.0,
    speaker: str = "within",
    context: str = "within",
    on: str | None = None,
    by: list[str] | None = None,
    across: list[str] | None = None,
    levels: list | None = None,
    distance: str = "angular",
    pooling: str | None = None,
    compat: str | None = None,
    max_size_group: int | None = None,
    max_x_across: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> AbxResult:
    """ABX error of ``features`` on ``items`` (docs/abx.md).

    features: {file stem: [T, D] array} or a Ragged; items: an item file path or ``read_items`` table.
    speaker within|across, context within|any|across name the conditions; or give ``on`` (and ``by``,
    ``across``, ``levels``) for the general form. distance angular|cosine|euclidean; pooling None (DTW
    over frames) or "mean"; compat None or "librilight" (slicing and zero frames as libri-light);
    max_size_group / max_x_across / seed: optional seeded subsampling, off by default.
    Returns an AbxResult: ``float(result)`` is the error in [0, 1], ``result.cells`` the per-cell table.
    """
    items = prepare_items(items)
    condition = make_condition(speaker, context, on, by, across, levels)
    names = list(dict.fromkeys(items["file"].astype(str)))
    ragged = _features(features, names)
    check_finite(ragged, [n for n in names if n in ragged])
    slices = slice_items(items, ragged, frequency, compat)
    if not len(slices.rows):
        raise NoValidCellError(
            f"{items.attrs.get('path', 'item table')}: no item left after slicing"
        )
    kept = items.iloc[slices.rows].reset_index(drop=True)
    kept.attrs = dict(items.attrs)
    layout = build_layout(kept, condition)
    frames, offsets = _item_frames(
        ragged.data, slices.start[layout.order], slices.length[layout.order]
    )
    if ragged.dim == 0:
        raise FeatureFileError("features have dimension 0")
    frames, offsets = prepare_frames(frames, offsets, distance, pooling, compat == "librilight")
    sampling = Subsampling(max_size_group, max_x_across, seed)
    cost_dtype = np.float32 if compat == "librilight" else np.float64  # zrc-abx2's DTW is float32
    if small.eligible(layout, offsets, distance, sampling.active):  # numpy only: no Numba to load
        records = small.score_small(layout, frames, offsets, distance, cost_dtype)
    else:
        records = _score_blocks(layout, frames, offsets, distance, sampling, cost_dtype, progress)
    if not len(records[0]):
        raise NoValidCellError(
            f"{items.attrs.get('path', 'item table')}: no valid cell for {condition.name} "
            f"({layout.n_items} items; need a phone with 2 items in a group, or the same phone across groups)"
        )
    cells = cell_table(layout, *records)
    return AbxResult(
        cells,
        condition,
        meta={
            "distance": distance,
            "pooling": pooling,
            "compat": compat,
            "frequency": frequency,
            "max_size_group": max_size_group,
            "max_x_across": max_x_across,
            "seed": seed,
            "n_items": layout.n_items,
            "dropped_items": slices.dropped,
            "items": str(items.attrs.get("path", "")) or None,
        },
    )


def _score_blocks(layout, frames, offsets, distance, sampling, cost_dtype, progress):
    frames_in = offsets[layout.group_start]
    blocks = plan_blocks(layout)
    if layout.condition.is_symmetric:
        blocks = _pack_groups(blocks, frames_in, PACK_FRAMES)
    max_len = int(np.diff(offsets).max())
    scratch = np.empty((max_len, max_len), cost_dtype)  # the DTW buffer's shape and precision
    work = [
        (frames_in[b.r1] - frames_in[b.r0]) * (frames_in[b.c1] - frames_in[b.c0]) for b in blocks
    ]
    # Small blocks run on one thread: waking a thread pool costs more than their whole work (about a
    # millisecond on a busy machine, against tens of microseconds), and there can be thousands of them.
    light = [b for b, w in zip(blocks, work, strict=True) if w < SMALL_BLOCK]
    large = [(w, b) for b, w in zip(blocks, work, strict=True) if w >= SMALL_BLOCK]
    thresholds = _x_thresholds(layout, sampling)
    parts: list[tuple[np.ndarray, ...]] = []
    bar = tqdm(total=len(blocks), desc="ABX blocks", disable=not progress, leave=False)
    threads = numba.get_num_threads()

    # zrc-abx2's orientation and x = a ties (compat mode, within-type, exhaustive): see small.py.
    zrc = cost_dtype == np.float32 and layout.condition.is_symmetric and not sampling.active

    def run(block, kernels):
        d_rc, d_cr = _block_distances(layout, frames, offsets, block, distance, scratch, kernels)
        if zrc:
            small.earlier_on_rows(layout, block, d_rc)
        parts = _score_block(layout, block, d_rc, d_cr, sampling, thresholds, kernels)
        if zrc:
            x_run, a_run, b_run, correct2, *sizes = parts[0]
            correct2 = correct2 + small.zrc_diagonal_ties(layout, block, d_rc, x_run, b_run)
            parts[0] = (x_run, a_run, b_run, correct2, *sizes)
        return parts

    try:
        with threadpool_limits(limits=1):
            numba.set_num_threads(1)
            for block in light:
                parts.extend(run(block, SERIAL))
                bar.update()
            # Enough large blocks for every thread: one block per worker at a time, each with
            # single-threaded BLAS and kernels, so threads synchronise once per block (the subsampled
            # counter has only a parallel kernel, so it keeps the per-tile threading below).
            if BLOCK_POOL and threads > 1 and len(large) >= threads and not sampling.active:
                parts.extend(_run_pooled(run, large, threads, bar))
                large = []
        numba.set_num_threads(threads)
        for _, block in large:
            parts.extend(run(block, parallel_kernels))
            bar.update()
    finally:
        numba.set_num_threads(threads)
        bar.close()
    if not parts:
        return tuple(np.zeros(0, np.int64) for _ in range(7))
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(7))


def _pack_groups(blocks: list[Block], frames_in: np.ndarray, limit: int) -> list[Block]:
    """Merge runs of consecutive one-group symmetric blocks into blocks of up to ``limit`` frames.

    A within-type condition has one block per group, often of a few dozen frames (within/within:
    thousands of them), where the Python around each block costs more than its sgemm and DTWs. A
    merged block computes the frame products between its groups too (wasted, but BLAS-cheap at this
    size), while its DTWs and counts stay within each group (``Layout.allowed`` is the identity).
    """
    packed: list[Block] = []
    for block in blocks:
        last = packed[-1] if packed else None
        if (
            last is not None
            and last.symmetric
            and block.symmetric
            and last.r1 == block.r0
            and frames_in[block.r1] - frames_in[last.r0] <= limit
        ):
            packed[-1] = Block(last.r0, block.r1, last.c0, block.c1)
        else:
            packed.append(block)
    return packed


def _run_pooled(run, large, threads, bar) -> list:
    """Score (work, block) pairs on ``threads`` worker threads, largest first; results in block order."""
    results: list = [None] * len(large)
    order = sorted(range(len(large)), key=lambda i: -large[i][0])
    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = {pool.submit(run, large[i][1], SERIAL): i for i in order}
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            bar.update()
    return [part for block_parts in results for part in block_parts]


def _x_thresholds(layout: Layout, sampling: Subsampling) -> np.ndarray | None:
    if sampling.max_x_across is None or layout.condition.is_symmetric:
        return None
    return x_thresholds(
        sampling.seed,
        layout.run_start,
        layout.run_group,
        layout.run_phone,
        layout.group_runs,
        layout.group_by,
        layout.by_start,
        layout.group_across,
        int(sampling.max_x_across),
    )


def _score_block(layout, block, d_rc, d_cr, sampling, thresholds, kernels):
    if sampling.active:
        return [count_subsampled(layout, block, d_rc, d_cr, sampling, thresholds)]
    parts = [_count(layout, block.r0, block.r1, block.c0, block.c1, d_rc, kernels)]
    if not block.symmetric:
        parts.append(_count(layout, block.c0, block.c1, block.r0, block.r1, d_cr, kernels))
    return parts


def _block_distances(
    layout: Layout,
    frames: np.ndarray,
    offsets: np.ndarray,
    block: Block,
    distance: str,
    scratch: np.ndarray,
    kernels=parallel_kernels,
) -> tuple[np.ndarray, np.ndarray]:
    gs = layout.group_start
    ri0, ri1, ci0, ci1 = gs[block.r0], gs[block.r1], gs[block.c0], gs[block.c1]
    d_rc = np.empty((ri1 - ri0, ci1 - ci0), np.float64)
    d_cr = np.empty((ri1 - ri0, ci1 - ci0), np.float64)  # d(col, row), stored at [row, col]
    row_group = layout.group[ri0:ri1] - block.r0
    col_group = layout.group[ci0:ci1] - block.c0
    allowed = layout.allowed(np.arange(block.r0, block.r1), np.arange(block.c0, block.c1))
    if not allowed.any():  # no cell reads this block
        return d_rc, (d_rc if block.symmetric else np.ascontiguousarray(d_cr.T))
    n_col_frames = offsets[ci1] - offsets[ci0]
    budget = max(TILE_ELEMENTS // max(n_col_frames, 1), len(scratch))
    i0 = 0
    while i0 < ri1 - ri0:
        i1 = int(np.searchsorted(offsets, offsets[ri0 + i0] + budget, side="right")) - 1 - ri0
        i1 = min(max(i1, i0 + 1), ri1 - ri0)
        # A symmetric block needs only the pairs above its diagonal: columns from the tile's first row on.
        j0 = i0 if block.symmetric else 0
        rows = frames[offsets[ri0 + i0] : offsets[ri0 + i1]]
        cols = frames[offsets[ci0 + j0] : offsets[ci1]]
        tile = frame_distance_tile(rows, cols, distance, kernels)
        row_off = offsets[ri0 + i0 : ri0 + i1 + 1] - offsets[ri0 + i0]
        col_off = offsets[ci0 + j0 : ci1 + 1] - offsets[ci0 + j0]
        kernels.dtw_block(
            tile,
            row_off,
            col_off,
            row_group[i0:i1],
            col_group[j0:],
            allowed,
            block.symmetric,
            d_rc,
            d_cr,
            i0,
            j0,
            scratch,
        )
        i0 = i1
    if block.symmetric:  # the pairs below the diagonal are the transposed ones
        lower = np.tri(len(d_rc), k=-1, dtype=bool)
        np.copyto(d_rc, d_cr.T, where=lower)
        return d_rc, d_rc
    return d_rc, np.ascontiguousarray(d_cr.T)


def _count(
    layout: Layout, r0: int, r1: int, c0: int, c1: int, dist: np.ndarray, kernels=parallel_kernels
):
    """Cells whose X runs are in groups [r0, r1) and A/B runs in groups [c0, c1): (x, a, b runs, counts)."""
    gs, gr = layout.group_start, layout.group_runs
    ri0, ci0 = gs[r0], gs[c0]
    run0, run1 = gr[c0], gr[c1]
    run_start = layout.run_start[run0 : run1 + 1] - ci0
    allowed = layout.allowed(np.arange(r0, r1), np.arange(c0, c1))
    symmetric = layout.condition.is_symmetric
    out = kernels.count_block(
        dist,
        layout.phone[ri0 : gs[r1]],
        layout.group[ri0 : gs[r1]] - r0,
        run_start,
        layout.run_phone[run0:run1],
        gr[c0 : c1 + 1] - run0,
        np.arange(c1 - c0, dtype=np.int64),
        allowed,
        symmetric,
        0,
        int(np.diff(run_start).max()),
    )
    x_runs = np.arange(gr[r0], gr[r1])
    sums = np.add.reduceat(out, layout.run_start[x_runs] - ri0, axis=0)
    valid = out[layout.run_start[x_runs] - ri0] >= 0
    xi, bi = np.nonzero(valid)
    x_run, b_run = x_runs[xi], run0 + bi
    a_run = (
        x_run if symmetric else _run_of(layout, layout.run_group[b_run], layout.run_phone[x_run])
    )
    size = np.diff(layout.run_start)
    return x_run, a_run, b_run, sums[xi, bi], size[a_run], size[b_run], size[x_run]


def _run_of(layout: Layout, group: np.ndarray, phone: np.ndarray) -> np.ndarray:
    n_phones = len(layout.labels[layout.condition.on]) + 1
    keys = layout.run_group * n_phones + layout.run_phone
    return np.searchsorted(keys, group * n_phones + phone)
