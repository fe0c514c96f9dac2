"""Everything across checkpoints and runs: grids, forgetting, sharing, plots, reports.

The public names are listed in ``__init__.pyi`` and load on first use (lazy_loader, SPEC 1), so
``sslvgs --help`` does not pay for xarray and seaborn; ``dir(analysis)`` and ``help()`` show them.
"""

import lazy_loader as _lazy

__version__ = "0.1.0"

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
