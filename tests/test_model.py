"""The VGS+ model: the API the probes use, the objectives against slow references, gradient routing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from training.losses import contrastive_loss_sum, masked_margin_softmax
from training.model import SSLVGS
from training.objective import objective
from training.run.config import ModelConfig, preset
from training.wav2vec2 import span_mask

REGION_DIM = 16


def tiny_model(**overrides) -> SSLVGS:
    torch.manual_seed(0)
    cfg, _ = preset("tiny", region_dim=REGION_DIM, **overrides)
    return SSLVGS(cfg).eval()


def batch(lengths: list[int], seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    wav = torch.zeros(len(lengths), max(lengths))
    for i, n in enumerate(lengths):
        wav[i, :n] = torch.randn(n, generator=g)
    b = len(lengths)
    return dict(
        wav=wav,
        wav_lengths=torch.tensor(lengths),
        feats=torch.randn(b, 36, REGION_DIM, generator=g),
        boxes=torch.rand(b, 36, 4, generator=g),
        image_index=torch.arange(b) // 2,
    )


def test_hidden_states_are_one_per_layer_plus_input_at_50_hz():
    model = tiny_model()
    b = batch([32000, 24000])
    states, frame_lengths = model.hidden_states(b["wav"], b["wav_lengths"])
    assert len(states) == model.num_layers + 1 == 13
    assert model.frame_rate == 50.0 and model.sample_rate == 16000
    # 2 s at 20 ms frames, less the last partial window: 99 frames, as wav2vec 2.0's CNN gives.
    assert frame_lengths.tolist() == [99, 74]
    for s in states:
        assert s.shape == (2, 99, model.dim)
        assert torch.isfinite(s).all()


def test_a_captions_states_do_not_depend_on_its_batch():
    model = tiny_model()
    b = batch([32000, 20000])
    together, lengths = model.hidden_states(b["wav"], b["wav_lengths"])
    alone, _ = model.hidden_states(b["wav"][1:, :20000], b["wav_lengths"][1:])
    n = int(lengths[1])
    for layer, (x, y) in enumerate(zip(together, alone, strict=True)):
        torch.testing.assert_close(x[1, :n], y[0, :n], atol=1e-5, rtol=1e-5, msg=f"layer {layer}")
    emb_together = model.encode_audio(b["wav"], b["wav_lengths"])
    emb_alone = model.encode_audio(b["wav"][1:, :20000], b["wav_lengths"][1:])
    torch.testing.assert_close(emb_together[1], emb_alone[0], atol=1e-5, rtol=1e-5)


def test_waveform_scale_does_not_matter():
    """The model z-normalises its input, so probes may pass raw int16-scale or float audio."""
    model = tiny_model()
    b = batch([16000])
    x, _ = model.hidden_states(b["wav"], b["wav_lengths"])
    y, _ = model.hidden_states(b["wav"] * 1000.0, b["wav_lengths"])
    torch.testing.assert_close(x[-1], y[-1], atol=1e-4, rtol=1e-4)


def test_embeddings_share_one_space():
    model = tiny_model()
    b = batch([16000, 12000, 8000])
    audio = model.encode_audio(b["wav"], b["wav_lengths"])
    image = model.encode_image(b["feats"], b["boxes"])
    assert audio.shape == image.shape == (3, model.cfg.embed_dim)


def reference_margin_softmax(image, audio, image_index, margin):
    """One caption at a time, as the loss is described: margin on the true pair, same-image pairs dropped."""
    scores = image @ audio.T
    n = len(scores)
    total = 0.0
    for direction in (scores, scores.T):
        for i in range(n):
            true_pair = direction[i, i] - margin
            others = [direction[i, j] for j in range(n) if image_index[i] != image_index[j]]
            logits = [true_pair, *others]
            total += -torch.log_softmax(torch.stack(logits), 0)[0] / n
    return total


def initial_score_spread(corpus, name: str, **overrides) -> float:
    """Std of a fresh model's retrieval scores (image @ audio.T) on 8 captions of the corpus and
    their images: how far from a flat softmax the margin loss starts."""
    from training.data import CaptionDataset
    from training.embedding import pad_wavs

    captions = CaptionDataset(corpus, "train")
    items = [captions[i] for i in range(8)]
    wav, lengths = pad_wavs([torch.as_tensor(item["wav"]) for item in items])
    feats = torch.stack([torch.as_tensor(item["feats"]) for item in items]).float()
    boxes = torch.stack([torch.as_tensor(item["boxes"]) for item in items]).float()
    torch.manual_seed(0)
    cfg, _ = preset(name, region_dim=feats.shape[-1], **overrides)
    model = SSLVGS(cfg).eval()
    with torch.no_grad():
        scores = model.encode_image(feats, boxes) @ model.encode_audio(wav, lengths).T
    return float(scores.std())


def test_compact_heads_start_at_the_paper_presets_score_spread(small_corpus):
    """The heads' last layers start small (std 0.02 in the paper's code). At width 768 that gives a
    batch's scores a spread near 2; the same std at compact's width 128 gave about 0.1, and the
    margin softmax sat at chance for epochs (docs/model.md). `head_init_std` scales compact back."""
    paper = initial_score_spread(small_corpus, "paper")
    compact = initial_score_spread(small_corpus, "compact")
    narrow = initial_score_spread(small_corpus, "compact", head_init_std=0.02)
    print(f"initial score spread: paper {paper:.3f}, compact {compact:.3f} (0.02: {narrow:.3f})")
    assert 0.5 * paper < compact < 2 * paper
    assert narrow < paper / 8


def test_masked_margin_softmax_matches_the_slow_reference():
    g = torch.Generator().manual_seed(1)
    image, audio = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    image_index = torch.tensor([0, 0, 1, 2, 2, 2])
    fast = masked_margin_softmax(image, audio, image_index, margin=1.0)
    torch.testing.assert_close(fast, reference_margin_softmax(image, audio, image_index, 1.0))


def test_contrastive_loss_matches_the_slow_reference():
    g = torch.Generator().manual_seed(2)
    pred, targets = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    negatives = torch.tensor([[1, 2], [0, 2], [3, 4], [2, 4], [2, 2]])
    fast = contrastive_loss_sum(pred, targets, negatives, temperature=0.1)
    slow = 0.0
    for i in range(5):
        cands = [targets[i]] + [targets[j] for j in negatives[i]]
        logits = torch.stack([torch.cosine_similarity(pred[i], c, 0) / 0.1 for c in cands])
        slow += -torch.log_softmax(logits, 0)[0]
    torch.testing.assert_close(fast, slow)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 400), st.floats(0.0, 1.0), st.integers(1, 20), st.integers(0, 2**32 - 1))
def test_span_mask_masks_whole_spans_about_mask_prob(length, prob, span, seed):
    mask = span_mask(length, prob, span, np.random.default_rng(seed))
    assert mask.shape == (length,) and mask.dtype == bool
    if length <= span:
        assert not mask.any()
        return
    # Every masked run is at least one span long (spans may overlap into longer runs).
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, mask.astype(int), 0])))[::2]
    assert (runs >= span).all()
    assert mask.sum() <= max(2, prob * length / span + 1) * span


@pytest.mark.parametrize("alpha_zero_branch", ["av", "aud"])
def test_a_zero_weighted_loss_sends_no_gradient(alpha_zero_branch):
    model = tiny_model().train()
    b = batch([16000, 16000, 12000, 12000])
    av_grad, aud_grad = alpha_zero_branch != "av", alpha_zero_branch != "aud"
    out = model(b["wav"], b["wav_lengths"], b["feats"], b["boxes"], [1, 2, 3, 4], av_grad, aud_grad)
    loss_av, loss_aud = objective(model, out, b["image_index"])
    # Both losses are still computed (they are logged), but only the weighted one is differentiable.
    assert torch.isfinite(loss_av) and torch.isfinite(loss_aud)
    assert loss_av.requires_grad == av_grad and loss_aud.requires_grad == aud_grad
    (loss_av if av_grad else loss_aud).backward()
    silent = (
        ["image_branch", "audio_branch"]
        if not av_grad
        else ["ssl_decoder", "quantizer", "final_proj"]
    )
    for name, p in model.named_parameters():
        if name.split(".")[0] in silent:
            assert p.grad is None, name
    assert model.shared_layers[0].attention.q_proj.weight.grad is not None


@pytest.mark.parametrize("mask_vgs_input", [True, False])
@pytest.mark.parametrize("skipped", ["av", "aud"])
def test_an_objective_not_asked_for_is_not_computed_and_changes_nothing_else(
    skipped, mask_vgs_input
):
    model = tiny_model(mask_vgs_input=mask_vgs_input).train()
    b = batch([16000, 16000, 12000, 12000])
    args = (b["wav"], b["wav_lengths"], b["feats"], b["boxes"], [1, 2, 3, 4])
    full = model(*args)
    part = model(*args, av=skipped != "av", aud=skipped != "aud")
    av_fields = ["audio_embedding", "image_embedding"]
    aud_fields = ["contrastive_sum", "masked_count", "prob_sum", "quantized_count",
                  "feature_square_sum", "feature_count"]  # fmt: skip
    skipped_fields = av_fields if skipped == "av" else aud_fields
    for name in av_fields + aud_fields:
        if name in skipped_fields:
            assert getattr(part, name) is None, name
        else:
            assert torch.equal(getattr(part, name), getattr(full, name)), name
    loss_av, loss_aud = objective(model, part, b["image_index"])
    assert (loss_av is None) == (skipped == "av") and (loss_aud is None) == (skipped == "aud")
    with pytest.raises(ValueError, match="at least one objective"):
        model(*args, av=False, aud=False)


def test_training_randomness_is_keyed_by_sample_seed():
    model = tiny_model().train()
    b = batch([16000, 12000])
    args = (b["wav"], b["wav_lengths"], b["feats"], b["boxes"])
    first = model(*args, [7, 8]).contrastive_sum
    assert torch.equal(first, model(*args, [7, 8]).contrastive_sum)
    assert not torch.equal(first, model(*args, [7, 9]).contrastive_sum)


def test_feature_grad_mult_scales_only_the_feature_encoders_gradient():
    """wav2vec 2.0's feature_grad_mult: the same losses, the front end's gradient times the factor,
    every other gradient unchanged."""
    b = batch([16000, 16000, 12000, 12000])
    args = (b["wav"], b["wav_lengths"], b["feats"], b["boxes"], [1, 2, 3, 4])
    grads, losses = {}, {}
    for mult in (1.0, 0.1):
        model = tiny_model(feature_grad_mult=mult).train()
        loss_av, loss_aud = objective(model, model(*args), b["image_index"])
        (loss_av + loss_aud).backward()
        losses[mult] = (loss_av.item(), loss_aud.item())
        grads[mult] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert losses[1.0] == losses[0.1]
    assert grads[1.0].keys() == grads[0.1].keys()
    for name, g in grads[1.0].items():
        expected = g * 0.1 if name.startswith("feature_encoder.") else g
        torch.testing.assert_close(grads[0.1][name], expected, rtol=1e-4, atol=1e-7, msg=name)
    assert any(n.startswith("feature_encoder.") for n in grads[1.0])


def test_config_rejects_inconsistent_shapes():
    with pytest.raises(ValueError, match="layer_use"):
        ModelConfig(layer_use=13)
    with pytest.raises(ValueError, match="front_end"):
        ModelConfig(front_end="mfcc")
    with pytest.raises(ValueError, match="feature_grad_mult"):
        ModelConfig(feature_grad_mult=1.5)
    with pytest.raises(ValueError, match="unknown config field"):
        preset("tiny", no_such_field=1)


def test_paper_preset_builds_and_trains_one_step_on_cpu():
    torch.manual_seed(0)
    cfg, _ = preset("paper")
    model = SSLVGS(cfg).train()
    params = sum(p.numel() for p in model.parameters())
    speech = sum(
        p.numel()
        for n, p in model.named_parameters()
        if n.split(".")[0] not in ("audio_branch", "image_branch")
    )
    print(
        f"paper preset: {params / 1e6:.1f} M parameters ({speech / 1e6:.1f} M in the speech encoder)"
    )
    # wav2vec 2.0 base has 95 M parameters; ours adds the CLS token and the two VGS branches.
    assert 94e6 < speech < 97e6
    assert model.num_layers == 12 and model.dim == 768 and model.frame_rate == 50.0
    wav = torch.randn(2, 32000)
    b = dict(
        feats=torch.randn(2, 36, 2048), boxes=torch.rand(2, 36, 4), image_index=torch.arange(2)
    )
    out = model(wav, torch.tensor([32000, 32000]), b["feats"], b["boxes"], [0, 1])
    loss_av, loss_aud = objective(model, out, b["image_index"])
    (0.5 * loss_av + 0.5 * loss_aud).backward()
    assert out.audio_embedding.shape == (2, 768)
    assert model.shared_layers[0].attention.q_proj.weight.grad is not None
    assert model.ssl_decoder[-1].feed_forward.output_dense.weight.grad is not None


def test_the_log_mel_front_end_computes_torchaudios_mel_spectrogram():
    """mel_power takes |X|^2 as re^2 + im^2 (no square root): the same spectrogram to float rounding."""
    from training.wav2vec2 import LogMelFeatureEncoder

    encoder = LogMelFeatureEncoder(40, 64)
    wav = torch.randn(3, 16000, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(encoder.mel_power(wav), encoder.melspec(wav), rtol=1e-5, atol=1e-5)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 40), st.integers(1, 6), st.integers(1, 8), st.integers(0, 2**32 - 1))
def test_contrastive_loss_matches_cosine_similarity_with_repeated_targets(m, k, d, seed):
    """The fast loss (normalise once, batched product, equal rows by sorting) against the plain
    F.cosine_similarity formulation on quantised-like targets with many equal rows."""
    g = torch.Generator().manual_seed(seed)
    pred = torch.randn(m, d, generator=g, dtype=torch.float64, requires_grad=True)
    # entries 1 or 2: many equal rows, as quantised targets have, and never a zero vector, whose
    # cosine similarity is undefined (the two formulations clamp its norm differently)
    targets = torch.randint(1, 3, (m, d), generator=g).double().requires_grad_(True)
    negatives = torch.randint(0, m, (m, k), generator=g)
    candidates = torch.cat([targets[:, None, :], targets[negatives]], dim=1)
    logits = torch.nn.functional.cosine_similarity(pred[:, None, :], candidates, dim=-1) / 0.1
    same = (targets[negatives] == targets[:, None, :]).all(-1)
    logits = torch.cat([logits[:, :1], logits[:, 1:].masked_fill(same, float("-inf"))], 1)
    plain = torch.nn.functional.cross_entropy(
        logits.float(), torch.zeros(m, dtype=torch.long), reduction="sum"
    )
    fast = contrastive_loss_sum(pred, targets, negatives, temperature=0.1)
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-4)
    grads = torch.autograd.grad(fast, (pred, targets))
    plain_grads = torch.autograd.grad(plain, (pred, targets))
    for ours, theirs in zip(grads, plain_grads, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


def test_quantizer_codevectors_match_fairseqs_broadcast_sum():
    """The quantizer's per-group product against fairseq's [N, G*V, 1] * [1, G*V, d] then sum,
    values and gradients, with Gumbel noise (straight-through) and without (argmax)."""
    from training.wav2vec2 import GumbelVectorQuantizer

    torch.manual_seed(3)
    quantizer = GumbelVectorQuantizer(in_dim=12, groups=2, entries=5, codevector_dim=8)
    x = torch.randn(7, 12, requires_grad=True)
    for noise in (torch.randn(7, 10), None):
        vectors = quantizer(x, noise)[0]
        logits = quantizer.weight_proj(x).view(14, 5)
        if noise is None:
            hard = torch.nn.functional.one_hot(logits.argmax(-1), 5).float()
        else:
            soft = ((logits + noise.view(14, 5)) / quantizer.temperature).softmax(-1)
            hard = torch.nn.functional.one_hot(soft.argmax(-1), 5).float() - soft.detach() + soft
        fairseq = (hard.view(7, 10, 1) * quantizer.codevectors).view(7, 2, 5, -1).sum(2)
        torch.testing.assert_close(vectors, fairseq.reshape(7, -1))
        if noise is not None:
            ours = torch.autograd.grad(vectors.sum(), (x, quantizer.codevectors))
            theirs = torch.autograd.grad(fairseq.sum(), (x, quantizer.codevectors))
            for a, b in zip(ours, theirs, strict=True):
                torch.testing.assert_close(a, b)


def test_contrastive_logits_and_codevectors_stay_float32_under_bf16_autocast():
    """Autocast would run bmm / einsum in bf16; the loss and the quantizer keep float32, as the
    cosine_similarity and broadcast-sum formulations they replace did."""
    from training.wav2vec2 import GumbelVectorQuantizer

    g = torch.Generator().manual_seed(5)
    pred, targets = torch.randn(9, 16, generator=g), torch.randn(9, 16, generator=g)
    negatives = torch.randint(0, 9, (9, 4), generator=g)
    plain = contrastive_loss_sum(pred, targets, negatives, temperature=0.1)
    torch.manual_seed(5)
    quantizer = GumbelVectorQuantizer(in_dim=12, groups=2, entries=5, codevector_dim=8)
    x = torch.randn(7, 12)
    vectors = quantizer(x, None)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = contrastive_loss_sum(pred, targets, negatives, temperature=0.1)
        autocast_vectors = quantizer(x, None)[0]
    assert under_autocast.dtype == torch.float32 and autocast_vectors.dtype == torch.float32
    torch.testing.assert_close(under_autocast, plain)
    # The choice of codevector may differ (weight_proj runs in bf16); the values chosen may not.
    codebook = quantizer.codevectors.view(2, 5, -1)
    for row in autocast_vectors.view(7, 2, -1):
        assert all(
            any(torch.equal(part, entry) for entry in codebook[k]) for k, part in enumerate(row)
        )
    assert vectors.dtype == torch.float32
