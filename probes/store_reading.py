"""An activation store as the probes read it: a model argument that is already a store
(`as_store`), the item file it was extracted from (`store_items`), its layers checked
(`check_store_layers`) and one layer as the ABX engine's features (`layer_features`).

Separate from extraction (activations.py): these read a store whoever wrote it, and
run no model.
"""

from __future__ import annotations

from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from probes.store_check import open_store, read_header

__all__ = [
    "layer_features",
    "as_store",
    "store_items",
    "check_store_layers",
]


def layer_features(dataset: xr.Dataset, layer: int) -> Any:
    """One layer of a store as the ABX engine's Ragged features, keyed by utterance id.

    Returns:
        probes.abx_engine.Ragged over the store's utterances in frame order, data float32 [frames, D].
    """
    from probes.abx_engine.ragged import Ragged

    data = dataset.activations.sel(layer=layer).values.astype(np.float32, copy=False)
    offsets = dataset.offset.values
    # By offset, then length: an utterance with no frames shares its offset with the next one and
    # must come first, or it would take that one's frames.
    order = np.lexsort((dataset.n_frames.values, offsets))
    bounds = np.append(offsets[order], len(data))
    names = dataset.utterance.values[order].tolist()
    return Ragged(data, bounds, names)


def as_store(model: Any) -> xr.Dataset | None:
    """`model` as an activation store if it is one (a Dataset or a store's path), else None."""
    if isinstance(model, xr.Dataset):
        return model
    if isinstance(model, str | Path) and Path(model).is_dir() and read_header(model) is not None:
        return open_store(model)
    return None


def store_items(dataset: xr.Dataset) -> Path:
    """The item file a store was extracted from; ValueError for a store of another source."""
    recorded = dataset.attrs.get("items") or ""
    if not recorded:
        raise ValueError(
            f"the store of {dataset.attrs.get('model', 'a model')} was not extracted from an ABX set; "
            "pass items=..."
        )
    return Path(recorded)


def check_store_layers(dataset: xr.Dataset, layer: Any) -> None:
    """ValueError naming the missing layer if the store lacks one of `layer` ("all": any store fits)."""
    if isinstance(layer, str):
        return
    stored = dataset.layer.values.tolist()
    for which in [layer] if isinstance(layer, Integral) else list(layer):
        if which not in stored:
            raise ValueError(f"layer {which!r} is not in the store (it holds layers {stored})")
