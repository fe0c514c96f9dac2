"""notebooks/reproduce.ipynb runs clean on a `sslvgs reproduce --quick` output (nbclient, real kernel)."""

from __future__ import annotations

import os
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


@pytest.mark.slow
def test_notebook_runs_clean(
    quick_reproduction: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # The kernel inherits the environment: the output to open, and an activation cache of its own.
    monkeypatch.setenv("SSLVGS_REPRODUCE_DIR", str(quick_reproduction))
    monkeypatch.setenv("SSLVGS_CACHE", str(tmp_path / "cache"))
    # This checkout's packages, whichever one the shared environment's editable install points to.
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), path])))
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert not [o for o in outputs if o.output_type == "stream" and o.name == "stderr"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    figures = len(list(quick_reproduction.glob("*.png")))
    assert len(images) == figures + 1  # every figure of the report, then the heatmap drawn here
    printed = "".join(o.text for o in outputs if o.output_type == "stream")
    assert "across-speaker ABX error" in printed
