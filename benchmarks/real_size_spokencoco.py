"""SpokenCOCO's data loading at its real manifest size: parse, region index, first batch, batches/s.

Writes, under --out, in the public layouts the library reads (docs/data.md):

- ``SpokenCOCO/SpokenCOCO_train_unrolled_karpathy.json``: the Karpathy "unrolled" manifest, one entry
  per caption (``{"image": "train2014/COCO_train2014_<id>.jpg", "caption": {"wav":
  "wavs/train/<d>/<speaker>-<hit>_<id>_<n>.wav", "text": ...}}``), 5 captions per image,
  --spokencoco-images images (123,287 by default: all of Karpathy's train, val and test images,
  616,435 captions; SpokenCOCO has about 605k);
- region features of --region-fraction of those images (36 boxes x 2048-d float32, boxes in pixels of
  a 640 x 480 image), in one or both layouts of --region-layouts:
  ``hdf5``: FaST-VGS's ``coco_img_feat/SpokenCOCO_train_imgfeat.hdf5`` (contiguous datasets img_h,
  img_w, boxes, features) with ``SpokenCOCO/SpokenCOCO_train_imgid2idex.json`` and
  ``..._imgid2ordered_indices.pkl`` (numpy arrays) covering **every** image of the manifest: image i
  points at row i mod R of the R rows written, so the index, the box-order pickle and the loader are
  of full size while the feature file is the stated fraction (at fraction 1 every image has its row);
  ``tsv``: LXMERT's ``coco_img_feat/train2014_obj36.tsv`` with one row per image of the fraction (the
  index of a TSV is a pass over every row, so it cannot alias rows); its loader reads
  ``SpokenCOCO/SpokenCOCO_tsvsample_unrolled_karpathy.json``, the manifest's entries of those images;
- wavs: silent 16-bit PCM of --wav-seconds (4.4 s, about SpokenCOCO's mean) **only** for the
  captions of the batches the loaders draw (the loader opens a wav when its caption is read; the
  manifest and the region index are measured without any).

Then each measurement runs in its own process (peak resident memory: VmHWM; "+" the growth after
the imports), after dropping the files it reads from the page cache (fsync + posix_fadvise DONTNEED
on those files only; --warm skips that):

- ``manifest``: `training.data.load_split(root, "train")`, the trainer's parse and validation;
- ``index-hdf5`` / ``index-tsv``: `training.data.regions.open_regions(file)`;
- ``loader-hdf5`` / ``loader-tsv``: what the trainer does before its first step (`CaptionDataset` of
  the split with the opened regions, `epoch_batches` of --batch-size, a DataLoader over `EpochView`
  with `collate_with_seeds` and --loader-workers), the time to the first batch from the process's
  start of work, then --batches more batches: batches per second of random access (the trainer
  also opens its validation split before the first batch; not done here). With --loader-workers > 0
  the workers' memory is not in the peak (VmHWM is the main process's).

Every line gives per-1k-image units and the load average; a last block gives disk per 1k images.

    OMP_NUM_THREADS=1 nice -n 15 python benchmarks/real_size_spokencoco.py \\
        --spokencoco-images 2000 --region-fraction 0.05 --batches 5       # toy size: seconds
    OMP_NUM_THREADS=1 nice -n 15 python benchmarks/real_size_spokencoco.py --region-fraction 0.05
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CAPTIONS, REGIONS, DIM, RATE = 5, 36, 2048, 16000
WIDTH, HEIGHT = 640, 480
WORDS = "a man woman dog cat sitting standing on next to the of with table street red white".split()


def image_key(i: int) -> str:
    return f"COCO_train2014_{9 + 3 * i:012d}"


def write_manifest(coco: Path, images: int, sample: int, seed: int = 0) -> list[str]:
    """The unrolled Karpathy JSON of `images` x 5 captions, and the one of its first `sample` images
    (the TSV's), written as they stream; returns the wav paths (relative to `coco`), caption order."""
    rng = np.random.default_rng(seed)
    speakers = [f"m{s:012x}" for s in rng.integers(0, 2**48, 2352)]
    letters = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", np.uint8)
    wavs = []
    names = (
        "SpokenCOCO_train_unrolled_karpathy.json",
        "SpokenCOCO_tsvsample_unrolled_karpathy.json",
    )
    with open(coco / names[0], "w") as out, open(coco / names[1], "w") as part:
        out.write('{"data": [')
        part.write('{"data": [')
        for i in range(images):
            key = image_key(i)
            hits = letters[rng.integers(0, len(letters), (CAPTIONS, 30))]
            lengths = rng.integers(8, 14, CAPTIONS)
            for n in range(CAPTIONS):
                speaker = speakers[rng.integers(len(speakers))]
                wav = f"wavs/train/{i % 10}/{speaker}-{hits[n].tobytes().decode()}_{9 + 3 * i}_{n}.wav"
                text = " ".join(WORDS[w] for w in rng.integers(0, len(WORDS), lengths[n])).upper()
                entry = {"image": f"train2014/{key}.jpg", "caption": {"wav": wav, "text": text}}
                text = ("" if i == n == 0 else ", ") + json.dumps(entry)
                out.write(text)
                if i < sample:
                    part.write(text)
                wavs.append(wav)
        out.write("]}\n")
        part.write("]}\n")
    return wavs


def _region_block(rng, count: int) -> tuple[np.ndarray, np.ndarray]:
    feats = rng.random((count, REGIONS, DIM), dtype=np.float32)
    corner = rng.random((count, REGIONS, 2), dtype=np.float32) * 0.5
    size = rng.random((count, REGIONS, 2), dtype=np.float32) * 0.5
    scale = np.array([WIDTH, HEIGHT, WIDTH, HEIGHT], np.float32)
    return feats, np.concatenate([corner, corner + size], axis=2) * scale


def write_hdf5(root: Path, images: int, rows: int, seed: int = 1) -> Path:
    import h5py

    rng = np.random.default_rng(seed)
    path = root / "coco_img_feat" / "SpokenCOCO_train_imgfeat.hdf5"
    with h5py.File(path, "w") as handle:
        handle["img_w"] = np.full(rows, WIDTH, np.int64)
        handle["img_h"] = np.full(rows, HEIGHT, np.int64)
        boxes = handle.create_dataset("boxes", (rows, REGIONS, 4), np.float32)
        feats = handle.create_dataset("features", (rows, REGIONS, DIM), np.float32)
        for start in range(0, rows, 256):
            block_feats, block_boxes = _region_block(rng, min(256, rows - start))
            feats[start : start + len(block_feats)] = block_feats
            boxes[start : start + len(block_feats)] = block_boxes
    keys = [image_key(i) for i in range(images)]
    index = {key: i % rows for i, key in enumerate(keys)}
    (root / "SpokenCOCO" / "SpokenCOCO_train_imgid2idex.json").write_text(json.dumps(index))
    order = {key: rng.permutation(REGIONS) for key in keys}  # int64 arrays, as FaST-VGS pickles
    with open(root / "SpokenCOCO" / "SpokenCOCO_train_imgid2ordered_indices.pkl", "wb") as handle:
        pickle.dump(order, handle)
    return path


def write_tsv(root: Path, rows: int, seed: int = 2) -> Path:
    import base64

    def b64(array: np.ndarray) -> str:
        return base64.b64encode(np.ascontiguousarray(array, np.float32).tobytes()).decode()

    rng = np.random.default_rng(seed)
    path = root / "coco_img_feat" / "train2014_obj36.tsv"
    zeros, ones = b64(np.zeros(REGIONS)), b64(np.ones(REGIONS))
    with open(path, "w") as out:
        for start in range(0, rows, 256):
            feats, boxes = _region_block(rng, min(256, rows - start))
            for k in range(len(feats)):
                confidence = b64(rng.random(REGIONS, dtype=np.float32))
                fields = [image_key(start + k), str(HEIGHT), str(WIDTH), zeros, confidence,
                          zeros, ones, str(REGIONS), b64(boxes[k]), b64(feats[k])]  # fmt: skip
                out.write("\t".join(fields) + "\n")
    return path


def drawn_captions(n: int, batch_size: int, batches: int) -> list[int]:
    """The caption indices of the first `batches` + 1 batches the trainer draws in epoch 1, seed 0."""
    from training.batches import epoch_batches

    return [i for b in epoch_batches(n, batch_size, 0, 1)[: batches + 1] for i in b]


def write_wavs(coco: Path, wavs: list[str], seconds: float) -> int:
    """Silent 16-bit PCM wavs at `wavs` (relative to `coco`) that are not there yet; bytes of one."""
    import soundfile

    silence = np.zeros(int(seconds * RATE), np.int16)
    for relative in wavs:
        path = coco / relative
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(path, silence, RATE, subtype="PCM_16")
    return (coco / wavs[0]).stat().st_size


def drop_from_cache(paths: list[Path]) -> None:
    """Write back and drop these files' pages from the page cache (no root: these files only)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _peak() -> int:
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) * 1024


def child(args: argparse.Namespace) -> None:
    import torch  # noqa: F401  (imported before the clock, as the trainer has it)
    from torch.utils.data import DataLoader

    from training.batches import EpochView, collate_with_seeds, epoch_batches
    from training.data import CaptionDataset, load_split
    from training.data.regions import open_regions

    coco, layout = Path(args.out) / "SpokenCOCO", args.mode.split("-")[1:]
    region_file = (
        Path(args.out)
        / "coco_img_feat"
        / ("SpokenCOCO_train_imgfeat.hdf5" if layout == ["hdf5"] else "train2014_obj36.tsv")
    )
    base, start = _peak(), time.perf_counter()
    result: dict = {}
    if args.mode == "manifest":
        entries = load_split(coco, "train")
        result["count"] = sum(len(e["captions"]) for e in entries)
    elif args.mode.startswith("index"):
        result["count"] = len(open_regions(region_file))
    else:
        split = "train" if layout == ["hdf5"] else "tsvsample"
        dataset = CaptionDataset(coco, split, regions=open_regions(region_file))
        batches = epoch_batches(len(dataset), args.batch_size, 0, 1)[: args.batches + 1]
        loader = DataLoader(
            EpochView(dataset, 0, 1, int(8.0 * RATE)), batch_sampler=batches,
            collate_fn=collate_with_seeds, num_workers=args.loader_workers,
        )  # fmt: skip
        iterator = iter(loader)
        batch = next(iterator)
        result["first"] = time.perf_counter() - start
        assert batch["feats"].shape == (args.batch_size, REGIONS, DIM)
        t0 = time.perf_counter()
        result["batches"] = sum(1 for _ in iterator)
        result["rest"] = time.perf_counter() - t0
        result["count"] = len(dataset.image_keys)
    result.update(wall=time.perf_counter() - start, peak=_peak(), base=base)
    print(json.dumps(result))


def _build(args: argparse.Namespace, out: Path) -> dict:
    """The files (reused when built with the same sizes); returns what was built."""
    stamp = out / "built.json"
    layouts = args.region_layouts.split(",")
    rows = max(1, round(args.region_fraction * args.spokencoco_images))
    wanted = {"images": args.spokencoco_images, "rows": rows, "layouts": layouts}
    coco = out / "SpokenCOCO"
    if not (stamp.exists() and json.loads(stamp.read_text()) == wanted):
        for folder in (coco, out / "coco_img_feat"):
            folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        wavs = write_manifest(coco, args.spokencoco_images, rows)
        if "hdf5" in layouts:
            write_hdf5(out, args.spokencoco_images, rows)
        if "tsv" in layouts:
            write_tsv(out, rows)
        (out / "wavs.json").write_text(json.dumps(wavs))
        stamp.write_text(json.dumps(wanted))
        print(f"built in {time.perf_counter() - t0:.0f} s; load {_load()}", flush=True)
    wavs = json.loads((out / "wavs.json").read_text())
    needed = {}
    if "hdf5" in layouts:
        needed["hdf5"] = drawn_captions(len(wavs), args.batch_size, args.batches)
    if "tsv" in layouts:
        needed["tsv"] = drawn_captions(rows * CAPTIONS, args.batch_size, args.batches)
    drawn = sorted({i for ids in needed.values() for i in ids})
    wav_bytes = write_wavs(coco, [wavs[i] for i in drawn], args.wav_seconds)
    return {"rows": rows, "layouts": layouts, "wavs": [coco / wavs[i] for i in drawn],
            "wav_bytes": wav_bytes}  # fmt: skip


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="/tmp/sslvgs-real-size-spokencoco")
    parser.add_argument("--spokencoco-images", type=int, default=123287)
    parser.add_argument("--region-fraction", type=float, default=0.05,
                        help="fraction of the images given region features (rows written)")  # fmt: skip
    parser.add_argument("--region-layouts", default="hdf5,tsv", help="hdf5, tsv or both")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=30, help="timed after the first batch")
    parser.add_argument("--loader-workers", type=int, default=0, help="DataLoader num_workers")
    parser.add_argument("--wav-seconds", type=float, default=4.4)
    parser.add_argument("--warm", action="store_true", help="keep the files in the page cache")
    parser.add_argument("--modes", default="manifest,index,loader")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.child:
        return child(args)
    out = Path(args.out)
    built = _build(args, out)
    coco, rows, images = out / "SpokenCOCO", built["rows"], args.spokencoco_images
    print(f"{images} images, {images * CAPTIONS} captions; region features for {rows} images "
          f"({args.region_fraction:g}) as {', '.join(built['layouts'])}; "
          f"{'warm' if args.warm else 'cold'} page cache; {os.environ.get('OMP_NUM_THREADS', 'all')} "
          f"threads", flush=True)  # fmt: skip
    files = {"manifest": [coco / "SpokenCOCO_train_unrolled_karpathy.json"],
             "hdf5": [out / "coco_img_feat" / "SpokenCOCO_train_imgfeat.hdf5",
                      coco / "SpokenCOCO_train_imgid2idex.json",
                      coco / "SpokenCOCO_train_imgid2ordered_indices.pkl"],
             "tsv": [out / "coco_img_feat" / "train2014_obj36.tsv",
                     coco / "SpokenCOCO_tsvsample_unrolled_karpathy.json"]}  # fmt: skip
    modes = []
    for mode in args.modes.split(","):
        modes += [mode] if mode == "manifest" else [f"{mode}-{x}" for x in built["layouts"]]
    for mode in modes:
        reads = files["manifest"] + (files[mode.split("-")[1]] if "-" in mode else [])
        if not args.warm:
            drop_from_cache(reads + (built["wavs"] if mode.startswith("loader") else []))
        command = [sys.executable, __file__, "--child", "--mode", mode, "--out", str(out),
                   "--batch-size", str(args.batch_size), "--batches", str(args.batches),
                   "--loader-workers", str(args.loader_workers)]  # fmt: skip
        done = subprocess.run(
            command, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True
        )
        if done.returncode:
            sys.exit(done.stderr)
        _report(mode, json.loads(done.stdout.strip().splitlines()[-1]), images, rows, args)
    _disk(files, built["layouts"], images, rows, built["wav_bytes"], args.wav_seconds)


def _report(mode: str, r: dict, images: int, rows: int, args: argparse.Namespace) -> None:
    """One line; per 1k images of what scales with them: the manifest's images (the manifest, the
    HDF5 index and the loader's start), the TSV's rows (its index)."""
    gib, grew = r["peak"] / 2**30, (r["peak"] - r["base"]) / 2**20
    per = {"manifest": images, "index-hdf5": images, "index-tsv": rows}.get(mode, r["count"])
    line = f"{mode:12s} wall {r['wall']:8.2f} s  peak RSS {gib:5.2f} GiB (+{grew:6.0f} MiB)  "
    if mode.startswith("loader"):
        rate = r["batches"] / r["rest"] if r["rest"] else float("nan")
        line += (f"first batch of {args.batch_size} at {r['first']:.2f} s ({r['first'] / per * 1000:.3f} "
                 f"s per 1k images, {per} images), then {rate:.2f} batches/s over {r['batches']} "
                 f"({args.loader_workers} loader workers)")  # fmt: skip
    else:
        line += (f"{r['wall'] / per * 1000:7.3f} s and {grew / per * 1000:6.1f} MiB per 1k images "
                 f"({per} images)")  # fmt: skip
    print(f"{line}; load {_load()}", flush=True)


def _disk(
    files: dict, layouts: list, images: int, rows: int, wav_bytes: int, seconds: float
) -> None:
    parts = [("manifest", files["manifest"], images), ("hdf5 features", files["hdf5"][:1], rows),
             ("hdf5 index+order", files["hdf5"][1:], images), ("tsv", files["tsv"][:1], rows)]  # fmt: skip
    for name, paths, count in parts:
        if name.split()[0] in ("manifest", *layouts):
            size = sum(p.stat().st_size for p in paths)
            print(f"disk {name:17s} {size / 2**20:9.1f} MiB  {size / count * 1000 / 2**20:8.1f} "
                  f"MiB per 1k images ({count} images); load {_load()}")  # fmt: skip
    per_k = wav_bytes * CAPTIONS * 1000 / 2**20
    print(f"disk wavs (computed: {seconds:g} s of 16-bit PCM x {CAPTIONS} captions) {per_k:8.1f} "
          f"MiB per 1k images; load {_load()}")  # fmt: skip


if __name__ == "__main__":
    main()
