"""The run directory: config.json (what was asked for) and metrics.jsonl (one line per epoch).

Checkpoints live in checkpoints/ (training/checkpoints.py). Everything here is written atomically or
appended and fsynced, so a killed run leaves files that a resumed run can trust.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from training.config import ModelConfig, TrainConfig, config_to_dict
from training.fileio import write_json_atomic, write_text_atomic
from training.schedules import Stage

__all__ = [
    "RunConfigError",
    "append_metrics",
    "check_resume",
    "run_config",
    "truncate_metrics",
    "write_json_atomic",
]


class RunConfigError(ValueError):
    """A run directory whose config.json disagrees with the request (another preset, schedule, ...)."""


def run_config(
    preset: str,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    stages: list[Stage],
    corpus: Path,
    init: dict | None,
    start_epoch: int,
) -> dict:
    """The contents of config.json: enough to rebuild the model and continue the schedule."""
    return {
        "format": 1,
        "preset": preset,
        "corpus": str(corpus),
        "schedule": [dataclasses.asdict(s) for s in stages],
        "start_epoch": start_epoch,
        "init_from": init,
        "model": config_to_dict(model_cfg),
        "train": config_to_dict(train_cfg),
    }


def append_metrics(run_dir: Path, record: dict) -> None:
    """One JSON line per epoch, fsynced before the epoch's checkpoint is written."""
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def truncate_metrics(run_dir: Path, last_epoch: int) -> None:
    """Drop metric lines of epochs after the checkpoint a resumed run restarts from."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return
    keep = [
        line
        for line in path.read_text().splitlines()
        if line.strip() and json.loads(line).get("epoch", 0) <= last_epoch
    ]
    write_text_atomic(path, "".join(line + "\n" for line in keep))


def check_resume(
    run_dir: Path,
    stored: dict,
    preset: str,
    model_cfg: ModelConfig,
    stages: list[Stage] | None,
) -> None:
    """RunConfigError naming config.json if a resume asks for another preset, schedule or model."""
    where = run_dir / "config.json"
    if stored["preset"] != preset:
        raise RunConfigError(
            f"{where}: the run was trained with preset {stored['preset']!r}, not {preset!r}"
        )
    if stages is not None and [dataclasses.asdict(s) for s in stages] != stored["schedule"]:
        raise RunConfigError(
            f"{where}: the run's schedule is {stored['schedule']}, not the one asked for"
        )
    asked = json.loads(json.dumps(config_to_dict(model_cfg)))
    if asked != stored["model"]:
        # Name the fields: a preset can change between versions (tiny was width 64, now `small`).
        run = stored["model"]
        differ = [k for k in sorted(set(asked) | set(run)) if asked.get(k) != run.get(k)]
        shown = ", ".join(f"{k} {run.get(k)!r} (asked {asked.get(k)!r})" for k in differ[:6])
        raise RunConfigError(
            f"{where}: the run's model configuration differs from the one asked for: {shown}"
            + (f" and {len(differ) - 6} more" if len(differ) > 6 else "")
        )
