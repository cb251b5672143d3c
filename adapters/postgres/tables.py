"""What every statement of the Postgres store shares: table names, columns, and the scope filter.

Identifiers (the schema name) are validated, then quoted into SQL text; values are always
parameters.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from memstrata.errors import ConfigError
from memstrata.schemas import Scope

__all__ = [
    "COLUMNS",
    "READ_COLUMNS",
    "TS_CONFIG",
    "WRITE_COLUMNS",
    "Statement",
    "Tables",
    "check_identifier",
    "column_list",
    "owner_params",
]

Statement = tuple[str, dict[str, Any]]

TS_CONFIG = "english"
"""Text-search configuration of the stored ``tsv`` column and of every query (see the report:
'english' stems and drops stop words, which helps questions match statements)."""

COLUMNS = (
    "user_id",
    "agent_id",
    "session_id",
    "id",
    "kind",
    "text",
    "role",
    "speaker",
    "occurred_at",
    "created_at",
    "importance",
    "level",
    "covers",
    "superseded_by",
    "metadata",
    "idempotency_key",
)
"""Episode columns in the order :mod:`.rows` reads and writes them (``embedding`` follows on write,
``seq`` on read)."""

WRITE_COLUMNS = (*COLUMNS, "embedding")
READ_COLUMNS = (*COLUMNS, "seq")

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def check_identifier(name: str) -> str:
    """Return ``name`` if it is a plain lower-case SQL identifier (safe to quote into SQL).

    Raises:
        ConfigError: anything else.
    """
    if not _IDENTIFIER.fullmatch(name):
        raise ConfigError(
            f"schema name {name!r} is not a plain identifier: use 1-63 lower-case letters, digits or "
            "underscores, not starting with a digit"
        )
    return name


@dataclass(frozen=True)
class Tables:
    """Qualified names of the store's tables inside one schema."""

    schema: str

    def __post_init__(self) -> None:
        check_identifier(self.schema)

    @property
    def episodes(self) -> str:
        return f'"{self.schema}".episodes'

    @property
    def migrations(self) -> str:
        return f'"{self.schema}".schema_migrations'


def column_list(columns: Sequence[str], prefix: str = "") -> str:
    """``columns`` comma-separated, each with ``prefix`` (a table alias and a dot)."""
    return ", ".join(prefix + c for c in columns)


def owner_params(scope: Scope) -> dict[str, Any]:
    """The ``user_id`` and ``agent_id`` parameters every scoped statement filters by."""
    return {"user_id": scope.user_id, "agent_id": scope.agent_id}
