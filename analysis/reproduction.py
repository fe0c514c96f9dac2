"""`sslvgs reproduce OUT`: the paper end to end on the embedded corpus, resumable.

Steps (each skipped when already done, so a killed run continues where it stopped):
1. build the spoken-scenes corpus in OUT/corpus (or use an existing one);
2. train the 3 base models, W2V2 (alpha 0), VGS (alpha 1) and VGS+ (alpha 0.5), for A + B epochs;
3. train the scheduled variants (A, B) for B epochs each, starting from base model A's checkpoint at
   epoch A (as the paper does), instead of training stage A again; A : B = 2 : 5 as in the paper;
4. probe: ABX at every layer (within and across speaker and across context, on the `read` and
   `captions` ABX sets) every few epochs, test recall at the end, CKA between base models and the
   variants' drift from the switch; all cached beside the runs;
5. write OUT/report.md with tables, figures and the paper's three claims.

Timings of each step go to OUT/timings.json and into the report.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.fileio import write_text_atomic
from training.rundir import abx_item_file, checkpoint_path

__all__ = ["reproduce", "Plan", "PLANS", "BASES", "VARIANTS", "run_dir_name", "variant_name"]

# Base models: the paper's name -> the trainer's schedule stage name.
BASES = {"W2V2": "w2v2", "VGS": "vgs", "VGS+": "vgs+"}
# The six scheduled variants (A, B), in the paper's Table I order.
VARIANTS = (
    ("W2V2", "VGS+"),
    ("VGS", "VGS+"),
    ("W2V2", "VGS"),
    ("VGS", "W2V2"),
    ("VGS+", "W2V2"),
    ("VGS+", "VGS"),
)


@dataclass(frozen=True)
class Plan:
    """What a reproduction trains and probes.

    images: corpus size; stage_a, stage_b: epochs before and after the switch (the paper: 20, 50);
    variants: which (A, B) to train; every: probe every N-th epoch (plus the first, the switch and the
    last); abx_sets: the corpus ABX sets probed; abx_options: passed to the ABX engine (subsampling);
    abx_files_per_speaker: probe only the first N files of each speaker of each ABX set (None: all);
    cka_frames: frames CKA is computed on; similarity_pairs: base models compared by CKA at each
    probed epoch; overrides: trainer config overrides.
    """

    images: int
    stage_a: int
    stage_b: int
    variants: tuple[tuple[str, str], ...]
    every: int
    abx_sets: tuple[str, ...] = ("read", "captions")
    abx_options: tuple[tuple[str, Any], ...] = ()
    abx_files_per_speaker: int | None = None
    cka_frames: int = 4000
    similarity_pairs: tuple[tuple[str, str], ...] = (
        ("VGS", "W2V2"),
        ("VGS+", "W2V2"),
        ("VGS+", "VGS"),
    )
    overrides: tuple[tuple[str, Any], ...] = ()


PLANS = {
    # About 30 minutes on 2 cores (see docs/performance.md): 51 epochs in all (3 x (2 + 5) + 6 x 5) of 25
    # steps, and 39 checkpoints probed on 12 files per speaker of each ABX set (~120 wavs).
    "default": Plan(
        images=200, stage_a=2, stage_b=5, variants=VARIANTS, every=2, abx_files_per_speaker=12
    ),
    # A few minutes, for tests: fewer images, epochs and variants (still one per claim).
    "quick": Plan(
        images=24,
        stage_a=1,
        stage_b=2,
        variants=(("W2V2", "VGS"), ("VGS", "W2V2"), ("VGS+", "W2V2")),
        every=100,
        abx_sets=("read",),
        abx_files_per_speaker=4,
        cka_frames=1000,
        similarity_pairs=(("VGS", "W2V2"),),
    ),
}


def variant_name(a: str, b: str) -> str:
    """The paper's name of a scheduled variant: (A,B)."""
    return f"({a},{b})"


def run_dir_name(name: str) -> str:
    """A run directory name for a paper name: "VGS+" -> "vgs+", "(VGS,W2V2)" -> "vgs-then-w2v2"."""
    if name in BASES:
        return BASES[name]
    a, b = name.strip("()").split(",")
    return f"{BASES[a]}-then-{BASES[b]}"


class _Timer:
    """Wall-clock seconds per step, kept in OUT/timings.json across resumptions (last value wins)."""

    def __init__(self, path: Path):
        self.path = path
        self.seconds: dict[str, float] = json.loads(path.read_text()) if path.is_file() else {}

    @contextmanager
    def step(self, name: str, progress: bool) -> Iterator[None]:
        if progress:
            print(f"[sslvgs reproduce] {name} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - started, 1)
        write_text_atomic(self.path, json.dumps(self.seconds, indent=1))
        if progress:
            print(
                f"[sslvgs reproduce] {name}: {self.seconds[name]:.0f} s",
                file=sys.stderr,
                flush=True,
            )


def _train(corpus: Path, run: Path, schedule: str, epochs: int, plan: Plan, **options: Any) -> Path:
    from training.trainer import train

    return train(
        corpus,
        run,
        schedule=schedule,
        stage_epochs=(epochs,),
        resume=True,
        **dict(plan.overrides),
        **options,
    )


def _finished(run: Path, last_epoch: int) -> bool:
    return checkpoint_path(run, last_epoch).is_file()


def reproduce(
    out: Path | str,
    *,
    preset: str = "tiny",
    quick: bool = False,
    plan: Plan | None = None,
    corpus: Path | str | None = None,
    device: str = "cpu",
    client: Any = None,
    progress: bool = True,
) -> Path:
    """Run (or resume) the reproduction in `out`; returns OUT/report.md. See the module docstring."""
    from analysis.report import write_report
    from analysis.study import RunSpec, collect

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plan = plan or PLANS["quick" if quick else "default"]
    timer = _Timer(out / "timings.json")
    corpus = (
        Path(corpus) if corpus is not None else _build_corpus(out / "corpus", plan, timer, progress)
    )
    total = plan.stage_a + plan.stage_b
    runs = {}
    for name, stage in BASES.items():
        run = out / "runs" / run_dir_name(name)
        if not _finished(run, total):
            with timer.step(f"train {name}", progress):
                _train(
                    corpus, run, stage, total, plan, preset=preset, device=device, progress=progress
                )
        runs[name] = RunSpec(name, run)
    for a, b in plan.variants:
        name = variant_name(a, b)
        run = out / "runs" / run_dir_name(name)
        start = checkpoint_path(runs[a].path, plan.stage_a)
        if not _finished(run, total):
            with timer.step(f"train {name}", progress):
                _train(corpus, run, BASES[b], plan.stage_b, plan, preset=preset, device=device,
                       init_from=start, progress=progress)  # fmt: skip
        runs[name] = RunSpec(name, run, base=runs[a].path, switch=plan.stage_a)
    item_files = _item_files(out, corpus, plan)
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
            client=client,
            progress=progress,
        )
    _write_settings(out, plan, preset, corpus, runs, item_files)
    with timer.step("report", progress):
        report = write_report(
            study,
            out,
            title="Simultaneous or sequential training? Reproduction on the embedded corpus",
            preamble=_preamble(plan, preset, corpus, timer.seconds),
        )
    return report


def _item_files(out: Path, corpus: Path, plan: Plan) -> dict[str, Path]:
    """The ABX item files that replace the corpus's when the plan probes a subset of each set."""
    from analysis.study import subset_items

    if plan.abx_files_per_speaker is None:
        return {}
    return {
        name: subset_items(
            abx_item_file(name, corpus),
            out / "abx" / f"{name}.item",
            plan.abx_files_per_speaker,
        )
        for name in plan.abx_sets
    }


def _write_settings(
    out: Path, plan: Plan, preset: str, corpus: Path, runs: dict, item_files: dict[str, Path]
) -> None:
    """OUT/reproduction.json: what was trained and how each grid was probed, so that a notebook can
    ask `analysis.grid` for exactly the cached cells (same probe options, same epochs)."""
    from analysis.study import abx_conditions, epochs_to_probe

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
                "probed_epochs": epochs[spec.path.resolve()],
            }
            for name, spec in runs.items()
        },
        "abx": abx_conditions(
            corpus, plan.abx_sets, item_files=item_files, **dict(plan.abx_options)
        ),
    }
    write_text_atomic(out / "reproduction.json", json.dumps(settings, indent=1))


def _build_corpus(root: Path, plan: Plan, timer: _Timer, progress: bool) -> Path:
    from training.corpus import build_corpus

    if (root / "manifest.json").is_file():
        return build_corpus(
            root, images=plan.images, seed=0, progress=False
        )  # a no-op when complete
    with timer.step("corpus", progress):
        return build_corpus(root, images=plan.images, seed=0, progress=progress)


def _preamble(plan: Plan, preset: str, corpus: Path, seconds: dict[str, float]) -> str:
    fields = dataclasses.asdict(plan)
    variants = ", ".join(variant_name(a, b) for a, b in plan.variants)
    timing = ", ".join(f"{step} {value:.0f} s" for step, value in seconds.items())
    return (
        f"Preset `{preset}`, corpus `{corpus}` ({fields['images']} images). Base models W2V2, VGS "
        f"and VGS+ trained for {plan.stage_a + plan.stage_b} epochs; variants {variants} trained "
        f"for {plan.stage_b} epochs from their base model's checkpoint at epoch {plan.stage_a} (the "
        f"switch; stage lengths {plan.stage_a}:{plan.stage_b}, the paper's 20:50). Probed every "
        f"{plan.every} epoch(s) (and at the switch and the last epoch), at every layer. "
        f"ABX options: {dict(plan.abx_options) or 'exhaustive'}; CKA on {plan.cka_frames} frames.\n\n"
        f"Wall-clock time of the last session's steps: {timing}.\n"
    )
