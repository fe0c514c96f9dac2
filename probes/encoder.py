"""The encoder contract: what the probes ask of every speech model (docs/models.md)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor

__all__ = ["Encoder"]


@runtime_checkable
class Encoder(Protocol):
    """A speech model seen as a stack of layers: layer 0 is what enters the first transformer layer,
    layers 1..`num_layers` the transformer layers' outputs.

    `training.model.SSLVGS` (trained here, or imported from torchaudio or a paper bundle) and the
    wrappers of `training.pretrained` (Hugging Face, fairseq, torchaudio) satisfy it; the probes use
    nothing else. `isinstance(model, Encoder)` checks that the five members are there.
    """

    @property
    def num_layers(self) -> int:
        """N, the number of transformer layers; valid layers are 0..N."""

    @property
    def dim(self) -> int:
        """Feature dimension D of every layer."""

    @property
    def frame_rate(self) -> float:
        """Frames per second of every layer."""

    @property
    def sample_rate(self) -> int:
        """The audio rate the model takes, in Hz."""

    def hidden_states(
        self, wav: Tensor, wav_lengths: Tensor | None = None, max_layer: int | None = None
    ) -> tuple[list[Tensor], Tensor]:
        """wav [B, T] (zero padded), valid samples [B] -> (layers 0..max_layer as tensors
        [B, F, D], valid frames [B]); `max_layer=None` means all N layers, and layers past
        `max_layer` are not computed where avoidable."""
