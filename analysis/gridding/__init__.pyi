# The public names of `analysis.gridding`, read by lazy_loader (SPEC 1) and by type checkers.
from .driver import cache_path as cache_path
from .driver import grid as grid
from .driver import grids as grids
from .driver import num_layers as num_layers
from .driver import stack as stack
from .registry import BUILTIN_PROBES as BUILTIN_PROBES
from .registry import ProbeSpec as ProbeSpec
from .registry import make_spec as make_spec
from .registry import measure_checkpoint as measure_checkpoint
