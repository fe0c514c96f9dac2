"""fairseq wav2vec 2.0 / HuBERT checkpoint files import into torchaudio's modules without fairseq and
without running pickled code, and give torchaudio's own forward with the same weights."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
from pretrained_fixtures import (
    SMALL_CONV_TEXT,
    fairseq_state,
    hubert_pretraining_extras,
    random_torchaudio,
    torchaudio_reference,
    wav2vec2_pretraining_extras,
)

from probes.models import as_layered_model
from training.pretrained import (
    FairseqCheckpointError,
    UnsafePickleError,
    load_fairseq,
    pretrained_kind,
)


class DictConfig(dict):
    """Stands for omegaconf's DictConfig: a class the safe loader must refuse to rebuild."""


def model_cfg(name: str, **extra):
    return {
        "_name": name,
        "conv_feature_layers": SMALL_CONV_TEXT,
        "encoder_attention_heads": 4,
        "layer_norm_first": False,
        **extra,
    }


def save(path, **checkpoint):
    # Real training checkpoints carry optimizer history and numpy iterator state beside the model.
    checkpoint.setdefault("optimizer_history", [{"num_updates": 400}])
    checkpoint.setdefault("extra_state", {"train_iterator": {"epoch": 3}, "order": np.arange(5)})
    torch.save(checkpoint, path)
    return path


def utterances():
    g = torch.Generator().manual_seed(5)
    wav = torch.zeros(2, 16000)
    wav[0] = torch.randn(16000, generator=g)
    wav[1, :9000] = torch.randn(9000, generator=g)
    return wav, torch.tensor([16000, 9000])


def assert_matches_torchaudio(layered, ta_model):
    wav, lengths = utterances()
    got, frames = layered.hidden_states(wav, lengths, max_layer=layered.num_layers)
    assert len(got) == layered.num_layers + 1
    for row, n in enumerate(lengths.tolist()):
        expected = torchaudio_reference(ta_model, wav[row : row + 1, :n])
        assert frames[row] == expected[0].shape[1]
        for layer, want in enumerate(expected):
            torch.testing.assert_close(
                got[layer][row, : frames[row]], want[0], atol=1e-5, rtol=1e-5,
                msg=f"layer {layer}, utterance {row}",
            )  # fmt: skip


def test_a_wav2vec2_pretraining_checkpoint_with_a_cfg_dict(tmp_path):
    ta = random_torchaudio(extractor_mode="group_norm")
    state = {**fairseq_state(ta), **wav2vec2_pretraining_extras(96)}
    path = save(
        tmp_path / "checkpoint_best.pt",
        model=state,
        cfg={"model": model_cfg("wav2vec2"), "task": {"normalize": False, "sample_rate": 16000}},
    )
    assert pretrained_kind(path) == "fairseq"
    layered = as_layered_model(path)
    assert (layered.num_layers, layered.dim, layered.frame_rate) == (4, 96, 50.0)
    assert_matches_torchaudio(layered, ta)


def test_an_old_hubert_checkpoint_with_argparse_args(tmp_path):
    ta = random_torchaudio(seed=1, extractor_mode="group_norm")
    args = argparse.Namespace(**{"arch": "hubert", **model_cfg("hubert")}, normalize=False)
    del args._name
    state = {**fairseq_state(ta), **hubert_pretraining_extras(96)}
    path = save(tmp_path / "hubert_base.pt", model=state, args=args)
    assert_matches_torchaudio(as_layered_model(path), ta)


def test_a_fine_tuned_pre_ln_model_keeps_its_encoder_and_normalises(tmp_path):
    ta = random_torchaudio(seed=2, extractor_mode="layer_norm", layer_norm_first=True)
    encoder = {f"w2v_encoder.w2v_model.{k}": v for k, v in fairseq_state(ta, "layer_norm").items()}
    head = {
        "w2v_encoder.proj.weight": torch.randn(32, 96),
        "w2v_encoder.proj.bias": torch.zeros(32),
    }
    inner = {"model": model_cfg("wav2vec2", layer_norm_first=True, extractor_mode="layer_norm",
                                conv_bias=True),
             "task": {"normalize": True}}  # fmt: skip
    path = save(
        tmp_path / "checkpoint_last.pt",
        model={**encoder, **head},
        cfg={"model": {"_name": "wav2vec_ctc", "w2v_args": inner}, "task": {}},
    )
    encoder_module = load_fairseq(path)
    assert bool(encoder_module.normalize)  # the large models were trained on normalised audio
    wav, lengths = utterances()
    wav = wav * 3 + 0.5
    got, frames = encoder_module.hidden_states(wav, lengths)
    for row, n in enumerate(lengths.tolist()):
        w = wav[row : row + 1, :n]
        expected = torchaudio_reference(
            ta, (w - w.mean()) / torch.sqrt(w.var(unbiased=False) + 1e-7)
        )
        for layer, want in enumerate(expected):
            torch.testing.assert_close(
                got[layer][row, : frames[row]], want[0], atol=1e-4, rtol=1e-4
            )


def test_without_a_config_the_type_comes_from_the_tensors_and_sizes_are_wav2vec2s(tmp_path):
    # No cfg/args: wav2vec 2.0's conv strides and dim / 64 heads (as every released base model).
    wav2vec2_conv = [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2
    ta = random_torchaudio(seed=3, dim=128, heads=2, layers=2, conv=wav2vec2_conv)
    state = {**fairseq_state(ta), **wav2vec2_pretraining_extras(128, channels=512)}
    assert_matches_torchaudio(as_layered_model(save(tmp_path / "w.pt", model=state)), ta)
    small = random_torchaudio(seed=3)
    path = save(
        tmp_path / "small.pt", model={**fairseq_state(small), **wav2vec2_pretraining_extras(96)}
    )
    with pytest.raises(
        FairseqCheckpointError, match="small.pt: conv_feature_layers .* do not match"
    ):
        load_fairseq(path)


def test_an_unknown_model_type_is_named_with_the_file(tmp_path):
    ta = random_torchaudio()
    path = save(
        tmp_path / "d2v.pt", model=fairseq_state(ta), cfg={"model": {"_name": "data2vec_audio"}}
    )
    with pytest.raises(FairseqCheckpointError) as err:
        as_layered_model(path)
    assert str(path) in str(err.value) and "'data2vec_audio'" in str(err.value)
    bare = save(tmp_path / "bare.pt", model=fairseq_state(ta))
    with pytest.raises(FairseqCheckpointError, match=f"{bare}: unknown fairseq model type"):
        load_fairseq(bare)


def test_a_tensor_of_another_shape_is_named(tmp_path):
    ta = random_torchaudio()
    state = fairseq_state(ta)
    state["encoder.layers.2.fc1.weight"] = torch.zeros(7, 96)
    path = save(tmp_path / "bad.pt", model=state, cfg={"model": model_cfg("wav2vec2")})
    with pytest.raises(
        FairseqCheckpointError, match=r"bad.pt: tensor encoder.layers.2.fc1.weight \(7, 96\)"
    ):
        load_fairseq(path)


def test_pickled_code_is_refused_with_a_way_to_convert(tmp_path):
    ta = random_torchaudio()
    path = save(tmp_path / "omegaconf.pt", model=fairseq_state(ta), cfg=DictConfig(model={}))
    with pytest.raises(UnsafePickleError) as err:
        load_fairseq(path)
    message = str(err.value)
    assert str(path) in message and "DictConfig" in message and "torch.save" in message
    assert "\n" not in message


def test_a_plain_pickle_is_named_without_torch_advice(tmp_path):
    # pickle.dump, not torch.save: torch's weights-only unpickler stops at "Unsupported operand 149"
    # and would advise weights_only=False, which runs the file's code.
    import pickle

    path = tmp_path / "plain.pt"
    ta = random_torchaudio()
    with open(path, "wb") as f:
        pickle.dump({"model": fairseq_state(ta), "cfg": {"model": model_cfg("wav2vec2")}}, f, 4)
    with pytest.raises(ValueError) as err:
        load_fairseq(path)
    message = str(err.value)
    assert str(path) in message and "torch.save" in message
    assert "weights_only" not in message and "\n" not in message


def test_a_missing_or_extra_tensor_is_named(tmp_path):
    ta = random_torchaudio()
    state = fairseq_state(ta)
    del state["encoder.layers.1.fc2.bias"]
    path = save(tmp_path / "missing.pt", model=state, cfg={"model": model_cfg("wav2vec2")})
    with pytest.raises(FairseqCheckpointError, match=r"missing.pt: no tensor for .*layers\.1\."):
        load_fairseq(path)
    state = {**fairseq_state(ta), "encoder.layers.0.adapter.weight": torch.zeros(3)}
    path = save(tmp_path / "extra.pt", model=state, cfg={"model": model_cfg("wav2vec2")})
    with pytest.raises(FairseqCheckpointError, match=r"extra.pt: tensor encoder.layers.0.adapter"):
        load_fairseq(path)


def test_the_renaming_agrees_with_torchaudios_own_fairseq_importer():
    import_fairseq = pytest.importorskip("torchaudio.models.wav2vec2.utils.import_fairseq")
    from training.pretrained.fairseq import torchaudio_name

    for mode in ("group_norm", "layer_norm"):
        state = fairseq_state(random_torchaudio(extractor_mode=mode), mode)
        for key in [*state, *(f"w2v_model.{k}" for k in state)]:
            theirs = import_fairseq._map_key(key)
            assert torchaudio_name(key) == theirs, key
