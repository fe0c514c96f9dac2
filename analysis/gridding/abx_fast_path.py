"""The grid engine: every layer of a checkpoint scored from one forward pass, on structures built once.

For one item set and condition, ``probes.abx_engine.prepare`` builds what does not depend on the
features (parsed items, slices, cells, the blocks' pairs and their order, the bootstrap's draws); it is
kept in this process (``PREPARED``) and reused for every layer and every checkpoint, so a checkpoint
costs its forward pass and, per layer, the frame products and DTWs. The forward pass keeps every layer
in memory (no round trip through a store unless ``store=True``: then the activation cache is used and
filled, as ``probes.abx`` does), and all the conditions of one item set share it. On a dask worker the
same holds per worker process. docs/grids.md says what each part costs.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["abx_layers", "activations_in_memory", "prepared_for", "PREPARED", "forget_features"]

PREPARED: OrderedDict = OrderedDict()  # key -> Prepared, most recent last
MAX_PREPARED = 16  # item sets x conditions kept per process
_ITEMS: dict = {}  # item file -> (stat, parsed table)
_FEATURES: dict = {}  # (checkpoint, items, wavs) -> (frame rate, {layer: Ragged}), one checkpoint


def forget_features() -> None:
    """Drop the in-memory activations (called when a checkpoint's probes are done)."""
    _FEATURES.clear()


def _item_table(path: Path):
    """The parsed item file, read once per process (again if the file changes)."""
    from training.data.items import read_items

    stat = path.stat()
    key = (stat.st_mtime_ns, stat.st_size)
    cached = _ITEMS.get(path)
    if cached is None or cached[0] != key:
        cached = _ITEMS[path] = (key, read_items(path))
    return cached[1]


def prepared_for(items: Path, lengths: dict[str, int], frequency: float, options: dict[str, Any]):
    """The ``Prepared`` of an item file, file frame counts and engine options (built on first use)."""
    from probes.abx_engine import prepare

    items = Path(items).resolve()
    table = _item_table(items)
    shape = hashlib.sha256(repr(sorted(lengths.items())).encode()).hexdigest()
    key = (str(items), id(table), shape, float(frequency), repr(sorted(options.items())))
    if key in PREPARED:
        PREPARED.move_to_end(key)
        return PREPARED[key]
    prepared = prepare(table, lengths, frequency=frequency, **options)
    PREPARED[key] = prepared
    while len(PREPARED) > MAX_PREPARED:
        PREPARED.popitem(last=False)
    return prepared


def activations_in_memory(
    layered, source, layers: list[int], *, device: str = "cpu", batch_size: int = 8,
    max_batch_seconds: float = 160.0,
) -> dict[int, Any]:  # fmt: skip
    """Every layer of ``layers`` on every utterance of ``source``, from one forward pass per batch.

    The batches are ``probes.extract``'s (same plan, same padding), so the frames are the ones a store
    would hold, bit for bit. Returns {layer: Ragged [frames, D] float32 keyed by utterance id}.
    """
    import torch

    from probes.abx_engine import Ragged
    from probes.activations import audio_length, load_wav_batch, plan_batches
    from probes.models import bounded_memory

    n_samples = [audio_length(utt, layered.sample_rate) for utt in source.utterances]
    plan = plan_batches(n_samples, batch_size, int(max_batch_seconds * layered.sample_rate))
    layered.module.to(device)
    chunks: dict[int, list[np.ndarray]] = {layer: [] for layer in layers}
    names, lengths = [], []
    for batch in plan:
        wav, wav_lengths = load_wav_batch(
            [source.utterances[i] for i in batch], layered.sample_rate
        )
        with torch.inference_mode(), bounded_memory(device):
            states, frame_lengths = layered.hidden_states(
                wav.to(device), wav_lengths.to(device), max(layers)
            )
        n_frames = frame_lengths.cpu().clamp(max=states[0].shape[1]).numpy()
        for layer in layers:
            chunks[layer].append(
                torch.cat([states[layer][b, : n_frames[b]] for b in range(len(batch))])
                .float()
                .cpu()
                .numpy()
            )
        names += [source.utterances[i].id for i in batch]
        lengths += n_frames.tolist()
        del states
    return {
        layer: Ragged.from_lengths(np.concatenate(chunks.pop(layer)), lengths, names)
        for layer in layers
    }


def _features(model, checkpoint, items: Path, wavs, layers, device, store):
    """(frame rate, {layer: Ragged}) of ``model`` on the item file's wavs, shared by the conditions."""
    from probes.models import as_layered_model
    from probes.sources import abx_set as AbxSet

    key = (str(checkpoint), str(items), str(wavs))
    rate, have = _FEATURES.get(key, (None, {}))
    missing = [layer for layer in layers if layer not in have]
    if missing:
        layered = as_layered_model(model)
        source = AbxSet(items, wavs)
        if store:  # the caller asked for the activation cache: read or fill it
            from probes.activations import extract, layer_features

            dataset = extract(layered, source, "all", progress=False, device=device)
            new = {layer: layer_features(dataset, layer) for layer in missing}
        else:
            # The model's every layer at once: later conditions or layers are free.
            every = list(range(layered.num_layers + 1))
            new = activations_in_memory(layered, source, every, device=device)
        have = {**have, **new}
        rate = float(layered.frame_rate)
        _FEATURES[key] = (rate, have)
    return rate, {layer: have[layer] for layer in layers}


def abx_layers(
    model, layers: list[int], *, checkpoint, items, wavs=None, device: str = "cpu",
    store: bool = False, bootstrap: int = 0, confidence: float = 0.95, **engine_options: Any,
) -> np.ndarray:  # fmt: skip
    """ABX error of each layer: [layers], or [layers, 3] (error, low, high) with ``bootstrap`` > 0.

    The interval resamples speakers ``bootstrap`` times (``AbxResult.bootstrap``, seed 0) on the
    cells' errors: no distance is computed again, and the draws are made once per item set.
    """
    items = Path(items)
    rate, features = _features(model, checkpoint, items, wavs, layers, device, store)
    lengths = dict(
        zip(features[layers[0]].names, features[layers[0]].lengths.tolist(), strict=True)
    )
    prepared = prepared_for(items, lengths, rate, engine_options)
    rows = []
    for layer in layers:
        result = prepared.score(features[layer])
        if bootstrap:
            interval = result.bootstrap(n_boot=int(bootstrap), confidence=confidence)
            rows.append((float(result), interval.low, interval.high))
        else:
            rows.append(float(result))
    return np.asarray(rows, np.float64)
