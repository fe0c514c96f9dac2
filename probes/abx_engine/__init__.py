"""ABX discrimination engine: items, cells, kernels, score (ZeroSpeech semantics, DESIGN.md).

``probes.abx.score(features, items, ...)`` scores features given as {file: [T, D]} or a Ragged;
``probes.abx(model, layer, ...)`` (this module is callable) scores a model's layer through
``probes.api.abx``. The engine's modules load on first use, so ``import probes`` stays fast.
"""

from __future__ import annotations

import importlib
import sys
import types

__all__ = [
    "score",
    "paired_difference",
    "AbxResult",
    "Interval",
    "PairedDifference",
    "Ragged",
    "Condition",
    "zerospeech_condition",
    "load_feature_dir",
    "load_feature_file",
    "NoValidCellError",
    "SliceError",
    "FeatureFileError",
    "DroppedItemsWarning",
    "MissingColumnError",
]

_HOMES = {
    "score": "probes.abx.engine",
    "NoValidCellError": "probes.abx.engine",
    "paired_difference": "probes.abx.paired",
    "AbxResult": "probes.abx.result",
    "Interval": "probes.abx.result",
    "PairedDifference": "probes.abx.result",
    "Ragged": "probes.abx.ragged",
    "FeatureFileError": "probes.abx.ragged",
    "load_feature_dir": "probes.abx.ragged",
    "load_feature_file": "probes.abx.ragged",
    "Condition": "probes.abx.conditions",
    "zerospeech_condition": "probes.abx.conditions",
    "SliceError": "probes.abx.slicing",
    "DroppedItemsWarning": "probes.abx.slicing",
    "MissingColumnError": "probes.abx.cells",
}


def __getattr__(name: str):
    if name in _HOMES:
        value = getattr(importlib.import_module(_HOMES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'probes.abx' has no attribute {name!r}")


class _CallableModule(types.ModuleType):
    """``probes.abx(model, layer, ...)`` is ``probes.api.abx(model, layer, ...)``."""

    def __call__(self, *args, **kwargs):
        try:
            api = importlib.import_module("probes.api")
        except ImportError as err:
            raise ImportError(
                "probes.abx(model, layer) needs probes.api (the probes package's model-level API), which "
                f"could not be imported ({err}); to score features directly use probes.abx.score(features, items)"
            ) from err
        if not hasattr(api, "abx"):
            raise ImportError(
                "probes.api has no function abx yet; to score features directly use probes.abx.score(features, items)"
            )
        return api.abx(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
