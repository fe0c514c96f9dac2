"""`protocol="paper"`: each rule of the paper's evaluation on a fixture (probes/protocol.py).

libri-light slicing, layers numbered 1..N as the paper prints them, waveforms z-normalised per
utterance, and one-to-many image recall; and the offset against the default protocol.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import probes
from probes.models import as_layered_model
from probes.protocol import for_protocol
from training.pretrained import load_hf
from training.retrieval import recall_at_k

transformers = pytest.importorskip("transformers")

from test_pretrained_hf import random_hf_model  # noqa: E402
from tiny_abx import tiny_abx_set  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("protocol")
    items = tiny_abx_set(root / "abx", files=4, seconds=2.0)
    random_hf_model("wav2vec2-large-ctc").save_pretrained(root / "raw")  # does not normalise
    return root, items


def abx(model, layers, items, **options):
    return probes.abx(model, layers, items, speaker="across", progress=False, **options)


def test_paper_slicing_is_the_librilight_tool(setup, monkeypatch):
    root, items = setup
    monkeypatch.setenv("SSLVGS_CACHE", str(root / "cache"))
    normalising = load_hf(root / "raw", normalize=True)  # z-normalisation is not what differs here
    paper = abx(normalising, 2, items, protocol="paper")
    assert float(paper) == float(abx(normalising, 2, items, compat="librilight"))
    assert float(paper) != float(abx(normalising, 2, items))  # the last frame of each item dropped
    with pytest.raises(ValueError, match="compat=None contradicts it"):
        abx(normalising, 2, items, protocol="paper", compat=None)


def test_paper_layers_are_numbered_1_to_n_as_printed(setup, monkeypatch):
    root, items = setup
    monkeypatch.setenv("SSLVGS_CACHE", str(root / "cache"))
    model = load_hf(root / "raw", normalize=True)
    errors = abx(model, "all", items, protocol="paper")
    assert errors.layer.values.tolist() == [1, 2, 3]  # the paper has no layer 0
    assert errors.attrs["protocol"] == "paper"
    # Paper layer L is the output of the L-th transformer block: hidden_states[L] here.
    same = abx(model, [1, 2, 3], items, compat="librilight")
    assert errors.values.tolist() == same.values.tolist()
    for wrong in (0, 4):
        with pytest.raises(ValueError, match="paper's numbering.*1..3"):
            abx(model, wrong, items, protocol="paper")


def test_paper_waveforms_are_z_normalised_per_utterance(setup, monkeypatch):
    root, items = setup
    monkeypatch.setenv("SSLVGS_CACHE", str(root / "cache"))
    raw = as_layered_model(root / "raw")
    assert not bool(raw.module.normalize)
    viewed = for_protocol(raw, "paper")
    assert viewed.znorm and viewed.model_id != raw.model_id  # its own cache entries
    paper = abx(root / "raw", 3, items, protocol="paper")
    normalised = abx(load_hf(root / "raw", normalize=True), 3, items, compat="librilight")
    unnormalised = abx(root / "raw", 3, items, compat="librilight")
    assert float(paper) == pytest.approx(float(normalised), abs=1e-12)
    assert float(paper) != float(unnormalised)
    # A model that normalises itself is run as it is: the default protocol's cache serves both.
    already = as_layered_model(load_hf(root / "raw", normalize=True))
    assert for_protocol(already, "paper") is already


def test_an_sslvgs_model_already_normalises():
    from training import SSLVGS, preset

    layered = as_layered_model(SSLVGS(preset("tiny")[0]))
    assert for_protocol(layered, "paper") is layered


def test_image_recall_is_one_to_many_in_both_protocols():
    # Image 0 has captions 0 and 1: caption 1 is its best match, caption 0 is ranked last.
    images = np.array([[1.0, 0.0], [0.0, 1.0]])
    captions = np.array([[0.0, 1.0], [2.0, 0.0], [0.1, 2.0]])
    owner = np.array([0, 0, 1])
    result = recall_at_k(images, captions, owner, [1])
    assert float(result.sel(direction="image_to_speech", k=1)) == 1.0  # any of its captions hits


def test_unknown_protocol_is_named(setup):
    root, items = setup
    with pytest.raises(ValueError, match="protocol must be one of 'default', 'paper'"):
        abx(root / "raw", 1, items, protocol="zerospeech")
    with pytest.raises(ValueError, match="protocol must be one of"):
        probes.recall(root / "raw", protocol="zerospeech")


def test_cli_protocol_paper(setup, monkeypatch, capsys):
    from analysis.cli import main

    root, items = setup
    monkeypatch.setenv("SSLVGS_CACHE", str(root / "cache"))
    argv = ["abx", "--model", str(root / "raw"), "--layer", "2", str(items), "--speaker", "across"]
    assert main([*argv, "--protocol", "paper", "--quiet", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)["score"]
    assert printed == pytest.approx(float(abx(root / "raw", 2, items, protocol="paper")))
    assert main([*argv, "--protocol", "paper", "--layer", "0"]) == 2
    assert "paper's numbering" in capsys.readouterr().err
