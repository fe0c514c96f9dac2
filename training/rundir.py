"""The run directory's on-disk contract, owned here and nowhere else (docs/formats.md).

A run directory holds ``config.json`` (what was asked for), ``checkpoints/epoch_NNNN.pt`` (one per
epoch), ``metrics.jsonl`` (one line per epoch) and the caches that probes and analysis keep beside it
(``probes/activations/``, ``analysis/``). Training, probes and analysis all name these files through
the functions below, so the layout is stated once. Everything written here is atomic or appended and
fsynced, so a killed run leaves files that a resumed run can trust.

This module is light (no torch): the ABX command and the CLI's help import it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

from training.config import ModelConfig, TrainConfig, config_to_dict
from training.fileio import write_json_atomic, write_text_atomic
from training.schedules import Stage

__all__ = [
    "CHECKPOINTS",
    "CONFIG",
    "METRICS",
    "RunConfigError",
    "RunNotFoundError",
    "abx_item_file",
    "activation_cache",
    "analysis_cache",
    "checkpoint_epoch",
    "checkpoint_path",
    "is_run",
    "list_checkpoints",
    "read_config",
    "resolve_checkpoint",
    "run_corpus",
    "run_of",
    "user_cache",
    "append_metrics",
    "check_resume",
    "run_config",
    "truncate_metrics",
    "write_json_atomic",
]


CONFIG = "config.json"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
_CHECKPOINT_NAME = re.compile(r"^epoch_(\d{4,})\.pt$")
ABX_ITEMS = "items.item"


class RunConfigError(ValueError):
    """A run directory whose config.json disagrees with the request (another preset, schedule, ...)."""


class RunNotFoundError(FileNotFoundError):
    """A path that is not a run directory (or has no checkpoints)."""


# --- checkpoints ------------------------------------------------------------------------------


def checkpoint_path(run_dir: str | Path, epoch: int) -> Path:
    """``RUN/checkpoints/epoch_NNNN.pt``: where the checkpoint of `epoch` is (or will be) written."""
    return Path(run_dir) / CHECKPOINTS / f"epoch_{int(epoch):04d}.pt"


def checkpoint_epoch(path: str | Path) -> int | None:
    """The epoch in a checkpoint file's name (``epoch_0012.pt`` -> 12), or None for another name."""
    match = _CHECKPOINT_NAME.match(Path(path).name)
    return int(match.group(1)) if match else None


def list_checkpoints(run_dir: str | Path) -> dict[int, Path]:
    """The run's complete checkpoint files by epoch, in epoch order (temporary files are ignored).

    An empty dict when the run has no ``checkpoints/`` folder yet.
    """
    folder = Path(run_dir) / CHECKPOINTS
    if not folder.is_dir():
        return {}
    found = {}
    for path in folder.iterdir():
        epoch = checkpoint_epoch(path)
        if epoch is not None:
            found[epoch] = path
    return dict(sorted(found.items()))


def is_run(path: str | Path) -> bool:
    """True for a directory laid out as an sslvgs run (a config.json or a checkpoints/ folder)."""
    path = Path(path)
    return path.is_dir() and ((path / CONFIG).is_file() or (path / CHECKPOINTS).is_dir())


def run_of(path: str | Path) -> Path | None:
    """The run directory of a run directory or of one of its checkpoint files; None otherwise."""
    path = Path(path).resolve()
    if is_run(path):
        return path
    if path.parent.name == CHECKPOINTS and is_run(path.parent.parent):
        return path.parent.parent
    return None


def resolve_checkpoint(path: str | Path, epoch: int | None = None) -> Path:
    """A checkpoint file: `path` itself, or a run directory's checkpoint of `epoch` (default: last)."""
    path = Path(path)
    if path.is_dir():
        found = list_checkpoints(path)
        if not found:
            raise RunNotFoundError(f"{path}: run directory has no {CHECKPOINTS}/epoch_NNNN.pt")
        if epoch is None:
            return found[max(found)]
        if epoch not in found:
            raise RunNotFoundError(f"{path}: no checkpoint of epoch {epoch} (has {sorted(found)})")
        return found[epoch]
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint or run directory")
    return path


# --- what the run was trained on ----------------------------------------------------------------


def read_config(run_dir: str | Path) -> dict:
    """The run's config.json as a dict; RunNotFoundError naming the file if it is missing or not JSON."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise RunNotFoundError(f"{path}: not a run directory (no {CONFIG})")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunConfigError(f"{path}: not a JSON object ({err})") from None


def run_corpus(path: str | Path) -> Path | None:
    """The corpus root recorded in the config.json of the run that holds `path` (a run or checkpoint)."""
    run = run_of(path)
    if run is None or not (run / CONFIG).is_file():
        return None
    corpus = read_config(run).get("corpus")
    return Path(corpus) if corpus else None


def abx_item_file(items: str | Path, corpus: str | Path | None = None) -> Path:
    """An item file, an ABX set directory (``items.item`` inside) or a set's name in `corpus`'s
    ``abx/<set>/items.item`` -> the item file; FileNotFoundError saying what was tried."""
    path = Path(items)
    candidates = [path, path / ABX_ITEMS]
    if corpus is not None and not path.suffix:
        candidates.append(Path(corpus) / "abx" / str(items) / ABX_ITEMS)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    hint = (
        f"nor a set of the corpus {str(corpus)!r} (abx/<set>/{ABX_ITEMS})"
        if corpus is not None
        else "and no corpus is known to look it up in: pass corpus=..."
    )
    raise FileNotFoundError(
        f"ABX items {str(items)!r}: neither an item file, an ABX set directory, {hint}"
    )


# --- caches -----------------------------------------------------------------------------------


def activation_cache(run_dir: str | Path) -> Path:
    """``RUN/probes/activations``: activation stores of the run's checkpoints."""
    return Path(run_dir) / "probes" / "activations"


def analysis_cache(run_dir: str | Path) -> Path:
    """``RUN/analysis``: cached grids and recall tables of the run."""
    return Path(run_dir) / "analysis"


def user_cache() -> Path:
    """``$SSLVGS_CACHE`` (default ``~/.cache/sslvgs``): caches of models that have no run directory."""
    return Path(os.environ.get("SSLVGS_CACHE") or Path.home() / ".cache" / "sslvgs")


# --- config.json and metrics.jsonl --------------------------------------------------------------


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
    with open(Path(run_dir) / METRICS, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def truncate_metrics(run_dir: Path, last_epoch: int) -> None:
    """Drop metric lines of epochs after the checkpoint a resumed run restarts from."""
    path = Path(run_dir) / METRICS
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
    where = Path(run_dir) / CONFIG
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
