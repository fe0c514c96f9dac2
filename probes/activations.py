"""`probes.extract`: layer activations of a model on a source, stored in zarr and cached.

Memory stays bounded by one batch whatever the source's size: each batch is written to the store
as soon as it is computed. Stores are keyed by (checksum of the weights, source key, layers, dtype):

- with `store=PATH`, that path (a store of another model there is an error, unless overwrite=True);
- for a checkpoint, a run directory or a model from `training.load_model`: `RUN/probes/activations/`;
- for any other in-memory model: `$SSLVGS_CACHE/activations/` (default `~/.cache/sslvgs/activations/`).

A complete store holding a superset of the requested layers is a cache hit (read, no compute).
Every check and write of a store holds its lock (`probes.store.locked`), so two processes that
extract the same activations compute them once; a store that fails its integrity check is reported
and rebuilt by the same call (docs/caches.md).

The audio checks made before a model runs are in audio_input.py, and the reading of a store as the
probes read it in store_reading.py; their public names are imported here too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from probes.audio_input import AudioTooLongError as AudioTooLongError
from probes.audio_input import ShortAudioWarning as ShortAudioWarning
from probes.audio_input import (
    audio_length,
    forward_bytes,
    load_wav_batch,
    memory_budget,
    refuse_too_long,
    warn_short,
)
from probes.models import (
    LayeredModel,
    as_layered_model,
    bounded_memory,
    corpus_of,
    default_abx_set,
    resolve_layers,
)
from probes.sources import Source, as_source
from probes.sources import abx_set as AbxSet
from probes.store import StoreWriter, discard, locked, say
from probes.store_check import open_store, read_header, store_problem
from probes.store_reading import as_store, check_store_layers, layer_features, store_items
from probes.vocabulary import Layers
from training.progress import progress_bar as tqdm

__all__ = [
    "extract",
    "cache_dir",
    "plan_batches",
    "audio_length",
    "load_wav_batch",
    "activations_for",
    "layer_features",
    "as_store",
    "store_items",
    "check_store_layers",
    "forward_bytes",
    "memory_budget",
    "refuse_too_long",
]

DTYPES = ("float32", "float16")


def extract(
    model: Any,
    source: Any,
    layers: Layers = "all",
    store: str | Path | None = None,
    *,
    split: str | None = None,
    wavs: str | Path | None = None,
    dtype: str = "float32",
    batch_size: int = 8,
    max_batch_seconds: float = 160.0,
    device: str | torch.device = "cpu",
    resample: bool = False,
    allow_outside: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> xr.Dataset:
    """Activations of `layers` of `model` on every utterance of `source`, as a lazy Dataset.

    Args:
        model: checkpoint file or run directory, an SSLVGS model, or a torchaudio Wav2Vec2Model.
        source: `(corpus_dir, split)`, a corpus dir with `split=`, an ABX set dir or item file
            (wavs in `wavs/` beside it, or `wavs=`), a directory of wavs, or a list of wav files.
        layers: "all" (0..N), a layer, a list or a range; 0 = feature encoder, 1..N transformer.
        store: where to write the zarr store; default: the cache (module docstring).
        dtype: "float32" or "float16" (half the disk; ABX and CKA are insensitive to it).
        batch_size: at most this many utterances per forward pass (utterances of similar
            duration are batched together).
        max_batch_seconds: at most this many seconds of padded audio per forward pass.
        resample: resample audio at another rate to the model's; by default such audio is refused.
        allow_outside: read wav paths (split files) and #file paths (item files) that leave their
            folder (refused by default).
        overwrite: replace a store at `store` that holds other activations.
    Returns:
        Dataset with `activations` (layer, frame, feature) and the coordinates listed in
        `probes.store` (per-frame `utt`, `time`; per-utterance `utterance`, `speaker`, `text`, ...).
    Raises:
        ValueError: a layer out of range, audio at another sample rate, an empty source, a store
            of another model.
        FileNotFoundError: a missing checkpoint, corpus, item file or wav (named).
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, not {dtype!r}")
    layered = as_layered_model(model)
    wanted = resolve_layers(layers, layered.num_layers, layered.description)
    src = as_source(source, split=split, wavs=wavs, allow_outside=allow_outside)
    header = {
        "model_id": layered.model_id,
        "model": layered.description,
        "source_key": src.key,
        "source": src.origin,
        "items": str(src.items or ""),
        "layers": wanted,
        "dtype": dtype,
        "frame_rate": layered.frame_rate,
        "sample_rate": layered.sample_rate,
        "batch_size": batch_size,
        "max_batch_seconds": max_batch_seconds,
        "resample": resample,
    }
    if store is None:
        hit = _cached(layered, src, wanted, dtype)
        if hit is not None:
            return hit
        path = cache_dir(layered) / _store_name(layered, src, wanted, dtype)
    else:
        path = Path(store)
    with locked(path):
        hit = _superset_hit(path, header, wanted)
        if hit is not None:
            return hit
        _fill(path, layered, src, header, device=device, overwrite=overwrite, progress=progress)
        return open_store(path)


def cache_dir(layered: LayeredModel) -> Path:
    """Where stores of this model are cached: beside its run, or the user cache for in-memory models."""
    from training.rundir import activation_cache, run_of, user_cache

    if layered.checkpoint is not None:
        checkpoint = layered.checkpoint.resolve()
        run = run_of(checkpoint) or (checkpoint if checkpoint.is_dir() else checkpoint.parent)
        return activation_cache(run)
    return user_cache() / "activations"


def plan_batches(
    n_samples: Sequence[int], batch_size: int, max_batch_samples: int
) -> list[list[int]]:
    """Group utterances by duration into batches (deterministic, so a resumed run has the same ones).

    Args:
        n_samples: [U] length of each utterance in samples.
        batch_size: utterances per batch at most.
        max_batch_samples: padded samples (batch size x longest) per batch at most; a longer
            utterance goes alone.
    Returns:
        batches of utterance indices, shortest utterances first.
    """
    order = sorted(range(len(n_samples)), key=lambda i: (n_samples[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        too_many = len(current) >= batch_size
        too_long = (len(current) + 1) * n_samples[index] > max_batch_samples
        if current and (too_many or too_long):
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def _layers_hash(layers: list[int], dtype: str) -> str:
    return hashlib.sha256(json.dumps([layers, dtype]).encode()).hexdigest()[:6]


def _model_source_hash(layered: LayeredModel, src: Source) -> str:
    return hashlib.sha256(f"{layered.model_id}|{src.key}".encode()).hexdigest()[:10]


def _store_name(layered: LayeredModel, src: Source, layers: list[int], dtype: str) -> str:
    tag = layered.checkpoint.stem if layered.checkpoint is not None else "model"
    return f"{tag}-{src.name}-{_model_source_hash(layered, src)}-{_layers_hash(layers, dtype)}.zarr"


def _cached(layered: LayeredModel, src: Source, layers: list[int], dtype: str) -> xr.Dataset | None:
    directory = cache_dir(layered)
    if not directory.is_dir():
        return None
    pattern = f"*-{_model_source_hash(layered, src)}-*.zarr"
    header = {"model_id": layered.model_id, "source_key": src.key, "dtype": dtype}
    for path in sorted(directory.glob(pattern)):
        with locked(path):
            hit = _superset_hit(path, header, layers)
        if hit is not None:
            return hit
    return None


def _superset_hit(path: Path, header: dict[str, Any], layers: list[int]) -> xr.Dataset | None:
    """The complete store at `path` if it holds these activations for all `layers` and passes its
    check; one that fails it is reported and removed (the caller holds its lock and rebuilds)."""
    existing = read_header(path)
    if existing is None or not existing.get("complete"):
        return None
    same = all(existing.get(key) == header[key] for key in ("model_id", "source_key", "dtype"))
    if not same or not set(layers) <= set(existing["layers"]):
        return None
    problem = store_problem(path, existing)
    if problem is not None:
        say(f"{path}: {problem}; rebuilding it")
        discard(path)
        return None
    dataset = open_store(path, verify=False)
    return dataset if existing["layers"] == layers else dataset.sel(layer=layers)


def _fill(
    path: Path,
    layered: LayeredModel,
    src: Source,
    header: dict[str, Any],
    *,
    device: str | torch.device,
    overwrite: bool,
    progress: bool,
) -> None:
    n_samples = [
        audio_length(utt, layered.sample_rate, resample=header["resample"])
        for utt in src.utterances
    ]
    short = [i for i, n in enumerate(n_samples) if n < layered.min_samples]
    if short:
        warn_short([src.utterances[i] for i in short], [n_samples[i] for i in short], layered)
    refuse_too_long(layered, src.utterances, n_samples, device)
    layered.module.to(device)
    writer = StoreWriter.open(
        path, header=header, utterances=src.utterances, dim=layered.dim, overwrite=overwrite
    )
    if writer.complete:
        return
    stored = read_header(path)
    plan = plan_batches(
        n_samples,
        int(stored["batch_size"]),
        int(stored["max_batch_seconds"] * layered.sample_rate),
    )
    layers = header["layers"]
    bar = tqdm(
        total=len(plan),
        initial=writer.batches_done,
        unit="batch",
        disable=not progress,
        desc=f"extract {src.name}",
    )
    for batch in plan[writer.batches_done :]:
        # Utterances shorter than one frame are stored with no frames, never run: the model's
        # convolutions would fail on them (warned above; ABX refuses or drops their items by name).
        rows = [b for b, i in enumerate(batch) if n_samples[i] >= layered.min_samples]
        n_frames = np.zeros(len(batch), np.int64)
        per_layer = [np.zeros((0, layered.dim), header["dtype"]) for _ in layers]
        if rows:
            wav, lengths = load_wav_batch(
                [src.utterances[batch[b]] for b in rows], layered.sample_rate
            )
            with torch.inference_mode(), bounded_memory(device):
                states, frame_lengths = layered.hidden_states(
                    wav.to(device), lengths.to(device), max(layers)
                )
            n_frames[rows] = frame_lengths.cpu().clamp(max=states[0].shape[1]).numpy()
            # One layer at a time: the batch's frames of a layer, utterances concatenated, as stored.
            per_layer = (
                torch.cat([states[layer][r, : n_frames[b]] for r, b in enumerate(rows)])
                .float()
                .cpu()
                .numpy()
                .astype(header["dtype"], copy=False)
                for layer in layers
            )
        writer.append(np.asarray(batch), n_frames, per_layer, layered.frame_rate)
        del per_layer  # free this batch before the next one is computed
        bar.update(1)
    bar.close()
    writer.finish()


# --- activations as the probes read them ---------------------------------------------------------


def activations_for(
    model: Any,
    layers: Any,
    source: Any = None,
    *,
    corpus: Any = None,
    **extract_options: Any,
) -> xr.Dataset:
    """A model's (or a store's) activations of `layers` on `source` (default: the captions ABX set)."""
    stored = as_store(model)
    if stored is not None:
        if isinstance(layers, str):
            return stored
        check_store_layers(stored, layers)
        return stored.sel(layer=[layers] if isinstance(layers, Integral) else list(layers))
    layered = as_layered_model(model)
    if source is None:
        source = AbxSet(default_abx_set(corpus_of(layered, corpus)))
    return extract(layered, as_source(source), layers, **extract_options)
