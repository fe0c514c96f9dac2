"""A training trajectory as a sequence of checkpoints, whatever made it.

`trajectory(source) -> (dim, {index: path})`, ordered by index, where `dim` says what the index is:

- an sslvgs run directory: ``("epoch", {epoch: RUN/checkpoints/epoch_NNNN.pt})``;
- a Hugging Face Trainer output folder: ``("step", {step: FOLDER/checkpoint-<step>/})`` (each a
  `save_pretrained` directory);
- a fairseq checkpoint folder: ``("step", {step: checkpoint_<epoch>_<step>.pt})``, or, when it only has
  end-of-epoch files, ``("epoch", {epoch: checkpoint<epoch>.pt})``; `checkpoint_best.pt` and
  `checkpoint_last.pt` are not points of the trajectory;
- a list of such paths (checkpoint files or HF checkpoint folders): the index each name gives, all
  of one kind (steps or epochs).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

__all__ = ["trajectory", "trajectory_root", "is_trajectory", "checkpoint_index"]

_PATTERNS = (
    ("step", re.compile(r"^checkpoint-(\d+)$")),  # Hugging Face Trainer
    ("step", re.compile(r"^checkpoint_\d+_(\d+)\.pt$")),  # fairseq, save_interval_updates
    ("epoch", re.compile(r"^checkpoint(\d+)\.pt$")),  # fairseq, end of epoch
    ("epoch", re.compile(r"^epoch_(\d{4,})\.pt$")),  # sslvgs
)

Source = str | os.PathLike | Sequence[str | os.PathLike]


def checkpoint_index(path: str | Path) -> tuple[str, int] | None:
    """("step" or "epoch", index) from a checkpoint's name; None for any other name."""
    name = Path(path).name
    for dim, pattern in _PATTERNS:
        match = pattern.match(name)
        if match:
            return dim, int(match.group(1))
    return None


def _folder_points(folder: Path) -> dict[str, dict[int, Path]]:
    from training.pretrained.hf import is_hf_directory

    points: dict[str, dict[int, Path]] = {"step": {}, "epoch": {}}
    for child in folder.iterdir():
        found = checkpoint_index(child)
        if found is None:
            continue
        if child.is_dir() and not is_hf_directory(child):
            continue  # e.g. a checkpoint-<step>/ that a killed Trainer left without its config
        if child.is_file() or child.is_dir():
            points[found[0]][found[1]] = child
    return points


def is_trajectory(path: str | Path) -> bool:
    """True for a folder holding checkpoints named as in this module's docstring."""
    path = Path(path)
    return path.is_dir() and any(_folder_points(path).values())


def trajectory(source: Source) -> tuple[str, dict[int, Path]]:
    """(dim, {index: checkpoint path}) in index order; see the module's docstring.

    Raises:
        FileNotFoundError: a source with no checkpoints (naming it), or a path in a list that does
            not exist.
        ValueError: a listed path whose name gives no step or epoch, or a list mixing the two.
    """
    from training.pretrained.hf import is_hf_directory
    from training.run.directory import is_run, list_checkpoints

    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if is_run(path) and not is_hf_directory(path):
            found = list_checkpoints(path)
            if not found:
                raise FileNotFoundError(f"{path}: run directory has no checkpoints/epoch_NNNN.pt")
            return "epoch", found
        if not path.is_dir():
            raise FileNotFoundError(f"{path}: not a folder of checkpoints")
        points = _folder_points(path)
        for dim in ("step", "epoch"):  # a fairseq folder has both: steps are the finer index
            if points[dim]:
                return dim, dict(sorted(points[dim].items()))
        raise FileNotFoundError(
            f"{path}: not a run directory nor a folder of checkpoints (checkpoints/epoch_NNNN.pt, "
            "checkpoint-<step>/, checkpoint_<epoch>_<step>.pt or checkpoint<epoch>.pt)"
        )
    return _listed(list(source))


def _listed(paths: list) -> tuple[str, dict[int, Path]]:
    if not paths:
        raise FileNotFoundError("trajectory: the list of checkpoints is empty")
    dims, found = set(), {}
    for item in paths:
        path = Path(item)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such checkpoint")
        index = checkpoint_index(path)
        if index is None:
            raise ValueError(
                f"{path}: its name gives no step or epoch (checkpoint-<step>, "
                "checkpoint_<epoch>_<step>.pt, checkpoint<epoch>.pt, epoch_NNNN.pt)"
            )
        if index[1] in found:
            raise ValueError(f"{path}: {index[0]} {index[1]} is also {found[index[1]]}")
        dims.add(index[0])
        found[index[1]] = path
    if len(dims) > 1:
        raise ValueError("trajectory: the list mixes checkpoints named by step and by epoch")
    return dims.pop(), dict(sorted(found.items()))


def trajectory_root(source: Source) -> Path:
    """The folder a trajectory's caches go in: the folder itself, or a list's common folder."""
    if isinstance(source, str | os.PathLike):
        return Path(source)
    paths = [str(Path(p).resolve()) for p in source]
    common = Path(os.path.commonpath(paths))
    return common if len(paths) > 1 or common.is_dir() else common.parent
