"""`protocol="paper"`: the evaluation of Khorrami et al. (EUSIPCO 2023) in one option (docs/abx.md).

Against the default protocol (`"default"`), `"paper"` changes:

- ABX slicing and all-zero frames as the ZeroSpeech 2021 tool (the engine's `compat="librilight"`:
  the last frame of every item is dropped, about +0.3 points on HuBERT);
- layers numbered as the paper prints them: 1..N for the N transformer layers. The paper's scripts
  loop 0..N-1 over the transformer blocks; block i's output is the paper's layer i+1, which is
  `hidden_states[i+1]` here, so paper layer L is sslvgs layer L (layer 0, what enters the first
  block, has no number in the paper and is refused);
- every waveform z-normalised per utterance (zero mean, unit variance over its samples) before the
  model: sslvgs models and the paper's bundles always do it; Hugging Face, fairseq and torchaudio
  models do it only when their preprocessing says so, and the paper protocol makes them do it.

Recall is the same in both protocols: an image query hits when any of its captions is in the top k,
and each caption queries all images (training/retrieval.py), on z-normalised waveforms.
"""

from __future__ import annotations

import dataclasses
from numbers import Integral
from typing import TYPE_CHECKING, Any, Literal

from probes.vocabulary import check_choice

if TYPE_CHECKING:  # the command line reads this module without importing torch
    from probes.models import LayeredModel

__all__ = ["Protocol", "PROTOCOLS", "check_protocol", "paper_layers", "abx_options", "for_protocol"]

Protocol = Literal["default", "paper"]
PROTOCOLS: tuple[str, ...] = ("default", "paper")
PAPER_COMPAT = "librilight"


def check_protocol(protocol: str) -> None:
    """ValueError naming the option and listing the protocols."""
    check_choice("protocol", protocol, PROTOCOLS)


def paper_layers(layers: Any, num_layers: int, description: str) -> Any:
    """Layers as the paper numbers them (1..N; "all" = 1..N), checked; the same numbers here.

    Raises:
        ValueError: layer 0 or a layer beyond N, naming the model and the paper's numbering.
    """
    if isinstance(layers, str):
        return list(range(1, num_layers + 1)) if layers == "all" else layers
    for layer in [layers] if isinstance(layers, Integral) else list(layers):
        if isinstance(layer, Integral) and not 1 <= layer <= num_layers:
            raise ValueError(
                f"layer {layer!r} does not exist in the paper's numbering: {description} has "
                f"transformer layers 1..{num_layers} (protocol='paper' numbers them 1..N as the "
                "paper prints them; layer 0, the input of the first block, has no number there)"
            )
    return layers


def abx_options(protocol: str, options: dict[str, Any]) -> dict[str, Any]:
    """The ABX engine's options under `protocol` (the paper's: compat="librilight").

    Raises:
        ValueError: protocol="paper" with another `compat` given.
    """
    check_protocol(protocol)
    if protocol != "paper":
        return options
    given = options.get("compat", PAPER_COMPAT)
    if given != PAPER_COMPAT:
        raise ValueError(
            f"protocol='paper' scores ABX with compat={PAPER_COMPAT!r} (the ZeroSpeech 2021 tool); "
            f"compat={given!r} contradicts it: leave compat out or use protocol='default'"
        )
    return {**options, "compat": PAPER_COMPAT}


def normalises_input(module: Any) -> bool:
    """True when the module z-normalises each utterance itself (sslvgs models, encoders set to)."""
    from training.model import SSLVGS
    from training.pretrained.encoders import HFEncoder, TorchaudioEncoder

    if isinstance(module, SSLVGS):
        return True
    if isinstance(module, HFEncoder | TorchaudioEncoder):
        return bool(module.normalize)
    return False


def for_protocol(layered: LayeredModel, protocol: str) -> LayeredModel:
    """`layered` as `protocol` runs it: under "paper", waveforms z-normalised per utterance.

    A model that already normalises is returned as it is (its cached activations serve both
    protocols); another gets a view that normalises first, with its own cache key.
    """
    check_protocol(protocol)
    if protocol != "paper" or layered.znorm or normalises_input(layered.module):
        return layered
    return dataclasses.replace(
        layered,
        znorm=True,
        model_id=layered.model_id + "-znorm",
        description=f"{layered.description} (waveforms z-normalised)",
    )
