"""The scheduled multi-task trainer: nothing hidden, one loop, resumable to the bit on the CPU.

Per epoch: a seeded permutation of the training captions cut into global batches (each process takes
its slice); per step both losses are computed and logged, only the weighted ones are differentiated;
Adam(W) with warm-up then linear decay, restarted at every stage; at the end of the epoch, validation
recall (every `epochs_per_eval` epochs and at the end), one line of metrics.jsonl, one checkpoint.

Exact resumption: the data order and every random draw of the objectives are functions of (seed,
epoch, caption), the quantizer temperature a function of the update count, and the checkpoint holds
the optimizer, the LR schedule and the torch RNG state (dropout). A resumed run therefore ends with
the weights of an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
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
from training.checkpoints import (
    CheckpointError,
    last_checkpoint,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from training.config import (
    ModelConfig,
    TrainConfig,
    config_from_dict,
    config_to_dict,
)
from training.config import (
    preset as get_preset,
)
from training.model import SSLVGS
from training.objective import objective
from training.rundir import (
    CHECKPOINTS,
    CONFIG,
    RunConfigError,
    append_metrics,
    check_resume,
    checkpoint_path,
    list_checkpoints,
    resolve_checkpoint,
    run_config,
    truncate_metrics,
    write_json_atomic,
)
from training.schedules import Stage, parse_schedule, stage_of
from training.validation import validation_recall

__all__ = ["RunConfigError", "train"]


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
    kind = "cuda" if device.startswith("cuda") else "cpu"
    use_bf16 = precision == "bf16" or (precision == "auto" and kind == "cuda")
    return torch.autocast(kind, dtype=torch.bfloat16, enabled=use_bf16)


# ---- the loop -----------------------------------------------------------------------------------


def train(
    corpus: str | os.PathLike,
    run_dir: str | os.PathLike,
    *,
    preset: str = "tiny",
    schedule: str | None = None,
    stage_epochs: str | list[int] | int | None = None,
    resume: bool = False,
    device: str = "cpu",
    batch_size: int | None = None,
    init_from: str | os.PathLike | None = None,
    progress: bool = True,
    stop_after_epoch: int | None = None,
    **overrides: Any,
) -> Path:
    """Train the VGS+ model on a corpus under a schedule; returns the run directory.

    schedule: a comma list of w2v2 / vgs / vgs+ / alpha=X or a paper schedule name (None: the preset's,
    vgs+); stage_epochs: epochs per stage. resume: continue from the run's last checkpoint.
    init_from: a checkpoint (or run) whose weights start this run; epochs are numbered on from its
    epoch. stop_after_epoch: return after that epoch as if interrupted (resume continues). overrides:
    any ModelConfig/TrainConfig field. The region feature size is taken from the corpus.
    """
    from training.data import CaptionDataset

    corpus, run_dir = Path(corpus).resolve(), Path(run_dir)
    device = D.setup(device)
    if batch_size is not None:
        overrides["batch_size"] = batch_size
    train_set = CaptionDataset(corpus, "train")
    overrides.setdefault("region_dim", int(train_set.regions[train_set.image_keys[0]][0].shape[1]))
    model_cfg, train_cfg = get_preset(preset, **overrides)

    config_path = run_dir / CONFIG
    resuming = resume and config_path.exists()
    if resuming:
        stored = json.loads(config_path.read_text())
        asked = (
            None
            if schedule is None and stage_epochs is None
            else parse_schedule(
                schedule or train_cfg.schedule, stage_epochs, train_cfg.stage_epochs
            )
        )
        check_resume(run_dir, stored, preset, model_cfg, asked)
        model_cfg = config_from_dict(ModelConfig, stored["model"])
        train_cfg = config_from_dict(TrainConfig, stored["train"])
        stages = [Stage(**s) for s in stored["schedule"]]
        start_epoch, init = stored["start_epoch"], stored["init_from"]
    else:
        if config_path.exists() or list_checkpoints(run_dir):
            raise RunConfigError(
                f"{run_dir}: already holds a run; pass resume=True (--resume) or another directory"
            )
        stages = parse_schedule(
            schedule or train_cfg.schedule, stage_epochs, train_cfg.stage_epochs
        )
        train_cfg = dataclasses.replace(
            train_cfg,
            schedule=",".join(s.name for s in stages),
            stage_epochs=tuple(s.epochs for s in stages),
        )
        start_epoch, init = 0, None

    val_set = CaptionDataset(corpus, train_cfg.eval_split, regions=train_set.regions)
    if train_cfg.train_subset:
        train_set = torch.utils.data.Subset(
            train_set, range(min(train_cfg.train_subset, len(train_set)))
        )
    torch.manual_seed(train_cfg.seed)
    model = SSLVGS(model_cfg).to(device)
    step, first_epoch, state = 0, start_epoch + 1, None
    if resuming and last_checkpoint(run_dir) is not None:
        path = last_checkpoint(run_dir)
        state = load_checkpoint(path, map_location=device)
        if state.get("preset") != preset:
            raise RunConfigError(
                f"{path}: checkpoint of preset {state.get('preset')!r}, not {preset!r}"
            )
        load_weights(model, state["model"], path)
        step, first_epoch = state["step"], state["epoch"] + 1
    elif (
        resuming and init is not None
    ):  # killed before its first checkpoint: start again from the source
        step = _initialise_from(
            model, init["checkpoint"], device, expected_id=init["checkpoint_id"]
        )["step"]
    elif init_from is not None:
        init = _initialise_from(model, init_from, device)
        step, start_epoch = init["step"], init["epoch"]
        first_epoch = start_epoch + 1
    last_epoch = start_epoch + sum(s.epochs for s in stages)

    if D.rank() == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / CHECKPOINTS).mkdir(exist_ok=True)
        if not resuming:
            write_json_atomic(
                config_path,
                run_config(preset, model_cfg, train_cfg, stages, corpus, init, start_epoch),
            )
        for stale in (run_dir / CHECKPOINTS).glob(".epoch_*.tmp"):
            stale.unlink()  # left by a process killed while writing
        truncate_metrics(run_dir, first_epoch - 1)
    D.barrier()

    net = model
    if D.is_distributed():
        net = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
    if train_cfg.compile:
        net = torch.compile(net)
    steps_per_epoch = len(train_set) // train_cfg.batch_size
    if steps_per_epoch == 0:
        raise ValueError(
            f"batch size {train_cfg.batch_size} exceeds the {len(train_set)} training captions of {corpus}"
        )
    max_samples = int(train_cfg.max_seconds * model_cfg.sample_rate)

    optimizer = scheduler = None
    current_stage = None
    if state is not None:
        torch.set_rng_state(state["torch_rng"].cpu())
        if torch.cuda.is_available() and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])

    for epoch in range(first_epoch, last_epoch + 1):
        stage_index, epoch_in_stage = stage_of(stages, epoch - start_epoch)
        stage = stages[stage_index]
        if current_stage != stage_index:
            optimizer, scheduler = _new_optimizer(model, train_cfg, stage.epochs * steps_per_epoch)
            if state is not None and state["stage"] == stage_index and epoch_in_stage > 1:
                optimizer.load_state_dict(state["optimizer"])
                scheduler.load_state_dict(state["lr_scheduler"])
            current_stage = stage_index

        started = time.perf_counter()
        with _deterministic_on_cpu(device):
            sums = _train_epoch(
                net,
                model,
                optimizer,
                scheduler,
                train_set,
                train_cfg,
                stage,
                epoch,
                step,
                max_samples,
                device,
                progress,
            )
        step += steps_per_epoch
        record = {
            "epoch": epoch,
            "stage": stage_index,
            "stage_name": stage.name,
            "alpha": stage.alpha,
            "loss_av": sums["loss_av"],
            "loss_aud": sums["loss_aud"],
            "loss": stage.alpha * sums["loss_av"] + (1 - stage.alpha) * sums["loss_aud"],
            "lr": optimizer.param_groups[0]["lr"],
            "step": step,
            "quantizer_temperature": float(model.quantizer.temperature),
            "seconds": time.perf_counter() - started,
        }
        if D.rank() == 0 and (
            (epoch - start_epoch) % train_cfg.epochs_per_eval == 0 or epoch == last_epoch
        ):
            started = time.perf_counter()
            record.update(validation_recall(model, val_set, train_cfg.eval_batch_size, device))
            record["eval_seconds"] = time.perf_counter() - started
        if D.rank() == 0:
            append_metrics(run_dir, record)
            save_checkpoint(
                checkpoint_path(run_dir, epoch),
                {
                    "format": 1,
                    "preset": preset,
                    "model_config": config_to_dict(model_cfg),
                    "train_config": config_to_dict(train_cfg),
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "lr_scheduler": scheduler.state_dict(),
                    "epoch": epoch,
                    "stage": stage_index,
                    "step": step,
                    "torch_rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state_all()
                    if torch.cuda.is_available()
                    else None,
                    "metrics": record,
                },
            )
        D.barrier()
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            break
    return run_dir


def _initialise_from(
    model: SSLVGS,
    source: str | os.PathLike,
    device: str,
    expected_id: str | None = None,
) -> dict:
    """Load another run's weights (a checkpoint file or a run's last); what the new run records of it."""
    from training.checkpoints import checkpoint_id

    path = resolve_checkpoint(source)
    identity = checkpoint_id(path)
    if expected_id is not None and identity != expected_id:
        raise CheckpointError(
            f"{path}: changed since this run started from it (checksum {identity[:12]})"
        )
    payload = load_checkpoint(path, map_location=device)
    load_weights(model, payload["model"], path)
    epoch, step = int(payload.get("epoch", 0)), int(payload.get("step", 0))
    return {
        "checkpoint": str(Path(path).resolve()),
        "checkpoint_id": identity,
        "epoch": epoch,
        "step": step,
    }


def _new_optimizer(model: torch.nn.Module, cfg: TrainConfig, total_steps: int):
    """Adam with decoupled weight decay and a warm-up/linear-decay schedule: fresh at every stage."""
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=cfg.lr,
        betas=cfg.adam_betas,
        eps=cfg.adam_eps,
        weight_decay=cfg.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_linear(total_steps, cfg.warmup_fraction)
    )
    return optimizer, scheduler


def _train_epoch(
    net,
    model: SSLVGS,
    optimizer,
    scheduler,
    train_set,
    cfg: TrainConfig,
    stage: Stage,
    epoch: int,
    step: int,
    max_samples: int,
    device: str,
    progress: bool,
) -> dict[str, float]:
    """One pass over the epoch's batches; returns the mean of each loss over its steps."""
    from training.progress import progress_bar as tqdm

    lengths = None
    if cfg.length_bucket_batches:
        lengths = [min(s, cfg.max_seconds) for s in caption_durations(train_set)]
    batches = [
        D.local_slice(b)
        for b in epoch_batches(
            len(train_set), cfg.batch_size, cfg.seed, epoch, lengths, cfg.length_bucket_batches
        )
    ]
    loader = DataLoader(
        EpochView(train_set, cfg.seed, epoch, max_samples),
        batch_sampler=batches,
        collate_fn=collate_with_seeds,
        num_workers=cfg.extra.get("num_workers", 0),
    )
    w_av, w_aud = stage.weights
    totals, first_step = {"loss_av": 0.0, "loss_aud": 0.0}, step
    net.train()
    bar = tqdm(
        loader,
        desc=f"epoch {epoch} ({stage.name})",
        disable=not progress or D.rank() != 0,
        leave=False,
    )
    for batch in bar:
        model.set_num_updates(step)
        with _autocast(device, cfg.precision):
            out = net(
                batch["wav"].to(device), batch["wav_lengths"].to(device), batch["feats"].to(device), batch["boxes"].to(device),
                batch["sample_seed"], av_grad=w_av > 0, aud_grad=w_aud > 0,
            )  # fmt: skip
            loss_av, loss_aud = objective(
                model, out, batch["image_index"].to(device), D.global_sum, D.gather
            )
        # A loss of weight 0 is computed (and logged) without a graph, so it sends no gradient.
        loss = sum(w * loss for w, loss in ((w_av, loss_av), (w_aud, loss_aud)) if w > 0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        step += 1
        totals["loss_av"] += float(loss_av.detach())
        totals["loss_aud"] += float(loss_aud.detach())
        bar.set_postfix(
            {name: f"{value / (step - first_step):.3f}" for name, value in totals.items()}
        )
    n = max(1, len(batches))
    return {k: v / n for k, v in totals.items()}
