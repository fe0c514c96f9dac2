"""Checkpoints in other projects' layouts, with random weights, for the import tests.

fairseq's parameter names are written here from fairseq's own modules (fairseq/models/wav2vec/
wav2vec2.py, fairseq/models/hubert/hubert.py, fairseq/modules/gumbel_vector_quantizer.py):
`feature_extractor.conv_layers.{i}` is Sequential(conv, dropout, norm, GELU), the LayerNorm variant
Sequential(TransposeLast, Fp32LayerNorm, TransposeLast); `encoder.pos_conv` is
Sequential(weight-normed conv, SamePad, GELU); each `encoder.layers.{i}` has `self_attn.{q,k,v,out}_proj`,
`self_attn_layer_norm`, `fc1`, `fc2`, `final_layer_norm`. This mapping runs the other way from the
importer's (torchaudio -> fairseq), so a slip in either shows up as a failure.
"""

from __future__ import annotations

import re

import torch
from torchaudio.models import wav2vec2_model

SMALL_CONV = [(64, 10, 5)] + [(64, 3, 2)] * 4 + [(64, 2, 2)] * 2
SMALL_CONV_TEXT = "[(64, 10, 5)] + [(64, 3, 2)] * 4 + [(64, 2, 2)] * 2"

TORCHAUDIO_TO_FAIRSEQ = [
    (r"feature_extractor\.conv_layers\.(\d+)\.conv\.", r"feature_extractor.conv_layers.\1.0."),
    (r"feature_extractor\.conv_layers\.(\d+)\.layer_norm\.", r"feature_extractor.conv_layers.\1.2.1."),
    (r"encoder\.feature_projection\.layer_norm\.", "layer_norm."),
    (r"encoder\.feature_projection\.projection\.", "post_extract_proj."),
    (r"encoder\.transformer\.pos_conv_embed\.conv\.parametrizations\.weight\.original0", "encoder.pos_conv.0.weight_g"),
    (r"encoder\.transformer\.pos_conv_embed\.conv\.parametrizations\.weight\.original1", "encoder.pos_conv.0.weight_v"),
    (r"encoder\.transformer\.pos_conv_embed\.conv\.bias", "encoder.pos_conv.0.bias"),
    (r"encoder\.transformer\.layer_norm\.", "encoder.layer_norm."),
    (r"encoder\.transformer\.layers\.(\d+)\.attention\.", r"encoder.layers.\1.self_attn."),
    (r"encoder\.transformer\.layers\.(\d+)\.layer_norm\.", r"encoder.layers.\1.self_attn_layer_norm."),
    (r"encoder\.transformer\.layers\.(\d+)\.feed_forward\.intermediate_dense\.", r"encoder.layers.\1.fc1."),
    (r"encoder\.transformer\.layers\.(\d+)\.feed_forward\.output_dense\.", r"encoder.layers.\1.fc2."),
    (r"encoder\.transformer\.layers\.(\d+)\.final_layer_norm\.", r"encoder.layers.\1.final_layer_norm."),
]  # fmt: skip


def random_torchaudio(
    seed: int = 0, *, extractor_mode: str = "group_norm", layer_norm_first: bool = False,
    dim: int = 96, layers: int = 4, heads: int = 4, conv: list = SMALL_CONV,
):  # fmt: skip
    """A torchaudio Wav2Vec2Model of a small configuration with random values in every tensor."""
    torch.manual_seed(seed)
    model = wav2vec2_model(
        extractor_mode=extractor_mode,
        extractor_conv_layer_config=conv,
        extractor_conv_bias=extractor_mode == "layer_norm",
        encoder_embed_dim=dim,
        encoder_projection_dropout=0.0,
        encoder_pos_conv_kernel=16,
        encoder_pos_conv_groups=4,
        encoder_num_layers=layers,
        encoder_num_heads=heads,
        encoder_attention_dropout=0.0,
        encoder_ff_interm_features=2 * dim,
        encoder_ff_interm_dropout=0.0,
        encoder_dropout=0.0,
        encoder_layer_norm_first=layer_norm_first,
        encoder_layer_drop=0.0,
        aux_num_out=None,
    )
    with torch.no_grad():
        for name, p in model.named_parameters():
            is_norm_scale = "norm" in name and name.endswith("weight")
            p.copy_(torch.randn_like(p) * 0.1 + (1.0 if is_norm_scale else 0.0))
    return model.eval()


def fairseq_state(ta_model, extractor_mode: str = "group_norm") -> dict[str, torch.Tensor]:
    """The encoder's tensors under fairseq's names."""
    rules = TORCHAUDIO_TO_FAIRSEQ
    if extractor_mode == "group_norm":  # Sequential(conv, dropout, GroupNorm, GELU) in layer 0 only
        rules = [
            (
                r"feature_extractor\.conv_layers\.0\.layer_norm\.",
                "feature_extractor.conv_layers.0.2.",
            ),
            *rules,
        ]
    out = {}
    for key, value in ta_model.state_dict().items():
        for pattern, replacement in rules:
            if re.match(pattern, key):
                out[re.sub(pattern, replacement, key)] = value.clone()
                break
        else:
            raise AssertionError(f"no fairseq name for {key}")
    return out


def wav2vec2_pretraining_extras(dim: int, channels: int = 64, groups: int = 2, entries: int = 8,
                                final_dim: int = 32) -> dict[str, torch.Tensor]:  # fmt: skip
    """fairseq Wav2Vec2Model's pretraining-only tensors (quantizer, projections, mask embedding)."""
    return {
        "quantizer.vars": torch.rand(1, groups * entries, final_dim // groups),
        "quantizer.weight_proj.weight": torch.randn(groups * entries, channels),
        "quantizer.weight_proj.bias": torch.zeros(groups * entries),
        "project_q.weight": torch.randn(final_dim, final_dim),
        "project_q.bias": torch.zeros(final_dim),
        "final_proj.weight": torch.randn(final_dim, dim),
        "final_proj.bias": torch.zeros(final_dim),
        "mask_emb": torch.rand(dim),
    }


def hubert_pretraining_extras(dim: int, classes: int = 50, final_dim: int = 32):
    """fairseq HubertModel's pretraining-only tensors."""
    return {
        "label_embs_concat": torch.rand(classes, final_dim),
        "final_proj.weight": torch.randn(final_dim, dim),
        "final_proj.bias": torch.zeros(final_dim),
        "mask_emb": torch.rand(dim),
    }


def torchaudio_reference(ta_model, wav: torch.Tensor) -> list[torch.Tensor]:
    """torchaudio's own forward of one utterance [1, T]: the input of layer 1, then each layer."""
    with torch.no_grad():
        features, _ = ta_model.feature_extractor(wav, None)
        x, _ = ta_model.encoder._preprocess(features, None)
        first = ta_model.encoder.transformer._preprocess(x)
        layers, _ = ta_model.extract_features(wav)
    return [first, *layers]
