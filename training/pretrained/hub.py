"""Hugging Face hub ids (`facebook/wav2vec2-base`) read from the local hub cache, never downloaded.

The cache is the one `huggingface_hub` fills: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
`~/.cache/huggingface/hub`. A model `org/name` lives in `models--org--name/`: `refs/<revision>` holds
the commit hash of a revision (`main` by default) and `snapshots/<commit>/` the files as
`save_pretrained` lays them out. Any path sslvgs takes for a model may be such an id; a path that
exists always wins over an id of the same spelling.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["hub_cache", "is_hub_id", "resolve_hub_id", "locate_model", "NotCachedError"]

# org/name, as the hub spells them: no leading dot or dash, one slash, an optional @revision.
HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@(?P<revision>[\w.-]+))?$")


class NotCachedError(FileNotFoundError):
    """A model path that does not exist and a hub id not in the local cache; the message says where
    it was looked for and how to fetch it once."""


def hub_cache() -> Path:
    """The local hub cache folder (`HF_HUB_CACHE`, else `HF_HOME/hub`, else ~/.cache/huggingface/hub)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path.home() / ".cache" / "huggingface" / "hub"


def is_hub_id(text: str | os.PathLike) -> bool:
    """True for `org/name` (or `org/name@revision`) that is not a path on disk."""
    text = os.fspath(text)
    return HUB_ID.match(text) is not None and not Path(text).exists()


def resolve_hub_id(model_id: str) -> Path:
    """The snapshot folder of `org/name[@revision]` in the local hub cache.

    The revision is a ref (`main` by default: `refs/main` names its commit) or a commit hash;
    with no `refs/main`, a single snapshot is taken.
    Raises:
        NotCachedError: the model (or that revision) is not in the cache, in one line naming the
            folder looked in and the command that fetches it.
    """
    match = HUB_ID.match(model_id)
    if match is None:
        raise ValueError(f"{model_id!r} is not a Hugging Face hub id (org/name)")
    repo, revision = match["repo"], match["revision"]
    cache = hub_cache()
    folder = cache / ("models--" + repo.replace("/", "--"))
    snapshots = folder / "snapshots"
    commit = None
    ref = folder / "refs" / (revision or "main")
    if ref.is_file():
        commit = ref.read_text().strip()
    elif revision is not None:
        commit = revision
    elif snapshots.is_dir():
        found = sorted(p.name for p in snapshots.iterdir() if p.is_dir())
        commit = found[0] if len(found) == 1 else None
    snapshot = snapshots / commit if commit else None
    if snapshot is None or not snapshot.is_dir():
        what = f"{repo} at revision {revision}" if revision else repo
        raise NotCachedError(
            f"{model_id}: no such file or folder, and {what} is not in the Hugging Face cache "
            f"{cache} (looked for {folder.name}/snapshots/; set HF_HUB_CACHE or HF_HOME to another "
            f"cache); sslvgs never downloads: fetch it once with `huggingface-cli download {repo}`"
        )
    return snapshot


def locate_model(path: str | os.PathLike) -> Path:
    """`path` as a Path; a hub id that is not a path on disk becomes its cached snapshot folder."""
    if isinstance(path, str | os.PathLike) and is_hub_id(path):
        return resolve_hub_id(os.fspath(path))
    return Path(path)
