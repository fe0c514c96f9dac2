"""The paper's VGS+ / FaST-VGS+ bundles import into SSLVGS and compute what the authors' code computes.

Bundles are generated with the authors' parameter names and shapes at a reduced size (the mapping
does not depend on sizes); tests/paper_reference.py runs their forward passes from the raw tensors.
"""

from __future__ import annotations

import argparse
import pickle

import numpy as np
import pytest
import torch
from paper_reference import (
    SMALL_ARGS,
    paper_dual_encoder_state,
    reference_audio,
    reference_image,
    reference_speech,
)

import probes
from training.model import SSLVGS
from training.pretrained import BundleError, UnsafePickleError, load_bundle, pretrained_kind


def write_bundle(folder, args=SMALL_ARGS, state=None, name="best_bundle.pth"):
    folder.mkdir(parents=True, exist_ok=True)
    state = paper_dual_encoder_state(args) if state is None else state
    torch.save(
        {"dual_encoder": state, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4}]},
         "indices": np.arange(10), "libri_indices": None},
        folder / name,
    )  # fmt: skip
    with open(folder / "args.pkl", "wb") as f:
        pickle.dump(argparse.Namespace(**args), f)
    return folder / name, state


def znorm(w):
    return (w - w.mean()) / torch.sqrt(w.var(unbiased=False) + 1e-7)


def utterances():
    g = torch.Generator().manual_seed(7)
    wav = torch.zeros(2, 20000)
    wav[0] = torch.randn(20000, generator=g)
    wav[1, :13000] = torch.randn(13000, generator=g)
    return wav, torch.tensor([20000, 13000])


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    path, state = write_bundle(tmp_path_factory.mktemp("exp"))
    return path, state, load_bundle(path.parent)


def test_the_bundle_is_an_sslvgs_with_the_sizes_of_args_pkl(bundle):
    path, _, model = bundle
    assert pretrained_kind(path) == pretrained_kind(path.parent) == "bundle"
    assert isinstance(model, SSLVGS)
    cfg = model.cfg
    assert (cfg.dim, cfg.num_layers, cfg.num_heads, cfg.ffn_dim) == (48, 4, 4, 96)
    assert cfg.layer_use == 3  # the authors' 0-based layer_use=2 is the output of layer 3
    assert cfg.resdavenet_widths == (8, 16, 24, 48) and cfg.image_layers == 2


def test_hidden_states_are_the_authors_speech_encoders_layer_by_layer(bundle):
    _, state, model = bundle
    wav, lengths = utterances()
    got, frames = model.hidden_states(wav, lengths)
    assert len(got) == 5
    for row, n in enumerate(lengths.tolist()):
        expected = reference_speech(state, SMALL_ARGS, znorm(wav[row : row + 1, :n]))
        assert frames[row] == expected[0].shape[1] - 1
        for layer, want in enumerate(expected):
            torch.testing.assert_close(
                got[layer][row, : frames[row]], want[0, 1:], atol=1e-4, rtol=1e-4,
                msg=f"layer {layer}, utterance {row}",
            )  # fmt: skip


def test_audio_and_image_embeddings_are_the_authors(bundle):
    _, state, model = bundle
    wav, lengths = utterances()
    with torch.no_grad():
        got = model.encode_audio(wav, lengths)  # batched: each row as the authors' code alone
    for row, n in enumerate(lengths.tolist()):
        want = reference_audio(state, SMALL_ARGS, znorm(wav[row : row + 1, :n]))
        torch.testing.assert_close(got[row], want[0], atol=1e-4, rtol=1e-4)
    g = torch.Generator().manual_seed(8)
    feats, boxes = torch.randn(3, 36, 256, generator=g), torch.rand(3, 36, 4, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(
            model.encode_image(feats, boxes),
            reference_image(state, SMALL_ARGS, feats, boxes), atol=1e-4, rtol=1e-4,
        )  # fmt: skip


def test_a_vgs_only_bundle_has_only_the_layers_its_branch_reads(tmp_path):
    args = {**SMALL_ARGS, "caption_w2v2_weight": None, "libri_w2v2_weight": None}
    # Their DualEncoder then builds layer_use + 1 layers, whatever encoder_layers says.
    state = paper_dual_encoder_state({**args, "encoder_layers": 3})
    path, _ = write_bundle(tmp_path / "vgs", args, state, name="bundle.pth")
    model = load_bundle(path)
    assert model.cfg.num_layers == model.cfg.layer_use == 3


@pytest.mark.slow
def test_probes_run_on_a_bundle(bundle, small_corpus):
    path, _, _ = bundle
    error = probes.abx(path, 3, items="read", corpus=small_corpus, progress=False)
    assert 0.0 <= float(error) <= 1.0
    recall = probes.recall(path.parent, split="val", corpus=small_corpus, progress=False)
    assert float(recall.min()) >= 0.0 and float(recall.max()) <= 1.0


def test_a_parameter_of_another_shape_is_named(tmp_path):
    state = paper_dual_encoder_state(SMALL_ARGS)
    path, _ = write_bundle(tmp_path, {**SMALL_ARGS, "encoder_ffn_embed_dim": 64}, state)
    with pytest.raises(BundleError) as err:
        load_bundle(path)
    message = str(err.value)
    assert (
        str(path) in message and "conv1_trm1_trm3.encoder.layers.0.fc1.weight (96, 48)" in message
    )
    assert "\n" not in message


def test_args_pkl_is_never_unpickled_as_it_is(tmp_path):
    path, _ = write_bundle(tmp_path)
    with open(tmp_path / "args.pkl", "wb") as f:  # a pickle that would run code
        pickle.dump({"layer_use": 2, "hook": print}, f)
    with pytest.raises(UnsafePickleError, match="args.pkl: not a pickled argparse.Namespace"):
        load_bundle(path)
