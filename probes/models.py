"""One view of every model we probe: layer-by-layer hidden states of a batch of waveforms.

Probes accept an sslvgs checkpoint (file or run directory), a loaded `training.model.SSLVGS`, a
torchaudio `Wav2Vec2Model` (wav2vec 2.0, HuBERT, WavLM builders all return one), a Hugging Face
`transformers` wav2vec 2.0 / HuBERT / WavLM model (live, or its `save_pretrained` directory), a fairseq
wav2vec 2.0 / HuBERT checkpoint file, the paper's VGS+ / FaST-VGS+ bundles, or a folder of
checkpoints made elsewhere (its last one); `training.pretrained` reads those made elsewhere.
`as_layered_model` wraps each in a `LayeredModel` with the same numbering: layer 0 is what enters the
first transformer layer, layers 1..N the transformer layers (docs/models.md, per family).
"""

from __future__ import annotations

import contextlib
import hashlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path
from typing import Any

import torch

from probes.encoder import Encoder
from training.run.directory import abx_item_file, run_corpus

__all__ = [
    "DEFAULT_ABX_SET",
    "corpus_of",
    "default_abx_set",
    "LayeredModel",
    "as_layered_model",
    "state_checksum",
    "resolve_layers",
    "bounded_memory",
]


# The ABX set probes use when none is named: the corpus's spoken captions.
DEFAULT_ABX_SET = "captions"


@contextlib.contextmanager
def bounded_memory(device: str | torch.device = "cpu") -> Iterator[None]:
    """Run CPU forward passes without oneDNN, whose per-shape primitive cache grows without bound here.

    oneDNN keeps a compiled primitive (with its buffers) for every input shape it meets, up to 1024
    of them; utterances of many lengths (one shape each) made resident memory grow by gigabytes over
    a few hundred utterances of wav2vec 2.0 base. PyTorch's own CPU kernels run these models at about
    the same speed (benchmarks/extract_throughput.py), with flat memory.
    """
    if torch.device(device).type != "cpu":
        yield
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="TF32 acceleration on top of oneDNN")
        with torch.backends.mkldnn.flags(enabled=False):
            yield


def state_checksum(module: torch.nn.Module) -> str:
    """Hex sha256 of a module's state dict (names, dtypes, shapes and bytes), in a stable order.

    Identifies an in-memory model for the activation cache when no checkpoint file names it.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        value = tensor.detach().cpu().contiguous().reshape(-1)  # 0-d tensors (BatchNorm counts) too
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}|".encode())
        digest.update(value.view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return digest.hexdigest()


@dataclass
class LayeredModel:
    """A model seen as a stack of layers.

    Attributes:
        module: the wrapped torch module, an `Encoder` (eval mode).
        num_layers: N, the number of transformer layers; valid layers are 0..N.
        dim: feature dimension D of every layer.
        frame_rate: frames per second of every layer.
        sample_rate: the audio rate the model takes.
        model_id: checksum of the weights (`state_checksum`), the cache key.
        description: what the user passed, for messages and store attributes.
        checkpoint: the checkpoint file the weights were loaded from, when known.
        min_samples: the fewest samples of audio that give one frame (the front end's receptive
            field); shorter utterances are skipped or refused by name, never fed to the model.
        znorm: z-normalise each waveform over its valid samples before the model (the paper
            protocol's view of a model that does not do it itself, `probes.protocol`).
    """

    module: torch.nn.Module
    num_layers: int
    dim: int
    frame_rate: float
    sample_rate: int
    model_id: str
    description: str
    checkpoint: Path | None = None
    min_samples: int = 1
    znorm: bool = False

    def hidden_states(
        self, wav: torch.Tensor, wav_lengths: torch.Tensor, max_layer: int
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Hidden states of layers 0..max_layer.

        Args:
            wav: [B, T] float32 waveforms at `sample_rate`, zero padded.
            wav_lengths: [B] valid samples per waveform.
            max_layer: the deepest layer needed (later layers are not computed where avoidable).
        Returns:
            (list of max_layer + 1 tensors [B, F, D], frame_lengths [B] long)
        """
        from training.pretrained.encoders import zscore

        if self.znorm:
            wav = zscore(wav, wav_lengths.to(wav.device))
        states, frame_lengths = self.module.hidden_states(wav, wav_lengths, max_layer=max_layer)
        return list(states), frame_lengths.long()


def resolve_layers(layers: Any, num_layers: int, description: str) -> list[int]:
    """`"all"`, an int or a sequence of ints -> a sorted list of distinct valid layers.

    Raises:
        ValueError: a layer outside 0..num_layers, naming the model.
    """
    if isinstance(layers, str):
        if layers != "all":
            raise ValueError(f'layers must be "all", an int or a list of ints, not {layers!r}')
        return list(range(num_layers + 1))
    requested = [layers] if isinstance(layers, Integral) else list(layers)
    if not requested:
        raise ValueError("layers is empty: name at least one layer")
    for layer in requested:
        if (
            isinstance(layer, bool)
            or not isinstance(layer, Integral)
            or not 0 <= layer <= num_layers
        ):
            raise ValueError(
                f"layer {layer!r} is out of range: {description} has layers 0..{num_layers} "
                "(0 = feature encoder, 1..N = transformer layers)"
            )
    return sorted({int(layer) for layer in requested})


def as_layered_model(model: Any, *, sample_rate: int | None = None) -> LayeredModel:
    """Wrap any model the probes take (see the module's docstring) in a `LayeredModel`.

    Args:
        model: what the user passed: a path (sslvgs checkpoint or run, HF directory or hub id
            such as "facebook/wav2vec2-base" in the local hub cache, fairseq file, paper bundle or
            its folder, folder of checkpoints) or a model object.
        sample_rate: override for torchaudio and live HF models, which do not record their rate
            (default 16 kHz).
    Raises:
        FileNotFoundError: a path that does not exist.
        TypeError: an object of another kind.
        ValueError: a file or folder that is not a model sslvgs can read (one line naming it).
    """
    from training.pretrained import TorchaudioEncoder, is_hf_model, wrap_hf

    if isinstance(model, LayeredModel):
        return model
    if isinstance(model, str | Path):
        from training.pretrained.hub import locate_model

        return _from_path(locate_model(model), str(model))
    if is_hf_model(model):
        wrapped = wrap_hf(model, sample_rate=sample_rate or 16000)
        return _from_sslvgs(wrapped, f"an in-memory transformers {type(model).__name__}")
    if _is_torchaudio_wav2vec2(model):
        wrapped = TorchaudioEncoder(model, sample_rate=sample_rate or 16000)
        return _from_sslvgs(wrapped, f"an in-memory torchaudio {type(model).__name__}")
    if isinstance(model, torch.nn.Module) and isinstance(model, Encoder):
        return _from_sslvgs(model, f"an in-memory {type(model).__name__}")
    raise TypeError(
        "model must be a checkpoint file, a run directory, a Hugging Face model or directory, a "
        "fairseq checkpoint, a paper bundle, an sslvgs SSLVGS model or a torchaudio Wav2Vec2Model, "
        f"not {type(model).__name__}"
    )


def _from_path(path: Path, description: str) -> LayeredModel:
    from training import load_model
    from training.pretrained import load_pretrained, pretrained_kind

    kind = pretrained_kind(path)
    if kind == "sslvgs":
        return _from_sslvgs(load_model(path), description)
    # Models made elsewhere cache their activations in the user cache, not beside their files.
    return _from_sslvgs(load_pretrained(path), description)


def _from_sslvgs(module: torch.nn.Module, description: str) -> LayeredModel:
    # The weights, not the file, identify the model: a checkpoint and the same checkpoint loaded
    # in a notebook share cached activations, and weights changed after loading never hit them.
    # `training.load_model` records the file, which places the cache beside the run.
    module.eval()
    checkpoint = getattr(module, "checkpoint_path", None)
    return LayeredModel(
        module=module,
        num_layers=int(module.num_layers),
        dim=int(module.dim),
        frame_rate=float(module.frame_rate),
        sample_rate=int(module.sample_rate),
        model_id="state-" + state_checksum(module),
        description=description,
        checkpoint=Path(checkpoint) if checkpoint is not None else None,
        min_samples=int(getattr(module, "min_samples", 1)),
    )


def _is_torchaudio_wav2vec2(model: Any) -> bool:
    from torchaudio.models import Wav2Vec2Model

    return isinstance(model, Wav2Vec2Model)


def corpus_of(layered: LayeredModel, corpus: str | Path | None = None) -> Path:
    """The corpus to probe on: `corpus` if given, else the one the model's run was trained on."""
    if corpus is not None:
        return Path(corpus)
    recorded = (
        run_corpus(layered.checkpoint, check=True) if layered.checkpoint is not None else None
    )
    if recorded is None:
        raise ValueError(
            f"{layered.description}: no corpus known (it was not loaded from a run directory whose "
            "config.json names one); pass corpus=... or items=..."
        )
    return recorded


def default_abx_set(corpus: Path) -> Path:
    """The corpus's `captions` ABX item file."""
    return abx_item_file(DEFAULT_ABX_SET, corpus)
