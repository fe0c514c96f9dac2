"""The synthetic world: scenes, their spoken captions (espeak-ng voices, variation) and ABX sets.

`build_corpus` (build.py) writes the corpus; plan.py draws it, scenes.py and grammar.py make the
images and sentences, speakers.py and espeak.py the voices, variation.py each utterance's
realisation, speech.py each utterance's audio (in several worker processes), abx_sets.py the ABX
item files. Names load on first use (lazy_loader, SPEC 1).
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
