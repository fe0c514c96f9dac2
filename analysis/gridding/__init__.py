"""Grids: a probe measured at every epoch x layer of a run, cached beside it (docs/grids.md).

driver.py runs and caches the grid (`grid`, `grids`, `stack`), registry.py holds the probes a grid
can run and their cache keys (`ProbeSpec`, `BUILTIN_PROBES`), builtin_probes.py the built-in
probes' functions, identity.py what the cache keys hash, abx_fast_path.py is the ABX probe's
fast path (one forward pass for every layer and condition), abx_cells.py what an ABX grid caches of
each cell (the counts its intervals come from) and abx_results.py the full `AbxResult` of cached
cells. Names load on first use.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
