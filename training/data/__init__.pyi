# The public names of `training.data`, read by lazy_loader (SPEC 1) and by type checkers and editors.
from .alignments import AlignmentError as AlignmentError
from .alignments import read_alignment as read_alignment
from .alignments import write_alignment as write_alignment
from .audio import WavError as WavError
from .audio import read_wav as read_wav
from .audio import resample as resample
from .captions import CaptionDataset as CaptionDataset
from .captions import collate_captions as collate_captions
from .items import ItemFileError as ItemFileError
from .items import read_items as read_items
from .items import write_items as write_items
from .regions import RegionError as RegionError
from .regions import RegionFeatures as RegionFeatures
from .regions import open_regions as open_regions
from .spokencoco import SpokenCocoError as SpokenCocoError
from .spokencoco import load_split as load_split
