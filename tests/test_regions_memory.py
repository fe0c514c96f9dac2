"""Region features are read lazily: iterating a large LXMERT TSV keeps memory far below its size."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

IMAGES, REGIONS, DIM = 2000, 36, 2048

# Runs in a fresh interpreter so that ru_maxrss (the peak resident set) measures only this reading.
_MEASURE = """
import json, resource, sys
import torch  # imported before the first measure (its ~600 MB are resident, peak = current)
from training.data import open_regions

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

before = peak_mb()
regions = open_regions(sys.argv[1])
opened = peak_mb()
total = 0.0
for key in regions:
    feats, boxes = regions[key]
    total += float(feats[0, 0])
print(json.dumps({"images": len(regions), "dim": regions.dim, "before_mb": before, "opened_mb": opened,
                  "peak_mb": peak_mb(), "total": total}))
"""


@pytest.mark.slow  # writes and reads a 750 MB file: about 20 s on a quiet machine
def test_iterating_a_large_tsv_keeps_memory_bounded(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    feats = base64.b64encode(rng.normal(size=(REGIONS, DIM)).astype(np.float32).tobytes()).decode()
    boxes = base64.b64encode(np.tile(np.float32([0, 0, 5, 5]), REGIONS).tobytes()).decode()
    conf = base64.b64encode(np.ones(REGIONS, np.float32).tobytes()).decode()
    path = tmp_path / "train2014_obj36.tsv"
    with open(path, "w") as handle:
        for k in range(IMAGES):  # one payload, many ids: the reader decodes every row all the same
            handle.write(f"COCO_train2014_{k:012d}\t10\t10\t{conf}\t{conf}\t{conf}\t{conf}\t"
                         f"{REGIONS}\t{boxes}\t{feats}\n")  # fmt: skip
    size_mb = path.stat().st_size / 2**20
    done = subprocess.run([sys.executable, "-c", _MEASURE, str(path)], capture_output=True,
                          text=True, check=True, timeout=600)  # fmt: skip
    measured = json.loads(done.stdout)
    assert measured["images"] == IMAGES and measured["dim"] == DIM
    # The peak over the interpreter's life, less what torch's import left resident: the index and
    # every read. Every image decoded and kept would add IMAGES x 36 x 2048 x 4 bytes = 562 MB.
    growth = measured["peak_mb"] - measured["before_mb"]
    print(
        f"TSV {size_mb:.0f} MB: peak RSS grew {growth:.0f} MB "
        f"({measured['opened_mb'] - measured['before_mb']:.0f} MB for the index)"
    )
    assert growth < size_mb / 20
