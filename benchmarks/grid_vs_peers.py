"""A cold layer-by-epoch ABX grid three ways, on the same run and cells, each as its own process.

1. ``analysis.grid`` (the grid engine: one forward pass per checkpoint, every layer scored in memory on
   structures built once per condition; both conditions in one pass, ``analysis.grids``);
2. the paper's way with fastabx 0.9.0: extract each checkpoint (``probes.extract``), write each layer's
   features to one ``.npy`` per utterance, then score every cell with ``zerospeech_abx`` (one Python
   process for all cells, so fastabx pays its imports once);
3. the same files scored by sslvgs's single-call engine, ``probes.abx_engine.score`` per cell.

The extraction and file writing are timed once and counted in 2 and 3. Scores must agree to 1e-6.
Prints wall and CPU seconds (user + system of each process, from wait4) and the load average.

    python benchmarks/grid_vs_peers.py --run RUN [--epochs 1,2,3] [--layers all] [--threads 2]
        [--conditions across/any,within/within] [--items read] [--fastabx-python PY]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

GRID = """
import json, sys
import analysis
run, items, conditions, epochs, layers = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), \\
    json.loads(sys.argv[4]), json.loads(sys.argv[5])
specs = {c: {"probe": "abx", "items": items, "speaker": c.split("/")[0], "context": c.split("/")[1]}
         for c in conditions}
grids = analysis.grids(run, specs, epochs=epochs, layers=layers, progress=False)
print(json.dumps({c: {f"{int(e)}/{int(l)}": float(g.sel(epoch=e, layer=l))
                      for e in g.epoch.values for l in g.layer.values} for c, g in grids.items()}))
"""

EXTRACT = """
import json, sys
from pathlib import Path
import numpy as np
import probes
from training.run.directory import abx_item_file, list_checkpoints, run_corpus
run, items, out, epochs, layers = sys.argv[1], sys.argv[2], Path(sys.argv[3]), \\
    json.loads(sys.argv[4]), json.loads(sys.argv[5])
item_file = abx_item_file(items, run_corpus(run))
for epoch, checkpoint in list_checkpoints(run).items():
    if epoch not in epochs:
        continue
    store = probes.extract(checkpoint, probes.as_source(item_file), "all", store=out / f"{epoch}.zarr",
                           progress=False)
    for layer in layers:
        ragged = probes.layer_features(store, layer)
        folder = out / f"{epoch}" / f"{layer}"
        folder.mkdir(parents=True)
        for name in ragged.names:
            np.save(folder / f"{name}.npy", ragged[name])
print(json.dumps({"items": str(item_file), "rate": float(store.attrs["frame_rate"])}))
"""

SSLVGS_CELLS = """
import json, sys
from pathlib import Path
from probes.abx_engine import load_feature_dir, score
from training.data import read_items
items, out, cells, rate = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3]), float(sys.argv[4])
table = read_items(items)
names = table["file"].unique().tolist()
result = {}
for condition, cell in cells:
    speaker, context = condition.split("/")
    features = load_feature_dir(out / cell, names)
    result.setdefault(condition, {})[cell] = float(score(features, table, frequency=rate,
                                                         speaker=speaker, context=context))
print(json.dumps(result))
"""

FASTABX_CELLS = """
import json, sys
from pathlib import Path
import numpy as np, torch
torch.set_num_threads(int(sys.argv[5]))
from fastabx import zerospeech_abx
items, out, cells, rate = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3]), float(sys.argv[4])
rate = int(rate) if rate.is_integer() else repr(rate)  # fastabx refuses a float frequency
result = {}
for condition, cell in cells:
    speaker, context = condition.split("/")
    result.setdefault(condition, {})[cell] = float(zerospeech_abx(
        items, str(out / cell), max_size_group=None, max_x_across=None, speaker=speaker,
        context=context, distance="angular", frequency=rate,
        feature_maker=lambda p: torch.from_numpy(np.load(p)), extension=".npy"))
print(json.dumps(result))
"""


def process(command: list[str], threads: int) -> tuple[dict, float, float]:
    """(its JSON output, wall s, CPU s of the child) for a command run with ``threads`` threads."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), NUMBA_NUM_THREADS=str(threads))
    env.update(OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), TQDM_DISABLE="1")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    t0 = time.perf_counter()
    child = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)  # fmt: skip
    out, err = child.stdout.read(), child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{command[:3]} failed:\n{err.decode()[-3000:]}")
    return json.loads(out.decode().strip().splitlines()[-1]), wall, usage.ru_utime + usage.ru_stime


def cold_copy(run: Path, into: Path) -> Path:
    """The run's config, metrics and checkpoints without any cache (grids, activations)."""
    copy = into / run.name
    copy.mkdir(parents=True)
    for name in ("config.json", "metrics.jsonl"):
        if (run / name).exists():
            shutil.copy(run / name, copy / name)
    (copy / "checkpoints").symlink_to((run / "checkpoints").resolve())
    return copy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--items", default="read", help="an ABX set of the run's corpus, or a file")
    parser.add_argument("--epochs", default="all", help="all or a list like 1,2,3")
    parser.add_argument("--layers", default="all", help="all or a list like 0,4,8")
    parser.add_argument("--conditions", default="across/any,within/within")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--fastabx-python", default=os.environ.get("FASTABX_PYTHON", "/tmp/fastabx-venv/bin/python")
    )
    parser.add_argument("--skip-fastabx", action="store_true", help="time sslvgs's two ways only")
    args = parser.parse_args(argv)
    import training
    from training.run.directory import list_checkpoints

    found = list_checkpoints(args.run)
    epochs = list(found) if args.epochs == "all" else [int(e) for e in args.epochs.split(",")]
    n_layers = training.load_model(found[epochs[0]]).num_layers
    layers = (
        list(range(n_layers + 1))
        if args.layers == "all"
        else [int(v) for v in args.layers.split(",")]
    )
    conditions = args.conditions.split(",")
    lists = [json.dumps(epochs), json.dumps(layers)]
    load = lambda: " ".join(f"{v:.1f}" for v in os.getloadavg())  # noqa: E731
    print(f"{len(epochs)} checkpoints x {len(layers)} layers x {len(conditions)} conditions; "
          f"{args.threads} threads; load {load()}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="grid-vs-peers-") as tmp:
        tmp = Path(tmp)
        run = cold_copy(args.run, tmp / "cold")
        ours, wall, cpu = process([sys.executable, "-c", textwrap.dedent(GRID), str(run),
                                   args.items, json.dumps(conditions), *lists], args.threads)  # fmt: skip
        rows = [("analysis.grid (grid engine)", wall, cpu, ours)]
        print(f"{rows[-1][0]:32s} {wall:8.1f} s wall {cpu:8.1f} s cpu; load {load()}", flush=True)
        out = tmp / "files"
        info, x_wall, x_cpu = process([sys.executable, "-c", textwrap.dedent(EXTRACT),
                                       str(cold_copy(args.run, tmp / "paper")), args.items,
                                       str(out), *lists], args.threads)  # fmt: skip
        print(
            f"{'extract + write files':32s} {x_wall:8.1f} s wall {x_cpu:8.1f} s cpu; load {load()}"
        )
        cells = json.dumps([(c, f"{e}/{layer}") for c in conditions for e in epochs
                            for layer in layers])  # fmt: skip
        where = [info["items"], str(out), cells, str(info["rate"])]
        theirs, wall, cpu = process([sys.executable, "-c", textwrap.dedent(SSLVGS_CELLS), *where],
                                    args.threads)  # fmt: skip
        rows.append(("files + sslvgs score per cell", x_wall + wall, x_cpu + cpu, theirs))
        print(f"{rows[-1][0]:32s} {x_wall + wall:8.1f} s wall {x_cpu + cpu:8.1f} s cpu "
              f"(scoring {wall:.1f} / {cpu:.1f}); load {load()}", flush=True)  # fmt: skip
        if not args.skip_fastabx:
            command = [args.fastabx_python, "-c", textwrap.dedent(FASTABX_CELLS), *where,
                       str(args.threads)]  # fmt: skip
            theirs, wall, cpu = process(command, args.threads)
            rows.append(("files + fastabx per cell (paper)", x_wall + wall, x_cpu + cpu, theirs))
            print(f"{rows[-1][0]:32s} {x_wall + wall:8.1f} s wall {x_cpu + cpu:8.1f} s cpu "
                  f"(scoring {wall:.1f} / {cpu:.1f}); load {load()}", flush=True)  # fmt: skip
    worst = max(abs(ours[c][k] - row[3][c][k]) for row in rows[1:] for c in ours for k in ours[c])
    print(f"largest |score difference| against analysis.grid: {worst:.1e} "
          f"({'within' if worst <= 1e-6 else 'NOT within'} 1e-6)")  # fmt: skip
    for name, wall, cpu, _ in rows[1:]:
        print(
            f"analysis.grid vs {name}: {wall / rows[0][1]:.1f}x wall, {cpu / rows[0][2]:.1f}x cpu"
        )
    return 0 if worst <= 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())
