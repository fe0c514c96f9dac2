"""Import wav2vec 2.0 weights from torchaudio's `wav2vec2_model` into the speech encoder.

torchaudio's importers read fairseq (`import_fairseq_model`) and Hugging Face
(`import_huggingface_model`) checkpoints into the same `Wav2Vec2Model`, so this also starts an SSLVGS
model from those. The speech encoder's modules mirror torchaudio's, so importing is renaming:

    feature_extractor.*                       -> feature_encoder.*
    encoder.feature_projection.*              -> feature_projection.*
    encoder.transformer.pos_conv_embed.*      -> pos_conv_embed.*
    encoder.transformer.layer_norm.*          -> layer_norm.*
    encoder.transformer.layers.{i}.*          -> shared_layers.{i}.* (i < layer_use) or ssl_decoder.*

Files on disk (fairseq checkpoints, Hugging Face directories, the paper's bundles) are read by
training/pretrained/, which reuses `sslvgs_name` for the paper's speech encoder.

What torchaudio's model does not have (CLS token, mask embedding, quantizer, VGS branches) keeps its
own initialisation. torchaudio's model has no CLS token; build with `use_cls=False` to reproduce its
hidden states exactly.
"""

from __future__ import annotations

from typing import Any

import torch

from training.run.config import ModelConfig

__all__ = ["torchaudio_config", "import_torchaudio_wav2vec2", "from_torchaudio"]


def torchaudio_config(ta_model: torch.nn.Module) -> dict[str, Any]:
    """ModelConfig fields that reproduce a torchaudio `Wav2Vec2Model`'s speech encoder."""
    blocks = ta_model.feature_extractor.conv_layers
    first_norm = blocks[0].layer_norm
    layers = ta_model.encoder.transformer.layers
    pos = ta_model.encoder.transformer.pos_conv_embed
    attention = layers[0].attention
    return {
        "front_end": "conv",
        "conv_layers": tuple((b.conv.out_channels, b.kernel_size, b.stride) for b in blocks),
        "conv_bias": blocks[0].conv.bias is not None,
        "conv_norm": "group_norm" if isinstance(first_norm, torch.nn.GroupNorm) else "layer_norm",
        "dim": attention.embed_dim,
        "num_heads": attention.num_heads,
        "num_layers": len(layers),
        "ffn_dim": layers[0].feed_forward.intermediate_dense.out_features,
        "pos_conv_kernel": pos.kernel_size,
        "pos_conv_groups": pos.conv.groups,
    }


def sslvgs_name(key: str, layer_use: int) -> str | None:
    renames = (
        ("feature_extractor.", "feature_encoder."),
        ("encoder.feature_projection.", "feature_projection."),
        ("encoder.transformer.pos_conv_embed.", "pos_conv_embed."),
        ("encoder.transformer.layer_norm.", "layer_norm."),
    )
    for old, new in renames:
        if key.startswith(old):
            name = new + key[len(old) :]
            # Older state dicts store weight norm as weight_g / weight_v.
            name = name.replace("conv.weight_g", "conv.parametrizations.weight.original0")
            return name.replace("conv.weight_v", "conv.parametrizations.weight.original1")
    prefix = "encoder.transformer.layers."
    if key.startswith(prefix):
        index, rest = key[len(prefix) :].split(".", 1)
        i = int(index)
        return (
            f"shared_layers.{i}.{rest}" if i < layer_use else f"ssl_decoder.{i - layer_use}.{rest}"
        )
    return None  # e.g. the CTC head `aux.*` of fine-tuned models


def import_torchaudio_wav2vec2(
    model: torch.nn.Module, state_dict: dict[str, torch.Tensor]
) -> list[str]:
    """Copy a torchaudio wav2vec2 state dict into `model`'s speech encoder; returns the keys skipped.

    Raises ValueError naming the first tensor whose shape differs (build the model with
    `torchaudio_config(...)` fields).
    """
    own = model.state_dict()
    mapped, skipped = {}, []
    for key, value in state_dict.items():
        name = sslvgs_name(key, model.cfg.layer_use)
        if name is None:
            skipped.append(key)
            continue
        if name not in own:
            raise ValueError(f"torchaudio tensor {key} has no counterpart {name} in this model")
        if own[name].shape != value.shape:
            raise ValueError(
                f"torchaudio tensor {key} {tuple(value.shape)} does not fit {name} {tuple(own[name].shape)}"
            )
        mapped[name] = value
    model.load_state_dict(mapped, strict=False)
    return skipped


def from_torchaudio(ta_model: torch.nn.Module, **overrides: Any):
    """A new SSLVGS whose speech encoder carries a torchaudio `Wav2Vec2Model`'s weights.

    Other fields (branches, objective) come from the paper preset unless overridden.
    """
    import dataclasses

    from training.model import SSLVGS

    fields = {**torchaudio_config(ta_model), **overrides}
    model = SSLVGS(dataclasses.replace(ModelConfig(), **fields))
    import_torchaudio_wav2vec2(model, ta_model.state_dict())
    return model
