"""MFCC ABX of the embedded corpus: does within-speaker ABX mean something on it?

For each corpus and each of its ABX sets (`captions`, `read`) this writes 13 MFCCs at 100 Hz per
wav (torchaudio.transforms.MFCC: 25 ms Hann windows every 10 ms, 40 mel bands, centred frames) as
`.npy` files, then scores them with the command line, `sslvgs abx FEATURES ITEM --frequency 100
--speaker within|across --json` (context within, angular distance, DTW over frames). On real read
speech such features err on the order of ten percent within speaker; the plain espeak-ng corpus
(`--variation clean`) scores about 0 there, since one voice says a phone in one context the same way
every time.

    python benchmarks/corpus_abx.py --build 16 [--work DIR]     # builds natural and clean corpora
    python benchmarks/corpus_abx.py CORPUS [CORPUS ...]         # scores existing corpora

The read set's size: `--build 6 --variations natural --sets read --read-speakers 4,12
--read-sentences 25,10 --bootstrap 1000` builds one corpus per (speakers, sentences) pair and gives
each score its 95% speaker-bootstrap interval (`sslvgs abx --bootstrap`): what more speakers buy.

Prints a Markdown table (error in percent) and, with --json FILE, writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SETS = ("captions", "read")
SPEAKERS = ("within", "across")
FRAME_RATE = 100


def write_mfccs(wavs: Path, out: Path, n_mfcc: int = 13) -> int:
    """13 MFCCs [frames, 13] float32 per wav of `wavs` into `out/<stem>.npy`; returns the count."""
    import torchaudio

    from training.data.audio import read_wav

    mfcc = torchaudio.transforms.MFCC(
        sample_rate=16000,
        n_mfcc=n_mfcc,
        melkwargs={
            "n_fft": 400,
            "win_length": 400,
            "hop_length": 16000 // FRAME_RATE,
            "n_mels": 40,
        },
    )
    out.mkdir(parents=True, exist_ok=True)
    paths = sorted(wavs.glob("*.wav"))
    for path in paths:
        features = mfcc(read_wav(path)).T.contiguous().numpy().astype(np.float32)
        np.save(out / f"{path.stem}.npy", features)
    return len(paths)


def score(features: Path, item: Path, speaker: str, bootstrap: int = 0) -> dict[str, float]:
    """`sslvgs abx FEATURES ITEM --frequency 100 --speaker SPEAKER --json`: {"score": error in
    [0, 1]}, with "low" and "high" (95% speaker bootstrap) when `bootstrap` > 0."""
    command = [sys.executable, "-m", "analysis.cli", "abx", str(features), str(item)]
    command += ["--frequency", str(FRAME_RATE), "--speaker", speaker, "--json", "--quiet"]
    command += ["--bootstrap", str(bootstrap)] if bootstrap else []
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()}")
    summary = json.loads(done.stdout)
    return {key: float(summary[key]) for key in ("score", "low", "high") if key in summary}


def corpus_abx(
    corpus: Path, work: Path, sets: tuple[str, ...] = SETS, bootstrap: int = 0
) -> dict[str, dict[str, dict[str, float]]]:
    """{set: {speaker condition: {"score"[, "low", "high"]}}} of 13 MFCCs on the ABX `sets`."""
    results = {}
    for name in sets:
        features = work / corpus.name / name
        write_mfccs(corpus / "abx" / name / "wavs", features)
        item = corpus / "abx" / name / "items.item"
        results[name] = {speaker: score(features, item, speaker, bootstrap) for speaker in SPEAKERS}
    return results


def _variation_of(corpus: Path) -> str:
    settings = json.loads((corpus / "manifest.json").read_text())["settings"]
    return "natural" if "variation" in settings else "clean"


def _cell(result: dict[str, float]) -> str:
    """The result as text: "12.3", or "12.3 [10.1, 14.2] (+-2.1)" with an interval (percent)."""
    text = f"{100 * result['score']:.1f}"
    if "low" in result:
        half = 50 * (result["high"] - result["low"])
        text += f" [{100 * result['low']:.1f}, {100 * result['high']:.1f}] (+-{half:.1f})"
    return text


def table(results: dict[str, dict], sets: tuple[str, ...] = SETS) -> str:
    """Markdown: one row per corpus, one column per (set, speaker condition); percent."""
    header = ["corpus", "variation", "images", "read speakers x sentences"]
    header += [f"{name} {speaker}" for name in sets for speaker in SPEAKERS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for corpus, entry in results.items():
        cells = [Path(corpus).name, entry["variation"], str(entry["images"]), entry["read"]]
        cells += [_cell(entry["abx"][n][s]) for n in sets for s in SPEAKERS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _read_size(manifest: dict) -> str:
    counts, settings = manifest["counts"], manifest["settings"]
    return f"{counts['speakers']['read']} x {settings['read_sentences_per_speaker']}"


def _numbers(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def build(args: argparse.Namespace, work: Path) -> list[Path]:
    """The corpora --build asks for: each variation x each (read speakers, sentences) pair."""
    from training.corpus import build_corpus

    speakers, sentences = _numbers(args.read_speakers), _numbers(args.read_sentences)
    if len(speakers) != len(sentences):
        raise SystemExit("--read-speakers and --read-sentences need as many values")
    corpora = []
    for variation in args.variations.split(","):
        for n, m in zip(speakers, sentences, strict=True):
            out = work / f"{variation}-{args.build}-s{args.seed}-read{n}x{m}"
            build_corpus(out, images=args.build, seed=args.seed, variation=variation,
                         read_speakers=n, read_sentences_per_speaker=m, progress=False)  # fmt: skip
            corpora.append(out)
    return corpora


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpora", nargs="*", type=Path, help="corpus folders to score")
    parser.add_argument(
        "--build",
        type=int,
        default=None,
        metavar="IMAGES",
        help="build a natural and a clean corpus of this many images first",
    )
    parser.add_argument("--seed", type=int, default=0, help="corpus seed (with --build)")
    parser.add_argument(
        "--variations", default="natural,clean", help="with --build: these variations"
    )
    parser.add_argument(
        "--read-speakers", default="4", help="with --build: read-set speakers, e.g. 4,12"
    )
    parser.add_argument(
        "--read-sentences",
        default="25",
        help="with --build: sentences per read speaker, e.g. 25,10",
    )
    parser.add_argument("--sets", default=",".join(SETS), help="ABX sets to score")
    parser.add_argument(
        "--bootstrap", type=int, default=0, help="speaker resamples for 95%% intervals (0: none)"
    )
    parser.add_argument("--work", type=Path, default=None, help="folder for corpora and features")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args(argv)  # fmt: skip
    work = args.work or Path(tempfile.mkdtemp(prefix="corpus-abx-"))
    sets = tuple(args.sets.split(","))
    corpora = list(args.corpora)
    if args.build is not None:
        corpora += build(args, work)
    if not corpora:
        parser.error("give corpus folders or --build IMAGES")
    results = {}
    for corpus in corpora:
        started = time.perf_counter()
        manifest = json.loads((corpus / "manifest.json").read_text())
        results[str(corpus)] = {
            "variation": _variation_of(corpus),
            "images": manifest["settings"]["images"],
            "read": _read_size(manifest),
            "abx": corpus_abx(corpus, work / "mfcc", sets, args.bootstrap),
            "seconds": round(time.perf_counter() - started, 1),
        }
    print(table(results, sets))
    print(f"(load average {' '.join(f'{x:.2f}' for x in os.getloadavg())})")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
