"""The reproduction's training jobs: variants wait for their base, failures surface, threads hold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from analysis.paper.training_jobs import TrainJob, _ordered, run_training_jobs
from training import threads as threads_module
from training.threads import cpu_threads, default_jobs, default_threads


def _job(name: str, after: str | None = None) -> TrainJob:
    return TrainJob(name, Path(name), "vgs", 1, after=after)


def test_a_variant_comes_after_its_base_whatever_the_listing_order():
    jobs = [_job("(W2V2,VGS)", after="W2V2"), _job("VGS"), _job("W2V2")]
    order = [job.name for job in _ordered(jobs)]
    assert order.index("W2V2") < order.index("(W2V2,VGS)")
    assert sorted(order) == sorted(job.name for job in jobs)


def test_jobs_that_wait_for_each_other_or_for_nothing_known_are_refused(tmp_path):
    with pytest.raises(ValueError, match="circle"):
        _ordered([_job("a", after="b"), _job("b", after="a")])
    with pytest.raises(ValueError, match="unknown jobs"):
        run_training_jobs(tmp_path, [_job("a", after="nobody")], processes=1, progress=False)


def test_a_failed_job_in_a_worker_process_raises_here_and_its_dependants_never_start(tmp_path):
    missing = tmp_path / "no-corpus"
    jobs = [
        TrainJob("VGS", tmp_path / "vgs", "vgs", 1, {"preset": "tiny", "progress": False}),
        TrainJob("(VGS,W2V2)", tmp_path / "v", "w2v2", 1, {"preset": "tiny"}, after="VGS"),
    ]
    recorded = []
    with pytest.raises(Exception, match="no-corpus"):
        run_training_jobs(missing, jobs, processes=2, record=lambda *a: recorded.append(a),
                          progress=False)  # fmt: skip
    assert recorded == []
    assert not (tmp_path / "v").exists()


@pytest.mark.parametrize("processes", [1, 2])
def test_a_job_that_asks_caches_its_test_recall_and_grids_where_collect_finds_them(
    small_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, processes: int
):
    """In this process or in worker processes (where a variant waiting for VGS trains before
    VGS's recall is embedded), each job's test recall and ABX grids are cached in its run."""
    import analysis.gridding.driver as driver
    import analysis.paper.recall_records as recall_records
    from analysis.paper.study import abx_conditions

    run = tmp_path / "vgs"
    options = {"preset": "tiny", "progress": False, "threads": 1}
    specs = abx_conditions(small_corpus, ("read",), {"within": {"speaker": "within"}})
    asks = {"recall": {"folds": 2}, "grids": {"specs": specs, "every": 2, "keep": [1]}}
    job = TrainJob("VGS", run, "vgs", 2, options, **asks)
    variant = TrainJob("(VGS,W2V2)", tmp_path / "v", "w2v2", 1,
                       {**options, "init_from": run / "checkpoints" / "epoch_0001.pt"},
                       after="VGS", recall={"folds": 2})  # fmt: skip
    recorded: dict[str, float] = {}
    run_training_jobs(small_corpus, [job, variant], processes=processes,
                      record=recorded.__setitem__, progress=False)  # fmt: skip
    assert set(recorded) == {f"{step} {name}" for step in ("train", "test recall")
                             for name in ("VGS", "(VGS,W2V2)")} | {"abx grids VGS"}  # fmt: skip
    assert (tmp_path / "v" / "analysis" / "recall-test.json").is_file()
    cached = json.loads((run / "analysis" / "recall-test.json").read_text())
    assert cached["folds"] == 2
    # the report's pass (the same options) reads the record and the grids and computes nothing
    monkeypatch.setattr(recall_records, "_embed", lambda *a: pytest.fail("embedded again"))
    assert recall_records.recall_record(run, small_corpus, folds=2) == cached["record"]
    monkeypatch.setattr(driver, "measure_checkpoint", lambda *a: pytest.fail("probed again"))
    # epochs 1 (kept: the switch) and 2 (the last), every layer
    grid = driver.grids(run, specs, [1, 2], "all", progress=False)["read, within"]
    assert grid.sizes["epoch"] == 2 and grid.notnull().all()


def test_threads_default_to_half_the_cores_and_are_restored_after_the_block():
    cores = threads_module._cores()
    assert default_threads() == max(1, cores // 2)
    assert default_jobs(1) == cores and default_jobs(cores) == 1
    before = torch.get_num_threads()
    with cpu_threads(1) as count:
        assert count == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="at least 1"):
        with cpu_threads(0):
            pass
