"""Checkpoint files: atomic writes, a checksum verified on every load, clear errors naming the file.

A checkpoint file is

    b"SSLVGS-CKPT-1\\n" + sha256(payload) as 64 hex digits + b"\\n" + payload

where payload is a `torch.save` archive of a dict with the model's config and weights and, for
resuming, the optimizer, LR schedule, RNG states and trainer counters. It is written to a temporary
file in the same directory, fsynced and renamed, so a process killed mid-write leaves only a temporary
file that is never taken for a checkpoint; a truncated or altered file fails its checksum.
`checkpoint_id` (the checksum) is the cache key that probes and analysis use for a checkpoint.

`load_model` (probing, grids) reads the weights only: the checksum is verified in 8 MiB chunks and
the archive is memory-mapped, so the optimizer state and everything else a resumable checkpoint holds
stay on disk (`read_model_payload`); `load_checkpoint` (resuming) reads it all.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zipfile
from pathlib import Path
from typing import Any

import torch

from training.fileio import write_bytes_atomic
from training.run.config import ModelConfig, config_from_dict
from training.run.directory import list_checkpoints, resolve_checkpoint

__all__ = [
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "read_model_payload",
    "checkpoint_id",
    "last_checkpoint",
    "load_model",
    "load_weights",
    "initialise_from",
]

MAGIC = b"SSLVGS-CKPT-1\n"
_HEADER_LEN = len(MAGIC) + 65


class CheckpointError(ValueError):
    """A checkpoint that is missing, truncated, corrupt or of another model; the message names the file."""


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write `payload` atomically (temp file in the same directory, fsync, rename, fsync directory)."""
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    body = buffer.getvalue()
    digest = hashlib.sha256(body).hexdigest().encode()
    return write_bytes_atomic(path, MAGIC + digest + b"\n", body, sync_dir=True)


def _read_header(path: Path, head: bytes) -> str:
    if (
        len(head) < _HEADER_LEN
        or not head.startswith(MAGIC)
        or head[_HEADER_LEN - 1 : _HEADER_LEN] != b"\n"
    ):
        raise CheckpointError(f"{path}: not an sslvgs checkpoint (bad or truncated header)")
    return head[len(MAGIC) : _HEADER_LEN - 1].decode("ascii")


def checkpoint_id(path: str | Path) -> str:
    """A stable hex checksum of a checkpoint's contents (sha256, 64 hex digits); reads only the header.

    `path` may be a run directory (its last checkpoint).
    """
    path = resolve_checkpoint(path)
    with open(path, "rb") as f:
        return _read_header(path, f.read(_HEADER_LEN))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and verify a checkpoint file; CheckpointError if truncated, corrupt or not a checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    data = path.read_bytes()
    expected = _read_header(path, data[:_HEADER_LEN])
    body = data[_HEADER_LEN:]
    if hashlib.sha256(body).hexdigest() != expected:
        raise CheckpointError(
            f"{path}: checksum mismatch ({len(body)} payload bytes): the file is truncated or corrupt"
        )
    try:
        return torch.load(io.BytesIO(body), map_location=map_location, weights_only=True)
    except (
        Exception
    ) as err:  # a checksum-valid file that torch cannot read was written by something else
        raise CheckpointError(f"{path}: unreadable checkpoint payload: {err}") from err


# The payload keys a model is built from; everything else (optimizer, scheduler, RNG) is for resuming.
MODEL_KEYS = ("model_config", "model", "epoch")
_CHUNK = 8 << 20


def _verify_streaming(path: Path) -> None:
    with open(path, "rb") as f:
        expected = _read_header(path, f.read(_HEADER_LEN))
        digest = hashlib.sha256()
        size = 0
        buffer = memoryview(bytearray(_CHUNK))  # one buffer, reused: memory stays at one chunk
        while count := f.readinto(buffer):
            digest.update(buffer[:count])
            size += count
    if digest.hexdigest() != expected:
        raise CheckpointError(
            f"{path}: checksum mismatch ({size} payload bytes): the file is truncated or corrupt"
        )


class _NotMappable(Exception):
    """An archive laid out otherwise than torch.save's (compressed, big-endian): read it whole."""


def _mapped_payload(path: Path) -> Any:
    """The payload with every tensor a view of the file mapped in memory (copy on write): pages of
    tensors never read (the optimizer state) are never loaded. torch.load(mmap=True) needs the
    archive at offset 0; here it follows the header, which zipfile finds."""
    from torch._weights_only_unpickler import Unpickler

    with zipfile.ZipFile(path) as archive, open(path, "rb") as raw:
        infos = {info.filename: info for info in archive.infolist()}
        pickles = [name for name in infos if name.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise _NotMappable
        root = pickles[0][: -len("data.pkl")]
        order = infos.get(root + "byteorder")
        if order is not None and archive.read(order) != b"little":
            raise _NotMappable
        data_pkl = archive.read(pickles[0])

        def data_offset(key: str) -> int:
            info = infos.get(f"{root}data/{key}")
            if info is None or info.compress_type != zipfile.ZIP_STORED:
                raise _NotMappable
            raw.seek(info.header_offset)
            header = raw.read(30)
            name_len, extra_len = struct.unpack("<HH", header[26:30])
            return info.header_offset + 30 + name_len + extra_len

        whole = torch.UntypedStorage.from_file(str(path), False, path.stat().st_size)
        storages: dict[str, Any] = {}

        def persistent_load(saved_id: tuple) -> Any:
            _, storage_type, key, _, numel = saved_id
            dtype = torch.uint8 if storage_type is torch.UntypedStorage else storage_type.dtype
            if key not in storages:
                start = data_offset(key)
                nbytes = numel * torch._utils._element_size(dtype)
                storages[key] = torch.storage.TypedStorage(
                    wrap_storage=whole[start : start + nbytes], dtype=dtype, _internal=True
                )
            return storages[key]

        unpickler = Unpickler(io.BytesIO(data_pkl), encoding="utf-8")
        unpickler.persistent_load = persistent_load
        return unpickler.load()


def read_model_payload(path: str | Path) -> dict[str, Any]:
    """What a model is built from (``MODEL_KEYS``), read from a verified checkpoint file without
    loading the rest: its optimizer state stays on disk. The weights are views of the mapped file
    until copied into a model (``load_weights`` does).

    Raises:
        FileNotFoundError, CheckpointError: as ``load_checkpoint``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    _verify_streaming(path)
    try:
        payload = _mapped_payload(path)
    except _NotMappable:
        payload = load_checkpoint(path)
    except Exception as err:  # as load_checkpoint: a checksum-valid file written by something else
        raise CheckpointError(f"{path}: unreadable checkpoint payload: {err}") from err
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: unreadable checkpoint payload: not a dict")
    return {key: payload[key] for key in MODEL_KEYS if key in payload}


def last_checkpoint(run_dir: str | Path) -> Path | None:
    """The run's checkpoint with the highest epoch, or None."""
    found = list_checkpoints(run_dir)
    return found[max(found)] if found else None


def load_weights(
    model: torch.nn.Module, state: dict[str, torch.Tensor], source: str | Path
) -> None:
    """Load a state dict strictly; CheckpointError naming `source` if the shapes or names differ."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            parts.append(f"{len(wrong)} tensors of another shape (e.g. {wrong[0]})")
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        raise CheckpointError(f"{source}: checkpoint does not fit this model: " + "; ".join(parts))
    model.load_state_dict(state)


def load_model(path: str | Path, device: str | torch.device = "cpu"):
    """The SSLVGS model of a checkpoint file, or of a run directory's last checkpoint, in eval mode."""
    from training.model import SSLVGS

    path = resolve_checkpoint(path)
    payload = read_model_payload(path)  # the weights only: the optimizer state stays on disk
    cfg = config_from_dict(ModelConfig, payload["model_config"])
    model = SSLVGS(cfg)
    load_weights(model, payload["model"], path)
    model.checkpoint_path = path
    model.epoch = payload.get("epoch")
    del payload  # unmaps the file
    return model.to(device).eval()


def initialise_from(
    model: torch.nn.Module,
    source: str | Path,
    device: str | torch.device = "cpu",
    expected_id: str | None = None,
) -> dict[str, Any]:
    """Load the weights of a checkpoint (or a run's last) into `model` to start a new run from them.

    Returns what the new run records of its start: {"checkpoint": absolute path, "checkpoint_id",
    "epoch", "step"}. `expected_id`: the checksum the run recorded; CheckpointError if it changed.
    """
    path = resolve_checkpoint(source)
    identity = checkpoint_id(path)
    if expected_id is not None and identity != expected_id:
        raise CheckpointError(
            f"{path}: changed since this run started from it (checksum {identity[:12]})"
        )
    payload = load_checkpoint(path, map_location=device)
    load_weights(model, payload["model"], path)
    return {
        "checkpoint": str(Path(path).resolve()),
        "checkpoint_id": identity,
        "epoch": int(payload.get("epoch", 0)),
        "step": int(payload.get("step", 0)),
    }
