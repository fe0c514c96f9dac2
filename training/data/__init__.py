"""Loaders: SpokenCOCO JSON and wavs, region features, ZeroSpeech item files.

Names are exported lazily (PEP 562): ``from training.data import read_items`` loads the item-file
reader and pandas, not torch and the audio loaders.
"""

from __future__ import annotations

import importlib
import importlib.util

# Each exported name and the module that defines it; loaded on first access.
_HOMES: dict[str, str] = {
    **dict.fromkeys(["ItemFileError", "read_items", "write_items"], "training.data.items"),
    **dict.fromkeys(
        ["AlignmentError", "read_alignment", "write_alignment"], "training.data.alignments"
    ),
    **dict.fromkeys(["WavError", "read_wav", "resample"], "training.data.audio"),
    **dict.fromkeys(["CaptionDataset", "collate_captions"], "training.data.captions"),
    **dict.fromkeys(["RegionError", "RegionFeatures"], "training.data.regions"),
    **dict.fromkeys(["SpokenCocoError", "load_split"], "training.data.spokencoco"),
}

__all__: list[str] = []
__all__ += ["ItemFileError", "read_items", "write_items"]
__all__ += [
    "AlignmentError",
    "CaptionDataset",
    "RegionError",
    "RegionFeatures",
    "SpokenCocoError",
    "WavError",
    "collate_captions",
    "load_split",
    "read_alignment",
    "read_wav",
    "resample",
    "write_alignment",
]


def __getattr__(name: str):
    if name in _HOMES:
        value = getattr(importlib.import_module(_HOMES[name]), name)
        globals()[name] = value
        return value
    # Submodules stay reachable as attributes (``training.data.audio``), as when this file imported them.
    if importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
