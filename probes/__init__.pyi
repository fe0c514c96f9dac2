# The public names of `probes`, read by lazy_loader (SPEC 1) and by type checkers and editors alike:
# each module loads on first use of one of its names, so `import probes` costs no torch.
# Grouped by kind (as xarray's __all__); everything else is reached from its module: the source
# builders from `probes.sources`, recall@k on embeddings from `probes.retrieval`, the cache and
# batching internals from `probes.activations` and `probes.models`.

# Submodules
from . import abx_engine as abx_engine

# isort: split
# Functions users call
from .abx_probe import abx as abx
from .activations import extract as extract
from .activations import layer_features as layer_features
from .caches import clear_caches as clear_caches
from .caches import list_caches as list_caches
from .embeddings import embed_split as embed_split
from .kernel_alignment import cka as cka
from .kernel_alignment import similarity as similarity
from .models import as_layered_model as as_layered_model
from .phones import phone_probe as phone_probe
from .retrieval import recall as recall
from .sources import as_source as as_source
from .store_check import open_store as open_store

# isort: split
# Types: the encoder contract, models, audio sources and the ABX vocabulary
from .encoder import Encoder as Encoder
from .models import LayeredModel as LayeredModel
from .sources import Source as Source
from .sources import Utterance as Utterance
from .vocabulary import Context as Context
from .vocabulary import Distance as Distance
from .vocabulary import Layers as Layers
from .vocabulary import Speaker as Speaker

# isort: split
# Errors
from .store import StoreMismatchError as StoreMismatchError
from .store_check import CorruptStoreError as CorruptStoreError
from .store_check import IncompleteStoreError as IncompleteStoreError
