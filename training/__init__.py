"""Everything that makes checkpoints: corpus, model, losses, schedules, trainer."""

from training.checkpoints import CheckpointError, checkpoint_id, load_model
from training.config import PRESETS, ModelConfig, TrainConfig, preset
from training.corpus import DEFAULT_IMAGES, DEFAULT_REGION_DIM, build_corpus
from training.data import (
    CaptionDataset,
    RegionFeatures,
    collate_captions,
    load_split,
    read_alignment,
    read_wav,
)
from training.data.items import read_items, write_items
from training.espeak import Synthesizer, Voice, text_to_phones
from training.interop import from_torchaudio, import_torchaudio_wav2vec2
from training.model import SSLVGS
from training.schedules import PAPER_SCHEDULES, ScheduleError, parse_schedule
from training.trainer import RunConfigError, train

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
