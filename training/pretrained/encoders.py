"""Speech encoders made elsewhere, behind the contract that SSLVGS offers the probes (`probes.Encoder`).

Each wrapper is a module with `num_layers`, `dim`, `frame_rate`, `sample_rate` and
`hidden_states(wav [B, T], wav_lengths [B], max_layer) -> (max_layer + 1 tensors [B, F, D], frame
lengths [B])`, where entry 0 is what enters the first transformer layer and entry i the output of
layer i (docs/models.md says what that is for each family). Inputs are raw waveforms; a model trained on z-normalised
utterances (`normalize=True`) gets each utterance z-normalised over its valid samples first, as its
training did. `normalize` is a buffer, so it is part of the weights' checksum: activations cached for
normalised and raw inputs are never mixed up.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from training.wav2vec2 import receptive_field

__all__ = ["zscore", "TorchaudioEncoder", "HFEncoder", "HF_FAMILIES"]

# transformers model_type -> the attribute of its ForPreTraining / ForCTC heads that holds the encoder.
HF_FAMILIES = {"wav2vec2": "wav2vec2", "hubert": "hubert", "wavlm": "wavlm"}


def zscore(wav: Tensor, lengths: Tensor) -> Tensor:
    """Each row z-normalised over its first `lengths` samples, zero beyond: [B, T] -> [B, T]."""
    valid = (torch.arange(wav.shape[1], device=wav.device)[None, :] < lengths[:, None]).to(
        wav.dtype
    )
    count = lengths.clamp(min=1)[:, None].to(wav.dtype)
    mean = (wav * valid).sum(1, keepdim=True) / count
    var = ((wav - mean) ** 2 * valid).sum(1, keepdim=True) / count
    return (wav - mean) / torch.sqrt(var + 1e-7) * valid


class _Encoder(nn.Module):
    def __init__(self, normalize: bool, sample_rate: int):
        super().__init__()
        self.register_buffer("normalize", torch.tensor(bool(normalize)))
        self._sample_rate = int(sample_rate)

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    def _input(
        self, wav: Tensor, wav_lengths: Tensor | None, max_layer: int | None
    ) -> tuple[Tensor, Tensor, int]:
        """(the model's input, valid samples [B], the deepest layer wanted)."""
        if wav_lengths is None:
            wav_lengths = torch.full((len(wav),), wav.shape[1], dtype=torch.long)
        wav_lengths = wav_lengths.to(wav.device).long()
        wav = zscore(wav, wav_lengths) if bool(self.normalize) else wav
        return wav, wav_lengths, self.num_layers if max_layer is None else max_layer


class TorchaudioEncoder(_Encoder):
    """A torchaudio `Wav2Vec2Model` (wav2vec 2.0, HuBERT, WavLM, or one imported from fairseq).

    Layer 0 is the input of transformer layer 1 (projected features + positional convolution, then
    the encoder LayerNorm in post-LN models); layer i the output of layer i, as torchaudio returns it.
    """

    def __init__(self, model: nn.Module, *, normalize: bool = False, sample_rate: int = 16000):
        super().__init__(normalize, sample_rate)
        self.model = model.eval()

    @property
    def num_layers(self) -> int:
        return len(self.model.encoder.transformer.layers)

    @property
    def dim(self) -> int:
        return int(self.model.encoder.transformer.pos_conv_embed.embed_dim)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / math.prod(
            int(b.stride) for b in self.model.feature_extractor.conv_layers
        )

    @property
    def min_samples(self) -> int:
        """The fewest samples that give one frame (the CNN's receptive field)."""
        return receptive_field(
            (b.conv.kernel_size[0], b.conv.stride[0])
            for b in self.model.feature_extractor.conv_layers
        )

    @torch.no_grad()
    def hidden_states(
        self, wav: Tensor, wav_lengths: Tensor | None = None, max_layer: int | None = None
    ) -> tuple[list[Tensor], Tensor]:
        """wav [B, T] -> (max_layer + 1 tensors [B, F, D], frame lengths [B])."""
        wav, wav_lengths, max_layer = self._input(wav, wav_lengths, max_layer)
        model = self.model
        # The convolutional encoder runs one utterance at a time: wav2vec 2.0 base normalises its
        # first layer over time (GroupNorm), so zero padding would change every frame of a shorter
        # utterance. The transformer then runs batched, with torchaudio's own mask for padded frames.
        features = [
            model.feature_extractor(wav[row : row + 1, : int(length)], None)[0][0]
            for row, length in enumerate(wav_lengths)
        ]
        frame_lengths = torch.tensor([len(f) for f in features], device=wav.device)
        padded = torch.nn.utils.rnn.pad_sequence(features, batch_first=True)
        # Layer 0 is what enters the first transformer layer; a pre-hook captures it, so that
        # torchaudio's own extract_features does the rest unchanged.
        captured: list[Tensor] = []

        def capture(_module: nn.Module, args: tuple) -> None:
            captured.append(args[0])

        handle = model.encoder.transformer.layers[0].register_forward_pre_hook(capture)
        try:
            layers = model.encoder.extract_features(
                padded, frame_lengths, num_layers=max(max_layer, 1)
            )
        finally:
            handle.remove()
        return (captured + list(layers))[: max_layer + 1], frame_lengths.long()


class HFEncoder(_Encoder):
    """A Hugging Face `transformers` Wav2Vec2Model, HubertModel or WavLMModel (the base model).

    Layers are transformers' own `output_hidden_states`: entry 0 is what enters the first layer,
    entry i the output of layer i (in "stable layer norm" models, the last one after the final
    LayerNorm, as transformers returns it). Models whose feature encoder normalises over time
    (`feat_extract_norm == "group"`) run one utterance at a time, since transformers lets padding
    change every frame of such a model (its docs say not to pass an attention mask to them); the
    others run batched with an attention mask.
    """

    def __init__(self, model: nn.Module, *, normalize: bool = False, sample_rate: int = 16000):
        super().__init__(normalize, sample_rate)
        self.model = model.eval()

    @property
    def num_layers(self) -> int:
        return int(self.model.config.num_hidden_layers)

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / math.prod(int(s) for s in self.model.config.conv_stride)

    @property
    def min_samples(self) -> int:
        """The fewest samples that give one frame (the CNN's receptive field)."""
        config = self.model.config
        return receptive_field(zip(config.conv_kernel, config.conv_stride, strict=True))

    def frame_lengths(self, wav_lengths: Tensor) -> Tensor:
        """Valid frames per utterance, by the convolutions' arithmetic (as transformers counts)."""
        lengths = wav_lengths.long()
        for kernel, stride in zip(
            self.model.config.conv_kernel, self.model.config.conv_stride, strict=True
        ):
            lengths = torch.div(lengths - kernel, stride, rounding_mode="floor") + 1
        return lengths.clamp(min=0)

    @torch.no_grad()
    def hidden_states(
        self, wav: Tensor, wav_lengths: Tensor | None = None, max_layer: int | None = None
    ) -> tuple[list[Tensor], Tensor]:
        """wav [B, T] -> (max_layer + 1 tensors [B, F, D], frame lengths [B])."""
        wav, wav_lengths, max_layer = self._input(wav, wav_lengths, max_layer)
        frames = self.frame_lengths(wav_lengths)
        if self.model.config.feat_extract_norm == "group":
            rows = [
                self._forward(wav[row : row + 1, : int(n)], None)[: max_layer + 1]
                for row, n in enumerate(wav_lengths.tolist())
            ]
            width = int(frames.max()) if len(frames) else 0
            states = [
                torch.cat([_pad_time(row[layer], width) for row in rows])
                for layer in range(max_layer + 1)
            ]
        else:
            mask = torch.arange(wav.shape[1], device=wav.device)[None, :] < wav_lengths[:, None]
            states = self._forward(wav, mask.long())[: max_layer + 1]
            width = int(frames.max()) if len(frames) else 0
            states = [s[:, :width] for s in states]
        return states, frames

    def _forward(self, wav: Tensor, attention_mask: Tensor | None) -> list[Tensor]:
        out = self.model(wav, attention_mask=attention_mask, output_hidden_states=True)
        return list(out.hidden_states)


def _pad_time(x: Tensor, width: int) -> Tensor:
    """[1, F, D] zero padded to [1, width, D]."""
    return torch.nn.functional.pad(x, (0, 0, 0, width - x.shape[1]))
