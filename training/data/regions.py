"""`open_regions`: region features in any layout (a folder of .npz, LXMERT TSVs, FaST-VGS HDF5).

The layouts and the lazy, bounded reading are in `training.data.region_features` (.npz, TSV) and
`training.data.regions_hdf5`; docs/data.md describes them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from training.data.region_features import (
    CACHE_SIZE,
    LXMERT_FIELDS,
    NUM_REGIONS,
    RegionError,
    RegionFeatures,
)
from training.data.regions_hdf5 import from_hdf5, is_hdf5, region_files

__all__ = ["RegionError", "RegionFeatures", "LXMERT_FIELDS", "NUM_REGIONS", "open_regions"]


def open_regions(
    path: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    *,
    corpus: str | os.PathLike | None = None,
    cache_size: int = CACHE_SIZE,
) -> RegionFeatures:
    """The region features a corpus is trained and probed with, in any layout (docs/data.md).

    Args:
        path: None (the corpus's own ``regions/`` folder); a folder of ``<key>.npz``; one LXMERT
            ``*.tsv`` or a list of them; one FaST-VGS ``*_imgfeat.hdf5`` or a list of them, or a
            folder holding them; a list mixing TSVs and HDF5 files is read as one mapping.
        corpus: the corpus root (used when `path` is None).
        cache_size: images kept decoded (least recently used dropped first).
    Returns:
        a lazy `RegionFeatures` mapping image key -> (feats [36, D], boxes [36, 4]).
    Raises:
        FileNotFoundError (a missing path), RegionError (a file of no known layout, a malformed
        index or an image present in two files, naming them).
    """
    if path is None:
        if corpus is None:
            raise ValueError("open_regions needs a regions path or the corpus root")
        return RegionFeatures.from_corpus(corpus)
    paths = [Path(path)] if isinstance(path, str | os.PathLike) else [Path(p) for p in path]
    if len(paths) == 1 and paths[0].is_dir():
        found = region_files(paths[0])
        if not found:
            regions = RegionFeatures.from_corpus(paths[0])
            regions.cache_size = cache_size
            return regions
        paths = found
    for p in paths:
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such region features file")
    tsvs = [p for p in paths if not is_hdf5(p)]  # anything else is read as a TSV, row by row
    parts = [from_hdf5(p) for p in paths if is_hdf5(p)]
    if tsvs:
        parts.insert(0, RegionFeatures.from_lxmert_tsv(tsvs))
    return _union(parts, cache_size)


def _union(parts: list[RegionFeatures], cache_size: int) -> RegionFeatures:
    """One mapping over several; an image in two of them is an error naming both."""
    if len(parts) == 1:
        parts[0].cache_size = cache_size
        return parts[0]
    owner: dict[str, RegionFeatures] = {}
    for part in parts:
        for key in part:
            if key in owner:
                raise RegionError(
                    f"image {key!r} has region features in {owner[key].origin} and in {part.origin}"
                )
            owner[key] = part
    return RegionFeatures(
        {key: (owner[key], key) for key in owner},
        _from_part,
        origin=", ".join(p.origin for p in parts),
        cache_size=cache_size,
    )


def _from_part(location: tuple[RegionFeatures, str]) -> tuple[np.ndarray, np.ndarray, str]:
    part, key = location
    return part._read(part._loaders[key])
