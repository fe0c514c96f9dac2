"""Hugging Face hub ids (`org/name`) are read from a local hub cache that the test builds; nothing
is downloaded, and a model that is not cached is one line saying where it was looked for."""

from __future__ import annotations

import json

import pytest
import torch

import probes
from probes.models import as_layered_model
from training.pretrained import load_pretrained, model_identity, pretrained_kind
from training.pretrained.hub import NotCachedError, hub_cache, locate_model, resolve_hub_id

transformers = pytest.importorskip("transformers")

from test_pretrained_hf import batch, random_hf_model  # noqa: E402
from tiny_abx import tiny_abx_set  # noqa: E402

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def fake_cache(root, repo="someorg/tiny-w2v", commit=COMMIT, ref="main", seed=0):
    """`root` laid out as huggingface_hub's cache holding `repo` (save_pretrained in its snapshot)."""
    folder = root / ("models--" + repo.replace("/", "--"))
    snapshot = folder / "snapshots" / commit
    random_hf_model("wav2vec2-large-ctc", seed=seed).save_pretrained(snapshot)
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    if ref is not None:
        (folder / "refs" / ref).write_text(commit)
    return snapshot


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("SSLVGS_CACHE", str(tmp_path / "sslvgs-cache"))
    monkeypatch.chdir(tmp_path)
    return fake_cache(tmp_path / "hub")


def test_the_cache_folder_follows_huggingface_hub(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert hub_cache() == tmp_path / ".cache" / "huggingface" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert hub_cache() == tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))
    assert hub_cache() == tmp_path / "elsewhere"


def test_a_hub_id_is_its_cached_snapshot_everywhere_a_path_is_taken(cache):
    assert resolve_hub_id("someorg/tiny-w2v") == cache
    assert pretrained_kind("someorg/tiny-w2v") == "hf"
    assert model_identity("someorg/tiny-w2v") == model_identity(cache)
    by_id, by_folder = as_layered_model("someorg/tiny-w2v"), as_layered_model(cache)
    assert by_id.description == "someorg/tiny-w2v"
    assert by_id.model_id == by_folder.model_id
    wav, lengths = batch()
    got, _ = by_id.hidden_states(wav, lengths, max_layer=3)
    expected, _ = load_pretrained(cache).hidden_states(wav, lengths, max_layer=3)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b)


def test_a_revision_names_a_ref_or_a_commit(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    other = "f" * 40
    fake_cache(tmp_path / "hub", ref="main")
    fake_cache(tmp_path / "hub", commit=other, ref="v2", seed=1)
    root = tmp_path / "hub" / "models--someorg--tiny-w2v" / "snapshots"
    assert resolve_hub_id("someorg/tiny-w2v") == root / COMMIT
    assert resolve_hub_id("someorg/tiny-w2v@v2") == root / other
    assert resolve_hub_id(f"someorg/tiny-w2v@{other}") == root / other
    with pytest.raises(NotCachedError, match="at revision v3"):
        resolve_hub_id("someorg/tiny-w2v@v3")


def test_a_single_snapshot_without_refs_is_taken(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    snapshot = fake_cache(tmp_path / "hf" / "hub", ref=None)
    assert resolve_hub_id("someorg/tiny-w2v") == snapshot


def test_a_model_not_cached_is_one_line_and_never_a_download(cache, monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("sslvgs tried to reach the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    for call in (as_layered_model, load_pretrained, pretrained_kind, model_identity):
        with pytest.raises(NotCachedError) as err:
            call("facebook/wav2vec2-base")
        message = str(err.value)
        assert "\n" not in message
        assert "facebook/wav2vec2-base" in message and str(hub_cache()) in message
        assert "models--facebook--wav2vec2-base" in message
        assert "huggingface-cli download facebook/wav2vec2-base" in message
    assert isinstance(err.value, FileNotFoundError)  # callers catching a missing path still do


def test_a_path_on_disk_wins_over_an_id_of_the_same_spelling(cache, tmp_path):
    local = tmp_path / "someorg" / "tiny-w2v"
    random_hf_model("wav2vec2-base", seed=5).save_pretrained(local)
    assert locate_model("someorg/tiny-w2v").resolve() == local.resolve()
    assert locate_model("no/such/path") == locate_model("no/such/path")  # not an id: left alone


def test_probes_abx_and_the_cli_take_a_hub_id(cache, tmp_path, capsys):
    from analysis.cli import main

    items = tiny_abx_set(tmp_path / "abx")
    by_id = probes.abx("someorg/tiny-w2v", 2, items, speaker="across", progress=False)
    by_folder = probes.abx(cache, 2, items, speaker="across", progress=False)
    assert float(by_id) == float(by_folder)
    argv = ["abx", "--model", "someorg/tiny-w2v", "--layer", "2", str(items), "--speaker", "across"]
    assert main([*argv, "--quiet", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["score"] == pytest.approx(float(by_id))
    assert main(["abx", "--model", "facebook/wav2vec2-base", "--layer", "2", str(items)]) == 2
    assert "not in the Hugging Face cache" in capsys.readouterr().err
