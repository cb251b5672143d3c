"""``MEMSTRATA_MODEL``: a local GGUF path, or a Hugging Face hub id ``owner/repo:file-pattern``.

A hub id is fetched once into the user's Hugging Face cache (``HF_HOME``) and found there after,
offline too (``HF_HUB_OFFLINE=1``). The file pattern picks one GGUF among a repository's
quantizations, as ``Llama.from_pretrained(repo_id, filename=pattern)`` does; memstrata resolves it
with ``huggingface_hub.snapshot_download`` rather than ``from_pretrained`` itself, because
``from_pretrained`` lists the repository online before looking in the cache (so it fails offline
even when the file is cached) and loads the weights, where memstrata only needs the path.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

from memstrata.adapters.extras import require
from memstrata.errors import ConfigError, ModelUnavailable

from .model_file import resolve_model_path

__all__ = ["HUB_ID", "resolve_model_spec"]

HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+):(?P<pattern>[^:]+)$")
"""``owner/repo:pattern``, e.g. ``bartowski/Qwen2.5-0.5B-Instruct-GGUF:*Q4_K_M.gguf``."""


def resolve_model_spec(spec: str) -> Path:
    """The GGUF file ``spec`` names: an existing local path, or a hub id fetched into the cache.

    Raises:
        ConfigError: ``spec`` is neither an existing file nor ``owner/repo:pattern``; the pattern
            matches no GGUF, or several, in the repository.
        ModelUnavailable: the hub cannot be reached (or is switched off) and the file is not cached.
    """
    text = spec.strip()
    local = Path(text).expanduser()
    if local.exists():
        return resolve_model_path(local)
    match = HUB_ID.match(text)
    if match is not None:
        return resolve_model_path(_from_hub(match["repo"], match["pattern"]))
    if text.endswith(".gguf"):
        return resolve_model_path(local)  # a missing file: its own clear error
    raise ConfigError(
        f"MEMSTRATA_MODEL={spec!r} is neither an existing GGUF file nor a hub id with a file pattern, "
        "like 'bartowski/Qwen2.5-0.5B-Instruct-GGUF:*Q4_K_M.gguf'"
    )


def _from_hub(repo: str, pattern: str) -> Path:
    hub = require("huggingface_hub", extra="local", purpose="a hub id in MEMSTRATA_MODEL")
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        folder = Path(hub.snapshot_download(repo, allow_patterns=[pattern]))
    except LocalEntryNotFoundError as exc:
        raise ModelUnavailable(
            f"{repo}:{pattern} is not in the Hugging Face cache ({hub.constants.HF_HUB_CACHE}) and the hub "
            "cannot be reached (offline, or HF_HUB_OFFLINE=1): fetch it once with network access, or set "
            "MEMSTRATA_MODEL to a local .gguf file"
        ) from exc
    except RepositoryNotFoundError as exc:
        raise ConfigError(f"no model repository {repo!r} on the hub (or it is private)") from exc
    found = sorted(
        path
        for path in folder.rglob("*")
        if path.is_file() and fnmatch.fnmatch(path.relative_to(folder).as_posix(), pattern)
    )
    if len(found) != 1:
        names = ", ".join(p.relative_to(folder).as_posix() for p in found) or "none"
        raise ConfigError(
            f"the pattern {pattern!r} must match exactly one file of {repo}; it matches {names} "
            "(e.g. '*Q4_K_M.gguf' for one quantization)"
        )
    return found[0]
