# The public names of `training.corpus`, read by lazy_loader (SPEC 1) and by type checkers.
from .build import DEFAULT_IMAGES as DEFAULT_IMAGES
from .build import DEFAULT_REGION_DIM as DEFAULT_REGION_DIM
from .build import PAPER_REGION_DIM as PAPER_REGION_DIM
from .build import READ_SENTENCES_PER_SPEAKER as READ_SENTENCES_PER_SPEAKER
from .build import READ_SPEAKERS as READ_SPEAKERS
from .build import SAMPLE_RATE as SAMPLE_RATE
from .build import VARIATION_TABLE as VARIATION_TABLE
from .build import build_corpus as build_corpus
from .build import plan_corpus as plan_corpus
from .build import split_sizes as split_sizes
