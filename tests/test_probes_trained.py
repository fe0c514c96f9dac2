"""Probes on the session's tiny trained run: training shows up where it should."""

from __future__ import annotations

import json

import pytest
import torch

import probes
from training.run.directory import run_corpus


@pytest.fixture(scope="module")
def initial_model(tiny_run):
    """The run's weights before training: the trainer seeds torch with the run's seed, then builds."""
    from training import SSLVGS, load_model

    seed = json.loads((tiny_run / "config.json").read_text())["train"]["seed"]
    torch.manual_seed(seed)
    return SSLVGS(load_model(tiny_run).cfg)


def test_abx_of_a_trained_layer_is_below_the_same_layer_at_initialisation(tiny_run, initial_model):
    # Within speaker, synthetic voices repeat a phone almost identically and every model scores
    # near 0; across speakers a few training steps already pull a low layer's phones together.
    corpus = run_corpus(tiny_run)  # config.json stores it relative to the run
    trained = probes.abx(tiny_run, 2, speaker="across", progress=False)
    initial = probes.abx(initial_model, 2, speaker="across", corpus=corpus, progress=False)
    assert float(trained) < float(initial)


def test_phone_probe_of_a_trained_layer_is_above_chance(tiny_run):
    accuracy = probes.phone_probe(tiny_run, [2], max_train_frames=1500, progress=False)
    assert accuracy.dims == ("layer",)
    assert float(accuracy.sel(layer=2)) > 2 * accuracy.attrs["chance"]
    assert accuracy.attrs["test_speakers"]
