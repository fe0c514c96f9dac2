"""Start-up cost: `import training`, `import probes`, `import analysis` and `sslvgs --help`.

Each command runs in a fresh interpreter, `--repeats` times; the table gives the median wall time
and CPU time (user + system) of the whole process, and the cumulative import time that
`python -X importtime` reports for the top-level imports. A bare `python -c pass` is the floor every
command pays. On a busy machine the CPU time is the steadier figure. `--root` measures another
checkout (e.g. an older commit unpacked with `git archive`), interleaved with this one so both see
the same load.

    .venv/bin/python benchmarks/startup_time.py [--repeats 5] [--root OTHER_CHECKOUT]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

COMMANDS = {
    "python -c pass": ["-c", "pass"],
    "import training": ["-c", "import training"],
    "import probes": ["-c", "import probes"],
    "import analysis": ["-c", "import analysis"],
    "sslvgs --help": ["-c", "import sys; from analysis.cli import main; sys.argv[0] = 'sslvgs'; "
                      "sys.exit(main(['--help']))"],
}  # fmt: skip


def _run(args: list[str], importtime: bool, root: Path) -> tuple[float, float, str]:
    """(wall s, CPU s, stderr) of one fresh interpreter running `args` on the checkout `root`."""
    # Measure that checkout, whatever checkout the environment's editable install points at.
    env = {**os.environ, "PYTHONPATH": str(root)}
    flags = ["-X", "importtime"] if importtime else []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *flags, *args], env=env, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stderr


def _cumulative_ms(stderr: str) -> float:
    """Sum of the top-level entries' cumulative microseconds (the lines with no indentation)."""
    total = 0
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = (part for part in line.split(":", 1)[1].split("|"))
        if not name.startswith("  "):  # " name": one space after the bar = top level
            total += int(cumulative)
    return total / 1000


def _measure(command: list[str], root: Path, repeats: int) -> str:
    runs = [_run(command, importtime=False, root=root) for _ in range(repeats)]
    imports = statistics.median(
        _cumulative_ms(_run(command, importtime=True, root=root)[2]) for _ in range(repeats)
    )
    wall = statistics.median(r[0] for r in runs)
    cpu = statistics.median(r[1] for r in runs)
    return f"{wall:.3f} | {cpu:.3f} | {imports:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--root", type=Path, help="another checkout to measure beside this one")
    args = parser.parse_args()
    roots = {"this": ROOT} | ({"other": args.root.resolve()} if args.root else {})
    print(f"load average before: {os.getloadavg()}")
    header = " | ".join(f"{n}: wall s | {n}: CPU s | {n}: import ms" for n in roots)
    print(f"| command | {header} |")
    print("| --- |" + " --- | --- | --- |" * len(roots))
    for label, command in COMMANDS.items():
        cells = " | ".join(_measure(command, root, args.repeats) for root in roots.values())
        print(f"| `{label}` | {cells} |")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
