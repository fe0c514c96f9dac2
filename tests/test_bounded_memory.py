"""Memory of ABX on every layer is bounded by one layer, never layers x frames (issue 22).

The same audio through models of 2 and 8 transformer layers: the peak of what numpy allocates
(tracemalloc sees numpy's buffers; the model's torch tensors are the same few per batch) must not
grow by more than a layer's frames, where holding every layer would add 6 layers' worth.
"""

from __future__ import annotations

import tracemalloc

import pytest
import torch

import probes
from analysis.gridding import abx_fast_path

transformers = pytest.importorskip("transformers")

from tiny_abx import tiny_abx_set  # noqa: E402

DIM = 128


def model_of(layers: int):
    torch.manual_seed(0)
    config = transformers.Wav2Vec2Config(
        hidden_size=DIM, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=DIM,
        conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
        feat_extract_norm="layer", conv_bias=True, hidden_dropout=0.0, attention_dropout=0.0,
        activation_dropout=0.0, feat_proj_dropout=0.0, layerdrop=0.0,
    )  # fmt: skip
    return transformers.Wav2Vec2Model(config).eval()


@pytest.fixture(scope="module")
def items(tmp_path_factory):
    return tiny_abx_set(tmp_path_factory.mktemp("bounded"), files=8, seconds=4.0)


def layer_bytes(items) -> int:
    return 8 * 4 * 50 * DIM * 4  # files x seconds x frames per second x dim x float32


def peak(call) -> int:
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_grid_fast_path_holds_one_layer_at_a_time(items):
    def grid_cell(layers):
        model = model_of(layers)

        def call():
            errors = abx_fast_path.abx_layers(
                model, list(range(layers + 1)), checkpoint=f"m{layers}", items=items,
                speaker="across", context="any",
            )  # fmt: skip
            assert len(errors) == layers + 1
            abx_fast_path.forget_features()

        return call

    grid_cell(2)()  # warm: imports, caches
    small, large = peak(grid_cell(2)), peak(grid_cell(8))
    assert large - small < 1.5 * layer_bytes(items), (small, large)
    assert not abx_fast_path._FEATURES  # the spilled layers are gone


def test_spill_folders_are_grid_scratch_folders(items):
    from analysis.gridding.registry import SCRATCH_PREFIX

    assert abx_fast_path.SPILL_PREFIX == SCRATCH_PREFIX  # so clean_scratch removes a dead one
    abx_fast_path.abx_layers(model_of(1), [1], checkpoint="m1", items=items, speaker="across")
    ((_, spilled),) = abx_fast_path._FEATURES.values()
    assert spilled.folder.name.startswith(SCRATCH_PREFIX) and spilled.folder.is_dir()
    abx_fast_path.forget_features()
    assert not spilled.folder.exists()


def test_probes_abx_all_holds_one_layer_at_a_time(items, tmp_path):
    def every_layer(layers):
        model = model_of(layers)

        def call():
            errors = probes.abx(
                model, "all", items, speaker="across", context="any", progress=False,
                store=tmp_path / f"m{layers}.zarr",
            )  # fmt: skip
            assert len(errors) == layers + 1

        return call

    every_layer(1)()
    small, large = peak(every_layer(2)), peak(every_layer(8))
    assert large - small < 1.5 * layer_bytes(items), (small, large)


def test_spilled_layers_are_the_in_memory_frames(items, tmp_path):
    from probes.models import as_layered_model
    from probes.sources import AbxSet

    layered = as_layered_model(model_of(2))
    source = AbxSet(items)
    spilled = abx_fast_path.spill_activations(layered, source, [0, 2], tmp_path / "spill")
    assert sorted(p.name for p in (tmp_path / "spill").iterdir()) == ["layer-0.f32", "layer-2.f32"]
    store = probes.extract(layered, source, [0, 2], tmp_path / "s.zarr", progress=False)
    from probes.activations import layer_features

    for layer in (0, 2):
        got, expected = spilled.load(layer), layer_features(store, layer)
        for name in expected.names:
            assert (got[name] == expected[name]).all()
    with pytest.raises(ValueError, match="layer 1 was not extracted"):
        spilled.load(1)
