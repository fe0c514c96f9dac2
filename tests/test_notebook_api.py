"""The front door, tried as a new user would in a fresh Jupyter kernel (nbclient): tab completion
(`dir`), signatures (Shift-Tab, `help`), the main calls on the session's tiny run, and not a single
warning printed. The notebook is built here, its paths passed in its first cell; it runs once per
module and each test reads the outputs of its own cells."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent

CELLS = {
    "names": """
import inspect
import analysis, probes, training
missing = {
    "probes": {"abx", "extract", "recall", "cka", "similarity", "phone_probe", "list_caches",
               "clear_caches", "abx_engine", "__version__"} - set(dir(probes)),
    "analysis": {"grid", "grids", "stack", "plots", "forgetting_table", "switch_epoch",
                 "drift", "__version__"} - set(dir(analysis)),
    "training": {"train", "build_corpus", "load_model", "rundir", "__version__"} - set(dir(training)),
}
print("missing", {k: sorted(v) for k, v in missing.items() if v})
""",
    "signatures": """
expected = {
    probes.abx: ["model", "layers", "items", "speaker", "context", "distance", "corpus", "device", "progress"],
    probes.extract: ["model", "source", "layers", "store", "device", "progress"],
    probes.recall: ["model", "split", "k", "corpus", "device", "progress"],
    analysis.grid: ["run", "probe", "epochs", "layers", "progress"],
    training.train: ["corpus", "run_dir", "preset", "schedule", "stage_epochs", "device", "progress"],
}
for function, names in expected.items():
    signature = inspect.signature(function)
    absent = [n for n in names if n not in signature.parameters]
    untyped = signature.return_annotation in (inspect.Signature.empty, "Any")
    print(function.__qualname__, "absent", absent, "untyped", untyped, "doc", bool(function.__doc__))
""",
    "abx_all": """
# Other tests of the session may have cached these activations beside the run (the cache is keyed
# by content, not place): drop them, so the kernel extracts and shows its progress bar.
import shutil
shutil.rmtree(RUN + "/probes/activations", ignore_errors=True)
errors = probes.abx(CHECKPOINT, "all")
print("abx dims", errors.dims, "layers", errors.sizes["layer"], "finite", bool(errors.notnull().all()))
""",
    "grid_default_corpus": """
grid = analysis.grid(RUN, "abx", items="read", layers=[0, 8])
print("grid dims", grid.dims, dict(grid.sizes))
""",
    "stacked_heatmap": """
one = analysis.grid(RUN, "abx", items="read", corpus=CORPUS, layers=[0, 8], progress=False)
figure = analysis.plots.heatmap(analysis.stack({"a": one, "b": one}))
print("panels", len([ax for ax in figure.axes if not hasattr(ax, "_colorbar")]))  # colorbars aside
""",
}


@pytest.fixture(scope="module")
def executed(tiny_run: Path, small_corpus: Path, tmp_path_factory: pytest.TempPathFactory):
    """The notebook after a run in a fresh kernel: {cell name: outputs}."""
    from nbclient import NotebookClient

    checkpoint = max((tiny_run / "checkpoints").glob("epoch_*.pt"))
    setup = (
        f"RUN = {str(tiny_run)!r}\nCHECKPOINT = {str(checkpoint)!r}\nCORPUS = {str(small_corpus)!r}"
    )
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(setup)] + [
        nbformat.v4.new_code_cell(source.strip(), metadata={"name": name})
        for name, source in CELLS.items()
    ]
    work = tmp_path_factory.mktemp("notebook_api")
    # The kernel inherits the environment: this checkout's packages, and a cache of its own.
    # Its temporary files in a folder of its own too: test runs beside this one share /tmp.
    saved = {key: os.environ.get(key) for key in ("PYTHONPATH", "SSLVGS_CACHE", "TMPDIR")}
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), saved["PYTHONPATH"]]))
    os.environ["SSLVGS_CACHE"] = str(work / "cache")
    os.environ["TMPDIR"] = str(work)
    try:
        client = NotebookClient(
            notebook, timeout=900, kernel_name="python3", allow_errors=True,
            resources={"metadata": {"path": str(work)}},
        )  # fmt: skip
        client.execute()
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    return {cell.metadata.get("name", "setup"): cell.outputs for cell in notebook.cells}


def _text(outputs) -> str:
    errors = [f"{o.ename}: {o.evalue}" for o in outputs if o.output_type == "error"]
    assert not errors, errors
    return "".join(o.get("text", "") for o in outputs if o.output_type == "stream")


def test_dir_shows_every_public_name(executed) -> None:
    assert "missing {}" in _text(executed["names"])


def test_signatures_are_real(executed) -> None:
    lines = _text(executed["signatures"]).splitlines()
    assert len(lines) == 5
    assert all("absent [] untyped False doc True" in line for line in lines), lines


def test_abx_of_a_checkpoint_at_all_layers(executed) -> None:
    text = _text(executed["abx_all"])
    assert "abx dims ('layer',) layers 13 finite True" in text  # tiny: layers 0..12


def test_grid_finds_the_run_corpus(executed) -> None:
    assert "grid dims ('epoch', 'layer') {'epoch': 3, 'layer': 2}" in _text(
        executed["grid_default_corpus"]
    )


def test_heatmap_of_a_stacked_grid(executed) -> None:
    assert "panels 2" in _text(executed["stacked_heatmap"])


def test_no_warning_is_printed(executed) -> None:
    # Cells that fail are the business of their own tests; every other output must be clean.
    clean = [
        outputs
        for outputs in executed.values()
        if not any(o.output_type == "error" for o in outputs)
    ]
    streams = [o for outputs in clean for o in outputs if o.output_type == "stream"]
    assert not [o.text for o in streams if o.name == "stderr"]
    assert not [o.text for o in streams if "Warning" in o.text or "IProgress" in o.text]


def test_progress_is_one_notebook_widget(executed) -> None:
    # probes.abx extracted activations in the kernel: its bar is tqdm's widget, not stderr lines.
    widgets = [
        o for o in executed["abx_all"]
        if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]  # fmt: skip
    assert widgets
