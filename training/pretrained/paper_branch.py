"""The audio VGS branch as the paper's code builds it, for models imported from its bundles.

It differs from `training.model.AudioBranch` where that one was made batch-independent for training
here: the ResDAVEnet normalises with BatchNorm (running statistics: an affine map per channel in eval
mode), with a BatchNorm after the input projection too; the layer-`layer_use` CLS goes through a
two-layer MLP (Linear, GELU, Linear); and the branch transformer attends to
floor(n / round(n / n')) ResDAVEnet frames, the authors' count (n: speech frames, n': frames after
the 16x pooling), which can leave out the last pooled frame. Their code runs padded batches through
the convolutions; here frames past each utterance's length are zeroed before every convolution and
the frame count is taken per utterance, so each utterance gets what the authors' code gives it alone
in a batch of one, whatever it is batched with.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from training.model import ResidualBlock
from training.run.config import ModelConfig
from training.wav2vec2 import EncoderLayer, padding_mask

__all__ = ["PaperAudioBranch", "BERT_LAYER_NORM_EPS"]

BERT_LAYER_NORM_EPS = 1e-12  # the LayerNorm eps of the paper's BertLayer and VisualFeatEncoder


class PaperResidualBlock(ResidualBlock):
    """ResDAVEnet basic block with the authors' BatchNorm: conv -> BN -> ReLU -> conv -> BN, plus a
    (strided) shortcut conv -> BN, then ReLU; frames past each length are zeroed as in ResidualBlock."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int):
        super().__init__(cin, cout, kernel, stride)
        self.norm1 = nn.BatchNorm1d(cout)
        self.norm2 = nn.BatchNorm1d(cout)
        if self.shortcut is not None:
            self.shortcut[1] = nn.BatchNorm1d(cout)


class PaperAudioBranch(nn.Module):
    """Layer-`layer_use` frames -> linear, BN, ReLU -> ResDAVEnet -> prepend MLP(CLS) -> BertLayer -> linear."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        widths, e = cfg.resdavenet_widths, cfg.embed_dim
        self.input_proj = nn.Linear(cfg.dim, widths[0])
        self.input_norm = nn.BatchNorm1d(widths[0])
        blocks, cin = [], widths[0]
        for width, count in zip(widths, cfg.resdavenet_blocks, strict=True):
            for i in range(count):
                stride = 2 if i == 0 else 1
                blocks.append(PaperResidualBlock(cin, width, cfg.resdavenet_kernel, stride))
                cin = width
        self.resdavenet = nn.ModuleList(blocks)
        self.cls_proj = nn.Sequential(
            nn.Linear(cfg.dim, 2 * cfg.dim), nn.GELU(), nn.Linear(2 * cfg.dim, e)
        )
        self.layers = nn.ModuleList(
            EncoderLayer(e, cfg.branch_heads, 4 * e) for _ in range(cfg.audio_branch_layers)
        )
        for module in self.layers.modules():
            if isinstance(module, nn.LayerNorm):
                module.eps = BERT_LAYER_NORM_EPS
        self.out_proj = nn.Linear(e, e)

    def forward(self, frames: Tensor, cls: Tensor, lengths: Tensor) -> Tensor:
        """frames [B, F, dim] (CLS dropped), cls [B, dim], lengths [B] -> audio embedding [B, E]."""
        valid = padding_mask(lengths, frames.shape[1])[:, None, :]
        x = self.input_proj(frames).transpose(1, 2) * valid
        x = F.relu(self.input_norm(x)) * valid
        pooled = lengths
        for block in self.resdavenet:
            x, pooled = block(x, pooled)
        # The authors' count of attended frames: pooling ratio round(n / n'), then n // ratio.
        ratio = torch.round(lengths.double() / pooled.clamp(min=1).double())
        attended = torch.div(lengths.double(), ratio.clamp(min=1)).long()
        x = torch.cat([self.cls_proj(cls)[:, None, :], x.transpose(1, 2)], dim=1)
        key_mask = F.pad(padding_mask(attended, x.shape[1] - 1), (1, 0), value=True)
        for layer in self.layers:
            x = layer(x, key_mask)
        return self.out_proj(x[:, 0])
