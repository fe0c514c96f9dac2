# The public names of `analysis`, read by lazy_loader (SPEC 1) and by type checkers and editors:
# each module loads on first use of one of its names, so `sslvgs --help` costs no xarray.
# Grouped by kind (as xarray's __all__); everything else is reached from its room: the grid
# probes and cache keys from `analysis.gridding`, the paper's tables, claims, variants and study
# helpers from `analysis.paper`, metric names from `analysis.metric_names`.

# Submodules
from . import gridding as gridding
from . import paper as paper
from . import plots as plots

# isort: split
# Functions users call: grids, runs, forgetting and sharing
from .forgetting_metrics import forgetting as forgetting
from .forgetting_metrics import forgetting_table as forgetting_table
from .gridding.driver import grid as grid
from .gridding.driver import grids as grids
from .gridding.driver import stack as stack
from .runs import checkpoints as checkpoints
from .runs import read_metrics as read_metrics
from .runs import switch_epoch as switch_epoch
from .sharing import drift as drift
from .sharing import similarity_between_runs as similarity_between_runs

# isort: split
# Functions users call: the paper
from .paper.evidence import paired_abx as paired_abx
from .paper.evidence import paired_recall as paired_recall
from .paper.report import write_report as write_report
from .paper.reproduction import reproduce as reproduce
from .paper.settings import reproduction_settings as reproduction_settings
from .paper.study import collect as collect

# isort: split
# Result types
from .metric_names import Metric as Metric
from .paper.claims import Claim as Claim
from .paper.evidence import Comparison as Comparison
from .paper.reproduction import Plan as Plan
from .paper.study import Study as Study

# isort: split
# Errors
from .runs import RunNotFoundError as RunNotFoundError
