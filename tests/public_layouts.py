"""The embedded corpus re-laid exactly as the public releases lay it out (for tests/test_public_layouts.py).

- ``SpokenCOCO/SpokenCOCO_{train,val,test}_unrolled_karpathy.json``: one caption per entry
  (``{"image": "val2014/<key>.jpg", "caption": {"wav", "text"}}``), wavs under ``SpokenCOCO/wavs/``;
- ``coco_img_feat/{train2014,val2014}_obj36.tsv``: LXMERT obj36 rows at 2048-d (the corpus's features
  scattered by a fixed signed permutation, orthonormal rows), boxes in pixels, regions stored in a shuffled order
  whose ``objects_conf`` puts them back in the corpus's order;
- ``coco_img_feat/SpokenCOCO_{train,val}_imgfeat.hdf5`` with ``SpokenCOCO/SpokenCOCO_{split}_imgid2idex.json``
  and ``..._imgid2ordered_indices.pkl`` (numpy arrays, as FaST-VGS pickles them): the same features;
- ``LibriSpeech/dev-clean/SPEAKER/CHAPTER/SPEAKER-CHAPTER-NNNN.flac`` with an item file naming them: the
  corpus's ``read`` ABX set.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import shutil
import zlib
from pathlib import Path

import h5py
import numpy as np
import soundfile

from training.data import load_split, read_items, write_items

LXMERT_DIM = 2048
IMAGE_SIZE = (640, 480)  # width, height in pixels of every re-laid image


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype=np.float32).tobytes()).decode()


def projection(dim: int, seed: int = 0) -> np.ndarray:
    """[dim, 2048] with orthonormal rows (a signed scatter into 2048 dimensions): the re-laid features
    keep every distance of the corpus's, exactly in float32."""
    rng = np.random.default_rng(seed)
    matrix = np.zeros((dim, LXMERT_DIM), np.float32)
    matrix[np.arange(dim), rng.choice(LXMERT_DIM, dim, replace=False)] = rng.choice([-1, 1], dim)
    return matrix


def expected_regions(corpus: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """key -> (feats [36, 2048], boxes [36, 4] normalised) as every re-laid layout must read back."""
    files = sorted((corpus / "regions").glob("*.npz"))
    out = {}
    for path in files:
        with np.load(path) as data:
            feats, boxes = data["feats"].astype(np.float32), data["boxes"].astype(np.float32)
        out[path.stem] = (feats @ projection(feats.shape[1]), boxes)
    return out


def _stored(key: str, feats: np.ndarray, boxes: np.ndarray):
    """(feats, pixel boxes, confidences) in a shuffled stored order; decreasing confidence undoes it."""
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    stored = rng.permutation(len(feats))  # stored row r holds region stored[r]
    confidence = np.linspace(0.99, 0.1, len(feats), dtype=np.float32)[stored]
    width, height = IMAGE_SIZE
    pixels = boxes * np.array([width, height, width, height], np.float32)
    return feats[stored], pixels[stored], confidence


def _lxmert_row(key: str, feats: np.ndarray, boxes: np.ndarray) -> str:
    feats, pixels, confidence = _stored(key, feats, boxes)
    n = len(feats)
    width, height = IMAGE_SIZE
    fields = [key, str(height), str(width), _b64(np.zeros(n)), _b64(confidence), _b64(np.zeros(n)),
              _b64(np.ones(n)), str(n), _b64(pixels), _b64(feats)]  # fmt: skip
    return "\t".join(fields)


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def relay_spokencoco(corpus: Path, out: Path) -> dict[str, Path]:
    """Write the SpokenCOCO + LXMERT + HDF5 layouts of `corpus` under `out`; returns their paths."""
    coco, feat_dir = out / "SpokenCOCO", out / "coco_img_feat"
    feat_dir.mkdir(parents=True)
    regions = expected_regions(corpus)
    owner = {}  # image key -> train2014 or val2014 (Karpathy's val and test come from val2014)
    for split in ("train", "val", "test"):
        data = []
        for entry in load_split(corpus, split):
            owner[entry["key"]] = "train" if split == "train" else "val"
            for caption in entry["captions"]:
                wav = Path("wavs") / split / caption["wav"].name
                _link(caption["wav"], coco / wav)
                data.append({"image": f"{owner[entry['key']]}2014/{entry['key']}.jpg",
                             "caption": {"wav": str(wav), "text": caption["text"]}})  # fmt: skip
        (coco / f"SpokenCOCO_{split}_unrolled_karpathy.json").write_text(json.dumps({"data": data}))
    for part in ("train", "val"):
        keys = [k for k in sorted(owner) if owner[k] == part]
        rows = [_lxmert_row(k, *regions[k]) for k in keys]
        (feat_dir / f"{part}2014_obj36.tsv").write_text("\n".join(rows) + "\n")
        _write_hdf5(feat_dir, coco, part, keys[::-1], regions)  # rows in another order than the TSV
    return {
        "coco": coco,
        "tsvs": [feat_dir / "train2014_obj36.tsv", feat_dir / "val2014_obj36.tsv"],
        "hdf5_dir": feat_dir,
    }


def _write_hdf5(feat_dir: Path, coco: Path, part: str, keys: list[str], regions: dict) -> None:
    stored = [_stored(k, *regions[k]) for k in keys]
    with h5py.File(feat_dir / f"SpokenCOCO_{part}_imgfeat.hdf5", "w") as handle:
        handle["img_w"] = np.full(len(keys), IMAGE_SIZE[0], np.int64)
        handle["img_h"] = np.full(len(keys), IMAGE_SIZE[1], np.int64)
        handle["boxes"] = np.stack([s[1] for s in stored])
        handle["features"] = np.stack([s[0] for s in stored])
    index = {key: row for row, key in enumerate(keys)}
    (coco / f"SpokenCOCO_{part}_imgid2idex.json").write_text(json.dumps(index))
    order = {key: np.argsort(s[2])[::-1] for key, s in zip(keys, stored, strict=True)}
    with open(coco / f"SpokenCOCO_{part}_imgid2ordered_indices.pkl", "wb") as handle:
        pickle.dump(order, handle)


def relay_librispeech(abx_set: Path, out: Path) -> tuple[Path, Path]:
    """The ABX set `abx_set` (items.item + wavs/) as LibriSpeech flac folders and an item file naming
    them ``SPEAKER-CHAPTER-NNNN``; returns (item file, dev-clean folder)."""
    table = read_items(abx_set / "items.item")
    speakers = {s: 100 + i for i, s in enumerate(dict.fromkeys(table["speaker"]))}
    names: dict[str, str] = {}
    root = out / "LibriSpeech" / "dev-clean"
    for file, speaker in zip(table["file"], table["speaker"], strict=True):
        if file in names:
            continue
        spk, chapter = speakers[speaker], 1000 + speakers[speaker]
        names[file] = f"{spk}-{chapter}-{sum(n.startswith(f'{spk}-') for n in names.values()):04d}"
        samples, rate = soundfile.read(abx_set / "wavs" / f"{file}.wav", dtype="int16")
        target = root / str(spk) / str(chapter) / f"{names[file]}.flac"
        target.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(target, samples, rate, format="FLAC", subtype="PCM_16")
    relaid = table.copy()
    relaid["file"] = [names[f] for f in table["file"]]
    return write_items(out / "dev-clean.item", relaid), root
