"""The run directory's on-disk contract, owned here and nowhere else (docs/formats.md).

A run directory holds ``config.json`` (what was asked for), ``checkpoints/epoch_NNNN.pt`` (one per
epoch), ``metrics.jsonl`` (one line per epoch) and the caches that probes and analysis keep beside it
(``probes/activations/``, ``analysis/``). Training, probes and analysis all name these files through
the functions below, so the layout is stated once. Everything written here is atomic or appended and
fsynced, so a killed run leaves files that a resumed run can trust.

This module is light (no torch): the ABX command and the CLI's help import it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from training.fileio import write_json_atomic, write_text_atomic

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
    "recorded_path",
    "resolved_config",
    "stored_config",
    "stored_path",
    "CorpusMissingError",
    "resolve_checkpoint",
    "run_corpus",
    "run_of",
    "run_regions",
    "user_cache",
    "append_metrics",
    "repair_metrics",
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


class CorpusMissingError(FileNotFoundError):
    """A run's recorded corpus that is not there (moved or deleted)."""


# How far above a run a recorded path may lie and still be stored relative to the run: OUT/runs/<run>
# and OUT/runs/seed-<k>/<run> reach OUT, so a reproduction folder moves (or is copied) as one.
_RELATIVE_LEVELS = 3


def stored_path(path: str | os.PathLike, folder: str | os.PathLike) -> str:
    """How a file records `path` that lies in or near `folder` (a run, a reproduction): relative to
    `folder` when `path` lies inside it or inside one of its `_RELATIVE_LEVELS` nearest ancestors
    (never the filesystem root, the home or the temporary folder itself), else absolute. Read it back
    with `recorded_path`: a folder moved or copied with what it records works in place."""
    import tempfile

    path, folder = Path(path).resolve(), Path(folder).resolve()
    barriers = {Path(path.anchor), Path.home().resolve(), Path(tempfile.gettempdir()).resolve()}
    anchors = [folder, *list(folder.parents)[:_RELATIVE_LEVELS]]
    for anchor in anchors:
        if anchor in barriers:
            break
        if path == anchor or anchor in path.parents:
            return os.path.relpath(path, folder)
    return str(path)


def recorded_path(value: str | os.PathLike, folder: str | os.PathLike) -> Path:
    """A path as a file in `folder` records it (`stored_path`): a relative one resolved against
    `folder`; an absolute one (older files, or outside) as it is."""
    path = Path(value)
    return path if path.is_absolute() else Path(os.path.normpath(Path(folder).absolute() / path))


def resolved_config(config: dict, run_dir: str | Path) -> dict:
    """A config.json's contents with its paths (corpus, regions, init_from's checkpoint) absolute."""
    out = dict(config)
    if out.get("corpus"):
        out["corpus"] = str(recorded_path(out["corpus"], run_dir))
    if out.get("regions"):
        out["regions"] = [str(recorded_path(p, run_dir)) for p in out["regions"]]
    init = out.get("init_from")
    if isinstance(init, dict) and init.get("checkpoint"):
        out["init_from"] = {**init, "checkpoint": str(recorded_path(init["checkpoint"], run_dir))}
    return out


def stored_config(config: dict, run_dir: str | Path) -> dict:
    """`resolved_config`'s inverse: the paths of a config as config.json stores them (`stored_path`)."""
    out = dict(config)
    if out.get("corpus"):
        out["corpus"] = stored_path(out["corpus"], run_dir)
    if out.get("regions"):
        out["regions"] = [stored_path(p, run_dir) for p in out["regions"]]
    init = out.get("init_from")
    if isinstance(init, dict) and init.get("checkpoint"):
        out["init_from"] = {**init, "checkpoint": stored_path(init["checkpoint"], run_dir)}
    return out


def run_corpus(path: str | Path, *, check: bool = False) -> Path | None:
    """The corpus root recorded in the config.json of the run that holds `path` (a run or checkpoint),
    resolved against the run when recorded relative to it. check: a recorded corpus that is gone is
    a CorpusMissingError naming it and saying to pass ``corpus=`` (``--corpus``)."""
    run = run_of(path)
    if run is None or not (run / CONFIG).is_file():
        return None
    recorded = read_config(run).get("corpus")
    if not recorded:
        return None
    corpus = recorded_path(recorded, run)
    if check and not corpus.is_dir():
        raise CorpusMissingError(
            f"{run / CONFIG}: its corpus {corpus} is gone (moved or deleted); pass corpus= "
            "(--corpus) with where it is now"
        )
    return corpus


def run_regions(path: str | Path) -> list[Path] | None:
    """The region feature paths recorded in the config.json of the run that holds `path`; None when
    the run used its corpus's own ``regions/`` folder (or `path` is not a run)."""
    run = run_of(path)
    if run is None or not (run / CONFIG).is_file():
        return None
    regions = read_config(run).get("regions")
    return [recorded_path(p, run) for p in regions] if regions else None


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


# --- metrics.jsonl ------------------------------------------------------------------------------


def append_metrics(run_dir: Path, record: dict) -> None:
    """One JSON line per epoch, fsynced before the epoch's checkpoint is written."""
    with open(Path(run_dir) / METRICS, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def repair_metrics(
    run_dir: str | Path,
    last_epoch: int,
    record_of: Callable[[int], dict | None],
    notify: Callable[[str], Any] = print,
) -> None:
    """Make metrics.jsonl hold one line per checkpointed epoch up to `last_epoch`, before a resume.

    Lines of epochs after `last_epoch` (a process killed between the line and its checkpoint) are
    dropped. A line that is not JSON (a torn, half-written line), a missing file or a missing epoch
    is rebuilt from `record_of(epoch)` (the record the epoch's checkpoint holds), and `notify` is
    told so in one line naming the file and the line. The file is rewritten atomically, and only
    when something changed; lines without an epoch are kept where they were.
    """
    path = Path(run_dir) / METRICS
    lines = path.read_text(errors="replace").splitlines() if path.exists() else None
    keyed: list[tuple[int, str]] = []  # (epoch, line), sorted by epoch (stable) when written
    where: dict[int, int] = {}  # epoch -> its line's index in keyed
    torn, dropped, epoch = [], 0, 0
    for number, line in enumerate(lines or [], start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            torn.append(number)
            continue
        if isinstance(record, dict) and isinstance(record.get("epoch"), int):
            epoch = record["epoch"]
            if epoch > last_epoch or epoch in where:  # a duplicate: the last line wins, as
                dropped += 1  # readers of the file take it
                if epoch > last_epoch:
                    continue
                keyed[where[epoch]] = (-1, "")
            where[epoch] = len(keyed)
        keyed.append((epoch, line))
    rebuilt, lacking = [], []
    for e in list_checkpoints(run_dir):
        if e <= last_epoch and e not in where:
            record = record_of(e)
            (lacking if record is None else rebuilt).append(e)
            if record is not None:
                keyed.append((e, json.dumps(record)))
    if not (torn or dropped or rebuilt):
        return  # whole (or a new run: no file, no checkpoint)
    kept = [line for e, line in sorted(keyed, key=lambda pair: pair[0]) if e >= 0]
    write_text_atomic(path, "".join(line + "\n" for line in kept))
    if lines is None:
        problem = "missing"
    elif torn:
        problem = (
            f"line {torn[0]} is not JSON (a torn write)"
            if len(torn) == 1
            else (f"lines {', '.join(map(str, torn))} are not JSON (torn writes)")
        )
    elif rebuilt:
        problem = f"no line for epoch(s) {_ranges(rebuilt)}"
    else:
        return  # only lines of epochs past the last checkpoint dropped: an ordinary resume
    said = f"{path}: {problem}; "
    said += f"rebuilt epoch(s) {_ranges(rebuilt)} from the checkpoints" if rebuilt else "dropped"
    if lacking:
        said += f"; epoch(s) {_ranges(lacking)} left out (their checkpoints hold no metrics)"
    notify(said)


def _ranges(epochs: list[int]) -> str:
    """[1, 2, 3, 5] -> '1-3, 5'."""
    parts, start = [], None
    for i, e in enumerate(epochs):
        start = e if start is None else start
        if i + 1 == len(epochs) or epochs[i + 1] != e + 1:
            parts.append(f"{start}-{e}" if e > start else str(e))
            start = None
    return ", ".join(parts)
