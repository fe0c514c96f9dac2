"""Training throughput: sslvgs training steps against torchaudio's wav2vec 2.0 on the same audio.

CPU (always): seconds of audio trained per second of wall time for
  - sslvgs `tiny` and `small`: one full training step (both objectives, backward, AdamW, grad clipping),
  - sslvgs `paper`: the same step at wav2vec 2.0 base size,
  - peer: torchaudio `wav2vec2_base` forward + backward of its encoder output (no objective, no
    optimizer), the cost floor of a wav2vec 2.0 base step on the same audio.
GPU (when one is present): the paper preset's steps/s at batch 64 x 8 s under bf16 autocast, and
its model FLOPs utilisation (FLOPs counted by torch's FlopCounterMode / step time / peak bf16 rate).

    python benchmarks/train_throughput.py [--threads N] [--repeats R] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch

from training.model import SSLVGS
from training.objective import objective
from training.run.config import preset

# Dense bf16 tensor-core peaks (TFLOP/s), for MFU.
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0}


def synthetic_batch(batch: int, seconds: float, region_dim: int, device: str) -> dict:
    g = torch.Generator().manual_seed(0)
    samples = int(seconds * 16000)
    return {
        "wav": torch.randn(batch, samples, generator=g).to(device),
        "wav_lengths": torch.full((batch,), samples, device=device),
        "feats": torch.randn(batch, 36, region_dim, generator=g).to(device),
        "boxes": torch.rand(batch, 36, 4, generator=g).to(device),
        "image_index": torch.arange(batch, device=device),
    }


def sslvgs_step_fn(name: str, batch: dict, device: str, bf16: bool = False):
    cfg, train_cfg = preset(name, region_dim=batch["feats"].shape[-1])
    torch.manual_seed(0)
    model = SSLVGS(cfg).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=train_cfg.lr, eps=1e-6, weight_decay=0.01)
    seeds = list(range(len(batch["wav"])))

    def step() -> None:
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=bf16):
            out = model(batch["wav"], batch["wav_lengths"], batch["feats"], batch["boxes"], seeds)
            loss_av, loss_aud = objective(model, out, batch["image_index"])
        optimizer.zero_grad(set_to_none=True)
        (0.5 * loss_av + 0.5 * loss_aud).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    return step


def torchaudio_step_fn(batch: dict):
    from torchaudio.models import wav2vec2_base

    torch.manual_seed(0)
    model = wav2vec2_base().train()

    def step() -> None:
        features, _ = model(batch["wav"], batch["wav_lengths"])
        model.zero_grad(set_to_none=True)
        features.float().pow(2).mean().backward()

    return step


def seconds_per_step(step, repeats: int, sync=lambda: None) -> float:
    step()  # warm-up (allocations, lazy init)
    sync()
    started = time.perf_counter()
    for _ in range(repeats):
        step()
    sync()
    return (time.perf_counter() - started) / repeats


def cpu_rows(repeats: int) -> list[dict]:
    rows = []
    for name, batch_size, seconds, build in (
        ("sslvgs tiny (full training step)", 32, 3.0, lambda b: sslvgs_step_fn("tiny", b, "cpu")),
        ("sslvgs small (full training step)", 32, 3.0, lambda b: sslvgs_step_fn("small", b, "cpu")),
        ("sslvgs paper (full training step)", 4, 3.0, lambda b: sslvgs_step_fn("paper", b, "cpu")),
        ("torchaudio wav2vec2_base (fwd+bwd)", 4, 3.0, torchaudio_step_fn),
    ):
        batch = synthetic_batch(batch_size, seconds, 256, "cpu")
        per_step = seconds_per_step(build(batch), repeats)
        rows.append(
            {
                "what": name,
                "batch": f"{batch_size} x {seconds:g} s",
                "s_per_step": per_step,
                "audio_s_per_s": batch_size * seconds / per_step,
            }
        )
        print(
            f"{name:38s} {rows[-1]['batch']:>10s}  {per_step:8.3f} s/step  {rows[-1]['audio_s_per_s']:8.1f} audio s/s",
            flush=True,
        )
    return rows


def gpu_row(repeats: int) -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    device = "cuda"
    batch = synthetic_batch(64, 8.0, 2048, device)
    step = sslvgs_step_fn("paper", batch, device, bf16=True)
    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    per_step = seconds_per_step(step, repeats, torch.cuda.synchronize)
    name = torch.cuda.get_device_name()
    peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    achieved = flops / per_step / 1e12
    row = {
        "what": "sslvgs paper, bf16 autocast",
        "device": name,
        "batch": "64 x 8 s",
        "steps_per_s": 1.0 / per_step,
        "tflops": achieved,
        "mfu": achieved / peak if peak else None,
    }
    mfu = f"{100 * row['mfu']:.1f}%" if peak else "n/a (unknown peak)"
    print(f"GPU {name}: {row['steps_per_s']:.2f} steps/s, {achieved:.1f} TFLOP/s, MFU {mfu}")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per configuration")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"
    print(f"machine: {machine}; load average {os.getloadavg()[0]:.1f}")
    results = {"machine": machine, "cpu": cpu_rows(args.repeats)}
    if torch.cuda.is_available():
        results["gpu"] = gpu_row(args.repeats)
    else:
        print("no GPU: skipping the paper preset's GPU steps/s and MFU")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
