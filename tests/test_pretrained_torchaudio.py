"""torchaudio wav2vec 2.0 weights in our speech encoder give torchaudio's hidden states, layer by layer."""

from __future__ import annotations

import pytest
import torch
from pretrained_fixtures import random_torchaudio

from training.pretrained.torchaudio_models import from_torchaudio, import_torchaudio_wav2vec2


def random_torchaudio_wav2vec2(seed: int = 0, extractor_mode: str = "group_norm"):
    """Post-LN (wav2vec 2.0 base's) with 12 layers, wav2vec 2.0's strides and fewer channels."""
    return random_torchaudio(seed, extractor_mode=extractor_mode, layers=12)


def torchaudio_hidden_states(ta, wav, lengths):
    """Input of transformer layer 1, then every layer's output, through torchaudio's own modules."""
    features, frame_lengths = ta.feature_extractor(wav, lengths)
    x, mask = ta.encoder._preprocess(features, frame_lengths)
    x = ta.encoder.transformer._preprocess(x)
    states = [x]
    for layer in ta.encoder.transformer.layers:
        x, _ = layer(x, mask)
        states.append(x)
    return states, frame_lengths


@pytest.mark.parametrize("extractor_mode", ["group_norm", "layer_norm"])
def test_imported_weights_reproduce_torchaudio_layer_by_layer(extractor_mode):
    ta = random_torchaudio_wav2vec2(extractor_mode=extractor_mode)
    ours = from_torchaudio(
        ta, use_cls=False, dropout=0.0, attention_dropout=0.0, projection_dropout=0.0, layer_use=8
    ).eval()
    g = torch.Generator().manual_seed(1)
    wav = torch.randn(2, 32000, generator=g)
    lengths = torch.tensor([32000, 24000])
    wav[1, 24000:] = 0.0
    # Our model z-normalises its input; torchaudio expects that done, so give it normalised audio.
    normalised = torch.zeros_like(wav)
    for i, n in enumerate(lengths.tolist()):
        w = wav[i, :n]
        normalised[i, :n] = (w - w.mean()) / torch.sqrt(w.var(unbiased=False) + 1e-7)
    got, got_lengths = ours.hidden_states(wav, lengths)
    assert got_lengths.tolist() == [99, 74]
    assert len(got) == 13
    # Each utterance of the padded batch gets what torchaudio gives it alone (torchaudio's GroupNorm
    # would let the padding of a batch into a shorter utterance's every frame; ours does not).
    for i, n in enumerate(lengths.tolist()):
        with torch.no_grad():
            expected, expected_lengths = torchaudio_hidden_states(
                ta, normalised[i : i + 1, :n], lengths[i : i + 1]
            )
        assert expected_lengths.tolist() == got_lengths[i : i + 1].tolist()
        for layer, (a, b) in enumerate(zip(got, expected, strict=True)):
            frames = int(got_lengths[i])
            torch.testing.assert_close(
                a[i, :frames], b[0], atol=1e-5, rtol=1e-5, msg=f"layer {layer}, utterance {i}"
            )


def test_import_names_the_tensor_that_does_not_fit():
    ta = random_torchaudio_wav2vec2()
    wrong = from_torchaudio(random_torchaudio_wav2vec2(), use_cls=False)
    state = dict(ta.state_dict())
    state["encoder.transformer.layers.3.attention.q_proj.weight"] = torch.zeros(5, 5)
    with pytest.raises(
        ValueError, match="layers.3.attention.q_proj.weight .*does not fit shared_layers.3"
    ):
        import_torchaudio_wav2vec2(wrong, state)


def test_a_fine_tuned_models_ctc_head_is_skipped():
    ta = random_torchaudio_wav2vec2()
    state = dict(
        ta.state_dict(), **{"aux.weight": torch.zeros(32, 96), "aux.bias": torch.zeros(32)}
    )
    model = from_torchaudio(ta, use_cls=False)
    assert import_torchaudio_wav2vec2(model, state) == ["aux.weight", "aux.bias"]
