"""Any model's training trajectory as a run: folders and lists of checkpoints made elsewhere, ordered by
step or epoch, give a layer x checkpoint grid in one call."""

from __future__ import annotations

import pytest
import torch
from pretrained_fixtures import fairseq_state, random_torchaudio, wav2vec2_pretraining_extras

from analysis import grid
from probes.models import as_layered_model
from training.pretrained import model_identity, pretrained_kind, trajectory, trajectory_root

transformers = pytest.importorskip("transformers")

TINY = dict(
    hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
    conv_dim=(8,) * 7, num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2,
    feat_extract_norm="layer", conv_bias=True,  # batched extraction: the ABX grid stays quick
)  # fmt: skip


def hf_trainer_folder(root, steps=(200, 50, 1000)):
    """A Trainer output folder: checkpoint-<step>/ save_pretrained folders (one per step, different
    weights), plus what else a Trainer leaves there."""
    for step in steps:
        torch.manual_seed(step)
        model = transformers.Wav2Vec2ForPreTraining(transformers.Wav2Vec2Config(**TINY))
        model.save_pretrained(root / f"checkpoint-{step}")
        (root / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    (root / "runs").mkdir()
    (root / "checkpoint-77").mkdir()  # a Trainer killed while saving: no config.json yet
    return root


def test_an_hf_trainer_folder_is_a_trajectory_by_step(tmp_path):
    folder = hf_trainer_folder(tmp_path / "out")
    dim, found = trajectory(folder)
    assert dim == "step"
    assert list(found) == [50, 200, 1000]
    assert found[200] == folder / "checkpoint-200"
    assert pretrained_kind(folder) == "trajectory"
    # As a model, the folder is its last checkpoint (as a run directory is).
    assert as_layered_model(folder).model_id == as_layered_model(found[1000]).model_id


def test_fairseq_folders_order_by_step_or_else_by_epoch(tmp_path):
    state = {**fairseq_state(random_torchaudio(layers=1)), **wav2vec2_pretraining_extras(96)}
    for name in (
        "checkpoint_1_100.pt",
        "checkpoint_2_250.pt",
        "checkpoint1.pt",
        "checkpoint_best.pt",
    ):
        torch.save({"model": state}, tmp_path / name)
    assert trajectory(tmp_path) == (
        "step", {100: tmp_path / "checkpoint_1_100.pt", 250: tmp_path / "checkpoint_2_250.pt"}
    )  # fmt: skip
    epochs = tmp_path / "epochs"
    epochs.mkdir()
    for epoch in (10, 2):
        torch.save({"model": state}, epochs / f"checkpoint{epoch}.pt")
    assert trajectory(epochs) == (
        "epoch",
        {2: epochs / "checkpoint2.pt", 10: epochs / "checkpoint10.pt"},
    )


def test_a_list_of_paths_is_ordered_by_the_index_in_their_names(tmp_path):
    folder = hf_trainer_folder(tmp_path / "out", steps=(30, 10))
    listed = [folder / "checkpoint-30", folder / "checkpoint-10"]
    assert trajectory(listed) == ("step", {10: listed[1], 30: listed[0]})
    assert trajectory_root(listed) == folder.resolve()
    with pytest.raises(ValueError, match="model.safetensors: its name gives no step or epoch"):
        trajectory([folder / "checkpoint-10" / "model.safetensors"])
    (tmp_path / "checkpoint3.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="mixes checkpoints named by step and by epoch"):
        trajectory([listed[0], tmp_path / "checkpoint3.pt"])


def test_identity_changes_when_a_checkpoint_is_replaced(tmp_path):
    folder = hf_trainer_folder(tmp_path / "out", steps=(10,))
    before = model_identity(folder / "checkpoint-10")
    assert model_identity(folder / "checkpoint-10") == before
    torch.manual_seed(99)
    transformers.Wav2Vec2Model(transformers.Wav2Vec2Config(**TINY)).save_pretrained(
        folder / "checkpoint-10"
    )
    assert model_identity(folder / "checkpoint-10") != before


def last_frame_norm(model, layer, *, calls):
    """A per-layer probe: mean norm of one fixed utterance's frames at `layer` (counts its calls in
    the file `calls`)."""
    with open(calls, "a") as f:
        f.write(f"{layer}\n")
    layered = as_layered_model(model)
    wav = torch.randn(1, 8000, generator=torch.Generator().manual_seed(0))
    states, _ = layered.hidden_states(wav, torch.tensor([8000]), max_layer=layer)
    return float(states[layer].norm(dim=-1).mean())


def test_a_grid_over_an_hf_trainer_folder_is_one_call(tmp_path):
    folder = hf_trainer_folder(tmp_path / "out")
    calls = tmp_path / "calls"
    heatmap = grid(folder, last_frame_norm, calls=str(calls), progress=False)
    assert heatmap.dims == ("step", "layer")
    assert heatmap.step.values.tolist() == [50, 200, 1000]
    assert heatmap.layer.values.tolist() == [0, 1, 2]
    expected = last_frame_norm(folder / "checkpoint-200", 2, calls=tmp_path / "other")
    assert heatmap.sel(step=200, layer=2).item() == pytest.approx(expected, rel=1e-6)
    assert len(calls.read_text().split()) == 9
    again = grid(folder, last_frame_norm, calls=str(calls), progress=False)  # cached beside it
    assert len(calls.read_text().split()) == 9 and again.equals(heatmap)
    assert (folder / "analysis").is_dir()


@pytest.mark.slow
def test_an_abx_grid_over_checkpoints_made_elsewhere(tmp_path, small_corpus):
    folder = hf_trainer_folder(tmp_path / "out", steps=(1, 2))
    heatmap = grid(folder, "abx", items="read", corpus=small_corpus, layers=[0, 2], progress=False)
    assert heatmap.dims == ("step", "layer") and heatmap.shape == (2, 2)
    assert ((heatmap.values >= 0) & (heatmap.values <= 1)).all()
