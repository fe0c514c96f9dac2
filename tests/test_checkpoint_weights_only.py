"""Probing reads a checkpoint's weights only: its optimizer state stays on disk (issue 24).

A resumable checkpoint is mostly optimizer state (Adam keeps two moments per parameter); probes and
grids need the model. `load_model` verifies the checksum in chunks and maps the archive, so the
bytes of tensors it never reads are never loaded.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from training import SSLVGS, preset
from training.run.checkpoints import (
    CheckpointError,
    load_checkpoint,
    load_model,
    read_model_payload,
    save_checkpoint,
)
from training.run.config import config_to_dict

ROOT = Path(__file__).resolve().parent.parent
OPTIMIZER_BYTES = 96 << 20


def write_checkpoint(path: Path, optimizer_bytes: int) -> Path:
    torch.manual_seed(0)
    cfg, _ = preset("tiny")
    payload = {
        "model_config": config_to_dict(cfg),
        "model": SSLVGS(cfg).state_dict(),
        "optimizer": {"state": {0: {"exp_avg": torch.randn(optimizer_bytes // 4)}}},
        "epoch": 3,
    }
    save_checkpoint(path, payload)
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "epoch_0003.pt", OPTIMIZER_BYTES)


def test_the_weights_are_those_of_the_whole_checkpoint(checkpoint):
    whole = load_checkpoint(checkpoint)
    payload = read_model_payload(checkpoint)
    assert set(payload) == {"model_config", "model", "epoch"} and payload["epoch"] == 3
    for name, tensor in whole["model"].items():
        assert torch.equal(payload["model"][name], tensor), name
    model = load_model(checkpoint)
    assert model.epoch == 3 and model.checkpoint_path == checkpoint
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, whole["model"][name]), name


def peak_rss_growth(checkpoint: Path, call: str) -> int:
    """Bytes by which the peak resident memory of a fresh process grows during `call`."""
    script = (
        "import re, torch, training\n"
        "from training.run.checkpoints import load_checkpoint, load_model\n"
        "def hwm():\n"
        "    text = open('/proc/self/status').read()\n"
        "    return int(re.search(r'VmHWM:\\s+(\\d+)', text).group(1)) * 1024\n"
        "import training.model, training.run.config\n"
        "open('/proc/self/clear_refs', 'w').write('5')  # the peak starts again from here\n"
        "before = hwm()\n"
        f"kept = {call}({str(checkpoint)!r})\n"
        "print(hwm() - before)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.split()[-1])


def test_the_optimizer_state_is_never_loaded(checkpoint, tmp_path):
    # The same model with 8 MiB and with 96 MiB of optimizer state: reading it all grows with it
    # (twice the file, then its tensors), the weights only do not.
    small = write_checkpoint(tmp_path / "epoch_0001.pt", 8 << 20)
    whole = peak_rss_growth(checkpoint, "load_checkpoint") - peak_rss_growth(
        small, "load_checkpoint"
    )
    weights = peak_rss_growth(checkpoint, "load_model") - peak_rss_growth(small, "load_model")
    extra = OPTIMIZER_BYTES - (8 << 20)
    assert whole > 2 * extra  # the measure sees the optimizer state when it is read
    assert weights < extra / 10, (whole, weights)


def test_a_damaged_checkpoint_is_still_refused(checkpoint, tmp_path):
    data = checkpoint.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    flipped = tmp_path / "flipped.pt"
    flipped.write_bytes(data[:-100] + bytes([data[-100] ^ 1]) + data[-99:])
    for path in (truncated, flipped):
        with pytest.raises(CheckpointError, match="checksum mismatch"):
            load_model(path)
