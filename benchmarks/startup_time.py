"""Start-up cost: `import training`, `import probes`, `import analysis` and `sslvgs --help`.

Each command runs in a fresh interpreter, `--repeats` times; the table gives the median wall time
of the whole process and the cumulative import time that `python -X importtime` reports for the
package (its own modules and everything they import at module level). A bare `python -c pass`
is the floor every command pays.

    .venv/bin/python benchmarks/startup_time.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
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


def _run(args: list[str], importtime: bool) -> tuple[float, str]:
    # Measure this checkout, whatever checkout the environment's editable install points at.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    flags = ["-X", "importtime"] if importtime else []
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *flags, *args], env=env, capture_output=True, text=True, check=False
    )
    return time.perf_counter() - start, done.stderr


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print("| command | wall s (median) | cumulative import ms (-X importtime) |")
    print("| --- | --- | --- |")
    for label, command in COMMANDS.items():
        walls = [_run(command, importtime=False)[0] for _ in range(args.repeats)]
        imports = statistics.median(
            _cumulative_ms(_run(command, importtime=True)[1]) for _ in range(args.repeats)
        )
        print(f"| `{label}` | {statistics.median(walls):.3f} | {imports:.0f} |")
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
