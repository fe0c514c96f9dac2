"""`sslvgs reproduce OUT`: the paper end to end on the embedded corpus, resumable.

Steps (each skipped when already done, so a killed run continues where it stopped):
1. build the spoken-scenes corpus in OUT/corpus (or use an existing one);
2. train the 3 base models, W2V2 (alpha 0), VGS (alpha 1) and VGS+ (alpha 0.5), for A + B epochs;
3. train the scheduled variants (A, B) for B epochs each, starting from base model A's checkpoint at
   epoch A (as the paper does), instead of training stage A again (the paper's A : B is 20 : 50; the
   default plan's 2 : 4); models train several at a time on the CPU (analysis/paper/training_jobs.py);
4. probe: ABX at every layer (within and across speaker and across context, on the `read` and
   `captions` ABX sets) every few epochs, test recall at the end, CKA between base models and the
   variants' drift from the switch; all cached beside the runs;
5. write OUT/report.md with tables, figures and the paper's three claims.

Timings of each step go to OUT/timings.json and into the report.

What a reproduction trains and probes, `Plan`, and the named plans, `PLANS`, are in plans.py; they
are imported here too.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from analysis.paper.plans import PLANS, Plan
from analysis.paper.step_timer import StepTimer
from analysis.paper.variants import BASES, VARIANTS, run_dir_name, variant_name
from training.fileio import write_text_atomic
from training.run.directory import abx_item_file, checkpoint_path

__all__ = [
    "reproduce",
    "Plan",
    "PLANS",
    "BASES",
    "VARIANTS",
    "run_dir_name",
    "variant_name",
    "run_path",
    "study_name",
]


def run_path(out: Path, name: str, seed: int = 0) -> Path:
    """Where a model's run of `seed` lives: OUT/runs/<dir> for seed 0 (the single-seed layout, so
    adding seeds to a finished reproduction trains only the new ones), OUT/runs/seed-<k>/<dir> else."""
    folder = out / "runs" if seed == 0 else out / "runs" / f"seed-{seed}"
    return folder / run_dir_name(name)


def study_name(name: str, seed: int = 0) -> str:
    """The run's name in the study and the report: the model's for seed 0, "<model> seed-<k>" else."""
    return name if seed == 0 else f"{name} seed-{seed}"


def _finished(run: Path, last_epoch: int) -> bool:
    return checkpoint_path(run, last_epoch).is_file()


def reproduce(
    out: Path | str,
    *,
    preset: str | None = None,
    quick: bool = False,
    plan: Plan | None = None,
    corpus: Path | str | None = None,
    regions: Path | str | list[Path | str] | None = None,
    seeds: int | None = None,
    device: str = "cpu",
    client: Any = None,
    jobs: int | None = None,
    threads: int | None = None,
    progress: bool = True,
) -> Path:
    """Run (or resume) the reproduction in `out`; returns OUT/report.md. See the module docstring.

    regions: region features for training and recall instead of the corpus's (a regions folder,
    LXMERT TSVs or FaST-VGS HDF5 files: a path or a list); seeds: seeds of every model (default: the plan's).
    jobs, threads: models trained at once and torch threads of each (default on the CPU: half the
    cores per model and as many models as fit, training/threads.py; on a GPU one model at a time).
    """
    from analysis.paper.report import write_report
    from analysis.paper.study import collect

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plan = plan or PLANS["quick" if quick else "default"]
    preset = preset or plan.preset
    if seeds is not None:
        plan = dataclasses.replace(plan, seeds=seeds)
    if plan.seeds < 1:
        raise ValueError(f"seeds must be at least 1, got {plan.seeds}")
    timer = StepTimer(out / "timings.json")
    corpus = (
        Path(corpus) if corpus is not None else _build_corpus(out / "corpus", plan, timer, progress)
    )
    recall = {"folds": _recall_folds(corpus, plan), "regions": regions}
    item_files = _item_files(out, corpus, plan)
    grid_specs = _grid_specs(corpus, plan, item_files)
    runs = _train_all(out, corpus, plan, timer, jobs, threads, progress, recall, grid_specs,
                      preset=preset, device=device, regions=regions)  # fmt: skip
    with timer.step("probe", progress):
        study = collect(
            list(runs.values()),
            corpus,
            every=plan.every,
            sets=plan.abx_sets,
            abx_options=dict(plan.abx_options),
            item_files=item_files,
            similarity_pairs=plan.similarity_pairs,
            cka_frames=plan.cka_frames,
            cka_items=_cka_items(out, corpus, plan),
            bootstrap=plan.bootstrap,
            full_set_models=_claim3_models(),
            regions=regions,
            recall_folds=recall["folds"],
            client=client,
            progress=progress,
        )
    _write_settings(out, plan, preset, corpus, runs, item_files)
    with timer.step("report", progress):
        report = write_report(
            study,
            out,
            title="Simultaneous or sequential training? Reproduction on the embedded corpus",
            preamble=_preamble(plan, preset, corpus, timer),
        )
    return report


def _recall_folds(corpus: Path, plan: Plan) -> int:
    """Folds of about `plan.recall_fold_images` of the corpus's test images."""
    from training.data.spokencoco import load_split

    if plan.recall_fold_images is None:
        return 1
    return max(1, len(load_split(corpus, "test")) // plan.recall_fold_images)


def _claim3_models() -> list[str]:
    """The models the ABX claim compares: scored on the corpus's full ABX set as well, since the
    grids probe a subset of it (claim 3 is decided there)."""
    from analysis.paper.claims import CLAIMS

    return [m for claim in CLAIMS if claim.measure == "abx" for m in (claim.better, claim.worse)]


def _train_all(
    out: Path,
    corpus: Path,
    plan: Plan,
    timer: StepTimer,
    jobs: int | None,
    threads: int | None,
    progress: bool,
    recall: dict[str, Any],
    grid_specs: dict[str, dict[str, Any]],
    **options: Any,
):
    """Train (or resume, or skip) every model of every seed; their RunSpecs by study name. On the
    CPU with several jobs, each job also caches its run's test recall (`recall`: recall_record's
    options) and ABX grids (`grid_specs`, as `collect` asks for them) in its own process, beside
    the other jobs (analysis/paper/training_jobs.py)."""
    from analysis.paper.training_jobs import run_training_jobs
    from training.threads import default_jobs, default_threads

    threads = threads or default_threads()
    if jobs is None:
        jobs = default_jobs(threads) if options["device"].startswith("cpu") else 1
    options = {k: v for k, v in options.items() if v is not None}
    options.update(threads=threads, progress=progress and jobs == 1, **dict(plan.overrides))
    runs, todo = {}, []
    for seed in range(plan.seeds):
        seed_runs, seed_jobs = _seed_jobs(out, plan, seed, {**options, "seed": seed})
        runs.update(seed_runs)
        todo += seed_jobs
    if jobs > 1:  # in parallel with training; with one job, collect's own pass costs the same
        recall = {k: v for k, v in recall.items() if v is not None}
        # A base run keeps the switch epoch its variants start from (epochs_to_probe's rule).
        keep = {runs[v].base.resolve() for v in runs if runs[v].base is not None}
        todo = [
            dataclasses.replace(
                job,
                recall=recall,
                grids={
                    "specs": grid_specs,
                    "every": plan.every,
                    "keep": [plan.stage_a] if job.run.resolve() in keep else [],
                },
            )
            for job in todo
        ]
    if todo:
        with timer.step("train", progress):
            run_training_jobs(corpus, todo, processes=jobs, record=timer.record, progress=progress)
    return runs


def _seed_jobs(out: Path, plan: Plan, seed: int, options: dict):
    """The RunSpecs of one seed's base models and variants, and the training jobs still to do."""
    from analysis.paper.study import RunSpec
    from analysis.paper.training_jobs import TrainJob

    total = plan.stage_a + plan.stage_b
    runs: dict[str, RunSpec] = {}
    jobs: list[TrainJob] = []
    for name, stage in BASES.items():
        study = study_name(name, seed)
        run = run_path(out, name, seed)
        if not _finished(run, total):
            jobs.append(TrainJob(study, run, stage, total, options))
        runs[study] = RunSpec(study, run, model=name, seed=seed)
    for a, b in plan.variants:
        name = variant_name(a, b)
        study, base = study_name(name, seed), runs[study_name(a, seed)]
        run = run_path(out, name, seed)
        if not _finished(run, total):
            waits = base.name if any(job.name == base.name for job in jobs) else None
            start = {**options, "init_from": checkpoint_path(base.path, plan.stage_a)}
            jobs.append(TrainJob(study, run, BASES[b], plan.stage_b, start, after=waits))
        runs[study] = RunSpec(
            study, run, base=base.path, switch=plan.stage_a, model=name, seed=seed
        )
    return runs, jobs


def _cka_items(out: Path, corpus: Path, plan: Plan) -> Path | None:
    """The item file of the captions CKA compares the models on, when the plan takes a subset."""
    from analysis.paper.study import subset_items

    if "captions" not in plan.abx_sets or plan.cka_files_per_speaker is None:
        return None
    captions = abx_item_file("captions", corpus)
    return subset_items(captions, out / "abx" / "cka.item", plan.cka_files_per_speaker)


def _grid_specs(corpus: Path, plan: Plan, item_files: dict[str, Path]) -> dict[str, dict]:
    """The ABX grid specs `collect` probes every run with (same options: same cache)."""
    from analysis.paper.study import abx_conditions

    specs = abx_conditions(corpus, plan.abx_sets, item_files=item_files, **dict(plan.abx_options))
    if plan.bootstrap:
        specs = {name: {**spec, "bootstrap": plan.bootstrap} for name, spec in specs.items()}
    return specs


def _item_files(out: Path, corpus: Path, plan: Plan) -> dict[str, Path]:
    """The ABX item files that replace the corpus's when the plan probes a subset of each set."""
    from analysis.paper.study import subset_items

    per_set = plan.abx_files_per_speaker
    if not isinstance(per_set, tuple):
        per_set = tuple((name, per_set) for name in plan.abx_sets if per_set is not None)
    return {
        name: subset_items(abx_item_file(name, corpus), out / "abx" / f"{name}.item", files)
        for name, files in per_set
        if name in plan.abx_sets
    }


def _write_settings(
    out: Path, plan: Plan, preset: str, corpus: Path, runs: dict, item_files: dict[str, Path]
) -> None:
    """OUT/reproduction.json: what was trained and how each grid was probed, so that a notebook can
    ask `analysis.grid` for exactly the cached cells (same probe options, same epochs)."""
    from analysis.paper.settings import SETTINGS, store_paths
    from analysis.paper.study import epochs_to_probe

    epochs = epochs_to_probe(list(runs.values()), plan.every)
    settings = {
        "preset": preset,
        "corpus": str(Path(corpus).resolve()),
        "plan": dataclasses.asdict(plan),
        "runs": {
            name: {
                "path": str(spec.path.resolve()),
                "base": str(spec.base.resolve()) if spec.base else None,
                "switch": spec.switch,
                "model": spec.model_name,
                "seed": spec.seed,
                "probed_epochs": epochs[spec.path.resolve()],
            }
            for name, spec in runs.items()
        },
        # The grids' options exactly as `collect` asked them, so they key the same cache.
        "abx": _grid_specs(corpus, plan, item_files),
    }
    # Paths relative to OUT (analysis.paper.settings): the folder works wherever it is moved.
    settings = store_paths(settings, out)
    write_text_atomic(out / SETTINGS, json.dumps(settings, indent=1))


def _build_corpus(root: Path, plan: Plan, timer: StepTimer, progress: bool) -> Path:
    """Build OUT/corpus for `plan`; a finished one is checked against the plan (a corpus of other
    settings, e.g. another read-speaker count, is refused by name) and used as it is."""
    from training.corpus import build_corpus

    options = {"images": plan.images, "seed": 0, "read_speakers": plan.read_speakers}
    if plan.test_images is not None:
        options["test_images"] = plan.test_images
    if (root / "manifest.json").is_file():
        return build_corpus(root, **options, progress=False)  # a no-op when complete
    with timer.step("corpus", progress):
        return build_corpus(root, **options, progress=progress)


def _read_speakers(corpus: Path, plan: Plan) -> int:
    """The corpus's read-set speakers: the manifest's count, else the plan's."""
    manifest = Path(corpus) / "manifest.json"
    if manifest.is_file():
        speakers = json.loads(manifest.read_text()).get("counts", {}).get("speakers", {})
        if "read" in speakers:
            return int(speakers["read"])
    return plan.read_speakers


def _preamble(plan: Plan, preset: str, corpus: Path, timer: StepTimer) -> str:
    fields = dataclasses.asdict(plan)
    variants = ", ".join(variant_name(a, b) for a, b in plan.variants)
    seeds = (
        f"{plan.seeds} seeds of every model (seed k trained with `seed=k`)"
        if plan.seeds > 1
        else "one seed"
    )
    return (
        f"Preset `{preset}`, corpus `{corpus}` ({fields['images']} images, "
        f"{_read_speakers(corpus, plan)} read-set speakers), {seeds}. Base models "
        f"W2V2, VGS and VGS+ trained for {plan.stage_a + plan.stage_b} epochs; variants {variants} "
        f"trained for {plan.stage_b} epochs from their base model's checkpoint at epoch "
        f"{plan.stage_a} (the switch; stage lengths {plan.stage_a}:{plan.stage_b}, the paper's "
        f"20:50). Probed every {plan.every} epoch(s) (and at the switch and the last epoch), at "
        f"every layer. ABX options: {dict(plan.abx_options) or 'exhaustive'}; CKA on "
        f"{plan.cka_frames} frames{_cka_where(plan)}; grid intervals from {plan.bootstrap or 'no'} resamples.\n\n"
        + timer.summary()
    )


def _cka_where(plan: Plan) -> str:
    if "captions" not in plan.abx_sets or plan.cka_files_per_speaker is None:
        return ""
    return f" of the first {plan.cka_files_per_speaker} captions of each speaker"
