"""Loaders: SpokenCOCO JSON and wavs, region features, ZeroSpeech item files."""

__all__: list[str] = []
