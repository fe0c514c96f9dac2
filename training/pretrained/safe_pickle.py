"""Reading other projects' pickles without running their code.

A pickle names functions and classes that the loader calls to rebuild objects, so unpickling a file
runs whatever code it names. Checkpoints made elsewhere are read here under two rules:

- `torch_load` is `torch.load(weights_only=True)`: only tensors, containers and primitive values, plus
  an allow-list of inert types that real checkpoints hold: `argparse.Namespace` (the `args` of fairseq
  and of the paper's code; rebuilt as an empty namespace whose attributes are then set, no code of its
  own runs) and numpy arrays / dtypes / scalars (the paper's sampler state, fairseq's iterator state).
  Anything else (an omegaconf `DictConfig`, fairseq's meters) is refused with a one-line error that
  names the file and the global, and says how to convert the file.
- `read_namespace` reads a pickled `argparse.Namespace` (the paper's `args.pkl`) with an Unpickler
  that maps `argparse.Namespace` to a plain dict builder and refuses every other global.
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path
from typing import Any

__all__ = ["UnsafePickleError", "load_error", "torch_load", "read_namespace", "namespace_dict"]

# How to turn a checkpoint that holds other objects into one that these loaders read: run it where
# the file's own code is installed and trusted.
CONVERT_HINT = (
    "convert it where its code is installed and trusted: torch.save({'model': ckpt['model'], "
    "'cfg': plain dict of its config}, 'converted.pt')"
)


class UnsafePickleError(ValueError):
    """A file whose pickle names code outside the allow-list; the message names the file and global."""


def _numpy_globals() -> list[Any]:
    """numpy's array, dtype and scalar rebuilders under the names that numpy 1.x and 2.x pickle them."""
    import numpy as np

    try:
        from numpy._core import multiarray
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray
    entries: list[Any] = [np.ndarray, np.dtype]
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        entries.append((multiarray._reconstruct, f"{module}._reconstruct"))
        entries.append((multiarray.scalar, f"{module}.scalar"))
    # numpy >= 1.25 pickles a dtype as its class in numpy.dtypes (e.g. Int64DType).
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        entries.extend(getattr(dtypes, name) for name in dir(dtypes) if name.endswith("DType"))
    return entries


def torch_load(path: str | Path, *, what: str = "checkpoint") -> Any:
    """`torch.load(path, weights_only=True)` with the inert allow-list, onto the CPU.

    Raises:
        UnsafePickleError: the file names another global (one line, naming the file and the global).
        ValueError: a file that is not a torch archive (naming the file).
    """
    import torch

    path = Path(path)
    allowed = [argparse.Namespace, *_numpy_globals()]
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise load_error(path, err, what) from None
    except (RuntimeError, EOFError, OSError) as err:
        raise ValueError(f"{path}: not a readable torch {what} ({_first_line(str(err))})") from None


def load_error(path: Path, err: pickle.UnpicklingError, what: str) -> ValueError:
    """One line for a weights-only load that failed: the global refused (UnsafePickleError), or what
    the file is; never torch's own advice to load it with weights_only=False."""
    message = str(err)
    culprit = _unsupported_global(message)
    if culprit is not None:
        return UnsafePickleError(
            f"{path}: this {what} pickles {culprit}, which sslvgs does not unpickle (it would "
            f"run that code); {CONVERT_HINT}"
        )
    cause = _first_line(message)
    if "Unsupported operand" in cause:
        cause += (
            "; a plain pickle rather than a torch.save archive: re-save its tensors with "
            "torch.save where the file is trusted"
        )
    return ValueError(f"{path}: not a readable torch {what} ({cause})")


def _unsupported_global(message: str) -> str | None:
    """The global that torch's weights-only unpickler refused, from its error message."""
    for marker in ("Unsupported global: GLOBAL ", "Unsupported class ", "GLOBAL "):
        if marker in message:
            return message.split(marker, 1)[1].split()[0].rstrip(".,")
    return None


def _first_line(message: str) -> str:
    # torch's weights-only errors open with a paragraph of advice (including loading the file with
    # weights_only=False, which would run its code); the cause follows this marker.
    message = message.split("WeightsUnpickler error:", 1)[-1]
    advice = ("Weights only load failed", "Please file an issue", "Check the documentation")
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(advice) and "weights_only" not in line]
    return lines[0] if lines else "unknown error"


class _NamespaceState(dict):
    """What `argparse.Namespace` unpickles to here: a dict of its attributes."""

    def __setstate__(self, state: Any) -> None:  # BUILD with the namespace's __dict__
        if isinstance(state, tuple):  # (dict state, slot state) from some protocols
            state = state[0] or {}
        if not isinstance(state, dict):
            raise pickle.UnpicklingError("argparse.Namespace state is not a dict")
        self.update(state)


def _reconstruct(cls: Any, base: Any, state: Any) -> _NamespaceState:
    """copyreg._reconstructor for protocols 0 and 1, accepted for the namespace only."""
    if cls is not _NamespaceState or base is not object or state is not None:
        raise pickle.UnpicklingError("copyreg._reconstructor of something other than a Namespace")
    return _NamespaceState()


class _NamespaceUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("argparse", "Namespace"):
            return _NamespaceState
        if module in ("copyreg", "copy_reg") and name == "_reconstructor":
            return _reconstruct
        if module in ("builtins", "__builtin__") and name == "object":
            return object  # only ever passed to _reconstruct, which checks it
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")


def read_namespace(path: str | Path) -> dict[str, Any]:
    """The attributes of a pickled `argparse.Namespace` (e.g. the paper's `args.pkl`) as a dict.

    Raises:
        UnsafePickleError: the pickle names any other global, or is not a Namespace (naming the file).
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            value = _NamespaceUnpickler(f).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise UnsafePickleError(
            f"{path}: not a pickled argparse.Namespace that sslvgs can read safely ({err})"
        ) from None
    if not isinstance(value, _NamespaceState):
        raise UnsafePickleError(
            f"{path}: holds a {type(value).__name__}, not a pickled argparse.Namespace"
        )
    return dict(value)


def namespace_dict(value: Any) -> dict[str, Any]:
    """A config as a plain dict: a Namespace's attributes, a dict as it is, None as {}."""
    if value is None:
        return {}
    if isinstance(value, argparse.Namespace):
        return dict(vars(value))
    if isinstance(value, dict):
        return dict(value)
    raise TypeError(f"a config must be a dict or an argparse.Namespace, not {type(value).__name__}")
