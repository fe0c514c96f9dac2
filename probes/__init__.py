"""Everything that measures one model: activations, ABX, retrieval, similarity.

The public names are listed in ``__init__.pyi`` and load on first use (lazy_loader, SPEC 1), so
``import probes`` and ``sslvgs --help`` stay fast; ``dir(probes)`` and ``help()`` show all of them.
"""

import lazy_loader as _lazy

from training.version import with_version as _with_version

__getattr__, __dir__, __all__ = _with_version(*_lazy.attach_stub(__name__, __file__))
