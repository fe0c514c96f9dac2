"""The public data formats: SpokenCOCO JSON and audio, region features, alignments, ZeroSpeech item files.

Names load on first use (lazy_loader, SPEC 1): ``from training.data import read_items`` loads the
item-file reader and pandas, not torch and the audio loaders.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
