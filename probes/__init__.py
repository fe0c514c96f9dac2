"""Everything that measures one model: activations, ABX, retrieval, similarity.

The public names are listed in ``__init__.pyi`` and load on first use (lazy_loader, SPEC 1), so
``import probes`` and ``sslvgs --help`` stay fast; ``dir(probes)`` and ``help()`` show all of them.
"""

import lazy_loader as _lazy

__version__ = "0.1.0"

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
