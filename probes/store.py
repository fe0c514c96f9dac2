"""Activation stores: zarr groups in the ragged layout of docs/formats.md, written batch by batch.

Layout of a store (zarr format 3; open it with `xr.open_zarr(path)`):

    activations  (layer, frame, feature)  float32 or float16; frames of all utterances concatenated
    layer        (layer,)                 layer numbers (0 = feature encoder, 1..N transformer)
    utt          (frame,)   int32         index into `utterance` of the frame's utterance
    time         (frame,)   float32       centre of the frame in seconds from the utterance start
    utterance    (utterance,) str         utterance ids (item files' #file, corpus uttid, wav stem)
    speaker, text, file  (utterance,) str metadata; `file` is the wav path
    n_frames, offset     (utterance,) int64  frames of each utterance and where they start in `frame`

Utterances keep the source's order; their frames are written in extraction order (batches of
similar durations), so always locate an utterance through `offset`/`n_frames` (or `utt`).
Progress lives in the group attributes (`batches_done`, `frames_done`, `complete`); zarr's local
store replaces every file atomically, so an interrupted extraction resumes at the first batch
that was not recorded, after trimming whatever a half-written batch left beyond `frames_done`.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
import zarr

__all__ = ["StoreWriter", "open_store", "StoreMismatchError", "IncompleteStoreError"]

STORE_FORMAT = 1
# Header attributes that must agree for a store to hold the activations asked for.
IDENTITY = ("model_id", "source_key", "layers", "dtype")


class StoreMismatchError(ValueError):
    """A store holds activations of another model, source, set of layers or dtype."""


class IncompleteStoreError(ValueError):
    """A store whose extraction was interrupted: extract again to resume it."""


class StoreWriter:
    """Appends batches of activations to a store and records progress after each.

    Create with `StoreWriter.open(...)`, which starts a new store or resumes a matching one.
    """

    def __init__(self, path: Path, group: zarr.Group) -> None:
        self.path = path
        self.group = group

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        header: dict[str, Any],
        utterances: Sequence[Any],
        dim: int,
        chunk_frames: int = 4096,
        overwrite: bool = False,
    ) -> StoreWriter:
        """Start a store at `path`, or resume the unfinished one there with the same identity.

        Args:
            header: store attributes; must hold the IDENTITY keys (layers a list of ints, dtype a
                numpy dtype name) plus anything descriptive (model, source, frame_rate...).
            utterances: `probes.sources.Utterance`s in source order.
            dim: feature dimension D.
        Raises:
            StoreMismatchError: `path` holds another model's (or source's) activations and not
                `overwrite`.
        """
        path = Path(path)
        if path.exists():
            existing = read_header(path)
            if existing is not None and _same_identity(existing, header):
                return cls(path, zarr.open_group(path, mode="r+", use_consolidated=False))
            if not overwrite:
                raise StoreMismatchError(_mismatch_message(path, existing, header))
            shutil.rmtree(path)
        return cls._create(path, header, utterances, dim, chunk_frames)

    @classmethod
    def _create(
        cls,
        path: Path,
        header: dict[str, Any],
        utterances: Sequence[Any],
        dim: int,
        chunk_frames: int,
    ) -> StoreWriter:
        path.parent.mkdir(parents=True, exist_ok=True)
        group = zarr.open_group(path, mode="w")
        layers = np.asarray(header["layers"], dtype=np.int64)
        n_utts = len(utterances)
        group.create_array(
            "activations",
            shape=(len(layers), 0, dim),
            chunks=(1, chunk_frames, dim),
            dtype=header["dtype"],
            dimension_names=("layer", "frame", "feature"),
            attributes={"coordinates": "utt time"},
        )
        _frame_array(group, "utt", "int32", chunk_frames * 16)
        _frame_array(group, "time", "float32", chunk_frames * 16)
        _filled(group, "layer", layers, ("layer",))
        for name, values in (
            ("utterance", [u.id for u in utterances]),
            ("speaker", [u.speaker for u in utterances]),
            ("text", [u.text for u in utterances]),
            ("file", [str(u.wav) for u in utterances]),
        ):
            _filled(group, name, np.asarray(values, dtype=str), ("utterance",))
        for name in ("n_frames", "offset"):
            _filled(group, name, np.full(n_utts, -1, dtype=np.int64), ("utterance",))
        group.attrs.update(
            {
                **header,
                "format": STORE_FORMAT,
                # Per-utterance variables become coordinates of the dataset when opened.
                "coordinates": "speaker text file n_frames offset",
                "batches_done": 0,
                "frames_done": 0,
                "complete": False,
            }
        )
        return cls(path, group)

    @property
    def batches_done(self) -> int:
        return int(self.group.attrs["batches_done"])

    @property
    def complete(self) -> bool:
        return bool(self.group.attrs["complete"])

    def trim(self) -> None:
        """Drop frames a half-written batch left beyond the recorded progress."""
        frames = int(self.group.attrs["frames_done"])
        activations = self.group["activations"]
        if activations.shape[1] != frames:
            activations.resize((activations.shape[0], frames, activations.shape[2]))
            self.group["utt"].resize((frames,))
            self.group["time"].resize((frames,))

    def append(
        self,
        utt_indices: np.ndarray,
        n_frames: np.ndarray,
        activations: Iterable[np.ndarray],
        frame_rate: float,
    ) -> None:
        """Write one batch and record it.

        Args:
            utt_indices: [B] positions of the batch's utterances in the store's `utterance`.
            n_frames: [B] frames of each.
            activations: per stored layer, in order, [sum(n_frames), D] with the utterances
                concatenated in batch order (an iterator, so one layer at a time is in memory).
            frame_rate: frames per second, for the `time` coordinate.
        """
        start = int(self.group.attrs["frames_done"])
        stop = start + int(n_frames.sum())
        group = self.group
        layers, _, dim = group["activations"].shape
        group["activations"].resize((layers, stop, dim))
        written = 0
        for index, frames in enumerate(activations):
            group["activations"][index, start:stop, :] = frames
            written += 1
        if written != layers:
            raise ValueError(f"append got {written} layers of activations, the store has {layers}")
        group["utt"].resize((stop,))
        group["utt"][start:stop] = np.repeat(utt_indices, n_frames).astype(np.int32)
        within = np.arange(stop - start) - np.repeat(np.cumsum(n_frames) - n_frames, n_frames)
        group["time"].resize((stop,))
        group["time"][start:stop] = ((within + 0.5) / frame_rate).astype(np.float32)
        offsets = start + np.cumsum(n_frames) - n_frames
        group["n_frames"].set_coordinate_selection(utt_indices, n_frames.astype(np.int64))
        group["offset"].set_coordinate_selection(utt_indices, offsets.astype(np.int64))
        # Recorded last: a batch counts only once all of it is on disk.
        group.attrs.update({"batches_done": self.batches_done + 1, "frames_done": stop})

    def finish(self) -> None:
        """Mark the store complete and consolidate its metadata (so xr.open_zarr reads it fast)."""
        self.group.attrs.update({"complete": True})
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
            zarr.consolidate_metadata(self.path)


def read_header(path: str | Path) -> dict[str, Any] | None:
    """The attributes of the store at `path`, or None if it is not a store of ours."""
    try:
        group = zarr.open_group(path, mode="r", use_consolidated=False)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, ValueError):
        return None
    attrs = dict(group.attrs)
    return attrs if attrs.get("format") == STORE_FORMAT else None


def open_store(path: str | Path) -> xr.Dataset:
    """Open a complete store lazily (dask arrays: nothing is read until used).

    Raises:
        FileNotFoundError: no store at `path`.
        IncompleteStoreError: an interrupted extraction.
    """
    path = Path(path)
    header = read_header(path)
    if header is None:
        raise FileNotFoundError(f"{path}: not an activation store (no zarr group with our header)")
    if not header.get("complete"):
        raise IncompleteStoreError(
            f"{path}: extraction was interrupted after {header['batches_done']} batches; "
            "call probes.extract again with the same model and source to resume it"
        )
    return xr.open_zarr(path, consolidated=True)


def _same_identity(existing: dict[str, Any], header: dict[str, Any]) -> bool:
    return all(existing.get(key) == header.get(key) for key in IDENTITY)


def _mismatch_message(path: Path, existing: dict[str, Any] | None, header: dict[str, Any]) -> str:
    if existing is None:
        return (
            f"{path} exists and is not an activation store; choose another path or overwrite=True"
        )
    differing = [key for key in IDENTITY if existing.get(key) != header.get(key)]
    details = "; ".join(
        f"{key}: store has {existing.get(key)!r}, asked for {header.get(key)!r}"
        for key in differing
    )
    what = "another model" if "model_id" in differing else "other activations"
    return (
        f"{path} holds activations of {what} (store model {existing.get('model')!r}); {details}. "
        "Pass another store path, or overwrite=True to replace it"
    )


def _frame_array(group: zarr.Group, name: str, dtype: str, chunk: int) -> None:
    group.create_array(name, shape=(0,), chunks=(chunk,), dtype=dtype, dimension_names=("frame",))


def _filled(group: zarr.Group, name: str, values: np.ndarray, dims: tuple[str, ...]) -> None:
    array = group.create_array(
        name,
        shape=values.shape,
        chunks=(max(len(values), 1),),
        dtype=values.dtype if values.dtype.kind != "U" else str,
        dimension_names=dims,
    )
    if len(values):
        array[:] = values
