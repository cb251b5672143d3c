"""The classes of memstrata's error tree (drawn and documented in ``memstrata.errors``, which
re-exports them). They live here, in the leaf package, so that the schemas themselves can raise
``InvalidValues`` (a ``MemstrataError`` that is also pydantic's ``ValidationError``).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


class MemstrataError(Exception):
    """Base of every exception memstrata raises on purpose."""


class UsageError(MemstrataError):
    """Misuse: the caller can fix it by changing the call or the configuration."""


class ConfigError(UsageError):
    """Bad or missing configuration."""


class MissingExtra(ConfigError, ImportError):
    """A component needs an optional dependency group (``pip install 'memstrata[<extra>]'``). Also an
    ``ImportError``, as it is raised where an import failed.

    Attributes:
        extra: the extra that installs what is missing.
    """

    def __init__(self, message: str, *, extra: str) -> None:
        super().__init__(f"{message}: pip install 'memstrata[{extra}]'")
        self.extra = extra


class InvalidInput(UsageError, ValueError):
    """Bad data passed to a public call."""


class InvalidEpisode(InvalidInput):
    """An episode (or turn) that cannot be stored.

    Attributes:
        index: position of the offending item in the batch, when the call took a batch.
        field: the field at fault.
    """

    def __init__(self, message: str, *, index: int | None = None, field: str | None = None) -> None:
        where = []
        if index is not None:
            where.append(f"item {index}")
        if field is not None:
            where.append(f"field {field!r}")
        prefix = f"{', '.join(where)}: " if where else ""
        super().__init__(f"{prefix}{message}")
        self.index = index
        self.field = field


class PromptTooLong(InvalidInput):
    """A prompt that does not fit: carries the prompt's tokens and the tokens available."""

    def __init__(self, message: str, *, prompt_tokens: int, available_tokens: int) -> None:
        super().__init__(f"{message} (prompt {prompt_tokens} tokens, available {available_tokens})")
        self.prompt_tokens = prompt_tokens
        self.available_tokens = available_tokens


class RuntimeFailure(MemstrataError):
    """The environment failed; the call may succeed if retried."""


class StoreUnavailable(RuntimeFailure):
    """The episode store cannot be reached, or failed an operation."""


class FoldConflict(RuntimeFailure):
    """A fold lost a race: some covered episodes were already folded by another writer."""


class ModelError(RuntimeFailure):
    """The model failed or answered something unusable."""


class ModelUnavailable(ModelError):
    """The model cannot be loaded (file) or reached (server)."""


class OutputParseError(ModelError):
    """Constrained output that does not parse as the requested schema."""


class InvalidValues(InvalidInput, ValidationError):
    """A schema model (``Scope``, ``Turn``, a configuration...) built from bad values. Also
    pydantic's ``ValidationError``: ``errors()`` lists each problem, as pydantic reports it."""

    @classmethod
    def of(cls, error: ValidationError) -> InvalidValues:
        """The same problems as ``error``, raised as a memstrata error."""
        details: list[Any] = error.errors()
        made: InvalidValues = cls.from_exception_data(error.title, details)
        return made
