"""Loaders: SpokenCOCO JSON and wavs, region features, ZeroSpeech item files."""

from training.data.items import ItemFileError, read_items, write_items

__all__: list[str] = []
__all__ += ["ItemFileError", "read_items", "write_items"]
