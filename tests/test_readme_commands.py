"""Every `sslvgs` command of the README's "Your own data and models" block runs as printed, in a
folder laid out under the README's relative names in the public formats (tests/public_layouts.py,
tests/pretrained_fixtures.py): data/SpokenCOCO (Karpathy JSONs), data/lxmert/*_obj36.tsv,
LibriSpeech/dev-clean flacs with dev-clean.item, models/wav2vec2-base (an HF save_pretrained folder),
checkpoints/wav2vec_small.pt (fairseq), exp/vgs_plus/best_bundle.pth with its args.pkl and hf_run/
(HF Trainer checkpoint-<step>/ folders). The models are random and small; nothing is downloaded.

One change to a printed command: `sslvgs train ... --preset paper` gets `--set` overrides of the
paper preset's widths (768-d, 512-channel CNN: minutes per step on 2 CPU cores) and of its data size,
and `--stop-after-epoch 1` instead of its 70 epochs. It keeps the paper's 12 layers and layer_use 8,
so the README's `--layer 8` probes the same layer as on a real run. Every other command runs verbatim.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import torch
from markdown_blocks import isolate
from paper_reference import SMALL_ARGS
from pretrained_fixtures import fairseq_state, random_torchaudio
from public_layouts import relay_librispeech, relay_spokencoco
from test_pretrained_bundle import write_bundle
from test_pretrained_fairseq import model_cfg, save
from test_pretrained_trajectory import TINY, hf_trainer_folder

transformers = pytest.importorskip("transformers")

README = Path(__file__).resolve().parent.parent / "README.md"

# Only for `--preset paper` (see the module docstring): widths a CPU trains in seconds.
PAPER_ON_A_CPU = [
    "--set", "conv_layers=[[32,10,5],[32,3,2],[32,3,2],[32,3,2],[32,3,2],[32,2,2],[32,2,2]]",
    "--set", "dim=32", "--set", "num_heads=2", "--set", "ffn_dim=64", "--set", "pos_conv_kernel=16",
    "--set", "resdavenet_widths=[32,32,32,32]", "--set", "resdavenet_blocks=[1,1,1,1]",
    "--set", "branch_heads=4", "--set", "image_layers=1", "--set", "codebook_entries=16",
    "--set", "codevector_dim=32", "--set", "final_dim=32", "--set", "num_negatives=10",
    "--set", "train_subset=16", "--set", "eval_batch_size=16", "--batch-size", "8",
    "--stop-after-epoch", "1",
]  # fmt: skip


def readme_commands() -> list[list[str]]:
    """The argv of each `sslvgs` command of the README's bash block under "Your own data and models"."""
    section = README.read_text(encoding="utf-8").split("## Your own data and models", 1)[1]
    block = re.search(r"^```bash\n(.*?)^```", section, re.S | re.M).group(1)
    joined = block.replace("\\\n", " ")
    commands = [shlex.split(line, comments=True) for line in joined.splitlines()]
    commands = [argv for argv in commands if argv]
    assert all(argv[0] == "sslvgs" for argv in commands), commands
    return [argv[1:] for argv in commands]


def lay_out(folder: Path, small_corpus: Path) -> None:
    """The files the README's commands name, under its relative names, in their public formats."""
    public = relay_spokencoco(small_corpus, folder / "data")
    (folder / "data" / "lxmert").mkdir()
    for tsv in public["tsvs"]:
        tsv.rename(folder / "data" / "lxmert" / tsv.name)
    relay_librispeech(small_corpus / "abx" / "read", folder)
    torch.manual_seed(0)  # an HF folder deep enough for the README's --layer 6
    config = transformers.Wav2Vec2Config(**{**TINY, "num_hidden_layers": 6})
    transformers.Wav2Vec2Model(config).save_pretrained(folder / "models" / "wav2vec2-base")
    (folder / "checkpoints").mkdir()  # fairseq, 8 layers for the README's layer 8
    state = fairseq_state(random_torchaudio(layers=8))
    save(folder / "checkpoints" / "wav2vec_small.pt", model=state,
         cfg={"model": model_cfg("wav2vec2"), "task": {"normalize": False}})  # fmt: skip
    # The paper's bundle reads LXMERT's 2048-d regions, as the real one does.
    write_bundle(folder / "exp" / "vgs_plus", args={**SMALL_ARGS, "visual_feat_dim": 2048})
    hf_trainer_folder(folder / "hf_run", steps=(100, 200))


def test_the_block_is_what_this_test_runs() -> None:
    commands = readme_commands()
    assert [argv[0] for argv in commands] == ["train", "recall", "abx", "abx", "recall", "grid"]
    assert "--preset" in commands[0] and commands[0][commands[0].index("--preset") + 1] == "paper"


@pytest.mark.slow  # five model formats, six commands: 80 s beside a benchmark on 2 cores
def test_every_readme_command_runs_on_the_public_layouts(
    small_corpus: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    from analysis.cli import main
    from probes import abx

    lay_out(tmp_path, small_corpus)
    monkeypatch.chdir(tmp_path)
    isolate(tmp_path, monkeypatch)
    for argv in readme_commands():
        if argv[0] == "train":
            argv = [*argv, *PAPER_ON_A_CPU]
        code = main([*argv, "--no-progress"])
        printed = capsys.readouterr()
        assert code == 0, f"sslvgs {shlex.join(argv)}\n{printed.out}\n{printed.err}"
    # The Python sentence below the block, with the README's arguments.
    result = abx("checkpoints/wav2vec_small.pt", 8, items="dev-clean.item", wavs="LibriSpeech/dev-clean",
                 progress=False)  # fmt: skip
    assert 0.0 <= float(result) <= 1.0
