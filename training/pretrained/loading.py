"""One entry point for every model on disk: what a path holds, the model in it, and its identity.

Kinds, in the order they are told apart:

- ``"sslvgs"``: an sslvgs checkpoint file (its header) or run directory;
- ``"hf"``: a transformers `save_pretrained` directory (config.json with a `model_type`);
- ``"bundle"``: the paper's `best_bundle.pth` / `bundle.pth`, or the folder holding one;
- ``"trajectory"``: a folder of checkpoints made elsewhere (training/pretrained/trajectory.py);
  as a model, its last checkpoint;
- ``"fairseq"``: any other file (a fairseq checkpoint; refused with a message if it is not one).

Every path may also be a Hugging Face hub id (`facebook/wav2vec2-base`), read from the local hub
cache (training/pretrained/hub.py; never downloaded).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

__all__ = ["pretrained_kind", "load_pretrained", "model_identity"]


def _is_sslvgs_file(path: Path) -> bool:
    from training.run.checkpoints import MAGIC

    with open(path, "rb") as f:
        return f.read(len(MAGIC)) == MAGIC


def pretrained_kind(path: str | Path) -> str:
    """ "sslvgs", "hf", "bundle", "trajectory" or "fairseq" (see the module's docstring).

    Raises:
        FileNotFoundError: a path that does not exist, or a folder holding none of these.
    """
    from training.pretrained.bundle import is_bundle
    from training.pretrained.hf import is_hf_directory
    from training.pretrained.hub import locate_model
    from training.pretrained.trajectory import is_trajectory
    from training.run.directory import is_run

    path = locate_model(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint file or directory")
    if path.is_file():
        if _is_sslvgs_file(path):
            return "sslvgs"
        return "bundle" if is_bundle(path) else "fairseq"
    if is_hf_directory(path):
        return "hf"
    if is_run(path):
        return "sslvgs"
    if is_bundle(path):
        return "bundle"
    if is_trajectory(path):
        return "trajectory"
    raise FileNotFoundError(
        f"{path}: a folder that is neither an sslvgs run, a Hugging Face model, a paper bundle's "
        "folder nor a folder of checkpoints (checkpoint-<step>/, checkpoint_<epoch>_<step>.pt)"
    )


def load_pretrained(path: str | Path, **options: Any) -> torch.nn.Module:
    """The model at `path` in eval mode on the CPU: an SSLVGS (sslvgs checkpoints, paper bundles), or
    an encoder wrapper with the same `hidden_states` interface (Hugging Face, fairseq).

    options: passed to the kind's loader (`normalize=`, `sample_rate=` for HF; `normalize=` for
    fairseq; `args=` for bundles).
    """
    from training.pretrained.hub import locate_model

    path = locate_model(path)
    kind = pretrained_kind(path)
    if kind == "sslvgs":
        from training.run.checkpoints import load_model

        return load_model(path)
    if kind == "hf":
        from training.pretrained.hf import load_hf

        return load_hf(path, **options)
    if kind == "bundle":
        from training.pretrained.bundle import load_bundle

        return load_bundle(path, **options)
    if kind == "trajectory":
        from training.pretrained.trajectory import trajectory

        _, found = trajectory(path)
        return load_pretrained(found[max(found)], **options)
    from training.pretrained.fairseq import load_fairseq

    return load_fairseq(path, **options)


def _weight_files(path: Path) -> list[Path]:
    """The files whose bytes make the model at `path`."""
    from training.pretrained.bundle import ARGS, bundle_file

    if path.is_dir():
        if (path / "config.json").is_file() and not (path / "checkpoints").is_dir():
            return sorted(p for p in path.iterdir() if p.is_file())
        path = bundle_file(path)
    beside = path.parent / ARGS
    return [path, beside] if path.name.endswith("bundle.pth") and beside.is_file() else [path]


def model_identity(path: str | Path) -> str:
    """A hex id of the model at `path` for caches: an sslvgs checkpoint's checksum (its header); for
    models made elsewhere a hash of their files' names, sizes and modification times, so a replaced
    file is measured again without reading gigabytes of weights on every call."""
    from training.pretrained.hub import locate_model
    from training.run.checkpoints import checkpoint_id

    path = locate_model(path)
    kind = pretrained_kind(path)
    if kind == "sslvgs":
        return checkpoint_id(path)
    if kind == "trajectory":
        from training.pretrained.trajectory import trajectory

        _, found = trajectory(path)
        path = found[max(found)]
    digest = hashlib.sha256(kind.encode())
    for file in _weight_files(path):
        stat = file.stat()
        digest.update(f"|{file.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()
