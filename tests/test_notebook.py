"""notebooks/reproduce.ipynb runs clean on a `sslvgs reproduce --quick` output (nbclient, real kernel)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "reproduce.ipynb"


def test_notebook_is_committed_without_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


def _execute(out: Path, cwd: Path, monkeypatch: pytest.MonkeyPatch, cache: Path):
    """Run the notebook on the reproduction `out` from `cwd`; its cells."""
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # The kernel inherits the environment: the output to open, and an activation cache of its own.
    monkeypatch.setenv("SSLVGS_REPRODUCE_DIR", str(out))
    monkeypatch.setenv("SSLVGS_CACHE", str(cache))
    # This checkout's packages, whichever one the shared environment's editable install points to.
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), path])))
    client = NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    return notebook


def _check_outputs(notebook, out: Path) -> None:
    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert not [o for o in outputs if o.output_type == "stream" and o.name == "stderr"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    figures = len(list(out.glob("*.png")))
    assert len(images) == figures + 1  # every figure of the report, then the heatmap drawn here
    printed = "".join(o.text for o in outputs if o.output_type == "stream")
    assert "across-speaker ABX error" in printed


@pytest.mark.slow
def test_notebook_runs_clean(
    quick_reproduction: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    notebook = _execute(quick_reproduction, NOTEBOOK.parent, monkeypatch, tmp_path / "cache")
    _check_outputs(notebook, quick_reproduction)


def _grid_caches(out: Path) -> dict[Path, int]:
    return {p.relative_to(out): p.stat().st_mtime_ns for p in out.rglob("analysis/grid-*.nc")}


@pytest.mark.slow
def test_notebook_runs_on_a_moved_copy_from_anywhere(
    quick_reproduction: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The reproduction (made with a relative output path) copied elsewhere, the original hidden,
    the notebook run from a third directory: it runs clean, and every grid comes from the copy's
    cache (no grid file is written or added), and nothing is written where the original was."""
    copy = tmp_path / "elsewhere" / "copied-out"
    shutil.copytree(quick_reproduction, copy, symlinks=True)  # copy2: modification times kept
    before = _grid_caches(copy)
    assert before  # the reproduction cached its grids beside its runs
    hidden = quick_reproduction.with_name(quick_reproduction.name + "-hidden")
    quick_reproduction.rename(hidden)
    try:
        cwd = tmp_path / "somewhere" / "else"
        cwd.mkdir(parents=True)
        monkeypatch.chdir(cwd)
        notebook = _execute(copy, cwd, monkeypatch, tmp_path / "cache")
        assert not quick_reproduction.exists()  # nothing read or written at the origin
    finally:
        hidden.rename(quick_reproduction)
    _check_outputs(notebook, copy)
    assert _grid_caches(copy) == before
    settings = json.loads((copy / "reproduction.json").read_text())
    assert not Path(settings["corpus"]).is_absolute()
    assert all(not Path(run["path"]).is_absolute() for run in settings["runs"].values())
    for run in settings["runs"].values():
        config = json.loads((copy / run["path"] / "config.json").read_text())
        assert not Path(config["corpus"]).is_absolute()
