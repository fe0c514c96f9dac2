"""`probes.abx(model, layer)`: the notebook entry point, from a model (or a store) to an ABX error.

It extracts the activations of the model on the ABX set (or reads them from the cache: the first
call extracts every layer, so asking for the other layers afterwards computes nothing) and scores
them with the ABX engine (`probes.abx.score`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from probes.models import LayeredModel, as_layered_model, resolve_layers
from probes.sources import AbxSet, as_source
from probes.store import read_header

__all__ = ["abx", "activations_for", "layer_features", "corpus_of", "default_abx_set"]

DEFAULT_ABX_SET = "captions"


def abx(
    model: Any,
    layer: int | Sequence[int],
    items: str | Path | None = None,
    *,
    speaker: str = "within",
    context: str = "within",
    corpus: str | Path | None = None,
    wavs: str | Path | None = None,
    store: str | Path | None = None,
    extract_layers: int | Sequence[int] | str = "all",
    dtype: str = "float32",
    device: str = "cpu",
    batch_size: int = 8,
    progress: bool = True,
    **engine_options: Any,
) -> Any:
    """ABX error of one layer (or several) of a model on a ZeroSpeech item file.

    Args:
        model: checkpoint file, run directory, SSLVGS or torchaudio Wav2Vec2Model; or an activation
            store (path or Dataset from `probes.extract`), which is scored as it is.
        layer: a layer (0 = feature encoder, 1..N transformer layers) or a list of layers.
        items: an item file, an ABX set directory, or the name of one of the corpus's sets
            ("captions", "read"); default: the corpus's "captions" set (the store's own items for a
            store).
        speaker, context: "within", "across" or "any" (as probes.abx.score).
        corpus: corpus root; default: the one in the run's config.json.
        wavs: directory of the item file's wavs (default `wavs/` beside it).
        store: where to keep the activations (default: the cache, see `probes.extract`).
        extract_layers: the layers extracted on a cache miss ("all" so later layers are cache hits).
        engine_options: passed to probes.abx.score (distance, pooling, compat, max_size_group...).
    Returns:
        one layer: the engine's AbxResult (float(result) is the error in 0..1, .cells the per-cell
        table); a list of layers: DataArray over `layer` of errors, attrs naming the parameters.
    """
    from probes.abx import score

    dataset, item_file = _dataset_and_items(
        model, layer, items, corpus=corpus, wavs=wavs, store=store, extract_layers=extract_layers,
        dtype=dtype, device=device, batch_size=batch_size, progress=progress,
    )  # fmt: skip
    single = isinstance(layer, Integral)
    layers = [int(layer)] if single else [int(which) for which in layer]

    def one(which: int) -> Any:
        return score(
            layer_features(dataset, which), item_file, frequency=float(dataset.attrs["frame_rate"]),
            speaker=speaker, context=context, **engine_options,
        )  # fmt: skip

    if single:
        return one(layers[0])
    return xr.DataArray(
        [float(one(which)) for which in layers],
        dims=("layer",),
        coords={"layer": layers},
        name="abx_error",
        attrs={"probe": "abx", "items": str(item_file), "speaker": speaker, "context": context,
               "model": dataset.attrs.get("model", ""),
               **{k: str(v) for k, v in engine_options.items()}},
    )  # fmt: skip


def _dataset_and_items(
    model: Any,
    layer: Any,
    items: Any,
    *,
    corpus: Any,
    wavs: Any,
    store: Any,
    **extract_options: Any,
) -> tuple[xr.Dataset, Path]:
    """The activations to score (all requested layers present) and the item file."""
    from probes.activations import extract

    stored = _as_store(model)
    if stored is not None:
        item_file = _item_file(items, corpus) if items is not None else _store_items(stored)
        _check_store_layers(stored, layer)
        return stored, item_file
    layered = as_layered_model(model)
    resolve_layers(layer, layered.num_layers, layered.description)
    if items is None:
        item_file = default_abx_set(corpus_of(layered, corpus))
    else:
        item_file = _item_file(items, corpus or _recorded_corpus(layered))
    dataset = extract(layered, AbxSet(item_file, wavs), extract_options.pop("extract_layers"),
                      store, **extract_options)  # fmt: skip
    return dataset, item_file


def activations_for(
    model: Any,
    layers: Any,
    source: Any = None,
    *,
    corpus: Any = None,
    **extract_options: Any,
) -> xr.Dataset:
    """A model's (or a store's) activations of `layers` on `source` (default: the captions ABX set)."""
    from probes.activations import extract

    stored = _as_store(model)
    if stored is not None:
        if layers == "all":
            return stored
        _check_store_layers(stored, layers)
        return stored.sel(layer=[layers] if isinstance(layers, Integral) else list(layers))
    layered = as_layered_model(model)
    if source is None:
        source = AbxSet(default_abx_set(corpus_of(layered, corpus)))
    return extract(layered, as_source(source), layers, **extract_options)


def layer_features(dataset: xr.Dataset, layer: int) -> Any:
    """One layer of a store as the ABX engine's Ragged features, keyed by utterance id.

    Returns:
        probes.abx.Ragged over the store's utterances in frame order, data float32 [frames, D].
    """
    from probes.abx import Ragged

    data = dataset.activations.sel(layer=layer).values.astype(np.float32, copy=False)
    offsets = dataset.offset.values
    order = np.argsort(offsets, kind="stable")
    bounds = np.append(offsets[order], len(data))
    names = dataset.utterance.values[order].tolist()
    return Ragged(data, bounds, names)


def corpus_of(layered: LayeredModel, corpus: str | Path | None = None) -> Path:
    """The corpus to probe on: `corpus` if given, else the one the model's run was trained on."""
    if corpus is not None:
        return Path(corpus)
    recorded = _recorded_corpus(layered)
    if recorded is None:
        raise ValueError(
            f"{layered.description}: no corpus known (it was not loaded from a run directory whose "
            "config.json names one); pass corpus=... or items=..."
        )
    return recorded


def default_abx_set(corpus: Path) -> Path:
    """The corpus's `captions` ABX item file."""
    return _item_file(DEFAULT_ABX_SET, corpus)


def _recorded_corpus(layered: LayeredModel) -> Path | None:
    if layered.checkpoint is None:
        return None
    checkpoint = layered.checkpoint.resolve()
    run = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
    config = run / "config.json"
    if not config.is_file():
        return None
    recorded = json.loads(config.read_text()).get("corpus")
    return Path(recorded) if recorded else None


def _item_file(items: str | Path, corpus: str | Path | None) -> Path:
    path = Path(items)
    if path.is_file():
        return path
    if path.is_dir() and (path / "items.item").is_file():
        return path / "items.item"
    if corpus is not None and not path.suffix:
        candidate = Path(corpus) / "abx" / str(items) / "items.item"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"ABX items {str(items)!r}: neither an item file, an ABX set directory, nor a set of the "
        f"corpus {str(corpus)!r} (abx/<set>/items.item)"
    )


def _as_store(model: Any) -> xr.Dataset | None:
    from probes.store import open_store

    if isinstance(model, xr.Dataset):
        return model
    if isinstance(model, str | Path) and Path(model).is_dir() and read_header(model) is not None:
        return open_store(model)
    return None


def _store_items(dataset: xr.Dataset) -> Path:
    recorded = dataset.attrs.get("items") or ""
    if not recorded:
        raise ValueError(
            f"the store of {dataset.attrs.get('model', 'a model')} was not extracted from an ABX set; "
            "pass items=..."
        )
    return Path(recorded)


def _check_store_layers(dataset: xr.Dataset, layer: Any) -> None:
    stored = dataset.layer.values.tolist()
    for which in [layer] if isinstance(layer, Integral) else list(layer):
        if which not in stored:
            raise ValueError(f"layer {which!r} is not in the store (it holds layers {stored})")
