"""Everything that makes checkpoints: corpus, model, losses, schedules, trainer.

Two floors: what makes and reads data (``training.data``: the public formats; the corpus builder) and
what trains (model, losses, schedules, trainer). The public names are listed in ``__init__.pyi`` and
load on first use (lazy_loader, SPEC 1): ``import training`` loads no torch, so the ABX command, which
reads item files through ``training.data``, starts without it.
"""

import lazy_loader as _lazy

from training.version import with_version as _with_version

__getattr__, __dir__, __all__ = _with_version(*_lazy.attach_stub(__name__, __file__))
