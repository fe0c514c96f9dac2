"""`sslvgs abx FEATURES ITEM`: output, JSON, and one-line errors that name the file or line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analysis.cli import main
from probes.abx_engine import score
from training.data import read_items

HEADER = "#file onset offset #phone prev-phone next-phone speaker\n"


@pytest.fixture
def abx_dir(tmp_path):
    """features/<file>.npy for 4 files (2 speakers) and a valid items.item."""
    rng = np.random.default_rng(0)
    features = tmp_path / "features"
    features.mkdir()
    lines = []
    for f in range(4):
        np.save(features / f"f{f}.npy", rng.standard_normal((20, 3)).astype(np.float32))
        for k, phone in enumerate("abab"):
            lines.append(f"f{f} {0.08 * k:.2f} {0.08 * k + 0.06:.2f} {phone} x y s{f % 2}\n")
    (tmp_path / "items.item").write_text(HEADER + "".join(lines))
    return tmp_path


def run(capsys, *argv):
    code = main(["abx", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_prints_the_error_and_json_matches_the_api(abx_dir, capsys):
    code, out, _ = run(capsys, abx_dir / "features", abx_dir / "items.item", "--speaker", "across")
    assert code == 0 and out.startswith("ABX error ") and "across speaker, within context" in out
    code, out, _ = run(
        capsys, abx_dir / "features", abx_dir / "items.item", "--context", "any", "--json"
    )
    summary = json.loads(out)
    assert {"score", "speaker", "context", "n_cells", "n_triplets"} <= set(summary)
    features = {f"f{f}": np.load(abx_dir / "features" / f"f{f}.npy") for f in range(4)}
    expected = score(features, read_items(abx_dir / "items.item"), context="any")
    assert summary["score"] == float(expected) and summary["n_cells"] == len(expected.cells)


def test_txt_and_pt_features_and_cells_csv(abx_dir, capsys):
    import torch

    for f in range(4):
        array = np.load(abx_dir / "features" / f"f{f}.npy")
        (abx_dir / "features" / f"f{f}.npy").unlink()
        if f % 2:
            np.savetxt(abx_dir / "features" / f"f{f}.txt", array)
        else:
            torch.save(torch.from_numpy(array), abx_dir / "features" / f"f{f}.pt")
    cells = abx_dir / "cells.csv"
    code, out, _ = run(
        capsys, abx_dir / "features", abx_dir / "items.item", "--cells", cells, "--json"
    )
    assert code == 0 and json.loads(out)["n_cells"] == len(cells.read_text().splitlines()) - 1


def error_of(capsys, *argv) -> str:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    return err


def test_missing_feature_file_is_named(abx_dir, capsys):
    (abx_dir / "features" / "f2.npy").unlink()
    assert "'f2'" in error_of(capsys, abx_dir / "features", abx_dir / "items.item")


def test_slice_out_of_range_names_the_line(abx_dir, capsys):
    item = abx_dir / "items.item"
    item.write_text(item.read_text() + "f0 0.30 0.50 a x y s0\n")
    err = error_of(capsys, abx_dir / "features", item)
    assert f"{item}:18:" in err and "20 frames" in err


def test_nan_features_are_named(abx_dir, capsys):
    array = np.load(abx_dir / "features" / "f1.npy")
    array[3, 1] = np.nan  # frame 3 is in no item: it does not count
    np.save(abx_dir / "features" / "f1.npy", array)
    assert run(capsys, abx_dir / "features", abx_dir / "items.item")[0] == 0
    array[5, 1] = np.nan
    np.save(abx_dir / "features" / "f1.npy", array)
    err = error_of(capsys, abx_dir / "features", abx_dir / "items.item")
    assert "'f1'" in err and "first at frame 5" in err


def test_dimension_mismatch_is_named(abx_dir, capsys):
    np.save(abx_dir / "features" / "f3.npy", np.zeros((20, 5), np.float32))
    assert "'f3'" in error_of(capsys, abx_dir / "features", abx_dir / "items.item")


def test_item_file_without_needed_columns(abx_dir, capsys):
    item = abx_dir / "items.item"
    item.write_text("#file onset offset #phone speaker\nf0 0 0.04 a s0\n")
    assert f"{item}:1:" in error_of(capsys, abx_dir / "features", item)


def test_condition_without_valid_cell(abx_dir, capsys):
    item = abx_dir / "items.item"
    item.write_text(HEADER + "f0 0.00 0.06 a x y s0\nf1 0.00 0.06 b x y s1\n")
    assert "no valid cell" in error_of(capsys, abx_dir / "features", item)


def test_missing_features_argument(abx_dir, capsys):
    assert "FEATURES" in error_of(capsys, abx_dir / "items.item")


def test_a_features_job_imports_neither_pandas_nor_torch_nor_numba(abx_dir):
    """`sslvgs abx FEATURES ITEM` (a small within-type job) starts on numpy alone: pandas, torch and
    Numba together cost several times the job's own work in a process that a shell loop starts per
    layer."""
    import subprocess
    import sys

    code = (
        "import sys; from analysis.cli import main; "
        f"main(['abx', {str(abx_dir / 'features')!r}, {str(abx_dir / 'items.item')!r}, '--json']); "
        "print(sorted(m for m in ('pandas', 'torch', 'numba', 'scipy') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    *_, loaded = done.stdout.strip().splitlines()
    assert loaded == "[]", done.stdout
    # and the score is the one the pandas path gives
    features = {f"f{f}": np.load(abx_dir / "features" / f"f{f}.npy") for f in range(4)}
    summary = json.loads(done.stdout.strip().splitlines()[0])
    assert summary["score"] == float(score(features, read_items(abx_dir / "items.item")))
