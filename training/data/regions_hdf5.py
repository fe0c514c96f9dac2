"""FaST-VGS's HDF5 region features, read lazily, and its box-order pickle, read without running code.

Layout (FaST-VGS-Family's preprocessing; docs/data.md):
- ``coco_img_feat/SpokenCOCO_{split}_imgfeat.hdf5`` with datasets ``img_h`` [N], ``img_w`` [N],
  ``boxes`` [N, 36, 4] (pixels) and ``features`` [N, 36, D];
- ``SpokenCOCO_{split}_imgid2idex.json``: image id (the image file's stem) -> row (this spelling);
- ``SpokenCOCO_{split}_imgid2ordered_indices.pkl``: image id -> box order (a pickle of numpy arrays),
  or the same as JSON (``..._imgid2ordered_indices.json``, {id: [indices]}); without either, the stored
  order is kept.
The two index files are looked for beside the HDF5 file, then in ``../SpokenCOCO/`` (where FaST-VGS puts
them). The pickle is read by an unpickler that refuses every global except numpy's array and dtype
reconstructors, so plain containers, numbers and numeric arrays load and no pickled code can run.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np

from training.data.region_features import RegionError, RegionFeatures, normalised_boxes

__all__ = ["from_hdf5", "region_files", "is_hdf5", "read_plain_pickle", "HDF5_DATASETS"]

HDF5_DATASETS = ("img_h", "img_w", "boxes", "features")
HDF5_SUFFIXES = (".hdf5", ".h5")
FEATURE_SUFFIX = "_imgfeat"


def is_hdf5(path: Path) -> bool:
    return path.suffix in HDF5_SUFFIXES


def region_files(folder: Path) -> list[Path]:
    """The HDF5 region files of a folder (``*_imgfeat.hdf5`` first, else any ``.hdf5``/``.h5``), or
    its LXMERT TSVs (``*.tsv``) when it holds no HDF5."""
    found = sorted(folder.glob(f"*{FEATURE_SUFFIX}.hdf5"))
    found = found or sorted(p for s in HDF5_SUFFIXES for p in folder.glob(f"*{s}"))
    return found or sorted(folder.glob("*.tsv"))


# numpy's own reconstructors: they build arrays from bytes and never call user code.
_NUMPY_GLOBALS = {
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
} | {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
}  # fmt: skip


class _PlainUnpickler(pickle.Unpickler):
    """Loads dicts, lists, tuples, strings, numbers and numeric numpy arrays; refuses every other global."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _NUMPY_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} refused")
        core = getattr(np, "_core", None) or np.core
        if name == "_reconstruct" or name == "scalar":
            return getattr(core.multiarray, name)
        if name == "_frombuffer":
            return core.numeric._frombuffer
        return getattr(np, name)


def read_plain_pickle(path: Path, convert_to: str) -> object:
    """Unpickle `path` with `_PlainUnpickler`; a refused global is a RegionError saying what to convert."""
    try:
        with open(path, "rb") as handle:
            return _PlainUnpickler(handle).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as error:
        raise RegionError(
            f"{path}: not read ({error}): only plain dicts, lists, numbers and numpy arrays are "
            f"unpickled; convert it to JSON as {convert_to} ({{image id: [box indices]}})"
        ) from None


def _index_file(hdf5: Path, suffix: str) -> list[Path]:
    """Where the `suffix` file of `hdf5` may be: beside it, then in ../SpokenCOCO/."""
    stem = hdf5.stem.removesuffix(FEATURE_SUFFIX)
    return [
        folder / f"{stem}{suffix}" for folder in (hdf5.parent, hdf5.parent.parent / "SpokenCOCO")
    ]


def _read_index(hdf5: Path) -> tuple[dict[str, int], Path]:
    candidates = _index_file(hdf5, "_imgid2idex.json")
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise FileNotFoundError(
            f"{hdf5}: no image index (looked for {' and '.join(map(str, candidates))})"
        )
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RegionError(f"{path}: not a JSON image index ({error})") from None
    if not isinstance(index, dict):
        raise RegionError(f"{path}: expected an object {{image id: row}}")
    for key, row in index.items():
        if not isinstance(row, int) or isinstance(row, bool) or row < 0:
            raise RegionError(f"{path}: entry {key!r}: row {row!r} is not a non-negative integer")
    return index, path


def _read_order(hdf5: Path) -> tuple[dict[str, object] | None, Path | None]:
    for pkl in _index_file(hdf5, "_imgid2ordered_indices.pkl"):
        converted = pkl.with_suffix(".json")
        if converted.is_file():
            order, path = json.loads(converted.read_text(encoding="utf-8")), converted
        elif pkl.is_file():
            order, path = read_plain_pickle(pkl, converted.name), pkl
        else:
            continue
        if not isinstance(order, dict):
            raise RegionError(f"{path}: expected a mapping {{image id: box order}}")
        return order, path
    return None, None


class _Hdf5Rows:
    """Opens the HDF5 file once per process (h5py handles do not survive a fork) and reads rows."""

    def __init__(self, path: Path) -> None:
        self.path, self._file, self._pid = path, None, None
        self.count = self._check()

    def _open(self):
        import h5py

        if self._file is None or self._pid != os.getpid():
            try:
                self._file, self._pid = h5py.File(self.path, "r"), os.getpid()
            except OSError as error:
                raise RegionError(f"{self.path}: not a readable HDF5 file ({error})") from None
        return self._file

    def _check(self) -> int:
        handle = self._open()
        for name in HDF5_DATASETS:
            if name not in handle:
                raise RegionError(
                    f"{self.path}: missing dataset {name!r} (need {', '.join(HDF5_DATASETS)})"
                )
        count = handle["features"].shape[0]
        for name in HDF5_DATASETS:
            if handle[name].shape[0] != count:
                raise RegionError(
                    f"{self.path}: dataset {name!r} has {handle[name].shape[0]} rows, features {count}"
                )
        return count

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_file": None, "_pid": None}

    def row(self, row: int) -> tuple[np.ndarray, np.ndarray, float, float]:
        handle = self._open()
        return (np.asarray(handle["features"][row]), np.asarray(handle["boxes"][row]),
                float(handle["img_w"][row]), float(handle["img_h"][row]))  # fmt: skip


def _read_row(location: tuple) -> tuple[np.ndarray, np.ndarray, str]:
    rows, row, key, index_path, order, order_path = location
    where = f"{rows.path}: image {key!r} (row {row} in {index_path.name})"
    if row >= rows.count:
        raise RegionError(f"{where}: the file has {rows.count} rows")
    feats, boxes, width, height = rows.row(row)
    if width <= 0 or height <= 0:
        raise RegionError(f"{where}: img_w and img_h must be positive")
    if order is not None:
        if key not in order:
            raise RegionError(f"{order_path}: no box order for image {key!r}")
        indices = np.asarray(order[key])
        if (
            indices.ndim != 1
            or indices.dtype.kind not in "iu"
            or len(indices) == 0
            or (indices.min() < 0 or indices.max() >= len(feats))
        ):
            raise RegionError(f"{order_path}: entry {key!r}: not a list of box indices")
        feats, boxes = feats[indices], boxes[indices]
    return feats, normalised_boxes(boxes.astype(np.float32), width, height, where), where


def from_hdf5(path: str | os.PathLike) -> RegionFeatures:
    """One FaST-VGS ``*_imgfeat.hdf5`` file with its index (and box order, when present)."""
    path = Path(path)
    rows = _Hdf5Rows(path)
    index, index_path = _read_index(path)
    order, order_path = _read_order(path)
    loaders = {key: (rows, row, key, index_path, order, order_path) for key, row in index.items()}
    return RegionFeatures(loaders, _read_row, origin=str(path))
