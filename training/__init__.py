"""Everything that makes checkpoints: corpus, model, losses, schedules, trainer.

Names are exported lazily (PEP 562): ``import training`` loads no submodule, so a tool that needs only
``training.data.read_items`` (the ABX engine and its CLI) does not pay for torch and the trainer.
"""

from __future__ import annotations

import importlib
import importlib.util

# Each exported name and the module that defines it; loaded on first access.
_HOMES: dict[str, str] = {
    **dict.fromkeys(["read_items", "write_items"], "training.data.items"),
    **dict.fromkeys(["DEFAULT_IMAGES", "DEFAULT_REGION_DIM", "build_corpus"], "training.corpus"),
    **dict.fromkeys(
        [
            "CaptionDataset",
            "RegionFeatures",
            "collate_captions",
            "load_split",
            "read_alignment",
            "read_wav",
        ],
        "training.data",
    ),
    **dict.fromkeys(["Synthesizer", "Voice", "text_to_phones"], "training.espeak"),
    "SSLVGS": "training.model",
    **dict.fromkeys(["ModelConfig", "TrainConfig", "PRESETS", "preset"], "training.config"),
    **dict.fromkeys(["load_model", "checkpoint_id", "CheckpointError"], "training.checkpoints"),
    **dict.fromkeys(["train", "RunConfigError"], "training.trainer"),
    **dict.fromkeys(["parse_schedule", "ScheduleError", "PAPER_SCHEDULES"], "training.schedules"),
    **dict.fromkeys(["from_torchaudio", "import_torchaudio_wav2vec2"], "training.interop"),
}

__all__: list[str] = []
__all__ += ["read_items", "write_items"]
__all__ += [
    "DEFAULT_IMAGES",
    "DEFAULT_REGION_DIM",
    "build_corpus",
    "CaptionDataset",
    "RegionFeatures",
    "collate_captions",
    "load_split",
    "read_alignment",
    "read_wav",
    "Synthesizer",
    "Voice",
    "text_to_phones",
]
__all__ += [
    "SSLVGS",
    "ModelConfig",
    "TrainConfig",
    "PRESETS",
    "preset",
    "load_model",
    "checkpoint_id",
    "CheckpointError",
    "train",
    "RunConfigError",
    "parse_schedule",
    "ScheduleError",
    "PAPER_SCHEDULES",
    "from_torchaudio",
    "import_torchaudio_wav2vec2",
]


def __getattr__(name: str):
    if name in _HOMES:
        value = getattr(importlib.import_module(_HOMES[name]), name)
        globals()[name] = value
        return value
    # Submodules stay reachable as attributes (``import training; training.model``), as when this
    # file imported them eagerly.
    if importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
