"""The trainer's GPU-oriented switches, run on the CPU: bf16 autocast and torch.compile.

On a GPU, `precision="auto"` means bf16 autocast and `compile=True` wraps the model in torch.compile.
Both paths are plain PyTorch and run on the CPU too, so this machine checks that they train, keep fp32
master weights and land near the fp32 losses; their speed is a GPU question (benchmarks/).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from training import train
from training.run.checkpoints import last_checkpoint, load_checkpoint

QUICK = dict(
    preset="tiny",
    progress=False,
    eval_split="test",
    train_subset=64,
    batch_size=16,
    stage_epochs=1,
    schedule="vgs+",
)


def first_epoch(run: Path) -> dict:
    return json.loads((run / "metrics.jsonl").read_text().splitlines()[0])


@pytest.fixture(scope="module")
def fp32_run(small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(small_corpus, tmp_path_factory.mktemp("fp32") / "run", precision="fp32", **QUICK)


def test_bf16_autocast_trains_with_fp32_weights_near_the_fp32_losses(
    small_corpus, fp32_run, tmp_path
):
    run = train(small_corpus, tmp_path / "bf16", precision="bf16", **QUICK)
    bf16, fp32 = first_epoch(run), first_epoch(fp32_run)
    print({k: (bf16[k], fp32[k]) for k in ("loss_av", "loss_aud")})
    for loss in ("loss_av", "loss_aud"):
        assert math.isfinite(bf16[loss])
        # bf16 matmuls keep 8 bits of mantissa; seen: 2e-5 (loss_av) and 7e-4 (loss_aud) apart
        assert bf16[loss] == pytest.approx(fp32[loss], rel=1e-2), loss
    weights = load_checkpoint(last_checkpoint(run))["model"]
    assert {t.dtype for t in weights.values() if t.is_floating_point()} == {torch.float32}


@pytest.mark.slow
def test_compiled_training_follows_the_eager_losses(small_corpus, tmp_path):
    one_step = QUICK | {
        "train_subset": 16
    }  # one batch, one shape: one compilation (~minutes on 2 cores)
    eager = first_epoch(train(small_corpus, tmp_path / "eager", precision="fp32", **one_step))
    run = train(small_corpus, tmp_path / "compiled", precision="fp32", compile=True, **one_step)
    compiled = first_epoch(run)
    print({k: (compiled[k], eager[k]) for k in ("loss_av", "loss_aud")})
    for loss in ("loss_av", "loss_aud"):
        # the compiler fuses and reorders float32 arithmetic; seen: at most 7e-8 apart
        assert compiled[loss] == pytest.approx(eager[loss], rel=1e-4), loss
    assert load_checkpoint(last_checkpoint(run))["model"].keys() == (
        load_checkpoint(last_checkpoint(tmp_path / "eager"))["model"].keys()
    )  # the checkpoint holds the model's own names, not the compiled wrapper's
