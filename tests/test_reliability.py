"""Foreign or broken audio never gives a silently wrong number: the cases of docs/reliability.md
that are not a loader's (those are in test_pretrained_*.py).

Utterances too short for one frame of the model are skipped with a warning that names them, and
ABX refuses their items by item file and line (or drops them by name under compat="librilight");
they never take over another file's frames.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import soundfile
import torch
import torchaudio

import probes
from probes.abx_engine import DroppedItemsWarning, SliceError
from probes.activations import ShortAudioWarning

HEADER = "#file onset offset #phone prev-phone next-phone speaker\n"
CONV = [(16, 10, 5), (16, 3, 2), (16, 3, 2), (16, 3, 2), (16, 3, 2), (16, 2, 2), (16, 2, 2)]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLVGS_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return torchaudio.models.wav2vec2_model(
        "group_norm", CONV, False, 32, 0.0, 16, 4, 2, 4, 0.0, 64, 0.0, 0.0, False, 0.0, None
    ).eval()


def abx_set(folder, short_samples=None):
    """Eight 0.5 s noise files (two speakers, items of phones a and b), and, when `short_samples`
    is given, a ninth file `zz` of that many samples whose item comes last in the item file."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    lines = []
    for f in range(8):
        soundfile.write(folder / f"f{f}.wav", 0.1 * rng.standard_normal(8000 + 160 * f), 16000)
        for k, phone in enumerate("abab"):
            lines.append(f"f{f} {0.1 * k:.2f} {0.1 * k + 0.08:.2f} {phone} x y s{f % 2}\n")
    if short_samples is not None:
        soundfile.write(folder / "zz.wav", np.zeros(short_samples), 16000)
        lines.append("zz 0.00 0.08 a x y s0\n")
    (folder / "items.item").write_text(HEADER + "".join(lines))
    return folder / "items.item"


@pytest.mark.parametrize("samples", [0, 1, 399])
def test_a_short_utterance_is_named_never_mapped_onto_another_file(model, tmp_path, samples):
    clean = abx_set(tmp_path / "clean")
    items = abx_set(tmp_path / "short", short_samples=samples)
    want = probes.abx(model, 1, items=clean, wavs=clean.parent, progress=False, compat="librilight")
    with pytest.warns(ShortAudioWarning, match=r"zz\.wav \(\d+ samples\)"):
        with pytest.warns(DroppedItemsWarning, match="zz"):
            got = probes.abx(
                model, 1, items=items, wavs=items.parent, progress=False, compat="librilight"
            )
    assert float(got) == pytest.approx(float(want)) and len(got.cells) == len(want.cells)
    # Without compat, the item is an error naming the item file, its line and the right file.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShortAudioWarning)
        with pytest.raises(SliceError, match=r"items\.item:34: .*'zz'.*has 0 frames"):
            probes.abx(model, 1, items=items, wavs=items.parent, progress=False)


def test_extraction_stores_a_short_utterance_with_no_frames(model, tmp_path):
    items = abx_set(tmp_path / "short", short_samples=1)
    with pytest.warns(ShortAudioWarning, match="zz.wav"):
        store = probes.extract(model, items, [1], wavs=items.parent, progress=False)
    frames = dict(zip(store.utterance.values.tolist(), store.n_frames.values.tolist(), strict=True))
    assert frames["zz"] == 0 and min(v for k, v in frames.items() if k != "zz") > 0


# --- every option an error message suggests can be passed where the message is printed -------------

# Each option that an error or warning tells the user to pass, and where that message can be
# printed: the commands (CLI) and the functions (API) that must take it. A new suggestion in the
# source fails the test below until it is listed here.
SUGGESTED_OPTIONS = {
    "--resample": ("abx", "extract", "recall", "train"),
    "--allow-outside-root": ("abx", "extract", "recall", "train"),
    "--regions": ("recall", "train"),
    "--split": ("extract",),
    "--model": ("abx",),
    "--layer": ("abx",),
    "--wavs": ("abx", "extract"),
    "--stage-epochs": ("train",),
    "--allow-change": ("train",),
    "--resume": ("train",),
    "--clean": ("corpus",),
    "--snr": ("corpus",),
    "--corpus": ("reproduce",),
    "--read-speakers": ("reproduce",),
    "--test-images": ("reproduce", "corpus"),
    "--set": ("train",),
    "--probe": ("grid",),
    "--items": ("grid",),
    "--out": ("grid",),
}
# Named in messages as what a file holds, not as something to pass.
NOT_SUGGESTIONS = {"layer_norm_first"}
SUGGESTED_ARGUMENTS = {
    "resample": ("probes.abx", "probes.extract", "probes.recall", "training.train"),
    "allow_outside": ("probes.abx", "probes.extract", "probes.recall", "training.train"),
    "regions": ("probes.recall", "training.train"),
    "corpus": ("probes.abx", "probes.recall"),
    "items": ("probes.abx",),
    "resume": ("training.train",),
    # AbxResult.bootstrap and paired_difference: resample each drawn speaker's files too, or not.
    "files": ("probes.abx_engine.paired_difference", "probes.abx_engine.result.paired_interval"),
}


def _suggestions() -> dict[str, set[str]]:
    """Options (`--x`) and keyword arguments (`x=True`, `x=...`, `x=PATH`) named in the strings of
    every raise and warnings.warn of the packages -> where."""
    import ast
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    found: dict[str, set[str]] = {}
    pattern = re.compile(r"(?<![\w-])(--[a-z][a-z-]+)|\b([a-z_]+)=(?:True|\.\.\.|PATH)\b")
    for package in ("training", "probes", "analysis"):
        for path in sorted((root / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                call = isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "warn"
                if not (isinstance(node, ast.Raise) or call):
                    continue
                for part in ast.walk(node):
                    if isinstance(part, ast.Constant) and isinstance(part.value, str):
                        for match in pattern.finditer(part.value):
                            name = match.group(1) or match.group(2)
                            found.setdefault(name, set()).add(f"{path.name}:{node.lineno}")
    return found


def test_every_suggested_option_exists_on_the_commands_and_functions_that_print_it():
    import importlib
    import inspect

    from analysis.cli import build_parser

    found = _suggestions()
    assert "--resample" in found and "resample" in found  # the scan sees the messages
    unlisted = {
        name: sorted(where)
        for name, where in found.items()
        if name not in {**SUGGESTED_OPTIONS, **SUGGESTED_ARGUMENTS} and name not in NOT_SUGGESTIONS
    }
    assert not unlisted, f"say where these suggestions are printed: {unlisted}"
    commands = {
        name: sub
        for action in build_parser()._subparsers._group_actions
        for name, sub in action.choices.items()
    }
    for option, where in SUGGESTED_OPTIONS.items():
        for command in where:
            taken = {s for a in commands[command]._actions for s in a.option_strings}
            assert option in taken, f"sslvgs {command} does not take {option}"
    for argument, where in SUGGESTED_ARGUMENTS.items():
        for name in where:
            module, function = name.rsplit(".", 1)
            parameters = inspect.signature(
                getattr(importlib.import_module(module), function)
            ).parameters
            assert argument in parameters, f"{name} does not take {argument}="


def test_abx_takes_resample_and_allow_outside_root(model, tmp_path, capsys):
    # Audio at another rate says "pass resample=True (--resample)": probes.abx and `sslvgs abx
    # --model` take it (they used to reject both it and --allow-outside-root).
    from analysis.cli import build_parser, main

    items = abx_set(tmp_path / "set")
    soundfile.write(items.parent / "f0.wav", 0.1 * np.ones(4000), 8000)
    with pytest.raises(
        ValueError, match=r"f0.wav is sampled at 8000 Hz.*resample=True \(--resample\)"
    ):
        probes.abx(model, 1, items=items, wavs=items.parent, progress=False)
    got = probes.abx(model, 1, items=items, wavs=items.parent, progress=False, resample=True)
    assert 0 <= float(got) <= 1
    argv = ["abx", str(items), "--model", "m", "--layer", "1", "--resample", "--allow-outside-root"]
    args = build_parser().parse_args(argv)
    assert args.resample and args.allow_outside_root
    assert main(["abx", str(tmp_path), str(items), "--resample"]) == 2  # FEATURES: not with --model
    assert "--resample goes with --model" in capsys.readouterr().err


def test_a_grid_over_a_list_of_checkpoint_paths_as_docs_models_shows(tmp_path):
    # docs/models.md: grid(["ckpt/checkpoint_1_2000.pt", "ckpt/checkpoint_3_6000.pt"], "abx", items=...)
    from pretrained_fixtures import SMALL_CONV_TEXT, fairseq_state, random_torchaudio

    import analysis

    cfg = {"model": {"_name": "wav2vec2", "conv_feature_layers": SMALL_CONV_TEXT,
                     "encoder_attention_heads": 4}}  # fmt: skip
    paths = []
    for seed, name in enumerate(("checkpoint_1_2000.pt", "checkpoint_3_6000.pt")):
        paths.append(str(tmp_path / name))
        torch.save({"model": fairseq_state(random_torchaudio(seed)), "cfg": cfg}, paths[-1])
    items = abx_set(tmp_path / "set")
    got = analysis.grid(
        paths, "abx", items=str(items), wavs=str(items.parent), layers=[1], progress=False
    )
    assert got.dims == ("step", "layer") and got.step.values.tolist() == [2000, 6000]
