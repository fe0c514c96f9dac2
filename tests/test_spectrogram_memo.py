"""The log-mel front end's memo of per-utterance spectrograms (training/spectrograms.py).

What it must guarantee: whether an utterance is found in the memo or not changes no number; an entry
is never returned for other samples or another front end; it holds no more than its budget; and an
entry made while probing (inference mode) serves a training step with a graph.
"""

from __future__ import annotations

import pytest
import torch

from training import preset
from training.model import SSLVGS
from training.spectrograms import MEMO, SpectrogramMemo, memo_budget


@pytest.fixture(autouse=True)
def empty_memo():
    MEMO.clear()
    yield
    MEMO.clear()


def _model(name: str = "tiny", **overrides) -> SSLVGS:
    torch.manual_seed(0)
    cfg, _ = preset(name, region_dim=16, **overrides)
    return SSLVGS(cfg).eval()


def _batch(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths_t = torch.tensor(lengths)
    wav = torch.randn(len(lengths), max(lengths), generator=g) * 0.1 + 0.02
    return wav * (torch.arange(wav.shape[1])[None] < lengths_t[:, None]), lengths_t


def test_found_or_not_the_features_are_the_same_bits():
    model = _model()
    wav, lengths = _batch([16000, 12345, 9000, 401])
    with torch.no_grad():
        cold, cold_lengths = model.features(wav, lengths)
        assert MEMO.misses == 4 and MEMO.hits == 0 and len(MEMO) == 4
        warm, warm_lengths = model.features(wav, lengths)
        assert MEMO.hits == 4
    assert torch.equal(cold, warm) and torch.equal(cold_lengths, warm_lengths)


def test_the_memo_matches_the_batched_spectrogram_to_float_rounding():
    encoder = _model().feature_encoder
    wav, lengths = _batch([16000, 12345, 9000, 399])
    memoised = encoder.spectrograms(wav, lengths)
    batched = encoder.spectrograms(wav.clone().requires_grad_(True), lengths).detach()
    assert memoised.shape == batched.shape == (4, encoder.melspec.n_mels, (16000 - 400) // 160 + 1)
    torch.testing.assert_close(memoised, batched, rtol=1e-5, atol=1e-5)
    assert (memoised[3] == 0).all()  # 399 samples: shorter than one window, no frame


def test_an_utterance_has_the_same_spectrogram_in_any_batch():
    encoder = _model().feature_encoder
    wav, lengths = _batch([16000, 12345, 9000])
    together = encoder.spectrograms(wav, lengths)
    MEMO.clear()
    alone = encoder.spectrograms(wav[1:2, :12345], lengths[1:2])
    frames = alone.shape[2]
    assert torch.equal(alone[0], together[1, :, :frames])
    assert (together[1, :, frames:] == 0).all()


def test_other_samples_or_another_front_end_are_never_served_an_entry():
    model = _model()
    wav, lengths = _batch([8000])
    with torch.no_grad():
        first = model.feature_encoder.spectrograms(wav, lengths)
        changed = wav.clone()
        changed[0, 4000] += 1e-3  # one sample
        second = model.feature_encoder.spectrograms(changed, lengths)
        assert MEMO.misses == 2 and not torch.equal(first, second)
        other = _model(n_mels=32).feature_encoder  # another filterbank, the same samples
        assert other.spectrograms(wav, lengths).shape[1] == 32
    assert MEMO.misses == 3 and MEMO.hits == 0


def test_the_budget_bounds_it_and_zero_turns_it_off(monkeypatch):
    model = _model()
    wav, lengths = _batch([16000, 16000, 16000])
    monkeypatch.setenv("SSLVGS_SPECTROGRAM_MEMO_MB", "0")
    with torch.no_grad():
        off, _ = model.features(wav, lengths)
    assert len(MEMO) == 0 and MEMO.bytes == 0
    one_entry = model.feature_encoder.melspec.n_mels * ((16000 - 400) // 160 + 1) * 4
    monkeypatch.setenv("SSLVGS_SPECTROGRAM_MEMO_MB", str(1.5 * one_entry / 2**20))
    with torch.no_grad():
        on, _ = model.features(wav, lengths)
    assert len(MEMO) == 1 and MEMO.bytes == one_entry  # full after one; it stops adding
    assert torch.equal(off, on)


def test_a_bad_budget_is_refused_by_name(monkeypatch):
    monkeypatch.setenv("SSLVGS_SPECTROGRAM_MEMO_MB", "lots")
    with pytest.raises(ValueError, match="SSLVGS_SPECTROGRAM_MEMO_MB='lots'"):
        memo_budget()
    monkeypatch.setenv("SSLVGS_SPECTROGRAM_MEMO_MB", "-1")
    with pytest.raises(ValueError, match="negative"):
        memo_budget()


def test_an_entry_made_while_probing_serves_a_training_step():
    model = _model().train()
    wav, lengths = _batch([16000, 9000])
    with torch.inference_mode():
        probed, _ = model.features(wav, lengths)
    trained, _ = model.features(wav, lengths)  # found in the memo, now with a graph
    assert MEMO.hits == 2
    trained.sum().backward()
    assert model.feature_encoder.conv_in.weight.grad is not None
    assert torch.equal(probed, trained.detach())


def test_the_conv_front_end_does_not_use_it():
    model = _model("tiny", front_end="conv", conv_layers=((16, 10, 5), (16, 8, 4), (16, 4, 4)))
    wav, lengths = _batch([16000, 9000])
    with torch.no_grad():
        model.features(wav, lengths)
    assert len(MEMO) == 0 and MEMO.misses == 0


def test_a_memo_of_its_own_counts_and_clears():
    memo = SpectrogramMemo(max_bytes=10**6)
    samples = torch.ones(100)
    calls = []

    def compute(x: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return x[None, :10] * 2

    a = memo.spectrogram(samples, b"front end", compute)
    b = memo.spectrogram(samples, b"front end", compute)
    c = memo.spectrogram(samples, b"another", compute)
    assert len(calls) == 2 and a is b and torch.equal(a, c)
    assert (memo.hits, memo.misses, len(memo), memo.bytes) == (1, 2, 2, 80)
    memo.clear()
    assert (memo.hits, memo.misses, len(memo), memo.bytes) == (0, 0, 0, 0)
