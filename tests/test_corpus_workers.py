"""The corpus's speech in several worker processes: the same bytes as in one, errors that name the
utterance, and nothing left running or half-written when a build fails, is interrupted or is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from training.corpus import build_corpus

ROOT = Path(__file__).resolve().parent.parent
SMALL = {"images": 3, "captions_per_image": 2, "seed": 5, "progress": False}  # 106 utterances


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def in_process(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_corpus(tmp_path_factory.mktemp("one") / "c", **SMALL, workers=1)


def test_two_workers_write_the_same_bytes_as_one(in_process: Path, tmp_path: Path) -> None:
    pooled = build_corpus(tmp_path / "c", **SMALL, workers=2)
    one, two = _tree(in_process), _tree(pooled)
    assert sorted(one) == sorted(two) and len(one) > 200
    assert [name for name in one if one[name] != two[name]] == []


def test_two_workers_keep_the_clean_corpus_of_earlier_versions(tmp_path: Path) -> None:
    from test_corpus_variation import OLD_CLEAN_FILES, OLD_CLEAN_TREE, _tree_digest

    out = build_corpus(tmp_path / "c", **SMALL, variation="clean", workers=3)
    assert _tree_digest(out) == (OLD_CLEAN_TREE, OLD_CLEAN_FILES)


def test_workers_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="workers must be at least 1"):
        build_corpus(tmp_path / "c", **SMALL, workers=0)
    assert not (tmp_path / "c").exists()


def _start(script: str) -> subprocess.Popen:
    """`script` in a new session (its own process group, as a terminal's job is)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, env=env, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _running_in(group: int) -> list[int]:
    """The processes of process group `group` that still run (zombies left to init do not count)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def _group_ends(group: int, within: float = 30.0) -> bool:
    """Whether every process of `group` (workers, their espeak-ng helpers) is gone within `within` s."""
    deadline = time.monotonic() + within
    while _running_in(group):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


_FAILING = """
from pathlib import Path
import training.corpus.speech as speech
from training.corpus.espeak import Voice
from training.corpus.plan import Utterance

speech.CHUNK = 1  # three chunks: the pool runs
root = Path({root!r})
def utt(uttid, speaker):
    return Utterance(uttid, "train", "a red circle", speaker, f"wavs/train/{{uttid}}.wav")
voices = {{"good": Voice("en-us"), "bad": Voice("xx-no-such-voice")}}
job = speech.SpeechJob(root, voices, 0, None)
try:
    speech.speak_all(job, [utt("fine_1", "good"), utt("mute_2", "bad"), utt("fine_3", "good")], 2)
except speech.SynthesisError as error:
    print("SynthesisError:", error)
other = root / "other"
(other / "wavs").mkdir(parents=True)
(other / "wavs" / "train").write_text("a file where a folder should be")
try:
    job = speech.SpeechJob(other, voices, 0, None)
    speech.speak_all(job, [utt("fine_4", "good"), utt("fine_5", "good")], 2)
except OSError as error:
    print("OSError:", error)
"""


def test_an_error_in_a_worker_names_the_utterance_and_stops_the_pool(tmp_path: Path) -> None:
    """An unknown voice (espeak-ng refuses it) and an unwritable folder fail inside the workers: each
    reaches the caller naming the utterance, and no worker or helper process outlives the pool."""
    child = _start(_FAILING.format(root=str(tmp_path / "c")))
    out, err = child.communicate(timeout=600)
    assert child.returncode == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("SynthesisError: utterance mute_2 ('a red circle')"), out
    assert "no voice 'xx-no-such-voice'" in lines[0]
    assert lines[1].startswith("OSError:") and ("fine_4" in lines[1] or "fine_5" in lines[1]), out
    assert _group_ends(child.pid), "a worker or helper process outlived the pool"


# The build as a terminal's foreground job runs it, whatever this process passes on: a shell runs
# background jobs (`make test &`) with SIGINT ignored, which Python keeps, and a disposition or mask
# left by an earlier test of the session would be inherited too (this test once saw the build
# finish undisturbed in the full suite only); so the script restores Ctrl-C first.
_BUILD = """
import signal
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.pthread_sigmask(signal.SIG_UNBLOCK, {{signal.SIGINT}})
import training.corpus.speech as speech
from training.corpus import build_corpus
speech.CHUNK = 2  # many small chunks: most are still waiting when the build is stopped
build_corpus({out!r}, images=3, captions_per_image=2, seed=5, progress=False, workers=2)
print("finished")
"""


def _stopped_midway(out: Path, stop) -> tuple[subprocess.Popen, str]:
    """Start a two-worker build of `out`, call `stop(process)` once its first wav exists."""
    child = _start(_BUILD.format(out=str(out)))
    deadline = time.monotonic() + 600
    while not any(out.glob("wavs/*/*.wav")):
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "no wav after 600 s"
        time.sleep(0.02)
    stop(child)
    _, err = child.communicate(timeout=600)
    return child, err


def test_ctrl_c_stops_the_workers_and_a_rerun_finishes_the_build(
    in_process: Path, tmp_path: Path
) -> None:
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it): the build stops with
    KeyboardInterrupt and no worker traceback, every process ends, no temp file is left, and a rerun
    gives the bytes of an uninterrupted build."""
    out = tmp_path / "c"
    child, err = _stopped_midway(out, lambda c: os.killpg(c.pid, signal.SIGINT))
    assert child.returncode != 0 and "KeyboardInterrupt" in err
    assert err.count("Traceback") == 1, err  # the caller's, none from a worker
    assert _group_ends(child.pid), "a worker or helper process outlived the interrupted build"
    assert not (out / "manifest.json").exists()
    assert not list(out.rglob("*.tmp"))
    assert 0 < len(list(out.rglob("*.wav"))) < 106  # most utterances were never spoken
    build_corpus(out, **SMALL, workers=2)
    assert _tree(out) == _tree(in_process)


def test_workers_end_when_the_build_is_killed(in_process: Path, tmp_path: Path) -> None:
    """kill -9 of the build alone: its workers notice and end (and their helpers with them)."""
    out = tmp_path / "c"
    child, _ = _stopped_midway(out, lambda c: c.kill())
    assert child.returncode == -signal.SIGKILL
    assert _group_ends(child.pid), "workers outlived their killed parent"
    build_corpus(out, **SMALL, workers=1)  # temp files of the killed workers are cleared
    assert _tree(out) == _tree(in_process)


def test_a_script_without_a_main_guard_is_told_so(tmp_path: Path) -> None:
    """A "spawn" worker runs the caller's script again; one that builds the corpus at its top level
    would wait for ever on the lock that the caller holds: the worker stops with a message instead."""
    script = tmp_path / "build.py"
    script.write_text(
        "from training.corpus import build_corpus\n"
        f"build_corpus({str(tmp_path / 'c')!r}, images=3, captions_per_image=2, seed=5, "
        "progress=False, workers=2)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert done.returncode != 0
    assert 'if __name__ == "__main__":' in done.stderr and "SynthesisError" in done.stderr
