"""Wall-clock seconds of each step of a reproduction, kept per session in OUT/timings.json."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from training.fileio import write_text_atomic

__all__ = ["StepTimer"]


class StepTimer:
    """Wall-clock seconds per step, kept in OUT/timings.json per session: a resumed reproduction
    appends a session, so the report says which session measured each step (a step interrupted in
    one session and finished in the next counts only the next session's part)."""

    def __init__(self, path: Path):
        self.path = path
        stored = json.loads(path.read_text()) if path.is_file() else {"sessions": []}
        if "sessions" not in stored:  # the older flat layout {step: seconds}: one unnamed session
            stored = {"sessions": [{"started": None, "steps": stored}]}
        self.sessions: list[dict] = stored["sessions"]
        self.current = {"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                        "steps": {}}  # fmt: skip

    @property
    def seconds(self) -> dict[str, float]:
        """Every step's last measured time, whichever session measured it."""
        out: dict[str, float] = {}
        for session in [*self.sessions, self.current]:
            out.update(session["steps"])
        return out

    @contextmanager
    def step(self, name: str, progress: bool) -> Iterator[None]:
        if progress:
            print(f"[sslvgs reproduce] {name} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        yield
        self.current["steps"][name] = round(time.perf_counter() - started, 1)
        sessions = [*self.sessions, self.current]
        write_text_atomic(self.path, json.dumps({"sessions": sessions}, indent=1))
        if progress:
            seconds = self.current["steps"][name]
            print(f"[sslvgs reproduce] {name}: {seconds:.0f} s", file=sys.stderr, flush=True)

    def record(self, name: str, seconds: float) -> None:
        """Store a step timed elsewhere (a model trained in another process)."""
        self.current["steps"][name] = round(seconds, 1)
        write_text_atomic(
            self.path, json.dumps({"sessions": [*self.sessions, self.current]}, indent=1)
        )

    def summary(self) -> str:
        """Markdown lines: each session's start and its steps' times."""
        lines = []
        sessions = [s for s in [*self.sessions, self.current] if s["steps"]]
        for number, session in enumerate(sessions, start=1):
            when = session["started"] or "time not recorded"
            this = " (this one)" if session is self.current else ""
            steps = ", ".join(f"{step} {value:.0f} s" for step, value in session["steps"].items())
            lines.append(f"- session {number}{this}, started {when}: {steps}")
        if not lines:
            return "Every step was already done: nothing was timed in this session.\n"
        head = "Wall-clock time of each step, by the session that measured it"
        if len(sessions) > 1:
            head += " (a step resumed in a later session counts only that session's part)"
        return head + ":\n\n" + "\n".join(lines) + "\n"
