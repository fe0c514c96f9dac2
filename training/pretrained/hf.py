"""Hugging Face `transformers` speech models: a live object or a `save_pretrained` directory.

wav2vec 2.0, HuBERT and WavLM base models, and their ForPreTraining / ForCTC / other heads (the head
is dropped: probes read the encoder's hidden states). `transformers` is an optional dependency
(`pip install sslvgs[hf]`), imported only here and only when such a model is asked for. Nothing is
downloaded: a directory is read with `local_files_only=True`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import pickle
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from training.pretrained.encoders import HF_FAMILIES, HFEncoder

__all__ = ["HFModelError", "is_hf_directory", "is_hf_model", "load_hf", "wrap_hf"]

HF_CONFIG = "config.json"
HF_PREPROCESSOR = "preprocessor_config.json"
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")  # fmt: skip
# Tensors of a saved model that the encoder has no place for and that probes never read: the
# pretraining quantizer and projections, task heads (CTC `lm_head`, sequence classification), and
# the mask embedding (used only to mask frames in training). Any other tensor left over, or any
# parameter of the encoder that the file does not hold, is an error: transformers would give it
# fresh random values on every load.
IGNORED_UNEXPECTED = re.compile(
    r"^(quantizer\.|project_q\.|project_hid\.|lm_head\.|classifier\.|projector\.|layer_weights$"
    r"|masked_spec_embed$)"
)
IGNORED_MISSING = re.compile(r"^masked_spec_embed$")


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
        HFModelError: a directory of another architecture (naming it, its architectures and model_type);
            weights that do not fit config.json (a parameter missing, a tensor left over beyond the
            IGNORED_* heads, or of another shape) or cannot be read, naming the file and the key.
        UnsafePickleError: a `pytorch_model.bin` that pickles code (naming the file and the global).
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
    weights = weight_file(directory)
    try:
        with _own_load_report(directory):
            model, info = model_class.from_pretrained(
                directory, local_files_only=True, output_loading_info=True,
                ignore_mismatched_sizes=True,
            )  # fmt: skip
    except pickle.UnpicklingError as err:
        from training.pretrained.safe_pickle import load_error

        raise load_error(weights, err, "model file") from None
    except (OSError, RuntimeError, ValueError) as err:
        raise HFModelError(
            f"{weights}: cannot read the model's weights ({_first_line(err)})"
        ) from None
    check_loading_info(info, weights, classes[family])
    return HFEncoder(model.eval(), normalize=normalize, sample_rate=sample_rate)


def weight_file(directory: Path) -> Path:
    """The weights file of a `save_pretrained` directory (the directory itself if it holds none)."""
    for name in WEIGHT_FILES:
        if (directory / name).is_file():
            return directory / name
    return directory


def check_loading_info(info: dict[str, Any], weights: Path, model_class: str) -> None:
    """HFModelError naming the file and the first parameter the weights lack, the first tensor the
    encoder has no place for, or the first of another shape (beyond the IGNORED_* patterns)."""
    missing = sorted(k for k in info.get("missing_keys", ()) if not IGNORED_MISSING.match(k))
    unexpected = sorted(
        k for k in info.get("unexpected_keys", ()) if not IGNORED_UNEXPECTED.match(k)
    )
    mismatched = sorted(info.get("mismatched_keys", ()), key=lambda item: str(item[0]))
    problems = []
    if mismatched:
        key, theirs, ours = mismatched[0][:3]
        problems.append(
            f"{len(mismatched)} tensors of another shape than config.json gives, first {key} "
            f"{tuple(theirs)} where the model has {tuple(ours)}"
        )
    if missing:
        problems.append(
            f"{len(missing)} {model_class} parameters not in the file, first {missing[0]}"
        )
    if unexpected:
        problems.append(
            f"{len(unexpected)} tensors with no place in a {model_class}, first {unexpected[0]}"
        )
    if problems:
        random = " (transformers would give those parameters random values)"
        raise HFModelError(
            f"{weights}: does not match its config.json: {'; '.join(problems)}"
            f"{random if missing or mismatched else ''}"
        )


class _DropReport(logging.Filter):
    """Drops transformers' loading report about one directory, which `check_loading_info` turns
    into an error (or, for the ignored heads, leaves unsaid); every other record passes."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = str(directory)

    def filter(self, record: logging.LogRecord) -> bool:
        return self.directory not in record.getMessage()


@contextlib.contextmanager
def _own_load_report(directory: Path) -> Iterator[None]:
    loggers = [logging.getLogger(n) for n in ("transformers.modeling_utils", "transformers")]
    drop = _DropReport(directory)
    for logger in loggers:
        logger.addFilter(drop)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(drop)


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def _read_preprocessor(directory: Path) -> dict[str, Any]:
    path = directory / HF_PREPROCESSOR
    if not path.is_file():
        return {}
    try:
        value = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise HFModelError(f"{path}: not JSON ({err})") from None
    return value if isinstance(value, dict) else {}
