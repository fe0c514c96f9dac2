"""The ABX discrimination engine: ZeroSpeech semantics, exact against fastabx and zrc-abx2.

``score(features, items, ...)`` scores features given as ``{file: [T, D]}`` or a :class:`Ragged`
against a ZeroSpeech item file; ``sslvgs abx FEATURES ITEM`` is its command line. The rules it
implements are in docs/abx.md. ``probes.abx(model, layers)`` is the model-level entry point built on it.
"""

from probes.abx_engine.cells import MissingColumnError
from probes.abx_engine.conditions import Condition, zerospeech_condition
from probes.abx_engine.engine import NoValidCellError, score
from probes.abx_engine.paired import paired_difference
from probes.abx_engine.ragged import FeatureFileError, Ragged, load_feature_dir, load_feature_file
from probes.abx_engine.result import AbxResult, Interval, PairedDifference
from probes.abx_engine.slicing import DroppedItemsWarning, SliceError

__all__ = [
    "score",
    "paired_difference",
    "AbxResult",
    "Interval",
    "PairedDifference",
    "Ragged",
    "Condition",
    "zerospeech_condition",
    "load_feature_dir",
    "load_feature_file",
    "NoValidCellError",
    "SliceError",
    "FeatureFileError",
    "DroppedItemsWarning",
    "MissingColumnError",
]
