"""The ABX discrimination engine: ZeroSpeech semantics, exact against fastabx and zrc-abx2.

``score(features, items, ...)`` scores features given as ``{file: [T, D]}``, a :class:`Ragged` or a
:class:`FeatureFiles` (``open_feature_dir``: a folder whose files are read when scored, only the frames
items use) against a ZeroSpeech item file; ``sslvgs abx FEATURES ITEM`` is its command line. The rules it
implements are in docs/abx.md. ``probes.abx(model, layers)`` is the model-level entry point built on it.
``prepare(items, ...)`` builds everything that does not depend on the features once, so that many
feature sets (every layer of every checkpoint) are scored on it at the cost of their frame products and
DTWs alone (docs/grids.md).

The public names are listed in ``__init__.pyi`` and load on first use (lazy_loader), so the command
line's parser and a small job never import Numba.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
