"""The paper's bundles, generated and run by their own parameter names, for the bundle import tests.

`paper_dual_encoder_state(args)` lays out a random `DualEncoder` state dict exactly as the authors'
code names and shapes it (scheduled_SSL_XSL / FaST-VGS-Family: models/fast_vgs.py, models/w2v2_model.py,
models/utils.py). `reference_audio` / `reference_image` run the authors' forward passes (DualEncoder.
forward_audio with test=True, forward_image) straight from that state dict with plain torch functions,
one utterance at a time: slow, written to be read against their code, sharing nothing with the
importer.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SMALL_ARGS = dict(
    conv_feature_layers="[(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] * 2",
    extractor_mode="default", conv_bias=False, encoder_embed_dim=48, encoder_layers=4,
    encoder_attention_heads=4, encoder_ffn_embed_dim=96, conv_pos=16, conv_pos_groups=4,
    layer_norm_first=False, latent_vars=8, latent_groups=2, latent_dim=0, final_dim=16,
    latent_temp="(2,0.5,0.999995)", layer_use=2, hidden_size=48, num_attention_heads=4,
    intermediate_size=192, trm_layers=2, visual_feat_dim=256, visual_pos_dim=4, margin=1.0,
    caption_w2v2_weight=1.0, libri_w2v2_weight=None, hidden_act="gelu", xtrm_layers=1,
)  # fmt: skip
SMALL_WIDTHS = [8, 8, 16, 24, 48]  # ResDavenet layer_widths (fixed in their code: 128 ... 768)


def _conv_layers(args):
    # conv_feature_layers is a Python expression in their code (eval); these tests use fixed ones.
    return eval(args["conv_feature_layers"])  # noqa: S307 - a constant of this file


def paper_dual_encoder_state(args: dict, widths=SMALL_WIDTHS, blocks=(2, 2, 2, 2), seed: int = 0):
    """{name: random tensor} of the authors' DualEncoder (speech encoder with all its layers)."""
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}

    def add(name, *shape, scale=0.2, offset=0.0):
        state[name] = torch.randn(*shape, generator=g) * scale + offset

    def linear(name, out, inp):
        add(f"{name}.weight", out, inp, scale=1 / math.sqrt(inp))
        add(f"{name}.bias", out, scale=0.1)

    def norm(name, dim):
        add(f"{name}.weight", dim, scale=0.1, offset=1.0)
        add(f"{name}.bias", dim, scale=0.1)

    def batch_norm(name, dim):
        norm(name, dim)
        add(f"{name}.running_mean", dim, scale=0.1)
        state[f"{name}.running_var"] = torch.rand(dim, generator=g) + 0.5
        state[f"{name}.num_batches_tracked"] = torch.tensor(100)

    def bert_layer(name, h, inter):
        for part in ("query", "key", "value"):
            linear(f"{name}.attention.self.{part}", h, h)
        linear(f"{name}.attention.output.dense", h, h)
        norm(f"{name}.attention.output.LayerNorm", h)
        linear(f"{name}.intermediate.dense", inter, h)
        linear(f"{name}.output.dense", h, inter)
        norm(f"{name}.output.LayerNorm", h)

    d, w = args["encoder_embed_dim"], "conv1_trm1_trm3"
    c_in = 1
    for i, (c, k, _) in enumerate(_conv_layers(args)):
        add(
            f"{w}.feature_extractor.conv_layers.{i}.0.weight",
            c,
            c_in,
            k,
            scale=1 / math.sqrt(c_in * k),
        )
        if i == 0:
            norm(f"{w}.feature_extractor.conv_layers.0.2", c)
        c_in = c
    norm(f"{w}.layer_norm", c_in)
    linear(f"{w}.post_extract_proj", d, c_in)
    add(f"{w}.mask_emb", d)
    add(f"{w}.cls_token", 1, 1, d, scale=1.0)
    kernel, groups = args["conv_pos"], args["conv_pos_groups"]
    add(f"{w}.encoder.pos_conv.0.weight_g", 1, 1, kernel, scale=0.1, offset=1.0)
    add(f"{w}.encoder.pos_conv.0.weight_v", d, d // groups, kernel)
    add(f"{w}.encoder.pos_conv.0.bias", d, scale=0.1)
    norm(f"{w}.encoder.layer_norm", d)
    for i in range(args["encoder_layers"]):
        for part in ("k_proj", "v_proj", "q_proj", "out_proj"):
            linear(f"{w}.encoder.layers.{i}.self_attn.{part}", d, d)
        norm(f"{w}.encoder.layers.{i}.self_attn_layer_norm", d)
        linear(f"{w}.encoder.layers.{i}.fc1", args["encoder_ffn_embed_dim"], d)
        linear(f"{w}.encoder.layers.{i}.fc2", d, args["encoder_ffn_embed_dim"])
        norm(f"{w}.encoder.layers.{i}.final_layer_norm", d)
    gv, final = args["latent_groups"] * args["latent_vars"], args["final_dim"]
    add(f"{w}.quantizer.vars", 1, gv, final // args["latent_groups"])
    linear(f"{w}.quantizer.weight_proj", gv, c_in)
    linear(f"{w}.project_q", final, final)
    linear(f"{w}.final_proj", final, d)

    linear("conv2.linear", widths[0], d)
    batch_norm("conv2.bn1", widths[0])
    inplanes = widths[0]
    for stage, (width, count) in enumerate(zip(widths[1:], blocks, strict=True), start=1):
        for b in range(count):
            name = f"conv2.layer{stage}.{b}"
            add(f"{name}.conv1.weight", width, inplanes, 1, 9, scale=1 / math.sqrt(9 * inplanes))
            batch_norm(f"{name}.bn1", width)
            add(f"{name}.conv2.weight", width, width, 1, 9, scale=1 / math.sqrt(9 * width))
            batch_norm(f"{name}.bn2", width)
            if b == 0:
                add(
                    f"{name}.downsample.0.weight",
                    width,
                    inplanes,
                    1,
                    1,
                    scale=1 / math.sqrt(inplanes),
                )
                batch_norm(f"{name}.downsample.1", width)
            inplanes = width
    h = args["hidden_size"]
    for head in (
        "audio_cls_token_proj_coarse",
        "audio_cls_token_proj_pre",
        "visual_cls_token_proj_coarse",
    ):
        linear(f"{head}.0", 2 * h, h)
        linear(f"{head}.2", h, 2 * h)
    bert_layer("trm2", h, args["intermediate_size"])
    linear("trm2_proj", h, h)
    linear("visn_fc.visn_fc", h, args["visual_feat_dim"])
    norm("visn_fc.visn_layer_norm", h)
    linear("visn_fc.box_fc", h, args["visual_pos_dim"])
    norm("visn_fc.box_layer_norm", h)
    add("visual_cls_token", 1, 1, h, scale=1.0)
    for i in range(args["trm_layers"]):
        bert_layer(f"trm.{i}", h, args["intermediate_size"])
    return state


# --- their forward, functionally ------------------------------------------------------------------


def _linear(s, name, x):
    return F.linear(x, s[f"{name}.weight"], s[f"{name}.bias"])


def _ln(s, name, x, eps):
    return F.layer_norm(x, x.shape[-1:], s[f"{name}.weight"], s[f"{name}.bias"], eps)


def _attention(q, k, v, heads, additive_mask=None):
    b, t, d = q.shape
    split = lambda x: x.view(b, t, heads, d // heads).transpose(1, 2)  # noqa: E731
    scores = split(q) @ split(k).transpose(-1, -2) / math.sqrt(d // heads)
    if additive_mask is not None:
        scores = scores + additive_mask
    return (scores.softmax(-1) @ split(v)).transpose(1, 2).reshape(b, t, d)


def _bert_layer(s, name, x, heads, additive_mask=None):
    """LXMERT's BertLayer (eps 1e-12): self-attention + output LN, intermediate GELU, output LN."""
    q, k, v = (_linear(s, f"{name}.attention.self.{p}", x) for p in ("query", "key", "value"))
    a = _attention(q, k, v, heads, additive_mask)
    a = _ln(
        s,
        f"{name}.attention.output.LayerNorm",
        _linear(s, f"{name}.attention.output.dense", a) + x,
        1e-12,
    )
    inter = F.gelu(_linear(s, f"{name}.intermediate.dense", a))
    return _ln(s, f"{name}.output.LayerNorm", _linear(s, f"{name}.output.dense", inter) + a, 1e-12)


def _bn(s, name, x):
    return F.batch_norm(x, s[f"{name}.running_mean"], s[f"{name}.running_var"],
                        s[f"{name}.weight"], s[f"{name}.bias"], False, 0.0, 1e-5)  # fmt: skip


def reference_speech(s, args, wav):
    """Wav2Vec2Model_cls.forward(mask=False, features_only): wav [1, T] z-normalised ->
    (all transformer inputs/outputs [L + 1 of [1, 1 + F, D]], with CLS)."""
    w = "conv1_trm1_trm3"
    x = wav[:, None, :]
    for i, (c, _, stride) in enumerate(_conv_layers(args)):
        x = F.conv1d(x, s[f"{w}.feature_extractor.conv_layers.{i}.0.weight"], stride=stride)
        if i == 0:
            x = F.group_norm(x, c, s[f"{w}.feature_extractor.conv_layers.0.2.weight"],
                             s[f"{w}.feature_extractor.conv_layers.0.2.bias"])  # fmt: skip
        x = F.gelu(x)
    x = _linear(s, f"{w}.post_extract_proj", _ln(s, f"{w}.layer_norm", x.transpose(1, 2), 1e-5))
    x = torch.cat([s[f"{w}.cls_token"], x], dim=1)
    v, gain = s[f"{w}.encoder.pos_conv.0.weight_v"], s[f"{w}.encoder.pos_conv.0.weight_g"]
    weight = gain * v / v.norm(dim=(0, 1), keepdim=True)  # weight_norm(dim=2)
    kernel = args["conv_pos"]
    conv = F.conv1d(x.transpose(1, 2), weight, s[f"{w}.encoder.pos_conv.0.bias"],
                    padding=kernel // 2, groups=args["conv_pos_groups"])  # fmt: skip
    conv = conv[..., :-1] if kernel % 2 == 0 else conv  # SamePad
    x = _ln(s, f"{w}.encoder.layer_norm", x + F.gelu(conv).transpose(1, 2), 1e-5)
    states = [x]
    for i in range(args["encoder_layers"]):
        p = f"{w}.encoder.layers.{i}"
        q, k, val = (_linear(s, f"{p}.self_attn.{n}_proj", x) for n in ("q", "k", "v"))
        a = _linear(
            s, f"{p}.self_attn.out_proj", _attention(q, k, val, args["encoder_attention_heads"])
        )
        x = _ln(s, f"{p}.self_attn_layer_norm", x + a, 1e-5)
        f = _linear(s, f"{p}.fc2", F.gelu(_linear(s, f"{p}.fc1", x)))
        x = _ln(s, f"{p}.final_layer_norm", x + f, 1e-5)
        states.append(x)
    return states


def _resdavenet(s, x, blocks):
    """ResDavenet.forward on [1, T, D] -> [1, T', width]."""
    x = _linear(s, "conv2.linear", x).transpose(1, 2).unsqueeze(2)  # [1, C, 1, T]
    x = F.relu(_bn(s, "conv2.bn1", x))
    for stage, count in enumerate(blocks, start=1):
        for b in range(count):
            p, stride = f"conv2.layer{stage}.{b}", 2 if b == 0 else 1
            out = F.relu(
                _bn(
                    s,
                    f"{p}.bn1",
                    F.conv2d(x, s[f"{p}.conv1.weight"], stride=stride, padding=(0, 4)),
                )
            )
            out = _bn(s, f"{p}.bn2", F.conv2d(out, s[f"{p}.conv2.weight"], padding=(0, 4)))
            if f"{p}.downsample.0.weight" in s:
                x = _bn(
                    s,
                    f"{p}.downsample.1",
                    F.conv2d(x, s[f"{p}.downsample.0.weight"], stride=stride),
                )
            x = F.relu(out + x)
    return x.squeeze(2).transpose(1, 2)


def reference_audio(s, args, wav, blocks=(2, 2, 2, 2)):
    """DualEncoder.forward_audio(test=True) of one utterance [1, T] -> audio CLS [1, H]."""
    layer_feats = reference_speech(s, args, wav)[args["layer_use"] + 1]  # their 0-based layer index
    cls, frames = layer_feats[:, 0], layer_feats[:, 1:]
    pooled = _resdavenet(s, frames, blocks)
    ratio = round(frames.shape[1] / pooled.shape[1])
    nframes = int(frames.shape[1] / ratio)
    masked = (torch.arange(pooled.shape[1]) >= nframes).float()
    mask = torch.cat([torch.zeros(1), masked])[None, None, None, :] * -10000.0
    cls_pre = _linear(
        s, "audio_cls_token_proj_pre.2", F.gelu(_linear(s, "audio_cls_token_proj_pre.0", cls))
    )
    x = torch.cat([cls_pre[:, None], pooled], dim=1)
    x = _bert_layer(s, "trm2", x, args["num_attention_heads"], mask)
    return _linear(s, "trm2_proj", x[:, 0])


def reference_image(s, args, feats, boxes):
    """DualEncoder.forward_image: feats [B, R, Dv], boxes [B, R, 4] -> visual CLS [B, H]."""
    x = _ln(s, "visn_fc.visn_layer_norm", _linear(s, "visn_fc.visn_fc", feats), 1e-12)
    y = _ln(s, "visn_fc.box_layer_norm", _linear(s, "visn_fc.box_fc", boxes), 1e-12)
    x = torch.cat([s["visual_cls_token"].expand(len(feats), -1, -1), (x + y) / 2], dim=1)
    for i in range(args["trm_layers"]):
        x = _bert_layer(s, f"trm.{i}", x, args["num_attention_heads"])
    head = "visual_cls_token_proj_coarse"
    return _linear(s, f"{head}.2", F.gelu(_linear(s, f"{head}.0", x[:, 0])))
