"""Resuming a run: a changed command is refused or recorded, metrics.jsonl is rebuilt from the
checkpoints, one process trains a run at a time, and a run trains on region features given by path."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analysis.cli import main
from training import RunConfigError, train
from training.run.checkpoints import load_checkpoint
from training.run.directory import list_checkpoints, recorded_path, run_regions

# As tests/test_trainer.py: a few batches per epoch, bookkeeping rather than learning.
QUICK = dict(preset="tiny", progress=False, eval_split="test", train_subset=64, batch_size=16)
QUICK_CLI = ["--batch-size", "16", "--eval-split", "test", "--set", "train_subset=64", "--no-progress"]  # fmt: skip


def epochs(run: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def config(run: Path) -> dict:
    return json.loads((run / "config.json").read_text())


@pytest.fixture(scope="module")
def stopped_run(small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-epoch run interrupted after its first epoch (tests resume copies of it)."""
    run = tmp_path_factory.mktemp("stopped") / "run"
    return train(small_corpus, run, stage_epochs=3, stop_after_epoch=1, **QUICK)


def copy_of(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "run"))


def corpus_copy(corpus: Path, where: Path, regions: bool = True) -> Path:
    """The same corpus under another path (its entries linked), with or without its regions/."""
    where.mkdir()
    for entry in corpus.iterdir():
        if regions or entry.name != "regions":
            (where / entry.name).symlink_to(entry)
    return where


def test_resume_refuses_another_corpus_lr_batch_size_or_seed_naming_both_values(
    stopped_run, small_corpus, tmp_path, capsys
):
    before = (stopped_run / "config.json").read_bytes()
    other = corpus_copy(small_corpus, tmp_path / "corpus_s1")
    where = re.escape(str(stopped_run / "config.json"))
    for asked, shown in [
        (dict(lr=0.1), r"lr 0\.001 \(asked 0\.1\)"),
        (dict(batch_size=8), r"batch_size 16 \(asked 8\)"),
        (dict(seed=5), r"seed 0 \(asked 5\)"),
    ]:
        with pytest.raises(RunConfigError, match=f"{where}: .*differs.*{shown}"):
            train(small_corpus, stopped_run, resume=True, progress=False, **asked)
    # All at once, as issue-style `sslvgs train corpus_s1 RUN --resume --lr 0.1 --batch-size 8 --seed 5`:
    # one error naming every field with the run's value and the command's.
    command = ["train", str(other), str(stopped_run), "--resume", "--lr", "0.1",
               "--batch-size", "8", "--seed", "5", "--no-progress"]  # fmt: skip
    assert main(command) == 2
    error = capsys.readouterr().err
    for field, run_value, asked in [
        ("corpus", repr(str(small_corpus.resolve())), repr(str(other.resolve()))),
        ("lr", "0.001", "0.1"),
        ("batch_size", "16", "8"),
        ("seed", "0", "5"),
    ]:
        assert f"{field} {run_value} (asked {asked})" in error, (field, error)
    assert "--allow-change corpus,batch_size,lr,seed" in error
    # Nothing was written: the run is as it was.
    assert (stopped_run / "config.json").read_bytes() == before
    assert list(list_checkpoints(stopped_run)) == [1] and epochs(stopped_run) == [1]


def test_an_unknown_field_to_allow_is_an_error(stopped_run, small_corpus):
    with pytest.raises(ValueError, match=r"allow_change: unknown field\(s\) \['learning_rate'\]"):
        train(small_corpus, stopped_run, resume=True, allow_change=["learning_rate"])


def test_allow_change_records_a_deliberate_change_in_the_runs_history(
    stopped_run, small_corpus, tmp_path, capsys
):
    run = copy_of(stopped_run, tmp_path)
    command = ["train", str(small_corpus), str(run), "--resume", "--lr", "5e-4",
               "--allow-change", "lr", "--stop-after-epoch", "2", "--no-progress"]  # fmt: skip
    assert main(command) == 0
    recorded = config(run)
    assert recorded["train"]["lr"] == 5e-4
    assert recorded["changes"] == [{"epoch": 2, "field": "lr", "from": 0.001, "to": 0.0005}]
    lrs = {e: load_checkpoint(p)["train_config"]["lr"] for e, p in list_checkpoints(run).items()}
    assert lrs == {1: 0.001, 2: 0.0005}
    # The run now is at lr 5e-4: a plain resume goes on with it, the old value is a change again.
    with pytest.raises(RunConfigError, match=r"lr 0\.0005 \(asked 0\.001\)"):
        train(small_corpus, run, resume=True, lr=1e-3, progress=False)
    train(small_corpus, run, resume=True, progress=False)
    assert epochs(run) == [1, 2, 3] and config(run)["changes"] == recorded["changes"]
    assert load_checkpoint(list_checkpoints(run)[3])["train_config"]["lr"] == 5e-4


@pytest.mark.parametrize("damage", ["torn", "deleted"])
def test_metrics_are_rebuilt_exactly_from_the_checkpoints(damage, tiny_run, small_corpus, tmp_path, capsys):  # fmt: skip
    run = copy_of(tiny_run, tmp_path)
    metrics = run / "metrics.jsonl"
    original = metrics.read_bytes()
    if damage == "torn":  # killed while writing the last line: half of it, no newline
        metrics.write_bytes(original[: len(original) - len(original.splitlines()[-1]) // 2 - 1])
    else:
        metrics.unlink()
    # A plain resume of a finished run trains nothing and repairs its metrics; no JSONDecodeError.
    assert main(["train", str(small_corpus), str(run), "--resume", "--no-progress"]) == 0
    assert metrics.read_bytes() == original
    said = capsys.readouterr().out
    problem = "line 3 is not JSON (a torn write)" if damage == "torn" else "missing"
    assert f"{metrics}: {problem}; rebuilt epoch(s) {'3' if damage == 'torn' else '1-3'} " in said


def test_two_resumes_at_once_one_trains_and_the_other_refuses_by_name(
    stopped_run, small_corpus, tmp_path
):
    run = copy_of(stopped_run, tmp_path)
    lock = run.resolve().parent / "run.lock"
    command = [sys.executable, "-m", "analysis.cli", "train", str(small_corpus), str(run),
               "--resume", "--no-progress"]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _hold_stopped_while_locked(first, lock)
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    finally:
        first.send_signal(signal.SIGCONT)
    assert second.returncode == 2, second.stderr
    assert f"{run.resolve()}: the run is being written by another process" in second.stderr
    assert first.wait(timeout=300) == 0, first.stderr.read().decode()
    assert epochs(run) == [1, 2, 3] and list(list_checkpoints(run)) == [1, 2, 3]


def _hold_stopped_while_locked(process: subprocess.Popen, lock: Path) -> None:
    """Stop `process` (SIGSTOP) at a moment it holds the run's lock: it keeps the lock, stopped."""
    from filelock import FileLock, Timeout

    deadline = time.monotonic() + 180
    while True:
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "the first process took no lock within 3 minutes"
        if lock.exists():
            process.send_signal(signal.SIGSTOP)
            probe = FileLock(lock)
            try:
                probe.acquire(timeout=0)
            except Timeout:
                return  # held by the stopped process
            probe.release()  # created but not yet locked: let it go on
            process.send_signal(signal.SIGCONT)
        time.sleep(0.02)


def test_a_run_trains_on_region_features_given_by_path(small_corpus, tmp_path):
    corpus = corpus_copy(small_corpus, tmp_path / "no_regions", regions=False)
    regions = small_corpus / "regions"
    run = tmp_path / "run"
    command = ["train", str(corpus), str(run), "--regions", str(regions), "--stage-epochs", "1",
               *QUICK_CLI]  # fmt: skip
    assert main(command) == 0
    assert epochs(run) == [1]
    # Stored relative to the run when near it (a folder moved with both keeps them), read back whole.
    assert [recorded_path(p, run) for p in config(run)["regions"]] == [regions.resolve()]
    assert run_regions(run) == [regions.resolve()]
    # A resume (here of a finished run: it opens the data, trains nothing) takes the run's regions:
    # the corpus has none of its own ...
    train(corpus, run, resume=True, progress=False)
    assert epochs(run) == [1]
    # ... and refuses others, naming both.
    elsewhere = tmp_path / "with_regions" / "regions"
    shutil.copytree(regions, elsewhere, copy_function=os.link)
    with pytest.raises(
        RunConfigError, match=r"regions \[.*\] \(asked \[.*with_regions/regions'\]\)"
    ):
        train(corpus, run, resume=True, regions=elsewhere, progress=False)
