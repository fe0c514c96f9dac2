"""The notebook API on sslvgs models: probes.abx, probes.recall, probes.similarity, phone probe, CLI.

A randomly initialised tiny SSLVGS saved as a run directory (config.json naming the corpus, one
checkpoint) stands for any checkpoint here; what needs training is in test_probes_trained.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import xarray as xr

import probes
from probes.store import StoreMismatchError


def save_run(run, corpus, seed):
    from training import SSLVGS, preset
    from training.run.checkpoints import save_checkpoint
    from training.run.config import config_to_dict

    region_dim = json.loads((corpus / "manifest.json").read_text())["settings"]["region_dim"]
    config = preset("tiny", region_dim=region_dim)[0]
    torch.manual_seed(seed)
    model = SSLVGS(config)
    save_checkpoint(
        run / "checkpoints" / "epoch_0000.pt",
        {"model_config": config_to_dict(config), "model": model.state_dict(), "epoch": 0},
    )
    (run / "config.json").write_text(json.dumps({"corpus": str(corpus)}))
    return run


@pytest.fixture(scope="module")
def random_run(small_corpus, tmp_path_factory):
    return save_run(tmp_path_factory.mktemp("random_run"), small_corpus, seed=0)


@pytest.fixture
def forwards(monkeypatch):
    """Counts forward passes of any probed model."""
    from probes.models import LayeredModel

    calls = [0]
    original = LayeredModel.hidden_states

    def counted(self, *args, **kwargs):
        calls[0] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(LayeredModel, "hidden_states", counted)
    return calls


def test_abx_of_one_layer_is_the_engine_score_of_its_frames(random_run, small_corpus):
    result = probes.abx(random_run, 2, speaker="across", progress=False)
    items = small_corpus / "abx" / "captions" / "items.item"
    frames = probes.extract(random_run, items, [2], progress=False)
    features = {
        u: frames.activations.sel(layer=2).values[o : o + n]
        for u, o, n in zip(
            frames.utterance.values, frames.offset.values, frames.n_frames.values, strict=True
        )
    }
    expected = probes.abx_engine.score(features, items, speaker="across")
    assert 0.0 < float(result) < 1.0
    assert float(result) == pytest.approx(float(expected))
    assert len(result.cells) > 0


def test_abx_over_layers_reads_one_extraction(random_run, forwards):
    first = probes.abx(random_run, 1, speaker="across", progress=False)
    forwards[0] = 0
    errors = probes.abx(random_run, [1, 3, 12], speaker="across", progress=False)
    assert forwards[0] == 0  # every layer came from the cache that the first call filled
    assert errors.dims == ("layer",)
    assert list(errors.layer.values) == [1, 3, 12]
    assert float(errors.sel(layer=1)) == pytest.approx(float(first))
    assert errors.attrs["speaker"] == "across"


def test_abx_of_a_store_and_of_a_loaded_model_agree(random_run, tmp_path):
    from training import load_model

    store = tmp_path / "acts.zarr"
    by_path = probes.abx(random_run, 4, speaker="across", store=store, progress=False)
    by_store = probes.abx(store, 4, speaker="across")
    by_model = probes.abx(load_model(random_run), 4, speaker="across", progress=False)
    assert float(by_store) == float(by_path) == pytest.approx(float(by_model))
    with pytest.raises(ValueError, match="layer 5 is not in the store"):
        probes.abx(xr.open_zarr(store).sel(layer=[4]), 5)


def test_abx_bad_input(random_run, small_corpus, tmp_path):
    with pytest.raises(ValueError, match="layer 13 is out of range.*0..12"):
        probes.abx(random_run, 13, progress=False)
    with pytest.raises(FileNotFoundError, match="no-such-set"):
        probes.abx(random_run, 1, items="no-such-set", progress=False)
    from training import SSLVGS, preset

    with pytest.raises(ValueError, match="no corpus known.*corpus="):
        probes.abx(SSLVGS(preset("tiny")[0]), 1, progress=False)
    other = save_run(tmp_path / "other", small_corpus, seed=1)
    store = tmp_path / "acts.zarr"
    probes.abx(random_run, 1, speaker="across", store=store, progress=False)
    with pytest.raises(StoreMismatchError, match="another model"):
        probes.abx(other, 1, speaker="across", store=store, progress=False)


def test_recall_of_a_model_is_recall_at_k_of_its_embeddings(random_run):
    result = probes.recall(random_run, split="val", k=(1, 5), progress=False)
    image_emb, audio_emb, owner, _, _ = probes.embed_split(random_run, "val", progress=False)
    scores = image_emb @ audio_emb.T
    # Brute force: speech -> image rank = wrong images scoring at least the right one.
    right = scores[owner, np.arange(len(owner))]
    wrong = np.arange(len(image_emb))[:, None] != owner[None, :]
    rank = ((scores >= right[None, :]) & wrong).sum(0)
    expected = [np.mean(rank < k) for k in (1, 5)]
    np.testing.assert_allclose(result.sel(direction="speech_to_image").values, expected)
    assert result.attrs["split"] == "val"


def test_recall_bad_input(random_run, tmp_path):
    (tmp_path / "spokencoco_test.json").write_text('{"data": []}')
    with pytest.raises(ValueError, match=r"spokencoco_test\.json: the split has no images"):
        probes.recall(random_run, corpus=tmp_path, progress=False)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        probes.recall(tmp_path / "nowhere", progress=False)


def test_similarity_of_a_model_with_itself(random_run, small_corpus, tmp_path):
    other = save_run(tmp_path / "other", small_corpus, seed=1)
    same = probes.similarity(random_run, random_run, [1, 6], progress=False)
    assert same.dims == ("layer_a", "layer_b")
    np.testing.assert_allclose(np.diag(same.values), 1.0)
    assert same.sel(layer_a=1, layer_b=6) < 1.0
    across = probes.similarity(random_run, other, [1, 6], max_frames=2000, progress=False)
    assert ((0 < across.values) & (across.values < 1)).all()


def test_cli_extract_and_recall(random_run, small_corpus, tmp_path, capsys):
    from analysis.cli import main

    out = tmp_path / "cli.zarr"
    args = ["extract", str(random_run), str(small_corpus), "--split", "val", "--layers", "1-2"]
    assert main([*args, "--out", str(out), "--quiet"]) == 0
    assert "layers [1, 2]" in capsys.readouterr().out
    assert list(probes.open_store(out).layer.values) == [1, 2]
    assert main(["recall", str(random_run), "--split", "val", "--json", "--quiet"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert {row["direction"] for row in printed["recall"]} == {"speech_to_image", "image_to_speech"}
    assert main([*args[:5], "--layers", "1-40", "--out", str(out), "--quiet"]) == 2
    assert "layer 13 is out of range" in capsys.readouterr().err
    assert main(["extract", str(random_run), str(small_corpus), "--out", str(out)]) == 2
    assert "name its split" in capsys.readouterr().err


def test_frame_labels_follow_the_alignment(random_run, small_corpus, tmp_path):
    from probes.phones import frame_labels
    from training.data import read_alignment

    frames = probes.extract(random_run, (small_corpus, "val"), [1], progress=False)
    labels = frame_labels(frames, small_corpus / "alignments" / "val")
    row = 3
    uttid, start = str(frames.utterance.values[row]), int(frames.offset.values[row])
    alignment = read_alignment(small_corpus / "alignments" / "val" / f"{uttid}.txt")
    for frame in range(start, start + int(frames.n_frames.values[row])):
        centre = float(frames.time.values[frame])
        inside = [phone for onset, offset, phone in alignment if onset <= centre < offset]
        assert [labels[frame]] == (inside or ["SIL"])
    with pytest.raises(FileNotFoundError, match=r"scene_\w+\.txt: no phone alignment"):
        frame_labels(frames, tmp_path)


def test_cli_abx_of_a_model_layer(random_run, small_corpus, capsys):
    from analysis.cli import main

    items = small_corpus / "abx" / "captions" / "items.item"
    args = ["abx", "--model", str(random_run), str(items), "--speaker", "across", "--quiet"]
    assert main([*args, "--layer", "3", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = probes.abx(random_run, 3, items, speaker="across", progress=False)
    assert printed["score"] == pytest.approx(float(expected))
    assert main(args) == 2
    assert "--model needs --layer" in capsys.readouterr().err
    assert main([*args, "--layer", "13"]) == 2
    assert "layer 13 is out of range" in capsys.readouterr().err
