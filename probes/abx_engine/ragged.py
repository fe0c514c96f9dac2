"""Ragged features: the frames of many files concatenated into one array, with offsets.

This is the layout the ABX kernels read (one contiguous float32 block, no padding) and the layout of
the activation stores (frames of all utterances along one ``frame`` axis).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["Ragged", "FeatureFileError", "load_feature_file", "load_feature_dir"]

FEATURE_SUFFIXES = (".npy", ".pt", ".txt")


class FeatureFileError(ValueError):
    """A feature file (or array) that cannot be scored; the message names it."""


class Ragged(Mapping[str, np.ndarray]):
    """Named variable-length sequences stored as one array.

    ``data`` is ``[total_frames, D]``; sequence ``i`` (named ``names[i]``) is
    ``data[offsets[i]:offsets[i + 1]]``. Behaves as a read-only mapping name -> ``[T_i, D]`` view.
    """

    def __init__(self, data: np.ndarray, offsets: Sequence[int] | np.ndarray, names: Sequence[str]):
        data = np.asarray(data)
        offsets = np.asarray(offsets, dtype=np.int64)
        if data.ndim != 2:
            raise FeatureFileError(f"ragged data must be [frames, dim], got shape {data.shape}")
        if offsets.ndim != 1 or len(offsets) != len(names) + 1:
            raise FeatureFileError(
                f"ragged offsets must have len(names) + 1 = {len(names) + 1} entries, got {offsets.shape}"
            )
        if offsets[0] != 0 or offsets[-1] != len(data) or np.any(np.diff(offsets) < 0):
            raise FeatureFileError(
                "ragged offsets must start at 0, end at len(data) and never decrease"
            )
        self.data = data
        self.offsets = offsets
        self.names = [str(n) for n in names]
        self._index = {name: i for i, name in enumerate(self.names)}
        if len(self._index) != len(self.names):
            raise FeatureFileError("ragged names must be unique")

    @classmethod
    def from_lengths(cls, data: np.ndarray, lengths: Sequence[int], names: Sequence[str]) -> Ragged:
        """Build from per-sequence lengths instead of offsets."""
        return cls(data, np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]), names)

    @classmethod
    def from_mapping(
        cls, features: Mapping[str, np.ndarray], names: Sequence[str] | None = None
    ) -> Ragged:
        """Concatenate ``features[name]`` (each ``[T, D]``) for ``names`` (default: all keys).

        Raises FeatureFileError naming the entry on a wrong rank or a dimension mismatch.
        """
        if isinstance(features, Ragged) and names is None:
            return features
        names = list(features) if names is None else list(names)
        arrays, dim = [], None
        for name in names:
            array = _as_numpy(features[name])
            if array.ndim != 2:
                raise FeatureFileError(
                    f"features for {name!r} must be [frames, dim], got shape {array.shape}"
                )
            if dim is None:
                dim = array.shape[1]
            elif array.shape[1] != dim:
                raise FeatureFileError(
                    f"features for {name!r} have dimension {array.shape[1]}, others have {dim}"
                )
            arrays.append(array)
        data = np.concatenate(arrays) if arrays else np.zeros((0, dim or 0), np.float32)
        return cls.from_lengths(data, [len(a) for a in arrays], names)

    @property
    def dim(self) -> int:
        return int(self.data.shape[1])

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __getitem__(self, name: str) -> np.ndarray:
        i = self._index[name]
        return self.data[self.offsets[i] : self.offsets[i + 1]]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def position(self, name: str) -> int:
        """Index of ``name`` in ``names``."""
        return self._index[name]

    def block(self, i: int, lo: int, hi: int) -> np.ndarray:
        """Frames ``lo:hi`` of sequence ``i``: a ``[hi - lo, D]`` view (as FeatureFiles.block)."""
        return self.data[self.offsets[i] + lo : self.offsets[i] + hi]

    def __repr__(self) -> str:
        return f"Ragged({len(self)} sequences, {len(self.data)} frames, dim {self.dim})"


def _as_numpy(array) -> np.ndarray:
    if hasattr(array, "detach"):  # a torch tensor, without importing torch
        array = array.detach().cpu().numpy()
    return np.asarray(array)


def load_feature_file(path: str | os.PathLike) -> np.ndarray:
    """Read one ``[frames, dim]`` array from ``.npy``, ``.pt`` (a tensor) or ZeroSpeech ``.txt``.

    Raises FeatureFileError naming the file for anything else: a ``.pt`` that is not a plain tensor
    (it is loaded with ``weights_only=True``: no pickled code runs), an array that is not 2-D or has
    no frames, an unreadable file.
    """
    import pickle

    path = Path(path)
    try:
        if path.suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        elif path.suffix == ".pt":
            import torch

            array = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(array, torch.Tensor):
                raise FeatureFileError(
                    f"{path}: holds a {type(array).__name__}, not a tensor [frames, dim]"
                )
            array = _as_numpy(array)
        elif path.suffix == ".txt":
            array = np.loadtxt(path, dtype=np.float64, ndmin=2)
        else:
            raise FeatureFileError(
                f"{path}: unsupported feature file type (use {', '.join(FEATURE_SUFFIXES)})"
            )
    except (ValueError, OSError, RuntimeError, pickle.UnpicklingError, EOFError) as err:
        if isinstance(err, (FeatureFileError, FileNotFoundError)):
            raise
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise FeatureFileError(f"{path}: cannot read features: {reason}") from err
    _check_shape(path, array.shape)
    return array


def _check_shape(path: Path, shape: tuple[int, ...]) -> None:
    if len(shape) != 2:
        raise FeatureFileError(f"{path}: features must be [frames, dim], got shape {shape}")
    if shape[0] == 0 or shape[1] == 0:
        raise FeatureFileError(f"{path}: features of shape {shape} have no frames or no dimension")


def load_feature_dir(root: str | os.PathLike, names: Sequence[str]) -> Ragged:
    """Load the features of ``names`` (item-file ``#file`` stems) from a directory, as one Ragged.

    Each name is looked for as ``name.npy``, ``.pt`` or ``.txt`` at any depth under ``root``
    (`training.data.lookup.find_by_stem`). Raises FileNotFoundError naming the first missing file,
    AmbiguousFileError naming both files of a name found twice (``sub/x.npy`` beside ``x.npy``, or
    ``x.npy`` beside ``x.pt``), FeatureFileError for a bad file; a name written as a path that leaves
    ``root`` is refused.
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
    ragged = _read_npy_files(names, [found[name] for name in names])
    if ragged is not None:
        return ragged
    arrays = {name: load_feature_file(found[name]) for name in names}
    try:
        return Ragged.from_mapping(arrays)
    except FeatureFileError as err:
        raise FeatureFileError(f"{root}: {err}") from None


def _npy_header(path: Path) -> tuple[tuple[int, ...], bool, np.dtype, int] | None:
    """(shape, fortran_order, dtype, data offset) of a .npy file, or None if it cannot be read."""
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
            else:
                return None
            return shape, fortran, dtype, handle.tell()
    except (ValueError, OSError):
        return None


def _read_npy_files(names: list[str], paths: list[Path]) -> Ragged | None:
    """Read .npy files of one dtype and dimension straight into one Ragged (None: use np.load).

    np.load gives one array per file that Ragged then concatenates: a second copy of every frame, and
    on a large set a fresh allocation whose page faults cost more than the reading itself.
    """
    headers = [_npy_header(p) if p.suffix == ".npy" else None for p in paths]
    if not headers or any(h is None for h in headers):
        return None
    dtype, dim = headers[0][2], headers[0][0][-1] if len(headers[0][0]) == 2 else None
    for shape, fortran, kind, _ in headers:
        if len(shape) != 2 or fortran or kind != dtype or shape[1] != dim or kind.hasobject:
            return None  # np.load and Ragged.from_mapping read it, or name what is wrong
    for path, (shape, *_) in zip(paths, headers, strict=True):
        _check_shape(path, shape)  # an empty file cannot be read into (and has nothing to score)
    lengths = [h[0][0] for h in headers]
    ragged = Ragged.from_lengths(np.empty((sum(lengths), dim), dtype), lengths, names)
    for path, (_, _, _, offset), start, stop in zip(
        paths, headers, ragged.offsets[:-1], ragged.offsets[1:], strict=True
    ):
        target = memoryview(ragged.data[start:stop]).cast("B")
        with open(path, "rb") as handle:
            handle.seek(offset)
            if handle.readinto(target) != len(target):
                raise FeatureFileError(f"{path}: cannot read features: the file is truncated")
    return ragged
