"""Loaders: SpokenCOCO JSON and wavs, region features, ZeroSpeech item files."""

from training.data.alignments import AlignmentError, read_alignment, write_alignment
from training.data.audio import WavError, read_wav, resample
from training.data.captions import CaptionDataset, collate_captions
from training.data.items import ItemFileError, read_items, write_items
from training.data.regions import RegionError, RegionFeatures
from training.data.spokencoco import SpokenCocoError, load_split

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
