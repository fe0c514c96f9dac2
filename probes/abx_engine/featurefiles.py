"""A directory of per-file features, opened without reading the frames: ``open_feature_dir``.

``load_feature_dir`` (ragged.py) reads every file into one Ragged, which scoring then gathers the
items' frames from: two copies of every frame, the first into a fresh allocation as large as the
whole set. ``open_feature_dir`` finds and checks the files (a ``.npy`` header gives the frame count,
dimension and dtype; ``.pt``, ``.txt`` and unusual ``.npy`` files are read at once) and returns a
FeatureFiles; ``Prepared.frames`` then reads each file's used frames into a small reused buffer and
copies them to their places in processing order (gather.py), so only the final array is allocated.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from probes.abx_engine.ragged import (
    FEATURE_SUFFIXES,
    FeatureFileError,
    _check_shape,
    _npy_header,
    load_feature_file,
)

__all__ = ["FeatureFiles", "open_feature_dir"]


class FeatureFiles(Mapping[str, np.ndarray]):
    """Named ``[T_i, D]`` feature files, read on demand; the interface Ragged gives the engine.

    ``names`` [n] the files' item-file stems; ``lengths`` [n] their frame counts; ``dim`` D.
    ``block(i, lo, hi)`` -> ``[hi - lo, D]`` frames ``lo:hi`` of file ``i`` (a view of a reused
    buffer, valid until the next call: one reader at a time); ``features[name]`` reads the whole
    file as a new array.
    """

    def __init__(self, names: Sequence[str], paths: Sequence[Path], sources: Sequence):
        # sources[i]: (offset, dtype, shape) of a plain .npy, or the array read at open
        self.names, self.paths, self._sources = [str(n) for n in names], list(paths), list(sources)
        self._index = {name: i for i, name in enumerate(self.names)}
        self.lengths = np.array([_shape(s)[0] for s in self._sources], np.int64)
        self.dim = int(_shape(self._sources[0])[1]) if self._sources else 0
        self._buffer = np.empty(0, np.uint8)

    def block(self, i: int, lo: int, hi: int) -> np.ndarray:
        """Frames ``lo:hi`` of file ``i`` ([hi - lo, D], in the file's dtype; a reused buffer)."""
        source = self._sources[i]
        if isinstance(source, np.ndarray):
            return source[lo:hi]
        offset, dtype, (_, dim) = source
        row = dtype.itemsize * dim
        size = (hi - lo) * row
        if len(self._buffer) < size:
            self._buffer = np.empty(size, np.uint8)
        target = self._buffer[:size]
        view, done = memoryview(target), 0
        with open(self.paths[i], "rb", buffering=0) as handle:
            handle.seek(offset + lo * row)
            while done < size:  # one read, unless the file is over 2 GB (or shrank since open)
                got = handle.readinto(view[done:])
                if not got:
                    raise FeatureFileError(
                        f"{self.paths[i]}: cannot read features: the file is truncated"
                    )
                done += got
        return target.view(dtype).reshape(hi - lo, dim)

    def __getitem__(self, name: str) -> np.ndarray:
        i = self._index[name]
        source = self._sources[i]
        return source if isinstance(source, np.ndarray) else load_feature_file(self.paths[i])

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def position(self, name: str) -> int:
        """Index of ``name`` in ``names``."""
        return self._index[name]

    def __repr__(self) -> str:
        return f"FeatureFiles({len(self)} files, {int(self.lengths.sum())} frames, dim {self.dim})"


def _shape(source) -> tuple[int, ...]:
    return source.shape if isinstance(source, np.ndarray) else source[2]


def open_feature_dir(root: str | os.PathLike, names: Sequence[str]) -> FeatureFiles:
    """Find and check the feature files of ``names`` under ``root`` (as ``load_feature_dir``).

    Reads only the ``.npy`` headers (and the whole of any ``.pt``, ``.txt`` or Fortran-order file).
    Raises as ``load_feature_dir`` does: FileNotFoundError or AmbiguousFileError for a name with no
    file or two, FeatureFileError naming the file for one that is unreadable, not ``[frames, dim]``,
    empty, shorter than its header says, or of another dimension than the first.
    """
    from training.data.lookup import find_by_stem

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"feature directory {root} does not exist")
    names = list(dict.fromkeys(names))
    found = find_by_stem(
        root, names, suffixes=FEATURE_SUFFIXES, what="feature file",
        where=lambda name: f"{root}: #file {name!r}",
    )  # fmt: skip
    sources, dim = [], None
    for name in names:
        source = _open(found[name])
        shape = _shape(source)
        if dim is None:
            dim = shape[1]
        elif shape[1] != dim:
            raise FeatureFileError(
                f"{root}: features for {name!r} have dimension {shape[1]}, others have {dim}"
            )
        sources.append(source)
    return FeatureFiles(names, [found[name] for name in names], sources)


def _open(path: Path):
    """(data offset, dtype, shape) of a plain C-order .npy file, else the array read now."""
    header = _npy_header(path) if path.suffix == ".npy" else None
    if header is None:
        return load_feature_file(path)
    shape, fortran, dtype, offset = header
    if len(shape) != 2 or fortran or dtype.hasobject:
        return load_feature_file(path)  # np.load reads it, or names what is wrong
    _check_shape(path, shape)
    if path.stat().st_size < offset + shape[0] * shape[1] * dtype.itemsize:
        raise FeatureFileError(f"{path}: cannot read features: the file is truncated")
    return offset, dtype, tuple(shape)
