"""The scheduled multi-task trainer: nothing hidden, one loop, resumable to the bit on the CPU.

`train` reads top to bottom (docs/training.md): setup (what the run is, its data, its model), resume
(the last checkpoint's weights, counters and RNG state), then the epoch loop. Per epoch: a seeded
permutation of the training captions cut into global batches (each process takes its slice); per
step both losses are computed and logged, only the weighted ones are differentiated; Adam(W) with
warm-up then linear decay, restarted at every stage; at the end of the epoch, validation recall
(every `epochs_per_eval` epochs and at the end), one line of metrics.jsonl, one checkpoint.

Exact resumption: the data order and every random draw of the objectives are functions of (seed,
epoch, caption), the quantizer temperature a function of the update count, and the checkpoint holds
the optimizer, the LR schedule and the torch RNG state (dropout; training/resume.py). A resumed run
therefore ends with the weights of an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from training import distributed as D
from training.batches import (
    EpochView,
    caption_durations,
    collate_with_seeds,
    epoch_batches,
    warmup_linear,
)
from training.fileio import exclusive
from training.model import SSLVGS
from training.objective import objective
from training.run.checkpoints import save_checkpoint
from training.run.config import TrainConfig
from training.run.directory import RunConfigError, append_metrics, checkpoint_path
from training.run.request import Run, RunRequest, plan_run, region_paths
from training.run.resume import checkpoint_state, prepare_run_dir, restore
from training.schedules import Stage, stage_of
from training.threads import cpu_threads
from training.validation import validation_recall

__all__ = ["RunConfigError", "train"]


def train(
    corpus: str | os.PathLike,
    run_dir: str | os.PathLike,
    *,
    preset: str | None = None,
    schedule: str | None = None,
    stage_epochs: str | Sequence[int] | int | None = None,
    resume: bool = False,
    device: str = "cpu",
    batch_size: int | None = None,
    init_from: str | os.PathLike | None = None,
    regions: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    allow_change: Sequence[str] = (),
    progress: bool = True,
    stop_after_epoch: int | None = None,
    resample: bool = False,
    allow_outside: bool = False,
    threads: int | None = None,
    **overrides: Any,
) -> Path:
    """Train the VGS+ model on a corpus under a schedule; returns the run directory.

    Args:
        corpus: the corpus root (SpokenCOCO layout).
        run_dir: the run directory (config.json, checkpoints/epoch_NNNN.pt, metrics.jsonl).
        preset: tiny, small or paper (default tiny; a resume takes the run's).
        schedule: a comma list of w2v2 / vgs / vgs+ / alpha=X or a paper schedule name (default:
            the preset's, vgs+); stage_epochs: epochs per stage.
        resume: continue the run from its last checkpoint. Options not given take the run's
            values; a given option that differs from the run's is refused (RunConfigError naming
            each field with both values) unless named in `allow_change` (recorded in config.json).
        init_from: a checkpoint (or run) whose weights start this run; epochs are numbered on.
        regions: region features (a folder, LXMERT TSV(s) or HDF5); default the corpus's regions/.
        stop_after_epoch: return after that epoch as if interrupted (resume continues).
        threads: torch CPU threads while training (default: half the cores, at least one, so that
            a busy neighbour does not stall every step; training/threads.py). Runs resumed with
            another count may differ from uninterrupted ones in the last bits.
        resample: resample captions at another rate (refused by default); allow_outside: read
            wav paths that leave the split file's folder (as `CaptionDataset`; not recorded in
            config.json, so a resume passes them again).
        overrides: any ModelConfig/TrainConfig field. The region feature size comes from the data.
    Raises:
        RunConfigError: a resume that differs from the run; LockedError: the run is being trained.
    """
    if batch_size is not None:
        overrides["batch_size"] = batch_size
    request = RunRequest(
        corpus=Path(corpus).resolve(), run_dir=Path(run_dir), preset=preset, schedule=schedule,
        stage_epochs=stage_epochs, init_from=init_from, regions=region_paths(regions),
        overrides=overrides, allow_change=tuple(allow_change), resume=resume,
    )  # fmt: skip
    device = D.setup(device)
    with _run_lock(request.run_dir), cpu_threads(threads):
        # ---- setup: what the run is, its data, its model
        run = plan_run(request)
        train_set, val_set = _open_data(run, resample=resample, allow_outside=allow_outside)
        run = run.with_region_dim(_region_dim(train_set), given="region_dim" in overrides)
        torch.manual_seed(run.train.seed)
        model = SSLVGS(run.model).to(device)
        for captions in (train_set, val_set):  # captions too short for one frame are refused
            getattr(captions, "dataset", captions).min_samples = model.min_samples
        # ---- resume: the last checkpoint's weights, counters and RNG state (or init_from's weights)
        run, resumed = restore(model, run, init_from, device)
        loop = _Loop.build(model, run, train_set, device, progress)
        D.barrier()  # every process has read the run directory before rank 0 writes to it
        if D.rank() == 0:
            prepare_run_dir(run, resumed)
        D.barrier()
        # ---- the epoch loop
        optim, step = None, resumed.step
        for epoch in range(resumed.epoch + 1, run.last_epoch + 1):
            stage_index, stage = _stage(run, epoch)
            if optim is None or optim.stage_index != stage_index:
                optim = _stage_optimizer(loop, stage_index, epoch, resumed.state)
            with _deterministic_on_cpu(device):
                record = _train_epoch(loop, optim, stage, epoch, step)
            step = record["step"]
            if D.rank() == 0 and _evaluates(run, epoch):
                record.update(_evaluate(model, val_set, run.train, device))
            if D.rank() == 0:
                append_metrics(run.run_dir, record)  # the line first: a checkpoint vouches for it
                state = checkpoint_state(
                    model, run, optimizer=optim.optimizer, scheduler=optim.scheduler,
                    stage=optim.stage_index, record=record,
                )  # fmt: skip
                save_checkpoint(checkpoint_path(run.run_dir, epoch), state)
            D.barrier()
            if stop_after_epoch is not None and epoch >= stop_after_epoch:
                break
    return Path(run_dir)


# ---- setup ---------------------------------------------------------------------------------------


def _run_lock(run_dir: Path):
    """The run's lock, held for the whole of training by rank 0: a second `train` of the same run
    refuses at once, naming it; a lock of a killed process is released by the OS."""
    if D.rank() != 0:
        return contextlib.nullcontext()
    return exclusive(run_dir.resolve(), what="the run", wait=0)


REGION_CACHE_BYTES = 512 * 2**20  # decoded region features a training process keeps


def _open_data(run: Run, **audio_options: bool):
    """(training captions, validation captions) of the run's corpus with its region features."""
    from training.data import CaptionDataset
    from training.data.region_features import NUM_REGIONS
    from training.data.regions import open_regions

    paths = run.regions
    regions = open_regions(
        paths if paths is None or len(paths) > 1 else paths[0], corpus=run.corpus
    )
    train_set = CaptionDataset(run.corpus, "train", regions=regions, **audio_options)
    val_set = CaptionDataset(run.corpus, run.train.eval_split, regions=regions, **audio_options)
    # Keep every training and validation image decoded for the whole run when they fit in
    # REGION_CACHE_BYTES (the default corpus's 1000 images take 295 MB): otherwise each step
    # re-reads and re-checks a batch of region files (a batch of 32 loaded in 25 ms, 12 ms kept).
    if regions.dim:
        images = len(train_set.image_keys) + len(val_set.image_keys)
        image_bytes = NUM_REGIONS * (regions.dim + 4) * 4
        fit = min(images, REGION_CACHE_BYTES // image_bytes)
        regions.cache_size = max(regions.cache_size, fit)
    if run.train.train_subset:
        subset = range(min(run.train.train_subset, len(train_set)))
        train_set = torch.utils.data.Subset(train_set, subset)
    return train_set, val_set


def _region_dim(captions) -> int:
    dataset = captions.dataset if isinstance(captions, torch.utils.data.Subset) else captions
    return int(dataset.regions[dataset.image_keys[0]][0].shape[1])


@dataclass(frozen=True)
class _Loop:
    """What every step of the run uses: the model (and its DDP/compiled wrapper), the data, the
    settings."""

    model: SSLVGS
    net: torch.nn.Module  # the model as the forward pass calls it
    run: Run
    train_set: Any
    device: str
    progress: bool
    steps_per_epoch: int
    max_samples: int

    @property
    def cfg(self) -> TrainConfig:
        return self.run.train

    @classmethod
    def build(cls, model: SSLVGS, run: Run, train_set, device: str, progress: bool) -> _Loop:
        net = model
        if D.is_distributed():
            net = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
        if run.train.compile:
            net = torch.compile(net)
        steps = len(train_set) // run.train.batch_size
        if steps == 0:
            raise ValueError(
                f"batch size {run.train.batch_size} exceeds the {len(train_set)} training "
                f"captions of {run.corpus}"
            )
        samples = int(run.train.max_seconds * run.model.sample_rate)
        return cls(model, net, run, train_set, device, progress, steps, samples)


# ---- the loop ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Optim:
    stage_index: int
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler


def _stage(run: Run, epoch: int) -> tuple[int, Stage]:
    index, _ = stage_of(run.stages, epoch - run.start_epoch)
    return index, run.stages[index]


def _stage_optimizer(loop: _Loop, stage_index: int, epoch: int, resumed: dict | None) -> _Optim:
    """Adam with decoupled weight decay and a warm-up/linear-decay schedule, fresh at every stage;
    a stage resumed after its first epoch takes the checkpoint's optimizer and schedule state."""
    cfg, stage = loop.cfg, loop.run.stages[stage_index]
    # On the CPU the fused kernel updates all ~300 tensors of a small model in one call: the
    # default loop over them cost 19 ms of a `tiny` step, the fused one 4 ms (1 thread, load 2 to 3).
    optimizer = torch.optim.AdamW(
        loop.model.parameters(), lr=cfg.lr, betas=cfg.adam_betas, eps=cfg.adam_eps,
        weight_decay=cfg.weight_decay, fused=True if loop.device.startswith("cpu") else None,
    )  # fmt: skip
    total = stage.epochs * loop.steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_linear(total, cfg.warmup_fraction)
    )
    _, epoch_in_stage = stage_of(loop.run.stages, epoch - loop.run.start_epoch)
    if resumed is not None and resumed["stage"] == stage_index and epoch_in_stage > 1:
        optimizer.load_state_dict(resumed["optimizer"])
        scheduler.load_state_dict(resumed["lr_scheduler"])
    return _Optim(stage_index, optimizer, scheduler)


def _train_epoch(loop: _Loop, optim: _Optim, stage: Stage, epoch: int, step: int) -> dict:
    """One pass over the epoch's batches, from update `step` on; returns the epoch's line of
    metrics.jsonl (the mean of each loss over its steps; validation recall is added to it later)."""
    from training.progress import progress_bar as tqdm

    cfg, model, started = loop.cfg, loop.model, time.perf_counter()
    batches = [D.local_slice(b) for b in _epoch_batches(loop, epoch)]
    loader = DataLoader(
        EpochView(loop.train_set, cfg.seed, epoch, loop.max_samples),
        batch_sampler=batches,
        collate_fn=collate_with_seeds,
        num_workers=cfg.extra.get("num_workers", 0),
    )
    w_av, w_aud = stage.weights
    totals, counts, done = {"loss_av": 0.0, "loss_aud": 0.0}, {"loss_av": 0, "loss_aud": 0}, 0
    loop.net.train()
    bar = tqdm(loader, desc=f"epoch {epoch} ({stage.name})", leave=False,
               disable=not loop.progress or D.rank() != 0)  # fmt: skip
    for batch in bar:
        model.set_num_updates(step + done)
        # A loss of weight 0 is computed (and logged) without a graph, so it sends no gradient,
        # and only on every `inactive_loss_every`-th batch (the same batches on every rank).
        logs_inactive = done % cfg.inactive_loss_every == 0
        with _autocast(loop.device, cfg.precision):
            loss_av, loss_aud = _losses(loop, batch, stage, logs_inactive)
        loss = sum(w * loss for w, loss in ((w_av, loss_av), (w_aud, loss_aud)) if w > 0)
        optim.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optim.optimizer.step()
        optim.scheduler.step()
        done += 1
        for key, value in (("loss_av", loss_av), ("loss_aud", loss_aud)):
            if value is not None:
                totals[key] += float(value.detach())
                counts[key] += 1
        bar.set_postfix({k: f"{v / max(1, counts[k]):.3f}" for k, v in totals.items()})
    loss_av, loss_aud = (totals[k] / max(1, counts[k]) for k in ("loss_av", "loss_aud"))
    return {
        "epoch": epoch,
        "stage": optim.stage_index,
        "stage_name": stage.name,
        "alpha": stage.alpha,
        "loss_av": loss_av,
        "loss_aud": loss_aud,
        "loss": stage.alpha * loss_av + (1 - stage.alpha) * loss_aud,
        "lr": optim.optimizer.param_groups[0]["lr"],
        "step": step + loop.steps_per_epoch,
        "quantizer_temperature": float(model.quantizer.temperature),
        "seconds": time.perf_counter() - started,
    }


def _epoch_batches(loop: _Loop, epoch: int) -> list[list[int]]:
    """The epoch's global batches (caption indices), length-bucketed if the config asks."""
    cfg, lengths = loop.cfg, None
    if cfg.length_bucket_batches:
        lengths = [min(s, cfg.max_seconds) for s in caption_durations(loop.train_set)]
    return epoch_batches(
        len(loop.train_set), cfg.batch_size, cfg.seed, epoch, lengths, cfg.length_bucket_batches
    )


def _losses(loop: _Loop, batch: dict, stage: Stage, logs_inactive: bool = True):
    """(loss_av, loss_aud) of one batch over the global batch; only weighted losses keep a graph,
    and a loss of weight 0 is None (not computed) unless `logs_inactive`."""
    w_av, w_aud = stage.weights
    device = loop.device
    out = loop.net(
        batch["wav"].to(device), batch["wav_lengths"].to(device), batch["feats"].to(device),
        batch["boxes"].to(device), batch["sample_seed"], av_grad=w_av > 0, aud_grad=w_aud > 0,
        av=w_av > 0 or logs_inactive, aud=w_aud > 0 or logs_inactive,
    )  # fmt: skip
    index = batch["image_index"].to(device)
    return objective(loop.model, out, index, D.global_sum, D.gather)


def _evaluates(run: Run, epoch: int) -> bool:
    """Validation every `epochs_per_eval` epochs of this run, and after its last."""
    return (epoch - run.start_epoch) % run.train.epochs_per_eval == 0 or epoch == run.last_epoch


def _evaluate(model: SSLVGS, val_set, cfg: TrainConfig, device: str) -> dict[str, float]:
    started = time.perf_counter()
    recall = validation_recall(model, val_set, cfg.eval_batch_size, device)
    return {**recall, "eval_seconds": time.perf_counter() - started}


# ---- numerics ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _deterministic_on_cpu(device: str):
    """Deterministic kernels while training on the CPU, the previous setting restored afterwards.

    With 2 threads, the backward of the distractor gather `targets[negative_index]` (repeated
    indices: an accumulating index_put_) adds in thread order, so two identical runs differed in the
    last bits of their weights (3 of 4 runs on the 2-core machine) and a resumed run could miss an
    uninterrupted one. The deterministic kernel cost no measurable time here. CUDA is left alone:
    there, deterministic mode needs CUBLAS_WORKSPACE_CONFIG set before the process starts.
    """
    if not device.startswith("cpu"):
        yield
        return
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def _autocast(device: str, precision: str):
    """bf16 autocast for precision bf16, and for auto on CUDA; fp32 otherwise."""
    kind = "cuda" if device.startswith("cuda") else "cpu"
    use_bf16 = precision == "bf16" or (precision == "auto" and kind == "cuda")
    return torch.autocast(kind, dtype=torch.bfloat16, enabled=use_bf16)
