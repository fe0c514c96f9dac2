"""The paper's own checkpoints: VGS+ / FaST-VGS+ bundles imported into `training.model.SSLVGS`.

The authors' code (scheduled_SSL_XSL, built on FaST-VGS-Family) saves `best_bundle.pth` (best
validation recall) and `bundle.pth` (latest): a dict with `dual_encoder` (the state dict of its
`DualEncoder`), `optimizer`, `indices` (sampler state, a numpy array) and, in FaST-VGS, `cross_encoder`.
Beside it, `args.pkl` is the run's pickled argparse Namespace. Both are read without running pickled
code (safe_pickle). The dual encoder's tensors are renamed into SSLVGS:

    conv1_trm1_trm3.*  (Wav2Vec2Model_cls: fairseq's wav2vec 2.0 names + cls_token)
        feature_extractor / post_extract_proj / layer_norm / encoder.*  -> as fairseq.py, then as
            torchaudio_models.py (encoder.layers.{i} -> shared_layers.{i} or ssl_decoder.{i - layer_use})
        cls_token, mask_emb, project_q, final_proj -> the same names
        quantizer.vars / quantizer.weight_proj     -> quantizer.codevectors / quantizer.weight_proj
    conv2.linear / conv2.bn1                       -> audio_branch.input_proj / input_norm
    conv2.layer{s}.{b}.{conv1,bn1,conv2,bn2}       -> audio_branch.resdavenet.{j}.{conv1,norm1,conv2,norm2}
    conv2.layer{s}.{b}.downsample.{0,1}            -> audio_branch.resdavenet.{j}.shortcut.{0,1}
        (Conv2d [out, in, 1, k] kernels become Conv1d [out, in, k]; j counts blocks over stages)
    audio_cls_token_proj_pre.{0,2}                 -> audio_branch.cls_proj.{0,2}
    trm2.* (a BertLayer), trm2_proj                -> audio_branch.layers.0.*, audio_branch.out_proj
    visn_fc.{visn_fc,visn_layer_norm,box_fc,box_layer_norm} -> image_branch.{feat_fc,feat_ln,box_fc,box_ln}
    visual_cls_token, trm.{i}.*                    -> image_branch.cls_token, image_branch.layers.{i}.*
    visual_cls_token_proj_coarse.{0,2}             -> image_branch.head.{0,2}
    BertLayer: attention.self.{query,key,value} -> attention.{q,k,v}_proj; attention.output.dense ->
        attention.out_proj; attention.output.LayerNorm -> layer_norm; intermediate.dense / output.dense
        -> feed_forward.{intermediate,output}_dense; output.LayerNorm -> final_layer_norm

`audio_cls_token_proj_coarse` (computed, then overwritten, by the authors' forward) and the cross
encoder are not used. The model is the paper preset with the sizes args.pkl records; the audio
branch is the authors' (`paper_branch.PaperAudioBranch`), and the branches' LayerNorms take their eps.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path
from typing import Any

import torch

from training.pretrained.fairseq import parse_conv_layers, torchaudio_name
from training.pretrained.paper_branch import BERT_LAYER_NORM_EPS, PaperAudioBranch
from training.pretrained.safe_pickle import read_namespace, torch_load
from training.pretrained.torchaudio_models import sslvgs_name
from training.run.config import ModelConfig

__all__ = ["BundleError", "bundle_config", "bundle_state", "load_bundle", "is_bundle"]

BUNDLE_NAMES = ("best_bundle.pth", "bundle.pth")
ARGS = "args.pkl"
SPEECH = "conv1_trm1_trm3."
_BERT = [
    ("attention.self.query.", "attention.q_proj."),
    ("attention.self.key.", "attention.k_proj."),
    ("attention.self.value.", "attention.v_proj."),
    ("attention.output.dense.", "attention.out_proj."),
    ("attention.output.LayerNorm.", "layer_norm."),
    ("intermediate.dense.", "feed_forward.intermediate_dense."),
    ("output.dense.", "feed_forward.output_dense."),
    ("output.LayerNorm.", "final_layer_norm."),
]
_DIRECT = {
    "conv2.linear.": "audio_branch.input_proj.",
    "conv2.bn1.": "audio_branch.input_norm.",
    "audio_cls_token_proj_pre.": "audio_branch.cls_proj.",
    "trm2_proj.": "audio_branch.out_proj.",
    "visn_fc.visn_fc.": "image_branch.feat_fc.",
    "visn_fc.visn_layer_norm.": "image_branch.feat_ln.",
    "visn_fc.box_fc.": "image_branch.box_fc.",
    "visn_fc.box_layer_norm.": "image_branch.box_ln.",
    "visual_cls_token_proj_coarse.": "image_branch.head.",
}
_UNUSED = ("audio_cls_token_proj_coarse.",)
_BLOCK = re.compile(
    r"conv2\.layer(\d+)\.(\d+)\.(conv1|bn1|conv2|bn2|downsample\.0|downsample\.1)\.(.+)"
)
_BLOCK_PARTS = {"conv1": "conv1", "bn1": "norm1", "conv2": "conv2", "bn2": "norm2",
                "downsample.0": "shortcut.0", "downsample.1": "shortcut.1"}  # fmt: skip


class BundleError(ValueError):
    """A bundle sslvgs cannot import; the message names the file and the parameter."""


def is_bundle(path: str | Path) -> bool:
    """True for a `*bundle.pth` file, or a folder holding one of BUNDLE_NAMES."""
    path = Path(path)
    if path.is_dir():
        return any((path / name).is_file() for name in BUNDLE_NAMES)
    return path.is_file() and path.name.endswith("bundle.pth")


def bundle_file(path: Path) -> Path:
    if path.is_dir():
        for name in BUNDLE_NAMES:
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(f"{path}: no {' or '.join(BUNDLE_NAMES)}")
    return path


def _blocks(state: dict[str, torch.Tensor]) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    """ResDAVEnet stage widths, blocks per stage and kernel: fixed in the authors' code, so read from
    the tensors (conv2.layer{s}.{b}.conv1.weight [width, in, 1, kernel])."""
    counts: dict[int, int] = {}
    widths: dict[int, int] = {}
    kernel = 9
    for key, value in state.items():
        match = _BLOCK.fullmatch(key)
        if match and match.group(3) == "conv1" and match.group(4) == "weight":
            stage, block = int(match.group(1)), int(match.group(2))
            counts[stage] = max(counts.get(stage, 0), block + 1)
            widths[stage], kernel = int(value.shape[0]), int(value.shape[-1])
    stages = sorted(counts)
    return tuple(widths[s] for s in stages), tuple(counts[s] for s in stages), kernel


def bundle_config(args: dict[str, Any], state: dict[str, torch.Tensor]) -> ModelConfig:
    """The paper preset with the sizes that args.pkl records (its attribute names) and the ResDAVEnet
    shape of the tensors. Dropouts are kept from the preset (probes run in eval mode)."""
    fields: dict[str, Any] = {}
    for ours, theirs in (
        ("dim", "encoder_embed_dim"), ("num_heads", "encoder_attention_heads"),
        ("ffn_dim", "encoder_ffn_embed_dim"), ("pos_conv_kernel", "conv_pos"),
        ("pos_conv_groups", "conv_pos_groups"), ("codebook_groups", "latent_groups"),
        ("codebook_entries", "latent_vars"), ("final_dim", "final_dim"),
        ("mask_prob", "mask_prob"), ("mask_length", "mask_length"),
        ("num_negatives", "num_negatives"), ("logit_temperature", "logit_temp"),
        ("branch_heads", "num_attention_heads"), ("image_layers", "trm_layers"),
        ("region_dim", "visual_feat_dim"), ("margin", "margin"), ("conv_bias", "conv_bias"),
    ):  # fmt: skip
        if args.get(theirs) is not None:
            fields[ours] = type(getattr(ModelConfig, ours))(args[theirs])
    if args.get("conv_feature_layers"):
        fields["conv_layers"] = tuple(
            map(tuple, parse_conv_layers(args["conv_feature_layers"], ARGS))
        )
    if args.get("extractor_mode") is not None:
        fields["conv_norm"] = "group_norm" if args["extractor_mode"] == "default" else "layer_norm"
    if args.get("latent_temp"):
        fields["quantizer_temperature"] = tuple(
            float(t) for t in ast.literal_eval(str(args["latent_temp"]))
        )
    final_dim = fields.get("final_dim", ModelConfig.final_dim)
    fields["codevector_dim"] = int(args.get("latent_dim") or 0) or final_dim
    # The authors' layer_use is a 0-based layer index: layer_use=7 feeds the branch from layer 8.
    layer_use = (
        int(args["layer_use"]) + 1 if args.get("layer_use") is not None else ModelConfig.layer_use
    )
    num_layers = int(args.get("encoder_layers") or ModelConfig.num_layers)
    if args.get("caption_w2v2_weight") is None and args.get("libri_w2v2_weight") is None and args:
        num_layers = layer_use  # their DualEncoder builds only the layers the VGS branch needs
    widths, blocks, kernel = _blocks(state)
    if widths:
        fields.update(resdavenet_widths=widths, resdavenet_blocks=blocks, resdavenet_kernel=kernel)
    return dataclasses.replace(
        ModelConfig(), **fields, num_layers=num_layers, layer_use=layer_use, use_cls=True,
        front_end="conv", audio_branch_layers=1,
    )  # fmt: skip


def _our_name(key: str, layer_use: int) -> str | None:
    """SSLVGS's name for a dual-encoder tensor; None for tensors the model does not use; "" unknown."""
    if key.startswith(SPEECH):
        inner = key[len(SPEECH) :]
        if inner in ("cls_token", "mask_emb") or inner.startswith(("project_q.", "final_proj.")):
            return inner
        if inner == "quantizer.vars":
            return "quantizer.codevectors"
        if inner.startswith("quantizer.weight_proj."):
            return inner
        renamed = torchaudio_name(inner)
        return sslvgs_name(renamed, layer_use) if renamed else ""
    if key.startswith(_UNUSED):
        return None
    for old, new in _DIRECT.items():
        if key.startswith(old):
            return new + key[len(old) :]
    if key == "visual_cls_token":
        return "image_branch.cls_token"
    match = _BLOCK.fullmatch(key)
    if match:
        return f"audio_branch.resdavenet.{{block}}.{_BLOCK_PARTS[match.group(3)]}.{match.group(4)}"
    for prefix, target in (
        (r"trm2\.", "audio_branch.layers.0."),
        (r"trm\.(\d+)\.", "image_branch.layers.{}."),
    ):
        match = re.match(prefix, key)
        if match:
            rest = key[match.end() :]
            for old, new in _BERT:
                if rest.startswith(old):
                    return target.format(*match.groups()) + new + rest[len(old) :]
    return ""


def bundle_state(
    state: dict[str, torch.Tensor], cfg: ModelConfig, own: dict[str, torch.Tensor], source: Path
) -> dict[str, torch.Tensor]:
    """The dual encoder's tensors under SSLVGS's names; BundleError naming the first that does not fit."""
    first_block = [0]
    for count in cfg.resdavenet_blocks[:-1]:
        first_block.append(first_block[-1] + count)
    mapped = {}
    for key, value in state.items():
        name = _our_name(key, cfg.layer_use)
        if name is None:
            continue
        if "{block}" in name:
            match = _BLOCK.fullmatch(key)
            name = name.format(block=first_block[int(match.group(1)) - 1] + int(match.group(2)))
            if value.dim() == 4:  # Conv2d over a height-1 "image" is a Conv1d
                value = value.squeeze(2)
        if name == "" or name not in own:
            raise BundleError(
                f"{source}: dual_encoder parameter {key} has no place in the paper's model"
            )
        if own[name].shape != value.shape:
            raise BundleError(
                f"{source}: dual_encoder parameter {key} {tuple(value.shape)} does not match the "
                f"paper preset's {name} {tuple(own[name].shape)} (sizes from {ARGS} where present)"
            )
        mapped[name] = value
    missing = [k for k in own if k not in mapped and not k.endswith("num_batches_tracked")]
    if missing:
        raise BundleError(
            f"{source}: the bundle has no parameter for {missing[0]} ({len(missing)} missing)"
        )
    return mapped


def load_bundle(path: str | Path, *, args: str | Path | dict | None = None):
    """An SSLVGS (eval mode, CPU) with the weights of a paper bundle.

    Args:
        path: `best_bundle.pth` / `bundle.pth`, or the experiment folder holding them (best first).
        args: the run's `args.pkl` (default: beside the bundle, if there), or its attributes as a dict.
    Raises:
        BundleError: a parameter of another name or shape (one line naming the file and parameter).
        UnsafePickleError: a bundle or args.pkl that pickles code (naming the file and the global).
    """
    from training.model import SSLVGS

    path = bundle_file(Path(path))
    if args is None and (path.parent / ARGS).is_file():
        args = path.parent / ARGS
    arg_dict = dict(args) if isinstance(args, dict) else read_namespace(args) if args else {}
    bundle = torch_load(path, what="bundle")
    if not isinstance(bundle, dict) or not isinstance(bundle.get("dual_encoder"), dict):
        raise BundleError(f"{path}: not a VGS+ / FaST-VGS+ bundle (no 'dual_encoder' state dict)")
    state = {k.removeprefix("module."): v for k, v in bundle["dual_encoder"].items()}
    if arg_dict.get("layer_norm_first"):
        raise BundleError(
            f"{path}: layer_norm_first=True (pre-LN) speech encoders are not SSLVGS's"
        )
    try:
        cfg = bundle_config(arg_dict, state)
    except (ValueError, TypeError) as err:
        raise BundleError(f"{path}: its {ARGS} does not give a valid model ({err})") from None
    model = SSLVGS(cfg)
    model.audio_branch = PaperAudioBranch(cfg)
    for module in model.image_branch.modules():
        if isinstance(module, torch.nn.LayerNorm):
            module.eps = BERT_LAYER_NORM_EPS
    model.load_state_dict(bundle_state(state, cfg, model.state_dict(), path), strict=False)
    return model.eval()
