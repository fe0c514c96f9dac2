"""Where a run picks up: what the trainer's checkpoint holds, and restoring from it.

A checkpoint (`checkpoint_state`) holds everything an exact resume needs: the weights, the optimizer
and LR schedule, the update count, the torch RNG state (dropout) and the epoch's metrics record, from
which metrics.jsonl is rebuilt if it is lost. `restore` reads the last one back (or the weights of
`init_from`); `prepare_run_dir` makes the run directory agree with the point training resumes from.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from training.model import SSLVGS
from training.run.checkpoints import initialise_from, load_checkpoint, load_weights
from training.run.config import config_to_dict
from training.run.directory import (
    CHECKPOINTS,
    CONFIG,
    RunConfigError,
    checkpoint_path,
    list_checkpoints,
    repair_metrics,
    write_json_atomic,
)
from training.run.request import Run

__all__ = ["Resumed", "restore", "prepare_run_dir", "checkpoint_state"]


@dataclass(frozen=True)
class Resumed:
    """Where training picks up: the last epoch done, the update count, the checkpoint it came from."""

    epoch: int
    step: int
    state: dict | None = None


def restore(model: SSLVGS, run: Run, init_from, device: str) -> tuple[Run, Resumed]:
    """Load the weights training continues from; returns the run (with its start) and the point."""
    last = max(list_checkpoints(run.run_dir), default=None) if run.resumed else None
    if last is not None:
        path = checkpoint_path(run.run_dir, last)
        state = load_checkpoint(path, map_location=device)
        if state.get("preset") != run.preset:
            raise RunConfigError(
                f"{path}: checkpoint of preset {state.get('preset')!r}, not {run.preset!r}"
            )
        load_weights(model, state["model"], path)
        torch.set_rng_state(state["torch_rng"].cpu())
        if torch.cuda.is_available() and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
        return run, Resumed(state["epoch"], state["step"], state)
    if run.resumed and run.init is not None:  # killed before its first checkpoint: start again
        init = initialise_from(model, run.init["checkpoint"], device, run.init["checkpoint_id"])
        return run, Resumed(run.start_epoch, init["step"])
    if not run.resumed and init_from is not None:
        init = initialise_from(model, init_from, device)
        run = dataclasses.replace(run, init=init, start_epoch=init["epoch"])
        return run, Resumed(init["epoch"], init["step"])
    return run, Resumed(run.start_epoch, 0)


def prepare_run_dir(run: Run, resumed: Resumed) -> None:
    """Rank 0: config.json written (a new run, or a recorded change), leftovers of a killed write
    removed, metrics.jsonl made to end at the epoch training resumes after."""
    (run.run_dir / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
    if run.config() != run.stored:
        write_json_atomic(run.run_dir / CONFIG, run.config())
    for stale in (run.run_dir / CHECKPOINTS).glob(".epoch_*.tmp"):
        stale.unlink()

    def record_of(epoch: int) -> dict | None:
        return load_checkpoint(checkpoint_path(run.run_dir, epoch)).get("metrics")

    repair_metrics(run.run_dir, resumed.epoch, record_of)


def checkpoint_state(
    model: SSLVGS,
    run: Run,
    *,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    stage: int,
    record: dict,
) -> dict:
    """Everything a resume needs (and the epoch's metrics record, from which metrics.jsonl is
    rebuilt if it is lost). `stage` is the index of the stage whose optimizer this is."""
    cuda = torch.cuda.is_available()
    return {
        "format": 1,
        "preset": run.preset,
        "model_config": config_to_dict(run.model),
        "train_config": config_to_dict(run.train),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "lr_scheduler": scheduler.state_dict(),
        "epoch": record["epoch"],
        "stage": stage,
        "step": record["step"],
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if cuda else None,
        "metrics": record,
    }
