"""Activation extraction: seconds of audio per second and peak memory, `probes.extract` against peers.

Every variant runs in its own process (so peak resident memory is its own) on the same wavs with the
same model and batches:

- `extract`:  probes.extract, all layers, written to a zarr store batch by batch;
- `forward`:  the same forward passes (same batches, same settings), outputs discarded: the ceiling
              without any storage;
- `collect`:  the model's own batched forward (torchaudio's `extract_features`, or SSLVGS's
              `hidden_states`) with PyTorch's default settings, every layer kept in a Python list:
              what a notebook does without a store.

Peak memory is reported as the process's peak RSS and as its growth over the RSS after loading the
model (the part that depends on the amount of audio).

Run twice the amount of audio to see which peak memory grows with it:

    .venv/bin/python benchmarks/extract_throughput.py --seconds 60 120
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np

# Measure this checkout, whatever checkout the environment's editable install points at.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

VARIANTS = ("extract", "forward", "collect")


def make_wavs(folder: Path, seconds: float, seed: int = 0) -> list[Path]:
    """Noise 'utterances' of 2 to 6 s totalling `seconds` (throughput does not depend on content)."""
    import soundfile

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths, total = [], 0.0
    while total < seconds:
        length = min(rng.uniform(2.0, 6.0), seconds - total + 0.5)
        path = folder / f"utt{len(paths):05d}.wav"
        soundfile.write(
            path, 0.1 * rng.standard_normal(int(16000 * length)).astype(np.float32), 16000
        )
        paths.append(path)
        total += length
    return paths


def build_model(name: str):
    import torch
    import torchaudio

    torch.manual_seed(0)
    if name == "wav2vec2_base":
        return torchaudio.models.wav2vec2_base().eval()
    from training import SSLVGS, preset

    return SSLVGS(preset(name)[0]).eval()


def run_variant(variant: str, model_name: str, wav_dir: Path, batch_size: int) -> dict:
    """Time one variant in this process; returns seconds, audio seconds and peak RSS (MiB)."""
    import soundfile
    import torch

    from probes.activations import extract, load_wav_batch, plan_batches
    from probes.models import as_layered_model, bounded_memory
    from probes.sources import Utterance

    torch.set_num_threads(os.cpu_count() or 1)
    paths = sorted(wav_dir.glob("*.wav"))
    audio_seconds = sum(soundfile.info(str(p)).duration for p in paths)
    model = build_model(model_name)
    layered = as_layered_model(model)
    with torch.inference_mode():  # warm-up, so no variant pays for first-call initialisation
        layered.hidden_states(torch.zeros(1, 16000), torch.tensor([16000]), layered.num_layers)
    baseline = _current_rss_mib()
    start = time.perf_counter()
    if variant == "extract":
        with tempfile.TemporaryDirectory() as store:
            extract(
                layered, paths, "all", Path(store) / "s.zarr", batch_size=batch_size, progress=False
            )
            elapsed = time.perf_counter() - start
    else:
        lengths = [soundfile.info(str(p)).frames for p in paths]
        kept = []
        for batch in plan_batches(lengths, batch_size, int(160 * 16000)):
            wav, wav_lengths = load_wav_batch(
                [Utterance(paths[i].stem, paths[i]) for i in batch], 16000
            )
            with (
                torch.inference_mode(),
                bounded_memory() if variant == "forward" else nullcontext(),
            ):
                if variant == "forward":
                    layered.hidden_states(wav, wav_lengths, layered.num_layers)
                elif hasattr(model, "extract_features"):
                    kept.append(model.extract_features(wav, wav_lengths)[0])
                else:
                    kept.append(model.hidden_states(wav, wav_lengths)[0])
        elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"variant": variant, "model": model_name, "audio_s": audio_seconds, "wall_s": elapsed,
            "audio_s_per_s": audio_seconds / elapsed, "peak_rss_mib": peak,
            "growth_mib": peak - baseline}  # fmt: skip


def _current_rss_mib() -> float:
    """Resident memory now (Linux), the baseline that the peak is compared with."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[60.0, 120.0])
    parser.add_argument(
        "--model", default="wav2vec2_base", help="wav2vec2_base or an sslvgs preset"
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "WAV_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        result = run_variant(args.child[0], args.model, Path(args.child[1]), args.batch_size)
        print(json.dumps(result))
        return 0
    print(f"machine: {os.cpu_count()} CPU cores; model {args.model}; batch {args.batch_size}")
    print(
        f"{'variant':<8} {'audio s':>8} {'wall s':>8} {'audio s/s':>10} {'peak RSS MiB':>13} "
        f"{'growth MiB':>11}"
    )
    with tempfile.TemporaryDirectory() as scratch:
        for seconds in args.seconds:
            wav_dir = Path(scratch) / f"wavs{seconds:g}"
            make_wavs(wav_dir, seconds)
            for variant in args.variants:
                command = [sys.executable, __file__, "--model", args.model, "--batch-size",
                           str(args.batch_size), "--child", variant, str(wav_dir)]  # fmt: skip
                output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
                r = json.loads(output.strip().splitlines()[-1])
                print(f"{r['variant']:<8} {r['audio_s']:8.1f} {r['wall_s']:8.1f} "
                      f"{r['audio_s_per_s']:10.2f} {r['peak_rss_mib']:13.0f} "
                      f"{r['growth_mib']:11.0f}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
