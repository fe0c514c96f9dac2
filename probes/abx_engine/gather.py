"""Copy the items' frames, file by file, into one float32 array in processing order.

The plan (which frames of which file go to which rows) depends on the items alone, so a Prepared
builds it once and every feature set it scores reuses it. For each file, ``run`` asks its source for
the span of frames its items use (``block(i, lo, hi)``: a Ragged's view or a FeatureFiles read into a
reused buffer), checks those frames for NaN and Inf while they are in cache, and copies them to their
rows: one pass over the used frames, no index over the whole set, no check of frames no item uses.
"""

from __future__ import annotations

import mmap
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from probes.abx_engine.ragged import FeatureFileError

if TYPE_CHECKING:
    from probes.abx_engine.featurefiles import FeatureFiles
    from probes.abx_engine.ragged import Ragged

__all__ = ["FramePlan"]

LARGE_FRAMES = 1 << 26  # bytes from which the frames get their own mapping (64 MiB)


class FramePlan:
    """Where every item frame comes from (file, frame) and goes (row of the output).

    Built from the items in processing order: ``item_file`` [n] (index into the files),
    ``item_start`` [n] (first frame in its file), ``item_length`` [n] and ``offsets`` [n + 1] (the
    items' rows in the output, ``offsets[-1]`` = F frames). Within a file the frames are kept in
    file order, so a dense item file's frames are one contiguous span copied as is.
    """

    def __init__(self, n_files: int, item_file: np.ndarray, item_start: np.ndarray,
                 item_length: np.ndarray, offsets: np.ndarray):  # fmt: skip
        order = np.lexsort((item_start, item_file))  # by file, then by first frame
        length = item_length[order]
        within = np.arange(int(length.sum()), dtype=np.int64) - np.repeat(
            np.cumsum(length) - length, length
        )
        self.src = np.repeat(item_start[order], length) + within  # [F] frame in its file
        self.dst = np.repeat(offsets[:-1][order], length) + within  # [F] row of the output
        per_file = np.bincount(np.repeat(item_file[order], length), minlength=n_files)
        self.bounds = np.concatenate([[0], np.cumsum(per_file)]).astype(np.int64)  # [files + 1]
        self.n_frames = int(offsets[-1])
        # Per file: the span lo:hi of frames its items use, and whether they are exactly that span.
        self.lo = np.zeros(n_files, np.int64)
        self.hi = np.zeros(n_files, np.int64)
        self.dense = np.zeros(n_files, bool)
        steps_ok = np.concatenate([[True], np.diff(self.src) == 1])
        for i in np.flatnonzero(per_file):
            a, b = self.bounds[i], self.bounds[i + 1]
            self.lo[i], self.hi[i] = self.src[a:b].min(), self.src[a:b].max() + 1
            self.dense[i] = bool(steps_ok[a + 1 : b].all())

    def run(
        self, source: Ragged | FeatureFiles, positions: np.ndarray, names: Sequence[str]
    ) -> np.ndarray:
        """[F, D] float32: every item's frames at its rows; file ``i`` is ``names[i]``, read as
        ``source.block(positions[i], lo, hi)`` (its frames lo:hi, [hi - lo, D] in any dtype).

        Raises FeatureFileError naming the first file (in file order) whose used frames hold a NaN or
        an Inf, and the first such frame in it.
        """
        out = _fresh_frames(self.n_frames, source.dim)
        for i in range(len(self.bounds) - 1):
            a, b = int(self.bounds[i]), int(self.bounds[i + 1])
            if a == b:
                continue  # every item of this file was dropped
            lo, hi = int(self.lo[i]), int(self.hi[i])
            frames = source.block(int(positions[i]), lo, hi)
            src = self.src[a:b]
            if not self.dense[i]:  # gaps or overlaps between the file's items
                frames = frames[src - lo]
            _check_finite(frames, src, names[i])
            out[self.dst[a:b]] = frames
        return out


def _fresh_frames(n: int, dim: int) -> np.ndarray:
    """An uninitialised [n, dim] float32 array; a large one on pages the kernel need not compact for.

    numpy asks for transparent huge pages on large arrays (madvise), and with the kernel's default
    ``defrag = madvise`` each 2 MB page fault may then stop to compact memory: on a machine whose
    memory is fragmented (a page cache full of features, other jobs) that cost 3 to 6 CPU s for
    the 2.5 GB of dev-clean's frames, against about 1 s for ordinary pages (docs/performance.md).
    An anonymous mapping without the advice gets huge pages only where they are free.
    """
    size = n * dim * 4
    if size < LARGE_FRAMES or not hasattr(mmap, "MAP_ANONYMOUS"):
        return np.empty((n, dim), np.float32)
    buffer = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return np.frombuffer(buffer, np.float32).reshape(n, dim)  # unmapped with the last view


def _check_finite(frames: np.ndarray, src: np.ndarray, name: str) -> None:
    """Raise FeatureFileError naming ``name`` and the first frame of ``frames`` with NaN or Inf."""
    if frames.dtype.kind in "fc" and not np.isfinite(frames).all():
        bad = ~np.isfinite(frames).all(axis=1)
        frame = int(src[np.flatnonzero(bad)].min())
        raise FeatureFileError(f"features for {name!r} contain NaN or Inf (first at frame {frame})")
