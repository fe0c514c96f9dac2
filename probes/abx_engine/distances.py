"""Frame preparation (normalisation, zero frames, pooling) and frame-distance tiles as BLAS products.

Distances between frames u, v (docs/abx.md):
  angular (default)  arccos(clamp(u.v, -1, 1)) / pi on L2-normalised frames  (fastabx "angular" = "cosine")
  cosine             1 - clamp(u.v, -1, 1) on L2-normalised frames
  euclidean          |u - v| on the raw frames (compat: on normalised frames, as libri-light does)
Zero frames: the default turns an all-zero frame into (1, ..., 1)/sqrt(D) (fastabx). compat="librilight"
appends libri-light's border column (1e-12 for a non-zero frame, -2e12 for an all-zero one), which puts an
all-zero frame at angular distance 1 from every non-zero frame and 0 from another all-zero one.
"""

from __future__ import annotations

import math

import numpy as np

from probes.vocabulary import check_choice

__all__ = ["DISTANCES", "POOLINGS", "prepare_frames", "frame_distance_tile"]

DISTANCES = ("angular", "cosine", "euclidean")
POOLINGS = (None, "mean")
BORDER_NONZERO = 1e-12
BORDER_ZERO = -2e12


def _normalise(frames: np.ndarray, compat: bool) -> np.ndarray:
    """L2-normalise the rows of ``frames`` (a float32 array of our own: divided in place)."""
    norms = np.sqrt(np.einsum("ij,ij->i", frames, frames, dtype=np.float64))
    zero = norms == 0
    frames /= np.where(zero, 1.0, norms).astype(np.float32)[:, None]
    if zero.any():
        frames[zero] = np.float32(1.0 / math.sqrt(frames.shape[1]))
    if not compat:
        return frames
    bordered = np.empty((len(frames), frames.shape[1] + 1), np.float32)
    bordered[:, :-1] = frames
    bordered[:, -1] = np.where(zero, BORDER_ZERO, BORDER_NONZERO)
    return bordered


def prepare_frames(
    frames: np.ndarray,
    offsets: np.ndarray,
    distance: str,
    pooling: str | None,
    compat: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Frames ready for the dot products, and their item offsets (one frame per item when pooled).

    frames: [F, D] item frames concatenated (float32, owned by the caller and overwritten); offsets: [n + 1]. Pooling "mean" averages the raw frames
    before normalising (fastabx); in compat mode it averages the normalised frames and does not
    normalise again (libri-light).
    """
    check_choice("distance", distance, DISTANCES)
    check_choice("pooling", pooling, POOLINGS)
    normalise = distance != "euclidean" or compat
    if pooling == "mean" and not compat:
        frames = _mean_pool(frames.astype(np.float64), offsets).astype(np.float32)
        offsets = np.arange(len(offsets), dtype=np.int64)
    if normalise:
        frames = _normalise(np.ascontiguousarray(frames, dtype=np.float32), compat)
    else:
        frames = np.ascontiguousarray(frames, dtype=np.float32)
    if pooling == "mean" and compat:
        frames = _mean_pool(frames.astype(np.float64), offsets).astype(np.float32)
        offsets = np.arange(len(offsets), dtype=np.int64)
    return frames, offsets


def _mean_pool(frames: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    sums = np.add.reduceat(frames, offsets[:-1], axis=0)
    return sums / np.diff(offsets)[:, None]


def frame_distance_tile(
    rows: np.ndarray, cols: np.ndarray, distance: str, kernels=None
) -> np.ndarray:
    """[R, C] float32 distances between the frames ``rows`` [R, D] and ``cols`` [C, D] (one sgemm).

    ``kernels``: the module of parallel kernels (default), or ``kernels.SERIAL`` inside a worker thread.
    """
    if kernels is None:
        from probes.abx_engine import kernels
    tile = np.dot(rows, cols.T)
    if distance == "angular":
        kernels.angular_from_dot(tile)
    elif distance == "cosine":
        kernels.cosine_from_dot(tile)
    else:
        sq_rows = np.einsum("ij,ij->i", rows, rows, dtype=np.float64)
        sq_cols = np.einsum("ij,ij->i", cols, cols, dtype=np.float64)
        kernels.euclidean_from_dot(tile, sq_rows, sq_cols, rows, cols)
    return tile
