"""Every kind of model the probes take satisfies `probes.Encoder`, and `max_layer` only cuts the stack.

One of each: an SSLVGS trained here, one imported from torchaudio, a paper bundle, a torchaudio
model, a fairseq checkpoint and a Hugging Face model (all small, with random weights).
"""

from __future__ import annotations

import argparse
import inspect
import pickle

import pytest
import torch
from paper_reference import SMALL_ARGS, paper_dual_encoder_state
from pretrained_fixtures import fairseq_state, random_torchaudio, wav2vec2_pretraining_extras

import probes
from probes.models import as_layered_model
from training.model import SSLVGS
from training.pretrained import TorchaudioEncoder, load_bundle, load_fairseq, wrap_hf
from training.pretrained.torchaudio_models import from_torchaudio
from training.run.config import preset


def _sslvgs(tmp_path):
    torch.manual_seed(0)
    cfg, _ = preset("tiny", region_dim=16)
    return SSLVGS(cfg).eval()


def _from_torchaudio(tmp_path):
    return from_torchaudio(random_torchaudio(seed=2), use_cls=False, layer_use=2).eval()


def _bundle(tmp_path):
    torch.manual_seed(1)
    torch.save({"dual_encoder": paper_dual_encoder_state(SMALL_ARGS)}, tmp_path / "best_bundle.pth")
    (tmp_path / "args.pkl").write_bytes(pickle.dumps(argparse.Namespace(**SMALL_ARGS)))
    return load_bundle(tmp_path)


def _torchaudio(tmp_path):
    return TorchaudioEncoder(random_torchaudio(seed=3))


def _fairseq(tmp_path):
    ta = random_torchaudio(seed=4)
    state = {**fairseq_state(ta), **wav2vec2_pretraining_extras(96)}
    model_cfg = {
        "_name": "wav2vec2",
        "conv_feature_layers": "[(64, 10, 5)] + [(64, 3, 2)] * 4 + [(64, 2, 2)] * 2",
        "encoder_attention_heads": 4,
        "layer_norm_first": False,
    }
    path = tmp_path / "checkpoint_best.pt"
    torch.save({"model": state, "cfg": {"model": model_cfg, "task": {"normalize": False}}}, path)
    return load_fairseq(path)


def _hf(tmp_path):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(5)
    config = transformers.Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
        hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0,
        layerdrop=0.0,
    )  # fmt: skip
    return wrap_hf(transformers.Wav2Vec2Model(config).eval())


KINDS = {
    "sslvgs": _sslvgs,
    "sslvgs-from-torchaudio": _from_torchaudio,
    "paper-bundle": _bundle,
    "torchaudio": _torchaudio,
    "fairseq": _fairseq,
    "hf": _hf,
}


def utterances():
    g = torch.Generator().manual_seed(11)
    wav = torch.zeros(2, 12000)
    wav[0] = torch.randn(12000, generator=g)
    wav[1, :8000] = torch.randn(8000, generator=g)
    return wav, torch.tensor([12000, 8000])


@pytest.fixture(scope="module", params=sorted(KINDS))
def encoder(request, tmp_path_factory):
    return KINDS[request.param](tmp_path_factory.mktemp(request.param))


def test_every_kind_is_an_encoder_with_max_layer(encoder):
    assert isinstance(encoder, probes.Encoder)
    assert "max_layer" in inspect.signature(encoder.hidden_states).parameters
    assert isinstance(as_layered_model(encoder), probes.Encoder)


def test_max_layer_gives_the_first_layers_of_the_whole_stack(encoder):
    wav, lengths = utterances()
    everything, frames = encoder.hidden_states(wav, lengths)
    assert len(everything) == encoder.num_layers + 1
    assert everything[0].shape[-1] == encoder.dim
    for max_layer in range(encoder.num_layers + 1):
        cut, cut_frames = encoder.hidden_states(wav, lengths, max_layer=max_layer)
        assert len(cut) == max_layer + 1
        torch.testing.assert_close(cut_frames, frames)
        for layer, (got, want) in enumerate(zip(cut, everything, strict=False)):
            torch.testing.assert_close(got, want, msg=f"layer {layer} of max_layer={max_layer}")


def test_the_probes_see_the_same_layers_through_the_contract(encoder):
    wav, lengths = utterances()
    layered = as_layered_model(encoder)
    everything, _ = encoder.hidden_states(wav, lengths)
    got, frames = layered.hidden_states(wav, lengths, max_layer=1)
    assert len(got) == 2 and frames.dtype == torch.long
    for layer in range(2):
        torch.testing.assert_close(got[layer], everything[layer])


def test_a_module_without_the_contract_is_refused():
    class NoRate(torch.nn.Module):
        num_layers, dim = 2, 8

        def hidden_states(self, wav, wav_lengths=None, max_layer=None):
            raise AssertionError("never called")

    assert not isinstance(NoRate(), probes.Encoder)
    with pytest.raises(TypeError, match="NoRate"):
        as_layered_model(NoRate())
