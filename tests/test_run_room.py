"""training/run/ (config, directory, checkpoints, resume) moved from training/ without changing a format.

`training.rundir` stays the public name of the run directory module; a checkpoint's pickle names no
project class (torch.save of plain dicts and tensors, read back with weights_only=True), so runs made
before the move load as they did.
"""

from __future__ import annotations

import io
import pickletools
import zipfile
from pathlib import Path

import training
from training.run.checkpoints import MAGIC, load_checkpoint

PROJECT = ("training", "probes", "analysis")


def test_rundir_is_the_run_directory_module():
    import training.run.directory as directory
    import training.rundir
    from training.rundir import checkpoint_path

    assert training.rundir is directory
    assert checkpoint_path is directory.checkpoint_path


def _pickled_globals(checkpoint: Path) -> set[str]:
    body = checkpoint.read_bytes()[len(MAGIC) + 65 :]
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        data = archive.read(name)
    found, strings = set(), []
    for op, arg, _ in pickletools.genops(data):
        if op.name == "GLOBAL":
            found.add(arg.split(" ")[0])
        elif op.name == "STACK_GLOBAL":
            found.add(strings[-2])
        elif isinstance(arg, str):
            strings.append(arg)
    return found


def test_checkpoints_pickle_no_project_class(tiny_run: Path):
    checkpoint = max((tiny_run / "checkpoints").glob("epoch_*.pt"))
    modules = _pickled_globals(checkpoint)
    assert modules and not [m for m in modules if m.split(".")[0] in PROJECT]
    assert load_checkpoint(checkpoint)["model_config"]
    assert training.load_model(checkpoint).cfg is not None
