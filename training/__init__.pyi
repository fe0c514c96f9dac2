# The public names of `training`, read by lazy_loader (SPEC 1) and by type checkers and editors:
# each module loads on first use of one of its names, so reading an item file costs no torch.
# Grouped by kind (as xarray's __all__); everything else is reached from its module: the data
# readers from `training.data`, corpus constants and espeak voices from `training.corpus`, the
# torchaudio renaming from `training.pretrained.torchaudio_models`.

# Submodules
from . import corpus as corpus
from . import data as data
from . import pretrained as pretrained
from . import rundir as rundir

# isort: split
# Functions users call
from .corpus import build_corpus as build_corpus
from .pretrained import load_pretrained as load_pretrained
from .pretrained import model_identity as model_identity
from .pretrained import trajectory as trajectory
from .pretrained.torchaudio_models import from_torchaudio as from_torchaudio
from .run.checkpoints import checkpoint_id as checkpoint_id
from .run.checkpoints import load_model as load_model
from .run.config import preset as preset
from .schedules import parse_schedule as parse_schedule
from .trainer import train as train

# isort: split
# The model, its configuration and the corpus's variation
from .corpus.variation import Variation as Variation
from .model import SSLVGS as SSLVGS
from .run.config import ModelConfig as ModelConfig
from .run.config import TrainConfig as TrainConfig

# isort: split
# Constants
from .run.config import PRESETS as PRESETS
from .schedules import PAPER_SCHEDULES as PAPER_SCHEDULES

# isort: split
# Errors
from .run.checkpoints import CheckpointError as CheckpointError
from .run.directory import RunConfigError as RunConfigError
from .run.directory import RunNotFoundError as RunNotFoundError
from .schedules import ScheduleError as ScheduleError
