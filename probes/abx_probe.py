"""`probes.abx(model, layer)`: the notebook entry point, from a model (or a store) to an ABX error.

It extracts the activations of the model on the ABX set (or reads them from the cache: the first
call extracts every layer, so asking for the other layers afterwards computes nothing) and scores
them with the ABX engine (`probes.abx_engine.score`).
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from probes.activations import as_store, check_store_layers, extract, layer_features, store_items
from probes.models import as_layered_model, corpus_of, default_abx_set, resolve_layers
from probes.protocol import Protocol, abx_options, for_protocol, paper_layers
from probes.sources import abx_set
from probes.vocabulary import (
    CONTEXTS,
    DISTANCES,
    SPEAKERS,
    Context,
    Distance,
    Layers,
    Speaker,
    check_choice,
)
from training.run.directory import abx_item_file, run_corpus

if TYPE_CHECKING:
    import xarray as xr

    from probes.abx_engine import AbxResult

__all__ = ["abx"]


@overload
def abx(model: Any, layers: int, items: str | Path | None = ..., **options: Any) -> AbxResult: ...


@overload
def abx(
    model: Any, layers: Sequence[int] | range | str, items: str | Path | None = ..., **options: Any
) -> xr.DataArray: ...


def abx(
    model: Any,
    layers: Layers,
    items: str | Path | None = None,
    *,
    speaker: Speaker = "within",
    context: Context = "within",
    distance: Distance = "angular",
    corpus: str | Path | None = None,
    wavs: str | Path | None = None,
    allow_outside: bool = False,
    resample: bool = False,
    store: str | Path | None = None,
    extract_layers: Layers = "all",
    dtype: str = "float32",
    device: str = "cpu",
    batch_size: int = 8,
    progress: bool = True,
    protocol: Protocol = "default",
    **engine_options: Any,
) -> AbxResult | xr.DataArray:
    """ABX error of one layer (or several) of a model on a ZeroSpeech item file.

    Args:
        model: checkpoint file, run directory, SSLVGS or torchaudio Wav2Vec2Model; or an activation
            store (path or Dataset from `probes.extract`), which is scored as it is.
        layers: a layer (0 = what enters the first transformer layer, 1..N transformer layers), a
            list or range of layers, or "all".
        items: an item file, an ABX set directory, or the name of one of the corpus's sets
            ("captions", "read"); default: the corpus's "captions" set (the store's own items for a
            store).
        speaker: "within" or "across" speaker.
        context: "within", "any" or "across" context.
        distance: frame distance, "angular" (the ZeroSpeech default), "cosine" or "euclidean".
        corpus: corpus root; default: the one in the run's config.json.
        wavs: directory of the item file's audio, searched by stem at any depth (.wav or .flac;
            default `wavs/` beside the item file).
        allow_outside: read `#file` entries that leave `wavs` (refused by default).
        resample: resample audio at another rate than the model's (refused by default).
        store: where to keep the activations (default: the cache, see `probes.extract`).
        extract_layers: the layers extracted on a cache miss ("all" so later layers are cache hits).
        device: where the model runs ("cpu", "cuda", ...).
        progress: show progress bars.
        protocol: "default", or "paper" for the paper's evaluation (`probes.protocol`): libri-light
            slicing (compat="librilight"), layers numbered 1..N as the paper prints them (the same
            numbers as here; layer 0 refused, "all" = 1..N), waveforms z-normalised per utterance.
        engine_options: passed to `probes.abx_engine.score` (pooling, compat, max_size_group, ...).
    Returns:
        one layer (an int): the engine's AbxResult (`float(result)` is the error in 0..1, `.cells`
        the per-cell table); several layers: a DataArray of errors over `layer`, attrs naming the
        parameters.
    """
    from probes.abx_engine import score

    check_choice("speaker", speaker, SPEAKERS)
    check_choice("context", context, CONTEXTS)
    check_choice("distance", distance, DISTANCES)
    engine_options = abx_options(protocol, engine_options)
    dataset, item_file, layers = _dataset_and_items(
        model, layers, items, corpus=corpus, wavs=wavs, allow_outside=allow_outside, store=store,
        extract_layers=extract_layers, resample=resample, protocol=protocol,
        dtype=dtype, device=device, batch_size=batch_size, progress=progress,
    )  # fmt: skip
    available = [int(which) for which in dataset.layer.values]
    chosen = available if layers == "all" else resolve_layers(layers, max(available), "the store")

    def one(which: int) -> AbxResult:
        return score(
            layer_features(dataset, which), item_file, frequency=float(dataset.attrs["frame_rate"]),
            speaker=speaker, context=context, distance=distance, **engine_options,
        )  # fmt: skip

    if isinstance(layers, Integral):
        return one(chosen[0])
    import xarray as xr

    return xr.DataArray(
        [float(one(which)) for which in chosen],
        dims=("layer",),
        coords={"layer": chosen},
        name="abx_error",
        attrs={"probe": "abx", "items": str(item_file), "speaker": speaker, "context": context,
               "distance": distance, "model": dataset.attrs.get("model", ""), "protocol": protocol,
               **{k: str(v) for k, v in engine_options.items()}},
    )  # fmt: skip


def _dataset_and_items(
    model: Any,
    layer: Any,
    items: Any,
    *,
    corpus: Any,
    wavs: Any,
    allow_outside: bool,
    store: Any,
    protocol: str,
    **extract_options: Any,
) -> tuple[xr.Dataset, Path, Any]:
    """The activations to score (all requested layers present), the item file and the layers
    asked for (under protocol="paper", "all" is 1..N)."""
    stored = as_store(model)
    if stored is not None:
        item_file = abx_item_file(items, corpus) if items is not None else store_items(stored)
        if protocol == "paper":
            layer = paper_layers(layer, int(max(stored.layer.values)), "the store")
        check_store_layers(stored, layer)
        return stored, item_file, layer
    layered = for_protocol(as_layered_model(model), protocol)
    if protocol == "paper":
        layer = paper_layers(layer, layered.num_layers, layered.description)
    resolve_layers(layer, layered.num_layers, layered.description)
    if items is None:
        item_file = default_abx_set(corpus_of(layered, corpus))
    else:
        named = corpus is None and not Path(items).exists()  # a set's name: the run's corpus's
        recorded = (
            run_corpus(layered.checkpoint, check=True)
            if named and layered.checkpoint is not None
            else None
        )
        item_file = abx_item_file(items, corpus or recorded)
    dataset = extract(layered, abx_set(item_file, wavs, allow_outside=allow_outside), extract_options.pop("extract_layers"),
                      store, **extract_options)  # fmt: skip
    return dataset, item_file, layer
