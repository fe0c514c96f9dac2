"""The grid engine: every layer of a checkpoint scored from one forward pass, on structures built once.

For one item set and condition, ``probes.abx_engine.prepare`` builds what does not depend on the
features (parsed items, slices, cells, the blocks' pairs and their order, the bootstrap's draws); it is
kept in this process (``PREPARED``) and reused for every layer and every checkpoint, so a checkpoint
costs its forward pass and, per layer, the frame products and DTWs. The forward pass writes every
layer to raw float32 files in a scratch folder as each batch is computed (``spill_activations``), and
a layer is read back only while it is scored: memory holds one batch of every layer, or one layer,
never layers x frames (no zarr round trip; with ``store=True`` the activation cache is used and filled
instead, as ``probes.abx`` does, and read layer by layer too). All the conditions of one item set share
the spilled layers; ``forget_features`` removes them. On a dask worker the same holds per worker
process. ``protocol="paper"`` scores as ``probes.abx`` does under that protocol (probes/protocol.py).
docs/grids.md says what each part costs.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "abx_layers",
    "activations_in_memory",
    "spill_activations",
    "SpilledLayers",
    "prepared_for",
    "PREPARED",
    "forget_features",
]

PREPARED: OrderedDict = OrderedDict()  # key -> Prepared, most recent last
MAX_PREPARED = 16  # item sets x conditions kept per process
_ITEMS: dict = {}  # item file -> (stat, parsed table)
# (checkpoint, items, wavs, protocol) -> (frame rate, layers source), one checkpoint at a time.
_FEATURES: dict = {}
atexit.register(lambda: forget_features())  # spilled layers never outlive the process


def forget_features() -> None:
    """Drop the activations of the last checkpoint (called when its probes are done): the spilled
    layer files are removed."""
    for _, layers in _FEATURES.values():
        if isinstance(layers, SpilledLayers):
            layers.remove()
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
    """Every layer of ``layers`` on every utterance of ``source``, from one forward pass per batch,
    all in memory (layers x frames: the grid reads ``spill_activations`` layer by layer instead).

    The batches are ``probes.extract``'s (same plan, same padding), so the frames are the ones a store
    would hold, bit for bit. Returns {layer: Ragged [frames, D] float32 keyed by utterance id}.
    """
    with tempfile.TemporaryDirectory(prefix="sslvgs-layers-") as folder:
        spilled = spill_activations(
            layered, source, layers, Path(folder), device=device, batch_size=batch_size,
            max_batch_seconds=max_batch_seconds,
        )  # fmt: skip
        return {layer: spilled.load(layer) for layer in layers}


@dataclass
class SpilledLayers:
    """Every layer of a model on a source, one raw float32 file per layer (``layer-<L>.f32``,
    frames x dim, utterances in ``names`` order), read back one layer at a time."""

    folder: Path
    names: list[str]
    lengths: list[int]
    dim: int
    layers: list[int]

    def load(self, layer: int) -> Any:
        """The layer as a Ragged (read into memory: the only layer held)."""
        from probes.abx_engine import Ragged

        if layer not in self.layers:
            raise ValueError(f"layer {layer} was not extracted (have {self.layers})")
        data = np.fromfile(self.folder / f"layer-{layer}.f32", dtype=np.float32)
        return Ragged.from_lengths(data.reshape(-1, self.dim), self.lengths, self.names)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def spill_activations(
    layered, source, layers: list[int], folder: Path, *, device: str = "cpu",
    batch_size: int = 8, max_batch_seconds: float = 160.0,
) -> SpilledLayers:  # fmt: skip
    """``activations_in_memory``'s frames, bit for bit, written to ``folder`` as they are computed.

    One forward pass per batch serves every layer; each layer's frames of the batch are appended to
    its file and the batch is freed, so memory is bounded by one batch, whatever the source's size
    and the number of layers.
    """
    import torch

    from probes.activations import audio_length, load_wav_batch, plan_batches, refuse_too_long
    from probes.models import bounded_memory

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n_samples = [audio_length(utt, layered.sample_rate) for utt in source.utterances]
    refuse_too_long(layered, source.utterances, n_samples, device)
    plan = plan_batches(n_samples, batch_size, int(max_batch_seconds * layered.sample_rate))
    layered.module.to(device)
    names, lengths = [], []
    files = {layer: open(folder / f"layer-{layer}.f32", "wb") for layer in layers}  # noqa: SIM115
    try:
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
                frames = torch.cat([states[layer][b, : n_frames[b]] for b in range(len(batch))])
                files[layer].write(frames.float().cpu().numpy().tobytes())
            names += [source.utterances[i].id for i in batch]
            lengths += n_frames.tolist()
            del states
    finally:
        for file in files.values():
            file.close()
    return SpilledLayers(folder, names, lengths, int(layered.dim), list(layers))


@dataclass
class _StoreLayers:
    """The activation store's layers, read one at a time (``store=True``)."""

    dataset: Any

    def load(self, layer: int) -> Any:
        from probes.activations import layer_features

        return layer_features(self.dataset, layer)

    def remove(self) -> None:
        pass


# Named as the grid's scratch folders (registry.SCRATCH_PREFIX + "<pid>-"), so that one left by a
# killed process is removed by the next grid (registry.clean_scratch); forget_features removes it
# otherwise. (Not imported: registry imports this module.)
SPILL_PREFIX = "sslvgs-grid-"


def _spill_folder() -> Path:
    return Path(tempfile.mkdtemp(prefix=f"{SPILL_PREFIX}{os.getpid()}-layers-"))


def _features(model, checkpoint, items: Path, wavs, device, store, protocol):
    """(frame rate, layers source) of ``model`` on the item file's wavs, shared by the conditions."""
    from probes.models import as_layered_model
    from probes.protocol import for_protocol
    from probes.sources import abx_set as AbxSet

    key = (str(checkpoint), str(items), str(wavs), protocol)
    if key not in _FEATURES:
        layered = for_protocol(as_layered_model(model), protocol)
        source = AbxSet(items, wavs)
        if store:  # the caller asked for the activation cache: read or fill it
            from probes.activations import extract

            source_of_layers: Any = _StoreLayers(
                extract(layered, source, "all", progress=False, device=device)
            )
        else:
            # The model's every layer at once, spilled: later conditions or layers are free.
            every = list(range(layered.num_layers + 1))
            folder = _spill_folder()
            try:
                source_of_layers = spill_activations(layered, source, every, folder, device=device)
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
        _FEATURES[key] = (float(layered.frame_rate), source_of_layers)
    return _FEATURES[key]


def abx_layers(
    model, layers: list[int], *, checkpoint, items, wavs=None, device: str = "cpu",
    store: bool = False, bootstrap: int = 0, confidence: float = 0.95, protocol: str = "default",
    cells: bool = False, **engine_options: Any,
) -> Any:  # fmt: skip
    """ABX error of each layer: [layers], or [layers, 3] (error, low, high) with ``bootstrap`` > 0;
    with ``cells`` the layers' ``LayerCells`` (errors and every cell's counts, what a grid caches).

    The interval resamples speakers ``bootstrap`` times (``AbxResult.bootstrap``, seed 0) on the
    cells' errors: no distance is computed again, and the draws are made once per item set. One
    layer's activations are in memory at a time. protocol: "default" or "paper" (probes/protocol.py:
    libri-light slicing, z-normalised waveforms; the paper's layer L is layer L).
    """
    from probes.protocol import abx_options

    items = Path(items)
    engine_options = abx_options(protocol, engine_options)
    rate, source = _features(model, checkpoint, items, wavs, device, store, protocol)
    prepared = None
    rows: list = []
    for layer in layers:
        features = source.load(layer)
        if prepared is None:
            lengths = dict(zip(features.names, features.lengths.tolist(), strict=True))
            prepared = prepared_for(items, lengths, rate, engine_options)
        result = prepared.score(features)
        del features
        if cells:
            rows.append(result)
        elif bootstrap:
            interval = result.bootstrap(n_boot=int(bootstrap), confidence=confidence)
            rows.append((float(result), interval.low, interval.high))
        else:
            rows.append(float(result))
    if cells:
        from analysis.gridding.abx_cells import LayerCells

        return LayerCells.from_results(rows)
    return np.asarray(rows, np.float64)
