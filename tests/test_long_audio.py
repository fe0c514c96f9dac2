"""Long audio through a large model is refused before it runs, naming the file, its length and the
memory its forward pass would need (issue 24: a 10-minute wav died in an allocation error)."""

from __future__ import annotations

import pytest

import probes
from analysis.gridding import abx_fast_path
from probes.activations import AudioTooLongError, forward_bytes, memory_budget
from probes.models import LayeredModel

transformers = pytest.importorskip("transformers")

from test_pretrained_hf import random_hf_model  # noqa: E402
from tiny_abx import tiny_abx_set  # noqa: E402

GIB = 2**30


def base_size() -> LayeredModel:
    return LayeredModel(module=None, num_layers=12, dim=768, frame_rate=50.0, sample_rate=16000,
                        model_id="x", description="a base-size model")  # fmt: skip


def test_the_estimate_refuses_ten_minutes_and_lets_an_utterance_through():
    model = base_size()
    assert forward_bytes(model, 10 * 60 * 16000) > 40 * GIB  # 30k frames of attention
    assert forward_bytes(model, 35 * 16000) < 2 * GIB  # LibriSpeech's longest utterances


def test_the_budget_is_the_environment_or_the_free_memory(monkeypatch):
    monkeypatch.setenv("SSLVGS_MEMORY_GB", "1.5")
    assert memory_budget() == int(1.5 * GIB)
    monkeypatch.delenv("SSLVGS_MEMORY_GB")
    assert 0 < memory_budget("cpu")


def test_a_too_long_utterance_is_refused_by_name_before_the_model_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLVGS_CACHE", str(tmp_path / "cache"))
    items = tiny_abx_set(tmp_path / "abx", files=2, seconds=2.0)
    model = random_hf_model("wav2vec2-large-ctc")
    need = forward_bytes(probes.models.as_layered_model(model), 32000)
    monkeypatch.setenv("SSLVGS_MEMORY_GB", str(need / 2 / GIB))
    for call in (
        lambda: probes.abx(model, 1, items, speaker="across", progress=False),
        lambda: abx_fast_path.abx_layers(model, [1], checkpoint="m", items=items, speaker="across"),
    ):
        with pytest.raises(AudioTooLongError) as err:
            call()
        message = str(err.value)
        assert "f0.wav: 2.0 s of audio needs about" in message and "GiB" in message
        assert "SSLVGS_MEMORY_GB" in message and "\n" not in message
    monkeypatch.setenv("SSLVGS_MEMORY_GB", str(2 * need / GIB))
    assert 0 <= float(probes.abx(model, 1, items, speaker="across", progress=False)) <= 1
