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

A store's life (docs/caches.md): its skeleton is built in a temp folder beside it and renamed into
place, so the folder appears with its header; batches are appended and recorded in the group
attributes (`batches_done`, `frames_done`); zarr's local store replaces every file atomically, so an
interrupted extraction resumes at the first batch that was not recorded, after trimming whatever a
half-written batch left beyond `frames_done`. Completion writes the consolidated metadata, then the
chunk inventory (`probes.inventory`), and last the mark `complete` (with the inventory's checksum) in
one atomic write of the group header. Every writer and checker holds `locked(path)`.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import secrets
import shutil
import sys
import warnings
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from probes.inventory import INVENTORY, forget, inventory_bytes, remember, take_inventory
from probes.store_check import STORE_FORMAT, read_header, store_problem
from training.fileio import exclusive, naming_os_errors, write_bytes_atomic

__all__ = ["StoreWriter", "locked", "StoreMismatchError"]

# Header attributes that must agree for a store to hold the activations asked for.
IDENTITY = ("model_id", "source_key", "layers", "dtype")


class StoreMismatchError(ValueError):
    """A store holds activations of another model, source, set of layers or dtype."""


def say(message: str) -> None:
    """Tell the user what happens to a store (waiting for a lock, rebuilding): one line on stderr."""
    print(message, file=sys.stderr, flush=True)


def _reached(stage: str) -> None:
    """A named instant of a store's life; the fault-injection tests replace this to kill the
    process exactly there (stages: created, placed, mid-batch, batch-written, batch-recorded,
    consolidated, inventoried, complete)."""


@contextlib.contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """Hold the lock of the store at `path` (`PATH.lock` beside it) while checking or writing it.

    A second process waits (saying so on stderr) until the first is done. The lock is a
    `filelock.FileLock`: the OS releases it when its holder dies, so a killed writer never blocks.
    """
    with exclusive(path, what="the activation store", notify=say):
        yield


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
        """Start a store at `path`, resume the unfinished one there with the same identity, or
        return the complete one (`.complete`). Call it holding `locked(path)`.

        A store of ours that cannot serve (an older format, a damaged header, a complete store that
        fails its check) is reported on stderr and rebuilt; a folder that is not a store, or a
        store of other activations, is replaced only with `overwrite`.

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
        _remove_leftovers(path)
        if path.exists():
            existing = read_header(path)
            if (existing is None and not _is_ours(path)) or (
                existing is not None and not _same_identity(existing, header)
            ):
                if not overwrite:
                    raise StoreMismatchError(_mismatch_message(path, existing, header))
            elif (problem := _unusable(path, existing)) is not None:
                if problem:  # an empty folder goes without a word
                    say(f"{path}: {problem}; rebuilding it")
            elif existing["complete"]:
                return cls(path, zarr.open_group(path, mode="r", use_consolidated=False))
            else:
                writer = cls(path, zarr.open_group(path, mode="r+", use_consolidated=False))
                writer.trim()
                return writer
            discard(path)
        with naming_os_errors(path):
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
        # Built aside and renamed into place: the folder appears with its header or not at all.
        path.parent.mkdir(parents=True, exist_ok=True)
        building = _temp_beside(path)
        group = zarr.open_group(building, mode="w")
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
        _reached("created")
        building.rename(path)
        _reached("placed")
        return cls(path, zarr.open_group(path, mode="r+", use_consolidated=False))

    @property
    def batches_done(self) -> int:
        return int(self.group.attrs["batches_done"])

    @property
    def complete(self) -> bool:
        return bool(self.group.attrs["complete"])

    def trim(self) -> None:
        """Drop frames a half-written batch left beyond the recorded progress, and the temp files
        of a write that was killed."""
        for partial in self.path.rglob("*.partial"):
            partial.unlink(missing_ok=True)
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
        if not (self.path / "zarr.json").is_file():  # another job deleted it under us
            raise FileNotFoundError(
                errno.ENOENT, "the activation store was removed while being written", str(self.path)
            )
        with naming_os_errors(self.path):
            start = int(self.group.attrs["frames_done"])
            stop = start + int(n_frames.sum())
            group = self.group
            layers, _, dim = group["activations"].shape
            group["activations"].resize((layers, stop, dim))
            written = 0
            for index, frames in enumerate(activations):
                group["activations"][index, start:stop, :] = frames
                written += 1
                _reached("mid-batch")
            if written != layers:
                raise ValueError(
                    f"append got {written} layers of activations, the store has {layers}"
                )
            group["utt"].resize((stop,))
            group["utt"][start:stop] = np.repeat(utt_indices, n_frames).astype(np.int32)
            within = np.arange(stop - start) - np.repeat(np.cumsum(n_frames) - n_frames, n_frames)
            group["time"].resize((stop,))
            group["time"][start:stop] = ((within + 0.5) / frame_rate).astype(np.float32)
            offsets = start + np.cumsum(n_frames) - n_frames
            group["n_frames"].set_coordinate_selection(utt_indices, n_frames.astype(np.int64))
            group["offset"].set_coordinate_selection(utt_indices, offsets.astype(np.int64))
            _reached("batch-written")
            # Recorded last: a batch counts only once all of it is on disk.
            group.attrs.update({"batches_done": self.batches_done + 1, "frames_done": stop})
            _reached("batch-recorded")

    def finish(self) -> None:
        """Consolidate the metadata (xr.open_zarr reads it in one file), record the inventory and,
        last, mark the store complete: a kill at any instant leaves a store that the same call
        finishes, and "complete" vouches for everything before it."""
        with naming_os_errors(self.path):
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Consolidated metadata", UserWarning)
                # A resumed finish finds the inventory of the killed one: not a zarr node, fine.
                warnings.filterwarnings("ignore", f"Object at {INVENTORY}", UserWarning)
                zarr.consolidate_metadata(self.path)
            _reached("consolidated")
            inventory = take_inventory(self.path)
            listing = inventory_bytes(inventory)
            write_bytes_atomic(self.path / INVENTORY, listing)
            _reached("inventoried")
            # Opened through the consolidated metadata, so that rewriting the header keeps it.
            group = zarr.open_group(self.path, mode="r+", use_consolidated=True)
            group.attrs.update({"complete": True, "inventory_crc32": zlib.crc32(listing)})
        self.group = group
        remember(self.path, inventory["files"])
        _reached("complete")


def discard(path: Path) -> None:
    """Remove a store (holding its lock): renamed aside first, so a kill midway leaves a temp
    folder that the next writer removes, not half a store."""
    forget(path)
    if path.is_dir():
        aside = _temp_beside(path)
        path.rename(aside)
        shutil.rmtree(aside, ignore_errors=True)
    elif path.exists():
        path.unlink()


def _unusable(path: Path, header: dict[str, Any] | None) -> str | None:
    """Why a store of ours must be rebuilt rather than resumed or read ("" for an empty folder),
    or None."""
    if header is None:
        if path.is_dir() and not any(path.iterdir()):
            return ""
        return "a damaged activation store (its header cannot be read)"
    if header.get("format") != STORE_FORMAT or header.get("complete"):
        return store_problem(path, header)
    return None


def _is_ours(path: Path) -> bool:
    """An empty folder, or one with our arrays: safe to replace without `overwrite`."""
    if path.is_dir() and not any(path.iterdir()):
        return True
    return (path / "activations" / "zarr.json").is_file() or (path / INVENTORY).is_file()


def _temp_beside(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


def _remove_leftovers(path: Path) -> None:
    """Temp folders that a killed writer of this store left beside it (we hold its lock)."""
    if path.parent.is_dir():
        for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
            shutil.rmtree(leftover, ignore_errors=True)


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
