"""The trainer: run directories, metrics, resumption to the bit, init-from, and bad input."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from training import CheckpointError, RunConfigError, checkpoint_id, load_model, train
from training.run.checkpoints import last_checkpoint, load_checkpoint, save_checkpoint
from training.run.directory import list_checkpoints
from training.schedules import ScheduleError

RECALL_KEYS = {f"{d}_r{k}" for d in ("speech_to_image", "image_to_speech") for k in (1, 5, 10)}
REQUIRED_KEYS = {"epoch", "stage", "alpha", "loss_av", "loss_aud", "lr", "seconds"} | RECALL_KEYS

# A few batches per epoch keep the end-to-end tests short; they test bookkeeping, not learning.
QUICK = dict(preset="tiny", progress=False, eval_split="test", train_subset=64, batch_size=16)


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_run_holds_config_one_checkpoint_per_epoch_and_metrics(tiny_run):
    config = json.loads((tiny_run / "config.json").read_text())
    assert config["preset"] == "tiny" and config["schedule"] == [
        {"name": "vgs+", "alpha": 0.5, "epochs": 3}
    ]
    assert list(list_checkpoints(tiny_run)) == [1, 2, 3]
    rows = metrics(tiny_run)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    for row in rows:
        assert REQUIRED_KEYS <= set(row), REQUIRED_KEYS - set(row)
        assert row["alpha"] == 0.5 and row["stage"] == 0
        assert all(0.0 <= row[k] <= 1.0 for k in RECALL_KEYS)


def test_load_model_takes_a_run_or_a_checkpoint(tiny_run):
    model = load_model(tiny_run)
    assert not model.training and model.epoch == 3
    last = last_checkpoint(tiny_run)
    assert checkpoint_id(tiny_run) == checkpoint_id(last)
    assert re.fullmatch(r"[0-9a-f]{64}", checkpoint_id(last))
    first = load_model(list_checkpoints(tiny_run)[1])
    assert first.epoch == 1
    assert not torch.equal(
        first.shared_layers[0].attention.q_proj.weight,
        model.shared_layers[0].attention.q_proj.weight,
    )


def test_both_losses_fall(tiny_run):
    rows = metrics(tiny_run)
    assert rows[-1]["loss_aud"] < rows[0]["loss_aud"]
    assert rows[-1]["loss_av"] < rows[0]["loss_av"]


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(last_checkpoint(run))["model"]


def test_resume_gives_exactly_the_weights_of_an_uninterrupted_run(small_corpus, tmp_path):
    # Dropout on, and a stage switch, so that RNG state and optimizer reset are both exercised;
    # the interruption falls inside the second stage (its optimizer state must be restored).
    options = dict(QUICK, schedule="vgs,vgs+", stage_epochs="1,2", dropout=0.1, epochs_per_eval=3)
    straight = train(small_corpus, tmp_path / "straight", **options)
    interrupted = train(small_corpus, tmp_path / "resumed", stop_after_epoch=2, **options)
    assert list(list_checkpoints(interrupted)) == [1, 2]
    resumed = train(small_corpus, tmp_path / "resumed", resume=True, **options)
    a, b = final_weights(straight), final_weights(resumed)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert [r["epoch"] for r in metrics(resumed)] == [1, 2, 3]
    same = ("loss_av", "loss_aud", "lr")
    assert [[r[k] for k in same] for r in metrics(straight)] == [
        [r[k] for k in same] for r in metrics(resumed)
    ]
    # The second stage restarted the LR schedule (stage 1 ended decayed to 0) and the optimizer
    # (Adam's step count covers stage 2's 4 + 4 updates only, not stage 1's 4).
    lrs = [r["lr"] for r in metrics(straight)]
    assert lrs[0] == 0.0 and lrs[1] > 0.0
    adam = load_checkpoint(last_checkpoint(straight))["optimizer"]["state"][0]
    assert int(adam["step"]) == 8


def test_training_on_the_cpu_uses_deterministic_kernels_and_restores_the_setting(
    small_corpus, tmp_path, monkeypatch
):
    # The distractor gather's backward (repeated indices) adds in thread order unless torch's
    # deterministic kernels are on: identical runs then differed in their last bits.
    import training.trainer as trainer_module

    seen, real = [], trainer_module._train_epoch

    def spy(*args, **kwargs):
        seen.append(torch.are_deterministic_algorithms_enabled())
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "_train_epoch", spy)
    assert not torch.are_deterministic_algorithms_enabled()
    train(small_corpus, tmp_path / "run", schedule="vgs", stage_epochs=1, **QUICK)
    assert seen == [True] and not torch.are_deterministic_algorithms_enabled()


def test_sigkill_mid_epoch_never_leaves_a_checkpoint_that_loads_as_complete(small_corpus, tmp_path):
    run = tmp_path / "run"
    command = [
        sys.executable, "-m", "analysis.cli", "train", str(small_corpus), str(run),
        "--stage-epochs", "3", "--batch-size", "16", "--eval-split", "test", "--no-progress",
        "--set", "train_subset=64",
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while not (run / "checkpoints" / "epoch_0001.pt").exists():
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "no checkpoint within 3 minutes"
            time.sleep(0.05)
        time.sleep(0.3)  # into epoch 2
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    found = list_checkpoints(run)
    assert found and max(found) < 3
    for path in found.values():
        load_checkpoint(path)  # verifies the checksum
    train(small_corpus, run, resume=True, **dict(QUICK, stage_epochs=3))
    assert list(list_checkpoints(run)) == [1, 2, 3]
    assert [r["epoch"] for r in metrics(run)] == [1, 2, 3]
    assert not list((run / "checkpoints").glob(".*.tmp"))


def test_a_write_cut_short_leaves_no_checkpoint(tmp_path, monkeypatch):
    target = tmp_path / "checkpoints" / "epoch_0001.pt"

    def killed(*args):
        raise KeyboardInterrupt  # stands for the process dying between the write and the rename

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(target, {"model": {"w": torch.ones(3)}})
    assert not target.exists() and list_checkpoints(tmp_path) == {}


def test_truncated_or_corrupt_checkpoints_are_errors_naming_the_file(tiny_run, tmp_path):
    data = last_checkpoint(tiny_run).read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=re.escape(str(truncated)) + ".*truncated"):
        load_model(truncated)
    flipped = tmp_path / "flipped.pt"
    flipped.write_bytes(data[:-10] + bytes([data[-10] ^ 1]) + data[-9:])
    with pytest.raises(CheckpointError, match=re.escape(str(flipped)) + ".*checksum"):
        load_model(flipped)
    foreign = tmp_path / "foreign.pt"
    torch.save({"model": {}}, foreign)
    with pytest.raises(
        CheckpointError, match=re.escape(str(foreign)) + ".*not an sslvgs checkpoint"
    ):
        checkpoint_id(foreign)


def test_a_checkpoint_of_another_shape_is_an_error_naming_it(tiny_run, small_corpus, tmp_path):
    source = last_checkpoint(tiny_run)
    with pytest.raises(CheckpointError, match=re.escape(str(source)) + ".*does not fit"):
        train(small_corpus, tmp_path / "wider", init_from=tiny_run, dim=96, **QUICK)


def test_resume_refuses_another_preset_or_schedule(tiny_run, small_corpus, tmp_path):
    copy = Path(shutil.copytree(tiny_run, tmp_path / "copy"))
    with pytest.raises(
        RunConfigError, match=re.escape(str(copy / "config.json")) + ".*preset 'tiny'"
    ):
        train(small_corpus, copy, preset="paper", resume=True, progress=False)
    with pytest.raises(RunConfigError, match="schedule"):
        train(small_corpus, copy, schedule="vgs", stage_epochs=3, resume=True, progress=False)
    with pytest.raises(RunConfigError, match="already holds a run"):
        train(small_corpus, copy, progress=False)


def test_resume_names_the_model_fields_that_differ(tiny_run, small_corpus, tmp_path):
    """A preset may change between versions; the error says which fields, so the run can be matched."""
    copy = Path(shutil.copytree(tiny_run, tmp_path / "copy"))
    with pytest.raises(RunConfigError, match=r"config.json.*differs.*: dim 32 \(asked 64\)"):
        train(small_corpus, copy, resume=True, progress=False, dim=64)


def test_a_schedule_that_does_not_parse_is_refused_before_training(small_corpus, tmp_path):
    with pytest.raises(ScheduleError, match="unknown stage 'sgv'"):
        train(small_corpus, tmp_path / "run", schedule="vgs,sgv", stage_epochs="1,1", **QUICK)
    assert not (tmp_path / "run").exists()


def test_a_batch_larger_than_the_training_set_is_refused_before_the_run_is_written(
    small_corpus, tmp_path
):
    with pytest.raises(ValueError, match="batch size 128 exceeds the 64 training captions"):
        train(small_corpus, tmp_path / "run", **dict(QUICK, batch_size=128))
    assert not (tmp_path / "run" / "config.json").exists()


def test_a_corpus_without_region_features_is_an_error_naming_the_folder(small_corpus, tmp_path):
    corpus = tmp_path / "no_regions"
    corpus.mkdir()
    for entry in small_corpus.iterdir():
        if entry.name != "regions":
            (corpus / entry.name).symlink_to(entry)
    with pytest.raises(FileNotFoundError, match=re.escape(str(corpus / "regions"))):
        train(corpus, tmp_path / "run", **QUICK)


def test_init_from_numbers_epochs_on_and_a_zero_weight_leaves_its_branch_untouched(
    tiny_run, small_corpus, tmp_path
):
    run = train(
        small_corpus,
        tmp_path / "w2v2",
        init_from=tiny_run,
        schedule="w2v2",
        stage_epochs=1,
        **QUICK,
    )
    config = json.loads((run / "config.json").read_text())
    assert config["init_from"]["checkpoint_id"] == checkpoint_id(tiny_run)
    assert config["init_from"]["epoch"] == 3 and config["start_epoch"] == 3
    rows = metrics(run)
    assert [r["epoch"] for r in rows] == [4] and rows[0]["alpha"] == 0.0
    assert rows[0]["loss_av"] > 0  # logged although its weight is 0
    before, after = final_weights(tiny_run), final_weights(run)
    for name in before:
        if name.startswith(("image_branch.", "audio_branch.")):
            assert torch.equal(before[name], after[name]), name
    assert not torch.equal(
        before["ssl_decoder.0.attention.q_proj.weight"],
        after["ssl_decoder.0.attention.q_proj.weight"],
    )


@pytest.mark.parametrize("schedule, inactive", [("w2v2", "loss_av"), ("vgs", "loss_aud")])
def test_a_zero_weight_loss_is_logged_from_every_nth_batch_and_training_does_not_change(
    small_corpus, tmp_path, monkeypatch, schedule, inactive
):
    import training.trainer as trainer

    per_batch, losses = [], trainer._losses

    def recording(*args, **kwargs):
        out = losses(*args, **kwargs)
        per_batch.append({"loss_av": out[0], "loss_aud": out[1]})
        return out

    monkeypatch.setattr(trainer, "_losses", recording)
    options = dict(QUICK, train_subset=112, schedule=schedule, stage_epochs=1, epochs_per_eval=9)
    every_batch = train(small_corpus, tmp_path / "every", inactive_loss_every=1, **options)
    assert len(per_batch) == 7 and all(row[inactive] is not None for row in per_batch)
    logged = [float(row[inactive]) for row in per_batch]
    per_batch.clear()
    every_third = train(small_corpus, tmp_path / "third", inactive_loss_every=3, **options)
    # Batches 0, 3 and 6 computed the zero-weight loss; the others did not compute it at all.
    assert [row[inactive] is not None for row in per_batch] == [i % 3 == 0 for i in range(7)]
    active = "loss_aud" if inactive == "loss_av" else "loss_av"
    first, third = metrics(every_batch)[0], metrics(every_third)[0]
    assert first[active] == third[active]
    assert first[inactive] == pytest.approx(sum(logged) / 7, rel=1e-6)
    assert third[inactive] == pytest.approx(sum(logged[::3]) / 3, rel=1e-6)
    a, b = final_weights(every_batch), final_weights(every_third)
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_inactive_loss_every_must_be_positive():
    from training.run.config import TrainConfig

    with pytest.raises(ValueError, match="inactive_loss_every"):
        TrainConfig(inactive_loss_every=0)
