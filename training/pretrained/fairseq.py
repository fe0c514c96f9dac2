"""fairseq wav2vec 2.0 and HuBERT checkpoint files, read without fairseq and without running pickles.

A fairseq checkpoint (`checkpoint_best.pt`, `wav2vec_small.pt`, `hubert_base_ls960.pt`, ...) is a dict
with the model's state dict under `model` and its configuration under `cfg` (a dict with `model` and
`task` parts; fairseq >= 0.10 saves an omegaconf DictConfig, which is refused with a hint to convert)
or `args` (an argparse.Namespace, older files). It is read with `safe_pickle.torch_load`, and its
parameters are renamed into torchaudio's `Wav2Vec2Model` (torchaudio's own `import_fairseq_model`
does the same from a live fairseq model):

    feature_extractor.conv_layers.{i}.0.*          -> feature_extractor.conv_layers.{i}.conv.*
    feature_extractor.conv_layers.0.2.*            -> feature_extractor.conv_layers.0.layer_norm.*  (GroupNorm)
    feature_extractor.conv_layers.{i}.2.1.*        -> feature_extractor.conv_layers.{i}.layer_norm.*
    layer_norm.*, post_extract_proj.*              -> encoder.feature_projection.{layer_norm,projection}.*
    encoder.pos_conv.0.{bias,weight_g,weight_v}    -> encoder.transformer.pos_conv_embed.conv.*
    encoder.layer_norm.*                           -> encoder.transformer.layer_norm.*
    encoder.layers.{i}.self_attn.{q,k,v,out}_proj.* -> encoder.transformer.layers.{i}.attention.*
    encoder.layers.{i}.self_attn_layer_norm.*      -> ....layers.{i}.layer_norm.*
    encoder.layers.{i}.fc1.* / fc2.*               -> ....layers.{i}.feed_forward.{intermediate,output}_dense.*
    encoder.layers.{i}.final_layer_norm.*          -> ....layers.{i}.final_layer_norm.*

Fine-tuned models (`w2v_encoder.w2v_model.*`, CTC head `w2v_encoder.proj.*`) keep the encoder and drop
the head; pretraining-only tensors (quantizer, project_q, final_proj, mask_emb, label_embs_concat) are
dropped. Sizes come from the tensors' shapes; strides, heads and pre/post-LN from the configuration.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import torch

from training.pretrained.encoders import TorchaudioEncoder
from training.pretrained.safe_pickle import namespace_dict, torch_load

__all__ = ["FairseqCheckpointError", "fairseq_model_type", "load_fairseq", "fairseq_to_torchaudio"]

# fairseq model names (cfg.model._name or args.arch) -> family.
MODEL_TYPES = {
    "wav2vec2": "wav2vec2",
    "wav2vec_ctc": "wav2vec2",
    "wav2vec_seq2seq": "wav2vec2",
    "hubert": "hubert",
    "hubert_ctc": "hubert",
    "hubert_seq2seq": "hubert",
}
DEFAULT_CONV = [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2
_DROPPED = re.compile(
    r"^(mask_emb|quantizer\.|input_quantizer\.|project_q\.|project_inp\.|final_proj\.|target_glu\."
    r"|label_embs_concat|decoder\.)"
)
_RENAMES = [
    (r"feature_extractor\.conv_layers\.0\.2\.(weight|bias)", r"feature_extractor.conv_layers.0.layer_norm.\1"),
    (r"feature_extractor\.conv_layers\.(\d+)\.0\.(weight|bias)", r"feature_extractor.conv_layers.\1.conv.\2"),
    (r"feature_extractor\.conv_layers\.(\d+)\.2\.1\.(weight|bias)", r"feature_extractor.conv_layers.\1.layer_norm.\2"),
    (r"post_extract_proj\.(weight|bias)", r"encoder.feature_projection.projection.\1"),
    (r"layer_norm\.(weight|bias)", r"encoder.feature_projection.layer_norm.\1"),
    (r"encoder\.pos_conv\.0\.(bias|weight_g|weight_v)", r"encoder.transformer.pos_conv_embed.conv.\1"),
    (r"encoder\.layer_norm\.(weight|bias)", r"encoder.transformer.layer_norm.\1"),
    (r"encoder\.layers\.(\d+)\.self_attn\.((?:k|v|q|out)_proj\.(?:weight|bias))", r"encoder.transformer.layers.\1.attention.\2"),
    (r"encoder\.layers\.(\d+)\.self_attn_layer_norm\.(weight|bias)", r"encoder.transformer.layers.\1.layer_norm.\2"),
    (r"encoder\.layers\.(\d+)\.fc1\.(weight|bias)", r"encoder.transformer.layers.\1.feed_forward.intermediate_dense.\2"),
    (r"encoder\.layers\.(\d+)\.fc2\.(weight|bias)", r"encoder.transformer.layers.\1.feed_forward.output_dense.\2"),
    (r"encoder\.layers\.(\d+)\.final_layer_norm\.(weight|bias)", r"encoder.transformer.layers.\1.final_layer_norm.\2"),
]  # fmt: skip
# torchaudio keeps weight norm as a parametrization; fairseq as weight_g / weight_v.
_WEIGHT_NORM = {
    "conv.weight_g": "conv.parametrizations.weight.original0",
    "conv.weight_v": "conv.parametrizations.weight.original1",
}


class FairseqCheckpointError(ValueError):
    """A fairseq checkpoint sslvgs cannot import; the message names the file and the entry."""


def _configs(checkpoint: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model config, task config) as plain dicts from `cfg` (new) or `args` (old fairseq)."""
    if checkpoint.get("cfg") is not None:
        cfg = namespace_dict(checkpoint["cfg"])
        model = namespace_dict(cfg.get("model"))
        task = namespace_dict(cfg.get("task"))
    else:
        model = task = namespace_dict(checkpoint.get("args"))
    # A fine-tuned model's encoder is described by the pretraining config it was built from.
    inner = model.get("w2v_args")
    if inner is not None:
        inner = namespace_dict(inner)
        inner_model = namespace_dict(inner.get("model", inner))
        task = {**namespace_dict(inner.get("task", inner)), **task}
        model = {**inner_model, "_name": model.get("_name", model.get("arch"))}
    return model, task


def fairseq_model_type(checkpoint: dict[str, Any], path: str | Path) -> str:
    """ "wav2vec2" or "hubert", from the configuration's model name, else from the tensors' names."""
    model_cfg, _ = _configs(checkpoint)
    name = model_cfg.get("_name") or model_cfg.get("arch")
    if name is not None:
        if name not in MODEL_TYPES:
            raise FairseqCheckpointError(
                f"{path}: a fairseq {name!r} model; sslvgs imports {sorted(MODEL_TYPES)}"
            )
        return MODEL_TYPES[name]
    keys = checkpoint["model"].keys()
    if any(k.endswith("quantizer.vars") for k in keys):
        return "wav2vec2"
    if any(k.endswith("label_embs_concat") for k in keys):
        return "hubert"
    raise FairseqCheckpointError(
        f"{path}: unknown fairseq model type (no cfg.model._name or args.arch, and neither a "
        "wav2vec 2.0 quantizer nor HuBERT label embeddings among its tensors)"
    )


def _strip(key: str) -> str:
    for prefix in ("w2v_encoder.", "w2v_model."):
        key = key.removeprefix(prefix)
    return key


def torchaudio_name(key: str) -> str | None:
    """torchaudio's name for a fairseq tensor; None for tensors that probes do not need."""
    if key.startswith("w2v_encoder.proj."):  # the CTC head of a fine-tuned model
        return None
    key = _strip(key)
    if _DROPPED.match(key):
        return None
    for pattern, replacement in _RENAMES:
        if re.fullmatch(pattern, key):
            return re.sub(pattern, replacement, key)
    return ""  # a tensor of another architecture


def _conv_layers(state: dict[str, torch.Tensor], model_cfg: dict[str, Any], path: Path) -> list:
    shapes = []
    while f"feature_extractor.conv_layers.{len(shapes)}.0.weight" in state:
        out, _, kernel = state[f"feature_extractor.conv_layers.{len(shapes)}.0.weight"].shape
        shapes.append((int(out), int(kernel)))
    if not shapes:
        raise FairseqCheckpointError(f"{path}: no feature_extractor.conv_layers.0.0.weight tensor")
    text = model_cfg.get("conv_feature_layers")
    layers = parse_conv_layers(text, path) if text else DEFAULT_CONV
    if [(c, k) for c, k, _ in layers] != shapes:
        raise FairseqCheckpointError(
            f"{path}: conv_feature_layers {layers} do not match the conv tensors {shapes}"
        )
    return [tuple(layer) for layer in layers]


def parse_conv_layers(text: str, path: Path) -> list:
    """fairseq's conv_feature_layers string ("[(512, 10, 5)] + [(512, 3, 2)] * 4 + ...") without eval."""

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.List | ast.Tuple):
            items = [value(n) for n in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mult):
            left, right = value(node.left), value(node.right)
            return left + right if isinstance(node.op, ast.Add) else left * right
        raise ValueError(ast.dump(node))

    try:
        return value(ast.parse(str(text), mode="eval").body)
    except (SyntaxError, ValueError, TypeError) as err:
        raise FairseqCheckpointError(
            f"{path}: unreadable conv_feature_layers {text!r} ({err})"
        ) from None


def _check_supported(model_cfg: dict[str, Any], path: Path) -> None:
    for field, plain in (
        ("pos_conv_depth", 1),
        ("conv_pos_batch_norm", False),
        ("layer_type", "transformer"),
    ):
        if model_cfg.get(field, plain) not in (plain, None):
            raise FairseqCheckpointError(
                f"{path}: {field}={model_cfg[field]!r} is not the wav2vec 2.0 / HuBERT encoder "
                "that torchaudio builds"
            )  # fmt: skip


def fairseq_to_torchaudio(
    checkpoint: dict[str, Any], path: str | Path = "<checkpoint>"
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """A torchaudio `Wav2Vec2Model` with the checkpoint's encoder weights, and the task config.

    Raises:
        FairseqCheckpointError: an unknown model type, a tensor of another architecture or shape
            (each naming the file and the tensor).
    """
    from torchaudio.models import wav2vec2_model

    path = Path(path)
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model"), dict):
        raise FairseqCheckpointError(f"{path}: not a fairseq checkpoint (no 'model' state dict)")
    fairseq_model_type(checkpoint, path)
    model_cfg, task_cfg = _configs(checkpoint)
    _check_supported(model_cfg, path)
    state = {
        _strip(k): v
        for k, v in checkpoint["model"].items()
        if not k.startswith("w2v_encoder.proj.")
    }
    dim, channels = (
        state["post_extract_proj.weight"].shape
        if "post_extract_proj.weight" in state
        else (None, None)
    )
    if dim is None:
        raise FairseqCheckpointError(f"{path}: no post_extract_proj.weight tensor")
    pos = (
        state["encoder.pos_conv.0.weight_v"]
        if "encoder.pos_conv.0.weight_v" in state
        else state.get("encoder.pos_conv.0.weight")
    )
    if pos is None:
        raise FairseqCheckpointError(f"{path}: no encoder.pos_conv.0.weight_v tensor")
    num_layers = len({k.split(".")[2] for k in state if k.startswith("encoder.layers.")})
    model = wav2vec2_model(
        extractor_mode="group_norm" if "feature_extractor.conv_layers.0.2.weight" in state else "layer_norm",
        extractor_conv_layer_config=_conv_layers(state, model_cfg, path),
        extractor_conv_bias="feature_extractor.conv_layers.0.0.bias" in state,
        encoder_embed_dim=int(dim),
        encoder_projection_dropout=0.0,
        encoder_pos_conv_kernel=int(pos.shape[2]),
        encoder_pos_conv_groups=int(dim) // int(pos.shape[1]),
        encoder_num_layers=num_layers,
        encoder_num_heads=int(model_cfg.get("encoder_attention_heads") or int(dim) // 64),
        encoder_attention_dropout=0.0,
        encoder_ff_interm_features=int(state["encoder.layers.0.fc1.weight"].shape[0]),
        encoder_ff_interm_dropout=0.0,
        encoder_dropout=0.0,
        encoder_layer_norm_first=bool(model_cfg.get("layer_norm_first", False)),
        encoder_layer_drop=0.0,
        aux_num_out=None,
    )  # fmt: skip
    _load(model, checkpoint["model"], path)
    return model.eval(), task_cfg


def _load(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    own = model.state_dict()
    mapped = {}
    for key, value in state.items():
        name = torchaudio_name(key)
        if name is None:
            continue
        for old, new in _WEIGHT_NORM.items():
            if name.endswith(old) and name not in own:
                name = name[: -len(old)] + new
        if name not in own:
            raise FairseqCheckpointError(
                f"{path}: tensor {key} has no place in a wav2vec 2.0 encoder"
            )
        if own[name].shape != value.shape:
            raise FairseqCheckpointError(
                f"{path}: tensor {key} {tuple(value.shape)} does not fit {name} {tuple(own[name].shape)}"
            )
        mapped[name] = value
    missing = sorted(set(own) - set(mapped))
    if missing:
        raise FairseqCheckpointError(f"{path}: no tensor for {missing[0]} ({len(missing)} missing)")
    model.load_state_dict(mapped)


def load_fairseq(path: str | Path, *, normalize: bool | None = None) -> TorchaudioEncoder:
    """A fairseq wav2vec 2.0 / HuBERT checkpoint file as a `TorchaudioEncoder` (eval mode, CPU).

    normalize: z-normalise utterances first; default: the checkpoint's task `normalize` (True for
    the large LV-60 models, False for base).
    """
    path = Path(path)
    checkpoint = torch_load(path, what="fairseq checkpoint")
    model, task_cfg = fairseq_to_torchaudio(checkpoint, path)
    if normalize is None:
        normalize = bool(task_cfg.get("normalize", False))
    sample_rate = int(task_cfg.get("sample_rate", 16000) or 16000)
    return TorchaudioEncoder(model, normalize=normalize, sample_rate=sample_rate)
