"""memstrata's exceptions.

Misuse (fix your call or your configuration) is kept apart from runtime failure (retry, or fix
the environment)::

    MemstrataError
    ├── UsageError                 misuse: the caller can fix it
    │   ├── ConfigError            bad or missing configuration (a DSN, a model path, a setting)
    │   │   └── MissingExtra       a default needs an optional extra that is not installed
    │   └── InvalidInput           bad data passed to a public call (also a ValueError)
    │       ├── InvalidValues      a schema model built from bad values (also pydantic's ValidationError)
    │       ├── InvalidEpisode     an episode or turn that cannot be stored (names item and problem)
    │       └── PromptTooLong      a prompt that does not fit the model's window (both counts given)
    └── RuntimeFailure             the environment failed: retrying may help
        ├── StoreUnavailable       the database cannot be reached or refused the operation
        ├── FoldConflict           another process folded some of the same episodes first
        └── ModelError             the model failed or answered something unusable
            ├── ModelUnavailable   the model file cannot be loaded or the server cannot be reached
            └── OutputParseError   constrained (JSON) output that does not parse

Every exception memstrata raises on purpose is one of these; third-party exceptions are chained
as ``__cause__``. The classes are defined in ``memstrata.schemas.errors`` (so the schemas can raise
them) and re-exported here.
"""

from __future__ import annotations

from memstrata.schemas.errors import (
    ConfigError,
    FoldConflict,
    InvalidEpisode,
    InvalidInput,
    InvalidValues,
    MemstrataError,
    MissingExtra,
    ModelError,
    ModelUnavailable,
    OutputParseError,
    PromptTooLong,
    RuntimeFailure,
    StoreUnavailable,
    UsageError,
)

__all__ = [
    "ConfigError",
    "FoldConflict",
    "InvalidEpisode",
    "InvalidInput",
    "InvalidValues",
    "MemstrataError",
    "MissingExtra",
    "ModelError",
    "ModelUnavailable",
    "OutputParseError",
    "PromptTooLong",
    "RuntimeFailure",
    "StoreUnavailable",
    "UsageError",
]
