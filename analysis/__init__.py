"""Everything across checkpoints and runs: grids, forgetting, sharing, plots, reports.

The public names are listed in ``__init__.pyi`` and load on first use (lazy_loader, SPEC 1), so
``sslvgs --help`` does not pay for xarray and seaborn; ``dir(analysis)`` and ``help()`` show them.
"""

import lazy_loader as _lazy

from training.version import with_version as _with_version

__getattr__, __dir__, __all__ = _with_version(*_lazy.attach_stub(__name__, __file__))
