"""The reproduction's training: every model of every seed, several at once on the CPU.

Each model is one `training.train` call. A variant (A, B) starts from base model A's checkpoint at the
switch, so it waits for A's run; everything else is independent. On the CPU the jobs run in
`jobs` processes of `threads` torch threads each (by default half the cores per process and two
processes on two cores: a step at one thread barely notices a neighbour, where a two-thread step
stalls; training/threads.py). On a GPU, or with jobs=1, they run one after another in this process.

A job may also ask for its run's test recall (`TrainJob.recall`) and its ABX grids (`TrainJob.grids`):
once the model is trained, a worker embeds the test split and caches the record in the run
(`recall_record`), then probes the run's checkpoints and caches the grids exactly as the report's
`collect` asks for them. That work, the largest part of the report's probing, then runs beside the
other training jobs, one model per process at their thread count, instead of after all of them in
one process. Such a task never delays a training job that has become ready.
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["TrainJob", "run_training_jobs"]


@dataclass(frozen=True)
class TrainJob:
    """One model to train: `train(corpus, run, schedule=..., stage_epochs=(epochs,), **options)`.

    after: the name of the job whose run must be finished first (a variant's base model), or None.
    recall: options for `analysis.paper.recall_records.recall_record` (e.g. folds, regions) to
    cache the trained run's test recall in the same process, or None for none.
    grids: {"specs": grid probe specs by name, "every": N, "keep": [epochs]} to cache the run's
    grids at `probe_epochs(its checkpoints, every, keep)` and every layer (`analysis.grids`), or None.
    """

    name: str
    run: Path
    schedule: str
    epochs: int
    options: dict[str, Any] = field(default_factory=dict)
    after: str | None = None
    recall: dict[str, Any] | None = None
    grids: dict[str, Any] | None = None


def _train_one(corpus: Path, job: TrainJob) -> float:
    """Train (or resume) one job; returns its wall-clock seconds. Runs in a worker process."""
    from training.trainer import train

    started = time.perf_counter()
    train(corpus, job.run, schedule=job.schedule, stage_epochs=(job.epochs,), resume=True,
          **job.options)  # fmt: skip
    return time.perf_counter() - started


def _recall_one(corpus: Path, job: TrainJob) -> float:
    """Cache the trained run's test recall (`job.recall`: recall_record's options); returns its
    wall-clock seconds. Runs in a worker process, after `_train_one` of the same job."""
    from analysis.paper.recall_records import recall_record
    from training.threads import cpu_threads, default_threads

    started = time.perf_counter()
    with cpu_threads(job.options.get("threads") or default_threads()):  # as its training had
        recall_record(job.run, corpus, **(job.recall or {}), progress=False)
    return time.perf_counter() - started


def _grids_one(corpus: Path, job: TrainJob) -> float:
    """Cache the trained run's grids (`job.grids`); returns its wall-clock seconds. Runs in a
    worker process, after `_train_one` of the same job."""
    from analysis.gridding.driver import grids
    from analysis.paper.study import probe_epochs
    from analysis.runs import checkpoints
    from training.threads import cpu_threads, default_threads

    started = time.perf_counter()
    ask = job.grids
    assert ask is not None, "_grids_one runs only for a job that asks for grids"
    with cpu_threads(job.options.get("threads") or default_threads()):
        epochs = probe_epochs(list(checkpoints(job.run)), ask["every"], ask.get("keep", ()))
        grids(job.run, ask["specs"], epochs, "all", None, progress=False)
    return time.perf_counter() - started


def _follow_ups(job: TrainJob) -> list[tuple[str, Callable[[Path, TrainJob], float]]]:
    """The steps a trained job asks for, in order: its test recall, then its grids."""
    steps = [("test recall", _recall_one)] if job.recall is not None else []
    return steps + ([("abx grids", _grids_one)] if job.grids is not None else [])


def run_training_jobs(
    corpus: Path,
    jobs: list[TrainJob],
    *,
    processes: int = 1,
    record: Callable[[str, float], None] = lambda step, seconds: None,
    progress: bool = True,
) -> None:
    """Train every job, each after the job it names in `after`; `record(step, seconds)` for each
    step of a job as it ends ("train <name>", and "test recall <name>" and "abx grids <name>" if
    the job asks for them).

    processes > 1 trains that many jobs at once in fresh processes (spawned: no torch state is
    shared); a failed job raises its error here once the jobs already running have ended.
    """
    names = [job.name for job in jobs]
    unknown = {job.after for job in jobs if job.after is not None} - set(names)
    if unknown:
        raise ValueError(f"training jobs wait for unknown jobs {sorted(unknown)}")
    if processes <= 1:
        for job in _ordered(jobs):
            _say(progress, f"train {job.name} ...")
            record(f"train {job.name}", _train_one(corpus, job))
            for step, run_step in _follow_ups(job):
                record(f"{step} {job.name}", run_step(corpus, job))
        return
    _say(progress, f"training {len(jobs)} models, {processes} at a time")
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
        _run_pool(pool, corpus, jobs, record, progress)


def _ordered(jobs: list[TrainJob]) -> list[TrainJob]:
    """The jobs in an order where each comes after the job it waits for."""
    done: set[str] = set()
    pending, ordered = list(jobs), []
    while pending:
        ready = _ready(pending, done)
        if not ready:
            raise ValueError("training jobs wait for each other in a circle")
        for job in ready:
            ordered.append(job)
            done.add(job.name)
            pending.remove(job)
    return ordered


def _ready(pending: list[TrainJob], done: set[str]) -> list[TrainJob]:
    """The pending jobs whose base run (if any) is finished."""
    return [job for job in pending if job.after is None or job.after in done]


def _run_pool(pool, corpus: Path, jobs: list[TrainJob], record, progress: bool) -> None:
    """Submit each job once the job it waits for is trained, and each job's follow-up steps (test
    recall, grids) once it is trained, after the trainings that became ready (a follow-up never
    holds up a waiting variant)."""
    pending = list(jobs)
    running: dict[Future, tuple[str, TrainJob]] = {}
    done: set[str] = set()
    failure: BaseException | None = None
    follow_ups: list[tuple[str, Callable[[Path, TrainJob], float], TrainJob]] = []
    while pending or running or (follow_ups and failure is None):
        if failure is None:
            for job in _ready(pending, done):
                running[pool.submit(_train_one, corpus, job)] = ("train", job)
                pending.remove(job)
            for step, run_step, job in follow_ups:
                running[pool.submit(run_step, corpus, job)] = (step, job)
            follow_ups.clear()
        if not running:
            break
        finished, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in finished:
            step, job = running.pop(future)
            error = future.exception()
            if error is not None:
                failure = failure or error
                continue
            seconds = future.result()
            record(f"{step} {job.name}", seconds)
            _say(progress, f"{step} {job.name}: {seconds:.0f} s")
            if step == "train":
                done.add(job.name)
                follow_ups += [(name, run_step, job) for name, run_step in _follow_ups(job)]
    if failure is not None:
        raise failure


def _say(progress: bool, message: str) -> None:
    if progress:
        print(f"[sslvgs reproduce] {message}", file=sys.stderr, flush=True)
