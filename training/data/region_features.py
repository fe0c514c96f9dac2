"""Region features in the LXMERT "obj36" layout: per image, feats [36, D] and boxes [36, 4].

Boxes are (x1, y1, x2, y2) normalised to [0, 1] by the image's width and height; D is read from the
data. Three on-disk layouts (docs/data.md), keyed by the image file's stem:
- a regions folder: ``<key>.npz`` with arrays ``feats`` (float32 [36, D]) and ``boxes`` ([36, 4]);
- LXMERT's obj36 TSVs (``train2014_obj36.tsv``, ``val2014_obj36.tsv``; one or several): no header,
  fields img_id, img_h, img_w, objects_id, objects_conf, attrs_id, attrs_conf, num_boxes, boxes,
  features; arrays base64 float32, boxes in pixels. Regions are put in decreasing ``objects_conf``
  order (stable), the order FaST-VGS's preprocessing stores for the same features;
- FaST-VGS's HDF5 (`training.data.regions_hdf5`); `training.data.regions.open_regions` opens any.
Every layout is read lazily: an index (file offsets, or HDF5 rows) is built on open, an image is decoded
and checked when asked for, and only the last `cache_size` images are kept.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "RegionError", "RegionFeatures", "LXMERT_FIELDS", "NUM_REGIONS", "CACHE_SIZE", "check_regions",
    "normalised_boxes",
]  # fmt: skip

NUM_REGIONS = 36
CACHE_SIZE = 64  # images kept decoded: 64 x 36 x 2048 float32 is 19 MB
LXMERT_FIELDS = (
    "img_id", "img_h", "img_w", "objects_id", "objects_conf", "attrs_id", "attrs_conf",
    "num_boxes", "boxes", "features",
)  # fmt: skip


class RegionError(ValueError):
    """Region features of the wrong shape, a malformed TSV row or HDF5 file; names the file (and
    line or entry)."""


def check_regions(where: str, feats: np.ndarray, boxes: np.ndarray, dim: int | None) -> None:
    """Raise RegionError naming `where` unless feats is [36, dim] and boxes [36, 4] in [0, 1]."""
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
    """image key -> (feats float32 [36, D], boxes float32 [36, 4]) as torch tensors, read lazily.

    Use `training.data.regions.open_regions`, or `RegionFeatures.from_corpus(root)` / `.from_lxmert_tsv(paths)`. `dim` is D
    (read from the first image when first asked for); `origin` names the files, for messages. Only the
    `cache_size` most recently read images are kept.
    """

    def __init__(
        self,
        loaders: Mapping[str, object],
        read: Callable[[object], tuple[np.ndarray, np.ndarray, str]],
        dim: int | None = None,
        *,
        origin: str = "",
        cache_size: int = CACHE_SIZE,
    ) -> None:
        self._loaders = loaders  # key -> whatever `read` needs to produce that image's arrays
        self._read = read
        self._cache: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self._dim = dim
        self.origin = origin
        self.cache_size = cache_size

    @classmethod
    def from_corpus(cls, root: str | os.PathLike) -> RegionFeatures:
        """The `regions/<key>.npz` files of a corpus (or `root` itself when it holds .npz files)."""
        root = Path(root)
        files = {p.stem: p for p in sorted(root.glob("*.npz"))} if root.is_dir() else {}
        folder = root if files or root.name == "regions" else root / "regions"
        files = files or (
            {p.stem: p for p in sorted(folder.glob("*.npz"))} if folder.is_dir() else {}
        )
        if not files:
            raise FileNotFoundError(
                f"{folder}: no region features (no .npz files); pass regions=PATH (--regions PATH): "
                "a folder of .npz, LXMERT obj36 TSVs or FaST-VGS HDF5 files"
            )
        return cls(files, _read_npz, origin=str(folder))

    @classmethod
    def from_lxmert_tsv(
        cls, paths: str | os.PathLike | Sequence[str | os.PathLike]
    ) -> RegionFeatures:
        """LXMERT obj36 TSVs; one pass per file records where each image's row starts."""
        paths = [Path(paths)] if isinstance(paths, str | os.PathLike) else [Path(p) for p in paths]
        offsets: dict[str, tuple[Path, int, int, int]] = {}
        for path in paths:
            _index_tsv(path, offsets)
        return cls(offsets, _read_tsv_row, origin=", ".join(map(str, paths)))

    @property
    def dim(self) -> int | None:
        """D, read from the first image (None for an empty mapping)."""
        if self._dim is None and self._loaders:
            self[next(iter(self._loaders))]
        return self._dim

    def __getitem__(self, key: str) -> tuple[torch.Tensor, torch.Tensor]:
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        if key not in self._loaders:
            raise KeyError(f"no region features for image {key!r} in {self.origin}")
        feats, boxes, where = self._read(self._loaders[key])
        check_regions(where, feats, boxes, self._dim)
        self._dim = int(feats.shape[1])
        pair = (
            torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32)),
            torch.from_numpy(np.ascontiguousarray(boxes, dtype=np.float32)),
        )
        self._cache[key] = pair
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return pair

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaders)

    def __len__(self) -> int:
        return len(self._loaders)

    def __contains__(self, key: object) -> bool:
        return key in self._loaders

    def __repr__(self) -> str:
        return f"RegionFeatures({len(self)} images from {self.origin})"


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray, str]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return np.asarray(data["feats"]), np.asarray(data["boxes"]), str(path)
    except KeyError as error:
        raise RegionError(f"{path}: missing array {error} (need feats and boxes)") from None
    except (OSError, ValueError) as error:
        raise RegionError(f"{path}: unreadable region file ({error})") from None


def _index_tsv(path: Path, offsets: dict[str, tuple[Path, int, int, int]]) -> None:
    """Add (path, line, byte offset, byte length) of every row of `path`; a repeated id is an error."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such LXMERT TSV file")
    with open(path, "rb") as handle:
        position = 0
        for number, line in enumerate(handle, start=1):
            if line.strip():
                image_id = line.split(b"\t", 1)[0].decode("utf-8", errors="replace")
                if image_id in offsets:
                    first = offsets[image_id]
                    raise RegionError(
                        f"{path}:{number}: image {image_id!r} again (first at {first[0]}:{first[1]})"
                    )
                offsets[image_id] = (path, number, position, len(line))
            position += len(line)


def _decode(where: str, name: str, text: str, count: int) -> np.ndarray:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise RegionError(f"{where}: field {name} is not base64") from None
    if len(raw) % 4 or (count and len(raw) // 4 % count):
        raise RegionError(f"{where}: field {name} has {len(raw)} bytes, not {count} float32 rows")
    return np.frombuffer(raw, dtype=np.float32).reshape(count, -1)


def _read_tsv_row(location: tuple[Path, int, int, int]) -> tuple[np.ndarray, np.ndarray, str]:
    path, number, position, length = location
    where = f"{path}:{number}"
    with open(path, "rb") as handle:  # opened per read: safe in forked DataLoader workers
        handle.seek(position)
        line = handle.read(length).decode("utf-8", errors="replace").rstrip("\r\n")
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
    confidence = _decode(where, "objects_conf", row["objects_conf"], count)
    if confidence.shape[1] != 1:
        raise RegionError(f"{where}: objects_conf must have one number per region")
    order = np.argsort(-confidence[:, 0], kind="stable")
    return feats[order], normalised_boxes(boxes[order], width, height, where), where


# Pixels a box may reach past the image's edge (detectors' rounding) before it is an error.
BOX_SLACK = 1.0


def normalised_boxes(boxes: np.ndarray, width: float, height: float, where: str) -> np.ndarray:
    """Pixel boxes [N, 4] (x1, y1, x2, y2) divided by the image's size, clipped to [0, 1].

    Raises RegionError naming `where` for a box outside the image (beyond BOX_SLACK pixels): the
    features are of another image size, or img_h and img_w are swapped.
    """
    scale = np.array([width, height, width, height], dtype=np.float32)
    outside = ((boxes < -BOX_SLACK) | (boxes > scale + BOX_SLACK)).any(axis=1)
    if outside.any():
        index = int(np.argmax(outside))
        box = ", ".join(f"{v:g}" for v in boxes[index])
        raise RegionError(
            f"{where}: box {index} ({box}) pixels lies outside the {width:g} x {height:g} (width x "
            f"height) image; are img_h and img_w swapped?"
        )
    return np.clip(boxes / scale, 0.0, 1.0)
