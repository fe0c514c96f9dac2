"""Hugging Face transformers models, live or saved, give the probes transformers' own hidden states.

Random-weight models of a small configuration are built and saved locally: nothing is downloaded.
"""

from __future__ import annotations

import json
import sys

import pytest
import torch

import probes
from probes.models import as_layered_model
from training.pretrained import HFModelError, load_hf, load_pretrained, pretrained_kind

transformers = pytest.importorskip("transformers")

SMALL = dict(
    hidden_size=32,
    num_hidden_layers=3,
    num_attention_heads=2,
    intermediate_size=64,
    conv_dim=(16,) * 7,
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=4,
    hidden_dropout=0.0,
    attention_dropout=0.0,
    activation_dropout=0.0,
    feat_proj_dropout=0.0,
    layerdrop=0.0,
    vocab_size=12,
)
# (model class, config class, extra config): the base and head classes of each family, both kinds
# of feature encoder (GroupNorm over time, per-frame LayerNorm) and both layer-norm placements.
CASES = {
    "wav2vec2-base": ("Wav2Vec2Model", "Wav2Vec2Config", {}),
    "wav2vec2-pretraining": ("Wav2Vec2ForPreTraining", "Wav2Vec2Config", {}),
    "wav2vec2-large-ctc": (
        "Wav2Vec2ForCTC",
        "Wav2Vec2Config",
        {"feat_extract_norm": "layer", "do_stable_layer_norm": True, "conv_bias": True},
    ),
    "hubert-ctc": ("HubertForCTC", "HubertConfig", {}),
    "wavlm": ("WavLMModel", "WavLMConfig", {"feat_extract_norm": "layer", "conv_bias": True}),
}


def random_hf_model(name: str, seed: int = 0):
    model_class, config_class, extra = CASES[name]
    torch.manual_seed(seed)
    config = getattr(transformers, config_class)(**SMALL, **extra)
    model = getattr(transformers, model_class)(config).eval()
    with torch.no_grad():  # random, not default, norms and biases: mix-ups would otherwise hide
        for param_name, p in model.named_parameters():
            if "norm" in param_name or param_name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
    return model


def batch(lengths=(16000, 11000)):
    g = torch.Generator().manual_seed(3)
    wav = torch.zeros(len(lengths), max(lengths))
    for i, n in enumerate(lengths):
        wav[i, :n] = torch.randn(n, generator=g)
    return wav, torch.tensor(lengths)


def own_hidden_states(model, wav):
    """transformers' own output_hidden_states of one unpadded utterance [1, T]."""
    base = model.base_model
    with torch.no_grad():
        return base(wav, output_hidden_states=True).hidden_states


@pytest.mark.parametrize("name", list(CASES))
def test_a_saved_directory_gives_transformers_hidden_states_layer_by_layer(name, tmp_path):
    model = random_hf_model(name)
    model.save_pretrained(tmp_path / name)
    assert pretrained_kind(tmp_path / name) == "hf"
    layered = as_layered_model(tmp_path / name)
    assert (layered.num_layers, layered.dim, layered.frame_rate) == (3, 32, 50.0)
    wav, lengths = batch()
    got, frames = layered.hidden_states(wav, lengths, max_layer=3)
    assert frames.tolist() == [49, 34]
    assert len(got) == 4
    # A batch of different lengths gives each utterance what transformers gives it alone.
    for row, n in enumerate(lengths.tolist()):
        expected = own_hidden_states(model, wav[row : row + 1, :n])
        for layer in range(4):
            torch.testing.assert_close(
                got[layer][row, : frames[row]], expected[layer][0], atol=2e-5, rtol=1e-4,
                msg=f"{name}: layer {layer}, utterance {row}",
            )  # fmt: skip


def test_a_live_model_with_a_head_is_probed_through_its_encoder():
    model = random_hf_model("hubert-ctc")
    layered = as_layered_model(model)
    assert layered.description == "an in-memory transformers HubertForCTC"
    wav, lengths = batch((8000,))
    got, _ = layered.hidden_states(wav, lengths, max_layer=1)
    expected = own_hidden_states(model, wav)
    assert len(got) == 2
    torch.testing.assert_close(got[1][0], expected[1][0])


def test_normalisation_follows_the_preprocessor_config(tmp_path):
    model = random_hf_model("wav2vec2-base")
    model.save_pretrained(tmp_path)
    raw = load_hf(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text(
        json.dumps({"do_normalize": True, "sampling_rate": 16000})
    )
    normalised = load_hf(tmp_path)
    assert not bool(raw.normalize) and bool(normalised.normalize)
    wav, lengths = batch((8000,))
    wav = wav * 5 + 1
    z = (wav - wav.mean()) / torch.sqrt(wav.var(unbiased=False) + 1e-7)
    got, _ = normalised.hidden_states(wav, lengths)
    torch.testing.assert_close(got[2][0], own_hidden_states(model, z)[2][0], atol=2e-5, rtol=1e-4)
    # The flag is part of the weights' checksum, the activation cache's key.
    assert as_layered_model(raw).model_id != as_layered_model(normalised).model_id


@pytest.mark.slow
def test_probes_take_the_directory_by_path(small_corpus, tmp_path):
    # A model that runs batched (per-frame LayerNorm in its CNN), so that extraction is quick.
    random_hf_model("wav2vec2-large-ctc").save_pretrained(tmp_path / "w2v")
    errors = probes.abx(tmp_path / "w2v", [0, 3], items="read", corpus=small_corpus, progress=False)
    assert errors.layer.values.tolist() == [0, 3]
    assert ((errors.values >= 0) & (errors.values <= 1)).all()
    assert errors.attrs["model"] == str(tmp_path / "w2v")


def test_a_directory_of_another_architecture_is_named(tmp_path):
    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "bert", "architectures": ["BertForMaskedLM"]})
    )
    with pytest.raises(HFModelError) as err:
        as_layered_model(tmp_path)
    message = str(err.value)
    assert str(tmp_path) in message and "BertForMaskedLM" in message and "'bert'" in message
    assert "\n" not in message


def test_missing_transformers_says_how_to_install(tmp_path, monkeypatch):
    random_hf_model("wav2vec2-base").save_pretrained(tmp_path)
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ImportError, match=r"pip install 'sslvgs\[hf\]'"):
        load_pretrained(tmp_path)


def _with_config(source, target, **changes):
    """A copy of a saved directory whose config.json says otherwise."""
    target.mkdir()
    for file in source.iterdir():
        (target / file.name).write_bytes(file.read_bytes())
    config = json.loads((source / "config.json").read_text())
    (target / "config.json").write_text(json.dumps({**config, **changes}))
    return target


@pytest.mark.parametrize(
    "changes, names",
    [
        ({"num_hidden_layers": 5}, ["not in the file", "encoder.layers.3.", "random values"]),
        ({"num_hidden_layers": 2}, ["no place", "encoder.layers.2."]),
        ({"hidden_size": 48}, ["another shape", "(32", "(48"]),
        ({"model_type": "hubert", "architectures": ["HubertModel"]}, ["HubertModel"]),
    ],
    ids=["more-layers", "fewer-layers", "hidden-size", "hubert-config"],
)
def test_weights_that_do_not_fit_the_config_are_refused_naming_file_and_key(
    changes, names, tmp_path
):
    # transformers would give the missing layers fresh random values on every load: silently wrong.
    random_hf_model("wav2vec2-pretraining").save_pretrained(tmp_path / "ok")
    wrong = _with_config(tmp_path / "ok", tmp_path / "wrong", **changes)
    with pytest.raises(HFModelError) as err:
        load_pretrained(wrong)
    message = str(err.value)
    assert "\n" not in message and str(wrong / "model.safetensors") in message, message
    for name in names:
        assert name in message, message


def test_a_head_directory_loads_without_a_report(tmp_path, caplog):
    # The pretraining quantizer / projections and CTC head are dropped on purpose: no error, and
    # transformers' loading report about them is not shown; other warnings are not silenced.
    random_hf_model("wav2vec2-pretraining").save_pretrained(tmp_path / "pre")
    random_hf_model("wav2vec2-large-ctc").save_pretrained(tmp_path / "ctc")
    with caplog.at_level("WARNING"):
        load_hf(tmp_path / "pre")
        load_hf(tmp_path / "ctc")
    assert not [r for r in caplog.records if "LOAD REPORT" in r.getMessage()]
    assert transformers.logging.get_verbosity() != transformers.logging.ERROR


def test_a_pickled_bin_is_refused_in_one_line_without_torch_advice(tmp_path):
    import os
    import pickle

    from training.pretrained.safe_pickle import UnsafePickleError

    model = random_hf_model("wav2vec2-base")
    model.save_pretrained(tmp_path / "ok")
    config = (tmp_path / "ok" / "config.json").read_text()

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "ran"),))

    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "config.json").write_text(config)
    torch.save({"x": Evil()}, evil / "pytorch_model.bin")
    with pytest.raises(UnsafePickleError) as err:
        load_hf(evil)
    message = str(err.value)
    assert str(evil / "pytorch_model.bin") in message and "system" in message
    assert "weights_only" not in message and "\n" not in message
    assert not (tmp_path / "ran").exists()
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "config.json").write_text(config)
    with open(legacy / "pytorch_model.bin", "wb") as f:
        pickle.dump(dict(model.state_dict()), f, protocol=4)
    with pytest.raises(ValueError) as err:
        load_hf(legacy)
    message = str(err.value)
    assert str(legacy / "pytorch_model.bin") in message and "torch.save" in message
    assert "weights_only" not in message and "\n" not in message
