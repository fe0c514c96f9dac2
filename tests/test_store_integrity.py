"""Activation stores that never lie: a lock for every writer, and stores that prove they are whole.

Real processes (tests/store_worker.py) for what only processes can show: two extractions of one
store at once, and a SIGKILL at each stage of a store's life followed by the same call.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from test_probes_extract import tiny_wav2vec2

from probes import extract, open_store
from probes.inventory import INVENTORY
from probes.store import StoreMismatchError
from probes.store_check import CorruptStoreError, IncompleteStoreError

WORKER = Path(__file__).resolve().parent / "store_worker.py"
ROOT = WORKER.parent.parent


@pytest.fixture(scope="module")
def model():
    return tiny_wav2vec2(0)


@pytest.fixture(scope="module")
def wavdir(tmp_path_factory):
    """Ten noise 'utterances' of 0.5 to 1.9 s (five batches of two)."""
    import soundfile

    folder = tmp_path_factory.mktemp("wavs")
    rng = np.random.default_rng(0)
    for i in range(10):
        noise = 0.1 * rng.standard_normal(8000 + 1600 * i).astype(np.float32)
        soundfile.write(folder / f"u{i}.wav", noise, 16000)
    return folder


def worker(*args: str | Path, wait: bool = True) -> subprocess.Popen | dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, str(WORKER), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    if not wait:
        return process
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return json.loads(out.splitlines()[-1])


@pytest.fixture(scope="module")
def reference(wavdir, tmp_path_factory):
    """The uninterrupted store, written by a worker process alone."""
    path = tmp_path_factory.mktemp("reference") / "whole.zarr"
    assert worker("extract", path, wavdir)["forwards"] == 5
    return path


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLVGS_CACHE", str(tmp_path / "cache"))


def test_two_processes_extracting_one_store_compute_it_once(wavdir, reference, tmp_path):
    store, flag, release = tmp_path / "shared.zarr", tmp_path / "paused", tmp_path / "go on"
    pause = ("--pause-at", "batch-recorded", "--flag", flag, "--until", release)
    first = worker("extract", store, wavdir, *pause, wait=False)
    deadline = time.monotonic() + 120
    while not flag.exists():
        assert first.poll() is None and time.monotonic() < deadline, first.stderr.read()
        time.sleep(0.05)
    # A reader meanwhile sees an unfinished store, named, never half of one.
    with pytest.raises(IncompleteStoreError, match="shared.zarr.*interrupted after 1 batches"):
        open_store(store)
    second = worker("extract", store, wavdir, wait=False)
    said = second.stderr.readline()  # blocks until the second process says it waits
    assert said.startswith(f"{store}: waiting for another process writing the activation store")
    release.touch()
    out_first, err_first = first.communicate(timeout=300)
    out_second, err_second = second.communicate(timeout=300)
    assert first.returncode == 0 and second.returncode == 0, err_first + err_second
    assert json.loads(out_first)["forwards"] == 5
    assert json.loads(out_second)["forwards"] == 0  # waited, then read the finished store
    xr.testing.assert_identical(open_store(store).load(), open_store(reference).load())


def test_a_store_killed_at_any_stage_is_finished_by_the_same_call(wavdir, reference, tmp_path):
    results = worker("faults", tmp_path, wavdir, reference)
    # Batches of two over ten utterances: five; the kills in batch 2 leave one or two recorded.
    remaining = {
        "created": 5,
        "placed": 5,
        "mid-batch": 4,
        "batch-written": 4,
        "batch-recorded": 3,
        "consolidated": 0,
        "inventoried": 0,
        "complete": 0,
    }
    assert set(results) == set(remaining)
    for stage, result in results.items():
        assert result == {"killed": True, "forwards": remaining[stage], "equal": True}, stage
    # No temp folder of the killed creation is left beside the stores.
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


# --- damaged stores, in this process ---------------------------------------------------------


def whole_store(model, wavdir, path):
    ds = extract(
        model, sorted(wavdir.glob("*.wav")), "all", store=path, batch_size=4, progress=False
    )
    return ds.load()


def again(model, wavdir, path, capsys):
    """The same extract call; returns its dataset and what it said on stderr."""
    ds = extract(
        model, sorted(wavdir.glob("*.wav")), "all", store=path, batch_size=4, progress=False
    )
    return ds.load(), capsys.readouterr().err


def a_chunk(path: Path) -> Path:
    return path / "activations" / "c" / "2" / "0" / "0"


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: a_chunk(p).unlink(), "chunk activations/c/2/0/0 is missing"),
        (
            lambda p: a_chunk(p).write_bytes(a_chunk(p).read_bytes()[:-7]),
            "chunk activations/c/2/0/0 holds .* bytes, its inventory says",
        ),
        (
            lambda p: a_chunk(p).write_bytes(
                bytes([a_chunk(p).read_bytes()[0] ^ 1]) + a_chunk(p).read_bytes()[1:]
            ),
            "chunk activations/c/2/0/0 fails its checksum",
        ),
        (lambda p: (p / INVENTORY).unlink(), f"its chunk inventory {INVENTORY} is missing"),
        (lambda p: (p / "utt" / "zarr.json").write_text("{"), "file utt/zarr.json holds 1 bytes"),
    ],
    ids=["deleted chunk", "truncated chunk", "flipped bit", "no inventory", "torn array header"],
)
def test_a_damaged_store_is_named_on_open_and_rebuilt_by_the_same_call(
    model, wavdir, tmp_path, capsys, damage, message
):
    path = tmp_path / "s.zarr"
    whole = whole_store(model, wavdir, path)
    damage(path)
    with pytest.raises(CorruptStoreError, match=f"s.zarr: {message}.*rebuild"):
        open_store(path)
    rebuilt, said = again(model, wavdir, path, capsys)
    assert f"{path}: " in said and "rebuilding it" in said
    xr.testing.assert_identical(rebuilt, whole)
    xr.testing.assert_identical(open_store(path).load(), whole)  # and it stays whole


def test_a_store_of_the_old_format_marked_complete_without_consolidated_metadata(
    model, wavdir, tmp_path, capsys
):
    """What a kill between marking complete and consolidating left before: rebuilt, not stuck."""
    path = tmp_path / "s.zarr"
    whole = whole_store(model, wavdir, path)
    group = zarr.open_group(path, mode="r+", use_consolidated=False)  # drops consolidated metadata
    group.attrs.update({"format": 1})
    with pytest.raises(CorruptStoreError, match=f"{path}: it was written in store format 1"):
        open_store(path)
    rebuilt, said = again(model, wavdir, path, capsys)
    assert f"{path}: it was written in store format 1 (this sslvgs reads 2); rebuilding it" in said
    xr.testing.assert_identical(rebuilt, whole)


def test_a_folder_left_empty_is_filled_and_a_foreign_one_refused(model, wavdir, tmp_path, capsys):
    (tmp_path / "empty.zarr").mkdir()
    filled, said = again(model, wavdir, tmp_path / "empty.zarr", capsys)
    assert said == "" and filled.sizes["utterance"] == 10
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("not a store")
    with pytest.raises(StoreMismatchError, match="mine exists and is not an activation store"):
        again(model, wavdir, tmp_path / "mine", capsys)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "not a store"


def test_a_damaged_store_in_the_default_cache_is_rebuilt(model, wavdir, capsys):
    wavs = sorted(wavdir.glob("*.wav"))
    whole = extract(model, wavs, [1, 2], progress=False).load()
    (store,) = [p for p in Path(os.environ["SSLVGS_CACHE"]).rglob("*.zarr") if p.is_dir()]
    (store / "activations" / "c" / "1" / "0" / "0").unlink()
    subset = extract(model, wavs, 2, progress=False).load()  # a subset: the same store serves
    assert (
        f"{store}: chunk activations/c/1/0/0 is missing; rebuilding it" in capsys.readouterr().err
    )
    # The damaged superset went; the call stored what it asked for, with the same values.
    xr.testing.assert_equal(subset.activations, whole.activations.sel(layer=[2]))


def test_the_check_reads_a_store_once_per_process(model, wavdir, tmp_path, monkeypatch):
    """After a full check, a process re-checks by stat alone, unless a file changed."""
    import probes.inventory

    path = tmp_path / "s.zarr"
    whole_store(model, wavdir, path)
    reads = []
    real = probes.inventory.crc32_of
    monkeypatch.setattr(probes.inventory, "crc32_of", lambda p: reads.append(p) or real(p))
    open_store(path)
    open_store(path)
    assert reads == []  # the writer checksummed them as it finished
    probes.inventory.forget(path)
    open_store(path)
    n_files = len(json.loads((path / INVENTORY).read_text())["files"])
    assert len(reads) == n_files
    open_store(path)
    assert len(reads) == n_files


def test_a_full_disk_names_the_store_and_the_same_call_then_finishes(
    model, wavdir, tmp_path, monkeypatch
):
    import errno

    import zarr.storage._local as local

    whole = whole_store(model, wavdir, tmp_path / "whole.zarr")
    real_put = local._put

    def full_after_a_while(path, value, exclusive=False):
        if "activations/c/1" in str(path):  # the disk fills up in the middle of the first batch
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_put(path, value, exclusive=exclusive)

    monkeypatch.setattr(local, "_put", full_after_a_while)
    with pytest.raises(OSError, match=r"\[Errno 28\] No space left on device: '.*cut\.zarr'"):
        whole_store(model, wavdir, tmp_path / "cut.zarr")
    monkeypatch.setattr(local, "_put", real_put)
    xr.testing.assert_identical(whole_store(model, wavdir, tmp_path / "cut.zarr"), whole)


def test_a_store_deleted_under_its_writer_is_named_and_the_same_call_rebuilds_it(
    model, wavdir, tmp_path, monkeypatch
):
    import shutil

    import probes.store

    whole = whole_store(model, wavdir, tmp_path / "whole.zarr")
    path = tmp_path / "s.zarr"

    def delete_after_the_first_batch(stage):
        if stage == "batch-recorded" and path.exists():
            shutil.rmtree(path)

    quiet = probes.store._reached
    monkeypatch.setattr(probes.store, "_reached", delete_after_the_first_batch)
    with pytest.raises(FileNotFoundError, match=r"removed while being written: '.*s\.zarr'"):
        whole_store(model, wavdir, path)
    monkeypatch.setattr(probes.store, "_reached", quiet)
    xr.testing.assert_identical(whole_store(model, wavdir, path), whole)
