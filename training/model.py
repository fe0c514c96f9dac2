"""The VGS+ model: one wav2vec 2.0 speech encoder, two objectives.

    wav --feature_encoder--> frames --feature_projection, mask, CLS, pos conv--> shared_layers (1..8)
        shared_layers --> ssl_decoder (9..12) --> loss_aud (masked contrastive vs. quantized frames)
        shared_layers --> audio_branch (ResDAVEnet + transformer) --\
        regions -------> image_branch (transformer + MLP) ----------+--> loss_av (masked margin softmax)

Read top to bottom: configuration comes from training/config.py, the wav2vec 2.0 pieces from
training/wav2vec2.py, the objectives from training/losses.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from training.losses import contrastive_loss_sum
from training.run.config import ModelConfig
from training.wav2vec2 import (
    ChannelLayerNorm,
    ConvFeatureEncoder,
    ConvPositionalEmbedding,
    EncoderLayer,
    FeatureProjection,
    GumbelVectorQuantizer,
    LogMelFeatureEncoder,
    gumbel,
    padding_mask,
    receptive_field,
    scale_gradient,
    span_mask,
    znormalise,
)

__all__ = ["SSLVGS", "AudioBranch", "ImageBranch", "TrainOutputs"]


class ResidualBlock(nn.Module):
    """ResDAVEnet basic block over time: conv -> norm -> ReLU -> conv -> norm, plus a (strided) shortcut.

    The norm is a per-frame LayerNorm rather than BatchNorm, so a caption's embedding does not depend
    on the rest of its batch or on padding (DDP gives the same loss as one process).
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int):
        super().__init__()
        pad = kernel // 2
        self.conv1 = nn.Conv1d(cin, cout, kernel, stride=stride, padding=pad, bias=False)
        self.norm1 = ChannelLayerNorm(cout)
        self.conv2 = nn.Conv1d(cout, cout, kernel, padding=pad, bias=False)
        self.norm2 = ChannelLayerNorm(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv1d(cin, cout, 1, stride=stride, bias=False), ChannelLayerNorm(cout)
            )
        self.stride = stride

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """x [B, C, T] (zero past `lengths`) -> [B, C', T / stride]."""
        out_lengths = torch.div(lengths + self.stride - 1, self.stride, rounding_mode="floor")
        valid = padding_mask(out_lengths, -(-x.shape[-1] // self.stride))[:, None, :]
        y = F.relu(self.norm1(self.conv1(x))) * valid
        y = self.norm2(self.conv2(y))
        shortcut = x if self.shortcut is None else self.shortcut(x)
        return F.relu(y + shortcut) * valid, out_lengths


class AudioBranch(nn.Module):
    """Layer-`layer_use` frames -> ResDAVEnet (16x pooling) -> prepend projected CLS -> transformer -> CLS."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        widths, e = cfg.resdavenet_widths, cfg.embed_dim
        self.input_proj = nn.Linear(cfg.dim, widths[0])
        blocks, cin = [], widths[0]
        for width, count in zip(widths, cfg.resdavenet_blocks, strict=True):
            for i in range(count):
                blocks.append(
                    ResidualBlock(cin, width, cfg.resdavenet_kernel, stride=2 if i == 0 else 1)
                )
                cin = width
        self.resdavenet = nn.ModuleList(blocks)
        self.cls_proj = nn.Linear(cfg.dim, e)
        self.layers = nn.ModuleList(
            EncoderLayer(e, cfg.branch_heads, 4 * e, cfg.dropout, cfg.attention_dropout)
            for _ in range(cfg.audio_branch_layers)
        )
        # The paper's code projects the CLS output linearly (`trm2_proj`): without it the embedding
        # is a LayerNorm output of fixed norm, and the dot-product scores start large and collapse.
        self.out_proj = nn.Linear(e, e)
        nn.init.normal_(self.out_proj.weight, std=cfg.head_init_std)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, frames: Tensor, cls: Tensor, lengths: Tensor) -> Tensor:
        """frames [B, F, dim] (CLS dropped), cls [B, dim], lengths [B] -> audio embedding [B, E]."""
        x = (
            self.input_proj(frames).transpose(1, 2)
            * padding_mask(lengths, frames.shape[1])[:, None, :]
        )
        for block in self.resdavenet:
            x, lengths = block(x, lengths)
        x = torch.cat([self.cls_proj(cls)[:, None, :], x.transpose(1, 2)], dim=1)
        key_mask = F.pad(padding_mask(lengths, x.shape[1] - 1), (1, 0), value=True)
        for layer in self.layers:
            x = layer(x, key_mask)
        return self.out_proj(x[:, 0])


class ImageBranch(nn.Module):
    """(LN(fc(region feats)) + LN(fc(boxes))) / 2 -> prepend CLS -> transformer layers -> MLP on CLS."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        e = cfg.embed_dim
        self.feat_fc, self.feat_ln = nn.Linear(cfg.region_dim, e), nn.LayerNorm(e)
        self.box_fc, self.box_ln = nn.Linear(4, e), nn.LayerNorm(e)
        self.cls_token = nn.Parameter(torch.randn(1, 1, e) * 0.02)
        self.layers = nn.ModuleList(
            EncoderLayer(e, cfg.branch_heads, 4 * e, cfg.dropout, cfg.attention_dropout)
            for _ in range(cfg.image_layers)
        )
        self.head = nn.Sequential(nn.Linear(e, 2 * e), nn.GELU(), nn.Linear(2 * e, e))
        # Start with small image embeddings: dot-product scores near 0, so the retrieval softmax
        # starts unsaturated (at chance) instead of confidently wrong.
        nn.init.normal_(self.head[-1].weight, std=cfg.head_init_std)
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, feats: Tensor, boxes: Tensor) -> Tensor:
        """feats [B, R, D], boxes [B, R, 4] (x1, y1, x2, y2 in [0, 1]) -> image embedding [B, E]."""
        x = (self.feat_ln(self.feat_fc(feats)) + self.box_ln(self.box_fc(boxes))) / 2
        x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], dim=1)
        for layer in self.layers:
            x = layer(x)
        return self.head(x[:, 0])


@dataclass
class TrainOutputs:
    """What one training forward returns: retrieval embeddings and the wav2vec 2.0 loss's partial sums.

    Sums rather than means, so the trainer can normalise over the global batch (see losses.py).
    VGS fields are None when the forward was asked for no VGS outputs (`av=False`), wav2vec 2.0
    fields None when asked for none of its (`aud=False`).
    """

    audio_embedding: Tensor | None  # [B, E]
    image_embedding: Tensor | None  # [B, E]
    contrastive_sum: Tensor | None  # scalar, summed over masked frames
    masked_count: Tensor | None  # scalar: frames in the contrastive sum
    prob_sum: Tensor | None  # [G, V]: soft codebook assignments summed over masked frames
    quantized_count: Tensor | None  # scalar: frames in prob_sum
    feature_square_sum: Tensor | None  # scalar: sum of squared front-end features over valid frames
    feature_count: Tensor | None  # scalar: valid frames x channels

    @property
    def has_av(self) -> bool:
        return self.audio_embedding is not None

    @property
    def has_aud(self) -> bool:
        return self.contrastive_sum is not None


class SSLVGS(nn.Module):
    """wav2vec 2.0 speech encoder with an SSL decoder and a visually grounded branch (Khorrami et al. 2023)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.front_end == "conv":
            self.feature_encoder = ConvFeatureEncoder(cfg.conv_layers, cfg.conv_bias, cfg.conv_norm)
        else:
            self.feature_encoder = LogMelFeatureEncoder(
                cfg.n_mels, cfg.logmel_channels, cfg.sample_rate
            )
        channels = self.feature_encoder.out_channels
        self.feature_projection = FeatureProjection(channels, cfg.dim, cfg.projection_dropout)
        self.mask_emb = nn.Parameter(torch.empty(cfg.dim).uniform_())
        self.cls_token = nn.Parameter(torch.randn(1, 1, cfg.dim) * 0.02) if cfg.use_cls else None
        self.pos_conv_embed = ConvPositionalEmbedding(
            cfg.dim, cfg.pos_conv_kernel, cfg.pos_conv_groups
        )
        self.layer_norm = nn.LayerNorm(cfg.dim)
        self.dropout = nn.Dropout(cfg.dropout)

        def layer() -> EncoderLayer:
            return EncoderLayer(
                cfg.dim,
                cfg.num_heads,
                cfg.ffn_dim,
                cfg.dropout,
                cfg.attention_dropout,
                cfg.activation_dropout,
            )

        self.shared_layers = nn.ModuleList(layer() for _ in range(cfg.layer_use))
        self.ssl_decoder = nn.ModuleList(layer() for _ in range(cfg.num_layers - cfg.layer_use))
        self.quantizer = GumbelVectorQuantizer(
            channels, cfg.codebook_groups, cfg.codebook_entries, cfg.codevector_dim
        )
        self.project_q = nn.Linear(cfg.codevector_dim, cfg.final_dim)
        self.final_proj = nn.Linear(cfg.dim, cfg.final_dim)
        self.audio_branch = AudioBranch(cfg)
        self.image_branch = ImageBranch(cfg)

    # ---- facts the probes need -------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return self.cfg.num_layers

    @property
    def dim(self) -> int:
        return self.cfg.dim

    @property
    def sample_rate(self) -> int:
        return self.cfg.sample_rate

    @property
    def frame_rate(self) -> float:
        if self.cfg.front_end == "logmel":
            return self.cfg.sample_rate / 320  # 10 ms hop, then stride 2
        stride = int(np.prod([s for _, _, s in self.cfg.conv_layers]))
        return self.cfg.sample_rate / stride

    @property
    def min_samples(self) -> int:
        """The fewest samples that give one frame (the front end's receptive field)."""
        if self.cfg.front_end == "logmel":
            return int(self.feature_encoder.n_fft)
        return receptive_field((k, s) for _, k, s in self.cfg.conv_layers)

    # ---- speech encoder ----------------------------------------------------------------------
    def features(self, wav: Tensor, wav_lengths: Tensor | None) -> tuple[Tensor, Tensor]:
        """Raw waveform -> front-end frames of each z-normalised utterance: wav [B, T] -> ([B, F, C],
        frame lengths [B]). The log-mel front end normalises each utterance itself (its spectrograms
        are memoised per utterance on the CPU); the conv front end gets the normalised batch."""
        if wav_lengths is None:
            wav_lengths = torch.full((len(wav),), wav.shape[1], dtype=torch.long, device=wav.device)
        wav_lengths = wav_lengths.to(wav.device)
        if isinstance(self.feature_encoder, LogMelFeatureEncoder):
            return self.feature_encoder(wav, wav_lengths)
        return self.feature_encoder(znormalise(wav, wav_lengths), wav_lengths)

    def _transformer_input(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Projected frames [B, F, dim] -> (CLS + frames after positional conv and LN, key mask)."""
        valid = padding_mask(lengths, x.shape[1])
        x = x * valid[..., None]
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(len(x), -1, -1).to(x.dtype), x], dim=1)
            valid = F.pad(valid, (1, 0), value=True)
        x = self.dropout(self.layer_norm(x + self.pos_conv_embed(x)))
        return x, valid

    def _drop_cls(self, x: Tensor) -> Tensor:
        return x[:, 1:] if self.cls_token is not None else x

    @torch.no_grad()
    def hidden_states(
        self, wav: Tensor, wav_lengths: Tensor | None = None, max_layer: int | None = None
    ) -> tuple[list[Tensor], Tensor]:
        """Unmasked per-layer frames: wav [B, T] -> (max_layer + 1 tensors [B, F, dim], frame
        lengths [B]); all N + 1 when `max_layer` is None, and no layer past it is run.

        Entry 0 is the input of transformer layer 1 (projected front-end frames after the positional
        convolution and LayerNorm, the Hugging Face `hidden_states[0]` convention); entry i the output
        of layer i. The CLS token is dropped. Frames past a sample's length are padding.
        """
        features, lengths = self.features(wav, wav_lengths)
        x, key_mask = self._transformer_input(self.feature_projection(features), lengths)
        states = [self._drop_cls(x)]
        for layer in [*self.shared_layers, *self.ssl_decoder][:max_layer]:
            x = layer(x, key_mask)
            states.append(self._drop_cls(x))
        return states, lengths

    def _vgs_audio(self, x: Tensor, lengths: Tensor) -> Tensor:
        """Layer-`layer_use` output (with CLS) -> audio embedding [B, E]."""
        frames = self._drop_cls(x)
        cls = x[:, 0] if self.cls_token is not None else frames.mean(1)
        return self.audio_branch(frames, cls, lengths)

    def encode_audio(self, wav: Tensor, wav_lengths: Tensor | None = None) -> Tensor:
        """Unmasked speech -> retrieval embedding: wav [B, T] -> [B, E]."""
        features, lengths = self.features(wav, wav_lengths)
        x, key_mask = self._transformer_input(self.feature_projection(features), lengths)
        for layer in self.shared_layers:
            x = layer(x, key_mask)
        return self._vgs_audio(x, lengths)

    def encode_image(self, feats: Tensor, boxes: Tensor) -> Tensor:
        """Region features [B, 36, D] and boxes [B, 36, 4] -> retrieval embedding [B, E]."""
        return self.image_branch(feats, boxes)

    # ---- training forward --------------------------------------------------------------------
    def set_num_updates(self, num_updates: int) -> None:
        """Quantizer temperature from the update count: max(start * decay^n, end)."""
        start, end, decay = self.cfg.quantizer_temperature
        self.quantizer.temperature.fill_(max(start * decay**num_updates, end))

    def forward(
        self,
        wav: Tensor,
        wav_lengths: Tensor,
        feats: Tensor,
        boxes: Tensor,
        sample_seeds: list[int],
        av_grad: bool = True,
        aud_grad: bool = True,
        *,
        av: bool = True,
        aud: bool = True,
    ) -> TrainOutputs:
        """One training pass over a batch: the outputs of each objective asked for (`av`: VGS,
        `aud`: wav2vec 2.0; both by default), each with gradient only if asked (`av_grad`, `aud_grad`).

        The input is span-masked for the wav2vec 2.0 objective; the VGS branch sees the masked input
        too when `cfg.mask_vgs_input` (the paper's code), else a second, unmasked pass. All
        randomness (masks, distractors, Gumbel noise) comes from `sample_seeds` [B], one seed per
        caption, so a caption is treated the same way whatever batch or process it lands in.
        An objective not asked for is not computed at all: its TrainOutputs fields are None.
        """
        if not (av or aud):
            raise ValueError("forward needs at least one objective (av or aud)")
        cfg = self.cfg
        av_grad, aud_grad = av_grad and av, aud_grad and aud
        features, lengths = self.features(wav, wav_lengths)
        features = scale_gradient(features, cfg.feature_grad_mult)
        valid = padding_mask(lengths, features.shape[1])
        feature_square_sum = feature_count = None
        if aud:
            with torch.set_grad_enabled(torch.is_grad_enabled() and aud_grad):
                feature_square_sum = (features.float() ** 2 * valid[..., None]).sum()
                feature_count = (valid.sum() * features.shape[-1]).to(torch.float32)
        normed = self.feature_projection.layer_norm(features)
        x = self.feature_projection.dropout(self.feature_projection.projection(normed))
        unmasked = x

        # The masked pass through the shared layers: wav2vec 2.0's input, and the VGS branch's
        # when it reads the masked input.
        masked_pass = aud or cfg.mask_vgs_input
        if masked_pass:
            rngs = [np.random.default_rng(seed) for seed in sample_seeds]
            mask_np = np.zeros(tuple(valid.shape), dtype=bool)
            for b, (rng, n) in enumerate(zip(rngs, lengths.tolist(), strict=True)):
                mask_np[b, :n] = span_mask(n, cfg.mask_prob, cfg.mask_length, rng)
            mask = torch.from_numpy(mask_np).to(x.device)
            x, key_mask = self._transformer_input(
                torch.where(mask[..., None], self.mask_emb.to(x.dtype), x), lengths
            )
            masked_grad = aud_grad or (av_grad and cfg.mask_vgs_input)
            with torch.set_grad_enabled(torch.is_grad_enabled() and masked_grad):
                for layer in self.shared_layers:
                    x = layer(x, key_mask)
        audio_embedding = image_embedding = None
        if av:
            with torch.set_grad_enabled(torch.is_grad_enabled() and av_grad):
                if cfg.mask_vgs_input:
                    audio_embedding = self._vgs_audio(x, lengths)
                else:  # a second, unmasked pass through the shared layers for the VGS branch
                    y, y_mask = self._transformer_input(unmasked, lengths)
                    for layer in self.shared_layers:
                        y = layer(y, y_mask)
                    audio_embedding = self._vgs_audio(y, lengths)
                image_embedding = self.image_branch(feats, boxes)
        contrastive_sum = masked_count = prob_sum = quantized_count = None
        if aud:
            with torch.set_grad_enabled(torch.is_grad_enabled() and aud_grad):
                for layer in self.ssl_decoder:
                    x = layer(x, key_mask)
                predictions = self.final_proj(self._drop_cls(x)[mask])
                negative_index, noise = self._draw_distractors(rngs, mask_np, x.device)
                codevectors, prob_sum, quantized_count = self.quantizer(normed[mask], noise)
                targets = self.project_q(codevectors)
                # frames of utterances with a single masked frame have no negatives
                keep = negative_index[:, 0] >= 0
                contrastive_sum = contrastive_loss_sum(
                    predictions[keep], targets, negative_index[keep], cfg.logit_temperature
                )
            masked_count = keep.sum().to(torch.float32)
        return TrainOutputs(
            audio_embedding, image_embedding, contrastive_sum, masked_count, prob_sum, quantized_count,
            feature_square_sum, feature_count,
        )  # fmt: skip

    def _draw_distractors(
        self, rngs: list[np.random.Generator], mask: np.ndarray, device: torch.device
    ) -> tuple[Tensor, Tensor]:
        """Per utterance, K distractors among its other masked frames, and Gumbel noise for each frame.

        Returns negative_index [M, K] into the batch's masked frames (-1 rows: no other masked frame)
        and noise [M, G*V].
        """
        cfg, k = self.cfg, self.cfg.num_negatives
        index_rows, noise_rows, offset = [], [], 0
        for rng, row in zip(rngs, mask, strict=True):
            m = int(row.sum())
            if m >= 2:
                draw = rng.integers(0, m - 1, size=(m, k))
                draw = draw + (draw >= np.arange(m)[:, None])  # skip the frame itself
                index_rows.append(draw + offset)
            else:
                index_rows.append(np.full((m, k), -1))
            noise_rows.append(gumbel((m, cfg.codebook_groups * cfg.codebook_entries), rng))
            offset += m
        index = torch.from_numpy(np.concatenate(index_rows)).to(device)
        noise = torch.from_numpy(np.concatenate(noise_rows)).to(device)
        return index, noise
