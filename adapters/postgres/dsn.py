"""Which database to use, and how to name it without leaking its password.

``database_url()`` is ``MEMSTRATA_DATABASE_URL`` when set, else the embedded server
(:mod:`memstrata.adapters.postgres.embedded`), started or joined on first use.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

__all__ = ["DATABASE_URL_ENV", "database_url", "redact_dsn", "scrub"]

DATABASE_URL_ENV = "MEMSTRATA_DATABASE_URL"
_MASK = "***"

# postgresql://user:PASSWORD@host/...  (the userinfo ends at the last '@' before the path)
_URL_PASSWORD = re.compile(
    r"^(?P<head>[a-z][a-z0-9+.-]*://[^:/?#@]*:)(?P<secret>[^/?#]*)(?P<at>@)", re.IGNORECASE
)
# ...?password=PASSWORD&...
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&]password=)(?P<secret>[^&#]*)", re.IGNORECASE)
# key=value form: password=PASSWORD or password = 'quoted \' value'
_KV_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)(?P<secret>'(?:[^'\\]|\\.)*'|[^\s']+)", re.IGNORECASE)


def redact_dsn(dsn: str) -> str:
    """The DSN with any password replaced by ``***``, in the same form (URL or key=value).

    Args:
        dsn: a libpq connection string or URL.

    Returns:
        A string safe to log or show in an error message.
    """
    if "://" in dsn:
        dsn = _URL_PASSWORD.sub(lambda m: m["head"] + (_MASK if m["secret"] else "") + m["at"], dsn, count=1)
        return _QUERY_PASSWORD.sub(lambda m: m["head"] + _MASK, dsn)
    return _KV_PASSWORD.sub(lambda m: m["head"] + _MASK, dsn)


def _passwords(dsn: str) -> list[str]:
    found = []
    if "://" in dsn:
        match = _URL_PASSWORD.match(dsn)
        if match and match["secret"]:
            found.append(match["secret"])
        found.extend(m["secret"] for m in _QUERY_PASSWORD.finditer(dsn) if m["secret"])
    else:
        found.extend(m["secret"].strip("'") for m in _KV_PASSWORD.finditer(dsn) if m["secret"])
    return found


def scrub(message: str, dsn: str) -> str:
    """``message`` with the DSN and any of its passwords (raw or percent-decoded) masked."""
    from urllib.parse import unquote

    message = message.replace(dsn, redact_dsn(dsn))
    for secret in _passwords(dsn):
        for form in {secret, unquote(secret)}:
            if len(form) >= 2:
                message = message.replace(form, _MASK)
    return message


def database_url(environ: Mapping[str, str] | None = None) -> str:
    """The database memstrata should use.

    ``MEMSTRATA_DATABASE_URL`` when set (used as given); otherwise the embedded PostgreSQL +
    pgvector server, started (or joined, if another process already runs it) in the data dir
    (``MEMSTRATA_DATA_DIR``, else ``/var/lib/memstrata`` as root, else the user's data dir).

    Args:
        environ: where to read settings; defaults to ``os.environ``.

    Returns:
        A libpq connection string or URL.

    Raises:
        ConfigError: the embedded server cannot be used with this data dir.
        StoreUnavailable: the embedded server did not start.
    """
    env = os.environ if environ is None else environ
    url = env.get(DATABASE_URL_ENV, "").strip()
    if url:
        return url
    from memstrata.adapters.postgres.embedded import embedded_database_url

    return embedded_database_url(environ=env)
