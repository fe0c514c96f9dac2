"""wav2vec 2.0 building blocks: front ends, positional convolution, post-LN layers, masking, quantizer.

Module and parameter names mirror torchaudio's `wav2vec2` components (feature extractor conv layers,
`feature_projection`, `pos_conv_embed`, `attention.{q,k,v,out}_proj`, `feed_forward.*_dense`,
`layer_norm` / `final_layer_norm`), so torchaudio state dicts import by renaming prefixes only
(training/pretrained/torchaudio_models.py). Every module that sees padded batches keeps padding from leaking into valid
frames, so a sample's output does not depend on what it was batched with (needed for DDP equality).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from training.spectrograms import MEMO, front_end_digest, inference_safe

__all__ = [
    "ConvFeatureEncoder",
    "LogMelFeatureEncoder",
    "znormalise",
    "FeatureProjection",
    "ConvPositionalEmbedding",
    "SelfAttention",
    "FeedForward",
    "EncoderLayer",
    "GumbelVectorQuantizer",
    "span_mask",
    "gumbel",
    "padding_mask",
    "receptive_field",
    "scale_gradient",
]


def receptive_field(kernels_strides) -> int:
    """Samples that one output frame of a stack of 1-d convolutions [(kernel, stride), ...] sees:
    the fewest samples that give a frame (400 for wav2vec 2.0's CNN)."""
    field, jump = 1, 1
    for kernel, stride in kernels_strides:
        field += (int(kernel) - 1) * jump
        jump *= int(stride)
    return field


def padding_mask(lengths: Tensor, max_len: int) -> Tensor:
    """[B, max_len] bool, True on valid frames."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over channels of a [B, C, T] tensor (torchaudio's `LayerNorm` with transpose)."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.transpose(-2, -1)).transpose(-2, -1)


class ConvLayerBlock(nn.Module):
    """Conv1d -> optional norm -> GELU, tracking valid lengths."""

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int, bias: bool, norm: nn.Module | None
    ):
        super().__init__()
        self.kernel_size, self.stride = kernel, stride
        self.conv = nn.Conv1d(cin, cout, kernel, stride=stride, bias=bias)
        self.layer_norm = norm

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        x = self.conv(x)
        lengths = torch.clamp(
            torch.div(lengths - self.kernel_size, self.stride, rounding_mode="floor") + 1, min=0
        )
        if isinstance(self.layer_norm, nn.GroupNorm):
            x = _valid_group_norm(x, lengths, self.layer_norm)
        elif self.layer_norm is not None:
            x = self.layer_norm(x)
        return F.gelu(x), lengths


def _valid_group_norm(x: Tensor, lengths: Tensor, norm: nn.GroupNorm) -> Tensor:
    """wav2vec 2.0 base's GroupNorm (one group per channel, statistics over time) over each sample's
    valid frames only: x [B, C, T] -> [B, C, T] in fp32, as a GroupNorm of the unpadded sample.

    A plain GroupNorm would take the zero padding into the mean and variance, so a sample's every
    frame would depend on the longest sample of its batch.
    """
    if norm.num_groups != norm.num_channels:
        return norm(x)
    xf = x.float()
    valid = padding_mask(lengths, x.shape[-1])[:, None, :].to(xf.dtype)
    count = lengths.clamp(min=1)[:, None, None].to(xf.dtype)
    mean = (xf * valid).sum(-1, keepdim=True) / count
    var = ((xf - mean) ** 2 * valid).sum(-1, keepdim=True) / count
    y = (xf - mean) / torch.sqrt(var + norm.eps)
    return y * norm.weight.float()[None, :, None] + norm.bias.float()[None, :, None]


class ConvFeatureEncoder(nn.Module):
    """wav2vec 2.0's raw-waveform CNN: [B, T] samples -> [B, F, C] frames (20 ms with the default layers)."""

    def __init__(self, layers: tuple[tuple[int, int, int], ...], bias: bool, norm: str):
        super().__init__()
        blocks, cin = [], 1
        for i, (cout, kernel, stride) in enumerate(layers):
            if norm == "group_norm":
                block_norm = nn.GroupNorm(cout, cout) if i == 0 else None
            else:
                block_norm = ChannelLayerNorm(cout)
            blocks.append(ConvLayerBlock(cin, cout, kernel, stride, bias, block_norm))
            cin = cout
        self.conv_layers = nn.ModuleList(blocks)
        self.out_channels = cin

    def forward(self, wav: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """wav [B, T] -> (features [B, F, C], frame lengths [B])."""
        x = wav.unsqueeze(1)
        for layer in self.conv_layers:
            x, lengths = layer(x, lengths)
        return x.transpose(1, 2), lengths


def znormalise(wav: Tensor, lengths: Tensor) -> Tensor:
    """Each utterance of wav [B, T] at zero mean and unit variance over its first `lengths` samples,
    zero past them: [B, T]."""
    valid = padding_mask(lengths, wav.shape[1]).to(wav.dtype)
    count = lengths.clamp(min=1)[:, None].to(wav.dtype)
    mean = (wav * valid).sum(1, keepdim=True) / count
    var = ((wav - mean) ** 2 * valid).sum(1, keepdim=True) / count
    return (wav - mean) / torch.sqrt(var + 1e-7) * valid


class _ScaleGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        return x.clone()

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return grad * ctx.scale, None


def scale_gradient(x: Tensor, scale: float) -> Tensor:
    """x unchanged forward; its gradient times `scale` backward (fairseq's GradMultiply, with which
    wav2vec 2.0 slows its feature encoder's learning: `feature_grad_mult` 0.1 in its base recipe)."""
    return x if scale == 1.0 else _ScaleGradient.apply(x, scale)


class LogMelFeatureEncoder(nn.Module):
    """Log-mel spectrogram (10 ms hop) -> conv -> strided conv: [B, T] -> [B, F, C] at 20 ms frames.

    It takes the raw waveform and z-normalises each utterance itself. The spectrogram is not centred
    and frames past a sample's length are zeroed before every conv, so valid frames never see padding:
    the output of a sample is the same in any batch. On the CPU each utterance's spectrogram is
    computed alone and kept in a process-wide memo (training/spectrograms.py): it has no parameters,
    and the small presets see each caption once per epoch of every model they train.
    """

    def __init__(self, n_mels: int, channels: int, sample_rate: int = 16000):
        super().__init__()
        import torchaudio

        self.n_fft, self.hop = 400, 160  # 25 ms windows, 10 ms hop
        self.melspec = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate,
            n_fft=self.n_fft,
            hop_length=self.hop,
            n_mels=n_mels,
            center=False,
        )
        self.conv_in = nn.Conv1d(n_mels, channels, 3, padding=1)
        self.norm_in = ChannelLayerNorm(channels)
        self.conv_stride = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        self.out_channels = channels

    def mel_power(self, wav: Tensor) -> Tensor:
        """torchaudio's MelSpectrogram (power 2) of wav [B, T] -> [B, n_mels, F10], with |X|^2 taken
        as re*re + im*im: the complex abs() and its square root cost a tenth of a `tiny` step, and
        `view_as_real(x).pow(2).sum(-1)` (the same numbers) a reduction over a last axis of 2 that
        took 27 ms of a 330 ms `tiny` step (3 ms this way)."""
        spec = self.melspec.spectrogram
        stft = torch.stft(wav, n_fft=spec.n_fft, hop_length=spec.hop_length,
                          win_length=spec.win_length, window=spec.window, center=False,
                          return_complex=True)  # fmt: skip
        parts = torch.view_as_real(stft)
        power = parts[..., 0] * parts[..., 0] + parts[..., 1] * parts[..., 1]
        return torch.matmul(power.transpose(-1, -2), self.melspec.mel_scale.fb).transpose(-1, -2)

    def log_mel(self, samples: Tensor) -> Tensor:
        """One utterance, samples [T] -> its z-normalised log-mel spectrogram [n_mels, F10], with
        F10 = (T - n_fft) // hop + 1 frames (none when T < n_fft)."""
        samples = samples.float()
        if samples.numel() < self.n_fft:
            return samples.new_zeros(self.melspec.n_mels, 0)
        wav = znormalise(samples[None], torch.tensor([samples.numel()]))
        return torch.log(self.mel_power(wav) + 1e-6)[0]

    def spectrograms(self, wav: Tensor, lengths: Tensor) -> Tensor:
        """Raw wav [B, T] -> each utterance's log-mel spectrogram [B, n_mels, F10], zero past its frames.

        On the CPU, one utterance at a time through the memo (per utterance, 12 ms for a batch of 32 x
        2.6 s against 21 ms batched: no FFTs of padding; 3 ms when all are found). Elsewhere, or when
        the waveform needs a gradient, the batch at once (the same numbers to float rounding).
        """
        frames = max(0, (wav.shape[1] - self.n_fft) // self.hop + 1)
        if wav.device.type != "cpu" or wav.requires_grad:
            spec = torch.log(self.mel_power(znormalise(wav.float(), lengths)) + 1e-6)
            return spec * padding_mask(self.frame_lengths(lengths), frames)[:, None, :]
        key = front_end_digest(
            self.melspec.spectrogram.window, self.melspec.mel_scale.fb,
            settings=("z-normalised log-mel", self.n_fft, self.hop),
        )  # fmt: skip
        compute = inference_safe(self.log_mel)
        out = wav.new_zeros((len(wav), self.melspec.n_mels, frames), dtype=torch.float32)
        for i, n in enumerate(lengths.tolist()):
            spec = MEMO.spectrogram(wav[i, : int(n)], key, compute)
            out[i, :, : spec.shape[1]] = spec
        return out

    def frame_lengths(self, lengths: Tensor) -> Tensor:
        """Samples [B] -> spectrogram frames [B] (10 ms)."""
        return torch.clamp(
            torch.div(lengths - self.n_fft, self.hop, rounding_mode="floor") + 1, min=0
        )

    def forward(self, wav: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Raw wav [B, T] -> (features [B, F, C], frame lengths [B])."""
        with torch.autocast(wav.device.type, enabled=False):  # the FFT wants fp32
            spec = self.spectrograms(wav, lengths)  # [B, n_mels, F10]
        lengths = self.frame_lengths(lengths)
        x = F.gelu(self.norm_in(self.conv_in(spec)))
        x = x * padding_mask(lengths, x.shape[-1])[:, None, :]
        x = F.gelu(self.conv_stride(x))
        lengths = torch.div(lengths + 1, 2, rounding_mode="floor")
        x = x * padding_mask(lengths, x.shape[-1])[:, None, :]
        return x.transpose(1, 2), lengths


class FeatureProjection(nn.Module):
    """LayerNorm -> Linear -> Dropout from the feature encoder's channels to the transformer width."""

    def __init__(self, in_features: int, out_features: int, dropout: float):
        super().__init__()
        self.layer_norm = nn.LayerNorm(in_features)
        self.projection = nn.Linear(in_features, out_features)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.projection(self.layer_norm(x)))


class ConvPositionalEmbedding(nn.Module):
    """Grouped, weight-normalised conv over time; its GELU output is added to the input frames."""

    def __init__(self, dim: int, kernel_size: int, groups: int):
        super().__init__()
        conv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=groups)
        self.conv = nn.utils.parametrizations.weight_norm(conv, name="weight", dim=2)
        self.num_remove = 1 if kernel_size % 2 == 0 else 0

    def forward(self, x: Tensor) -> Tensor:
        """x [B, L, D] -> [B, L, D]."""
        y = self.conv(x.transpose(1, 2))
        if self.num_remove:
            y = y[..., : -self.num_remove]
        return F.gelu(y).transpose(1, 2)


class SelfAttention(nn.Module):
    """Multi-head self-attention through `F.scaled_dot_product_attention` (flash/efficient on GPU)."""

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        self.embed_dim, self.num_heads, self.dropout = dim, num_heads, dropout
        self.head_dim = dim // num_heads
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.q_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, key_mask: Tensor | None = None) -> Tensor:
        """x [B, L, D]; key_mask [B, L] bool (True = attend) -> [B, L, D]."""
        b, length, _ = x.shape
        shape = (b, length, self.num_heads, self.head_dim)
        q = self.q_proj(x).view(shape).transpose(1, 2)
        k = self.k_proj(x).view(shape).transpose(1, 2)
        v = self.v_proj(x).view(shape).transpose(1, 2)
        attn_mask = None if key_mask is None else key_mask[:, None, None, :]
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out_proj(y.transpose(1, 2).reshape(b, length, -1))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, activation_dropout: float, dropout: float):
        super().__init__()
        self.intermediate_dense = nn.Linear(dim, hidden)
        self.intermediate_dropout = nn.Dropout(activation_dropout)
        self.output_dense = nn.Linear(hidden, dim)
        self.output_dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = self.intermediate_dropout(F.gelu(self.intermediate_dense(x)))
        return self.output_dropout(self.output_dense(x))


class EncoderLayer(nn.Module):
    """Post-LN transformer layer (wav2vec 2.0 base): x = LN(x + attn(x)); x = LN'(x + ffn(x))."""

    def __init__(
        self,
        dim: int,
        heads: int,
        ffn: int,
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
    ):
        super().__init__()
        self.attention = SelfAttention(dim, heads, attention_dropout)
        self.dropout = nn.Dropout(dropout)
        self.layer_norm = nn.LayerNorm(dim)
        self.feed_forward = FeedForward(dim, ffn, activation_dropout, dropout)
        self.final_layer_norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, key_mask: Tensor | None = None) -> Tensor:
        """x [B, L, D] -> [B, L, D]."""
        x = self.layer_norm(x + self.dropout(self.attention(x, key_mask)))
        return self.final_layer_norm(x + self.feed_forward(x))


def span_mask(
    length: int, mask_prob: float, span: int, rng: np.random.Generator, min_masks: int = 2
) -> np.ndarray:
    """wav2vec 2.0 span masking of one utterance: [length] bool, True = masked.

    As fairseq's `compute_mask_indices` ("static" lengths, overlaps allowed): about
    mask_prob * length / span start frames drawn without replacement, each masking `span` frames.
    """
    mask = np.zeros(length, dtype=bool)
    if length <= span:
        return mask
    num = max(min_masks, int(mask_prob * length / span + rng.random()))
    num = min(num, length - span)
    starts = rng.choice(length - span, num, replace=False)
    mask[(starts[:, None] + np.arange(span)[None, :]).ravel()] = True
    return mask


class GumbelVectorQuantizer(nn.Module):
    """Product quantizer with Gumbel-softmax choice (G groups x V entries), as in wav2vec 2.0.

    `temperature` is set by the trainer from the update count (2 -> 0.5, x0.999995 per step).
    """

    def __init__(self, in_dim: int, groups: int, entries: int, codevector_dim: int):
        super().__init__()
        self.groups, self.entries = groups, entries
        self.weight_proj = nn.Linear(in_dim, groups * entries)
        nn.init.normal_(self.weight_proj.weight, mean=0.0, std=1.0)
        nn.init.zeros_(self.weight_proj.bias)
        self.codevectors = nn.Parameter(
            torch.empty(1, groups * entries, codevector_dim // groups).uniform_()
        )
        # A buffer, not a float attribute, so that torch.compile does not recompile as it decays.
        self.register_buffer("temperature", torch.tensor(2.0), persistent=False)

    def forward(self, x: Tensor, gumbel_noise: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """x [N, in_dim] -> (codevectors [N, codevector_dim], summed probs [G, V], N as a tensor).

        gumbel_noise [N, G*V] (drawn by the caller, so that it can be keyed per sample); None = argmax
        (evaluation). The diversity loss needs the mean soft assignment over all frames of the global
        batch, so this returns sums and the count, reduced by the caller.
        """
        n = x.shape[0]
        logits = self.weight_proj(x).float().view(n * self.groups, self.entries)
        if gumbel_noise is None:
            hard = F.one_hot(logits.argmax(-1), self.entries).to(logits.dtype)
        else:
            soft = (
                (logits + gumbel_noise.view(n * self.groups, self.entries)) / self.temperature
            ).softmax(-1)
            index = soft.argmax(-1)
            hard = (
                F.one_hot(index, self.entries).to(soft.dtype) - soft.detach() + soft
            )  # straight-through
        prob_sum = logits.softmax(-1).view(n, self.groups, self.entries).sum(0)
        # sum_v hard[n, g, v] * codevector[g, v] as one product per group (fairseq broadcasts
        # [N, G*V, 1] * [1, G*V, d] and sums: an [N, G*V, d] intermediate, 11 ms of a `tiny` step).
        codebook = self.codevectors.float().view(self.groups, self.entries, -1)
        with torch.autocast(x.device.type, enabled=False):  # float32, as the broadcast sum was
            vectors = torch.einsum(
                "ngv,gvd->ngd", hard.view(n, self.groups, self.entries), codebook
            )
        return vectors.reshape(n, -1), prob_sum, torch.tensor(float(n), device=x.device)

    def diversity_loss(self, prob_sum: Tensor, count: Tensor) -> Tensor:
        """(G*V - perplexity) / (G*V): 0 when every entry is used equally often."""
        avg = prob_sum / count.clamp(min=1.0)
        perplexity = torch.exp(-(avg * torch.log(avg + 1e-7)).sum(-1)).sum()
        num_vars = self.groups * self.entries
        return (num_vars - perplexity) / num_vars


def gumbel(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Standard Gumbel noise, float32."""
    u = rng.random(shape, dtype=np.float32)
    return -np.log(-np.log(u + 1e-10) + 1e-10)
