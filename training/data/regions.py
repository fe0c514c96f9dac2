"""Region features in the LXMERT "obj36" layout: per image, feats [36, D] and boxes [36, 4].

Boxes are (x1, y1, x2, y2) normalised to [0, 1] by the image's width and height. Two sources:
- an embedded corpus: `regions/<key>.npz` with arrays `feats` (float32 [36, D]) and `boxes`
  (float32 [36, 4]), key = the image file's stem;
- LXMERT's public obj36 TSV (no header; fields img_id, img_h, img_w, objects_id, objects_conf,
  attrs_id, attrs_conf, num_boxes, boxes, features; arrays base64 float32, boxes in pixels).
Both are read lazily: an image's features are decoded and checked when it is first asked for.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np
import torch

__all__ = ["RegionError", "RegionFeatures", "LXMERT_FIELDS", "NUM_REGIONS", "open_regions"]

NUM_REGIONS = 36
LXMERT_FIELDS = (
    "img_id", "img_h", "img_w", "objects_id", "objects_conf", "attrs_id", "attrs_conf",
    "num_boxes", "boxes", "features",
)  # fmt: skip


class RegionError(ValueError):
    """Region features of the wrong shape or a malformed TSV row; names the file (and line)."""


def _check(where: str, feats: np.ndarray, boxes: np.ndarray, dim: int | None) -> None:
    if feats.ndim != 2 or feats.shape[0] != NUM_REGIONS:
        raise RegionError(f"{where}: feats must be [{NUM_REGIONS}, D], got {list(feats.shape)}")
    if dim is not None and feats.shape[1] != dim:
        raise RegionError(f"{where}: feats have dimension {feats.shape[1]}, the others {dim}")
    if boxes.shape != (NUM_REGIONS, 4):
        raise RegionError(f"{where}: boxes must be [{NUM_REGIONS}, 4], got {list(boxes.shape)}")
    if not (np.isfinite(feats).all() and np.isfinite(boxes).all()):
        raise RegionError(f"{where}: features or boxes are not finite")
    if boxes.min() < 0.0 or boxes.max() > 1.0:
        raise RegionError(f"{where}: boxes must lie in [0, 1] (normalised x1, y1, x2, y2)")


class RegionFeatures(Mapping):
    """image key -> (feats float32 [36, D], boxes float32 [36, 4]) as torch tensors.

    Use `RegionFeatures.from_corpus(root)` or `RegionFeatures.from_lxmert_tsv(path)`; `dim` is D
    (known once the first image is read, or given).
    """

    def __init__(
        self,
        loaders: dict[str, object],
        read: Callable[[object], tuple[np.ndarray, np.ndarray, str]],
        dim: int | None = None,
    ) -> None:
        self._loaders = loaders  # key -> whatever `read` needs to produce that image's arrays
        self._read = read
        self._cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.dim = dim

    @classmethod
    def from_corpus(cls, root: str | os.PathLike) -> RegionFeatures:
        """The `regions/<key>.npz` files of a corpus."""
        folder = Path(root) / "regions"
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no region features folder")
        files = {p.stem: p for p in sorted(folder.glob("*.npz"))}
        return cls(files, _read_npz)

    @classmethod
    def from_lxmert_tsv(cls, path: str | os.PathLike) -> RegionFeatures:
        """LXMERT's obj36 TSV; one pass records where each image's row starts."""
        path = Path(path)
        offsets: dict[str, tuple[Path, int, int]] = {}
        with open(path, "rb") as handle:
            number, position = 0, 0
            for line in handle:
                number += 1
                if line.strip():
                    image_id = line.split(b"\t", 1)[0].decode("utf-8", errors="replace")
                    offsets[image_id] = (path, number, position)
                position += len(line)
        return cls(offsets, _read_tsv_row)

    def __getitem__(self, key: str) -> tuple[torch.Tensor, torch.Tensor]:
        if key not in self._cache:
            if key not in self._loaders:
                raise KeyError(f"no region features for image {key!r}")
            feats, boxes, where = self._read(self._loaders[key])
            _check(where, feats, boxes, self.dim)
            self.dim = feats.shape[1]
            self._cache[key] = (
                torch.from_numpy(feats.astype(np.float32)),
                torch.from_numpy(boxes.astype(np.float32)),
            )
        return self._cache[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaders)

    def __len__(self) -> int:
        return len(self._loaders)


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray, str]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return np.asarray(data["feats"]), np.asarray(data["boxes"]), str(path)
    except KeyError as error:
        raise RegionError(f"{path}: missing array {error} (need feats and boxes)") from None
    except (OSError, ValueError) as error:
        raise RegionError(f"{path}: unreadable region file ({error})") from None


def _decode(where: str, name: str, text: str, count: int) -> np.ndarray:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise RegionError(f"{where}: field {name} is not base64") from None
    if len(raw) % 4 or (count and len(raw) // 4 % count):
        raise RegionError(f"{where}: field {name} has {len(raw)} bytes, not {count} float32 rows")
    return np.frombuffer(raw, dtype=np.float32).reshape(count, -1)


def _read_tsv_row(location: tuple[Path, int, int]) -> tuple[np.ndarray, np.ndarray, str]:
    path, number, position = location
    where = f"{path}:{number}"
    with open(path, "rb") as handle:
        handle.seek(position)
        line = handle.readline().decode("utf-8").rstrip("\r\n")
    fields = line.split("\t")
    if len(fields) != len(LXMERT_FIELDS):
        raise RegionError(
            f"{where}: expected {len(LXMERT_FIELDS)} fields ({', '.join(LXMERT_FIELDS)}), got {len(fields)}"
        )
    row = dict(zip(LXMERT_FIELDS, fields, strict=True))
    try:
        height, width, count = int(row["img_h"]), int(row["img_w"]), int(row["num_boxes"])
    except ValueError:
        raise RegionError(f"{where}: img_h, img_w and num_boxes must be integers") from None
    if height <= 0 or width <= 0 or count <= 0:
        raise RegionError(f"{where}: img_h, img_w and num_boxes must be positive")
    boxes = _decode(where, "boxes", row["boxes"], count)
    if boxes.shape[1] != 4:
        raise RegionError(f"{where}: boxes must have 4 numbers per region, got {boxes.shape[1]}")
    feats = _decode(where, "features", row["features"], count)
    scale = np.array([width, height, width, height], dtype=np.float32)
    return feats, np.clip(boxes / scale, 0.0, 1.0), where


def open_regions(
    path: str | os.PathLike | None = None, *, corpus: str | os.PathLike | None = None
) -> RegionFeatures:
    """The region features a corpus is trained and probed with.

    Args:
        path: a regions folder of ``<key>.npz`` files; None: the corpus's own ``regions/`` folder.
        corpus: the corpus root (used when `path` is None).
    Returns:
        a lazy `RegionFeatures` mapping image key -> (feats [36, D], boxes [36, 4]).
    """
    if path is None:
        if corpus is None:
            raise ValueError("open_regions needs a regions path or the corpus root")
        return RegionFeatures.from_corpus(corpus)
    path = Path(path)
    if path.is_dir():
        return RegionFeatures.from_corpus(path.parent if path.name == "regions" else path)
    return RegionFeatures.from_lxmert_tsv(path)
