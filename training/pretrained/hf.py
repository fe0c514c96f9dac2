"""Hugging Face `transformers` speech models: a live object or a `save_pretrained` directory.

wav2vec 2.0, HuBERT and WavLM base models, and their ForPreTraining / ForCTC / other heads (the head
is dropped: probes read the encoder's hidden states). `transformers` is an optional dependency
(`pip install sslvgs[hf]`), imported only here and only when such a model is asked for. Nothing is
downloaded: a directory is read with `local_files_only=True`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from training.pretrained.encoders import HF_FAMILIES, HFEncoder

__all__ = ["HFModelError", "is_hf_directory", "is_hf_model", "load_hf", "wrap_hf"]

HF_CONFIG = "config.json"
HF_PREPROCESSOR = "preprocessor_config.json"


class HFModelError(ValueError):
    """A Hugging Face model or directory sslvgs cannot probe; the message names it."""


def _transformers():
    try:
        import transformers
    except ImportError:
        raise ImportError(
            "reading Hugging Face models needs the optional `transformers` package: "
            "pip install 'sslvgs[hf]'"
        ) from None
    return transformers


def read_hf_config(directory: str | Path) -> dict[str, Any] | None:
    """The directory's config.json if it is a transformers config (has `model_type`), else None."""
    path = Path(directory) / HF_CONFIG
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return config if isinstance(config, dict) and "model_type" in config else None


def is_hf_directory(path: str | Path) -> bool:
    """True for a folder written by transformers' `save_pretrained` (config.json with model_type)."""
    return Path(path).is_dir() and read_hf_config(path) is not None


def is_hf_model(model: Any) -> bool:
    """True for a live transformers model (checked by its class's module: transformers not imported)."""
    return any(cls.__module__.startswith("transformers.") for cls in type(model).__mro__)


def _family(model_type: str, where: str, architectures: Any) -> str:
    if model_type not in HF_FAMILIES:
        shown = ", ".join(architectures) if architectures else "no architectures listed"
        raise HFModelError(
            f"{where}: a transformers {model_type!r} model ({shown}); sslvgs probes "
            f"{', '.join(sorted(HF_FAMILIES))} models"
        )
    return model_type


def _base_model(model: Any, where: str) -> Any:
    """The encoder of a transformers model: itself for a base model, else its `.wav2vec2` etc."""
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", type(model).__name__)
    family = _family(model_type, where, getattr(config, "architectures", None))
    base = getattr(model, HF_FAMILIES[family], model)
    if not hasattr(base, "encoder") or not hasattr(base, "feature_extractor"):
        raise HFModelError(f"{where}: {type(model).__name__} has no speech encoder to probe")
    return base


def wrap_hf(model: Any, *, normalize: bool = False, sample_rate: int = 16000) -> HFEncoder:
    """An `HFEncoder` around a live transformers model (any head; the encoder is kept)."""
    where = f"an in-memory {type(model).__name__}"
    return HFEncoder(_base_model(model, where), normalize=normalize, sample_rate=sample_rate)


def load_hf(
    directory: str | Path, *, normalize: bool | None = None, sample_rate: int | None = None
) -> HFEncoder:
    """The encoder of a `save_pretrained` directory as an `HFEncoder`, in eval mode on the CPU.

    Args:
        directory: holds config.json (and the weights).
        normalize: z-normalise each utterance first; default: the directory's
            preprocessor_config.json `do_normalize` (False when there is none, as the raw model).
        sample_rate: default: preprocessor_config.json's `sampling_rate`, else 16 kHz.
    Raises:
        HFModelError: a directory of another architecture (naming it, its architectures and model_type).
        ImportError: transformers is not installed (saying how to install it).
    """
    directory = Path(directory)
    config = read_hf_config(directory)
    if config is None:
        raise HFModelError(f"{directory}: not a Hugging Face model directory (no {HF_CONFIG})")
    family = _family(config["model_type"], str(directory), config.get("architectures"))
    preprocessing = _read_preprocessor(directory)
    if normalize is None:
        normalize = bool(preprocessing.get("do_normalize", False))
    if sample_rate is None:
        sample_rate = int(preprocessing.get("sampling_rate", 16000))
    transformers = _transformers()
    classes = {"wav2vec2": "Wav2Vec2Model", "hubert": "HubertModel", "wavlm": "WavLMModel"}
    model_class = getattr(transformers, classes[family])
    verbosity = transformers.logging.get_verbosity()
    # Loading a head's directory into the base class keeps the encoder and drops the head, which
    # transformers reports key by key: expected here, so not shown.
    transformers.logging.set_verbosity_error()
    try:
        model = model_class.from_pretrained(directory, local_files_only=True)
    except OSError as err:
        raise HFModelError(f"{directory}: cannot read the model's weights ({err})") from None
    finally:
        transformers.logging.set_verbosity(verbosity)
    return HFEncoder(model.eval(), normalize=normalize, sample_rate=sample_rate)


def _read_preprocessor(directory: Path) -> dict[str, Any]:
    path = directory / HF_PREPROCESSOR
    if not path.is_file():
        return {}
    try:
        value = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise HFModelError(f"{path}: not JSON ({err})") from None
    return value if isinstance(value, dict) else {}
