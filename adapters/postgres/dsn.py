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

# postgresql://user:PASSWORD@host/...  Everything from the user's ':' to the LAST '@' is masked,
# so that a password with an unencoded '@', '/', '?' or '#' (which libpq misreads) is hidden too.
_URL_PASSWORD = re.compile(
    r"^(?P<head>[a-z][a-z0-9+.-]*://[^:@]*:)(?P<secret>.*)@", re.IGNORECASE | re.DOTALL
)
# ...?password=PASSWORD&...
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&]passw(?:or)?d=)(?P<secret>[^&#]*)", re.IGNORECASE)
# key=value form: password=PASSWORD or password = 'quoted \' value' (or a quote never closed)
_KV_PASSWORD = re.compile(
    r"(?P<head>\bpassw(?:or)?d\s*=\s*)(?:'(?P<quoted>(?:\\.|\\$|[^'\\])*)'?|(?P<bare>[^\s']+))", re.IGNORECASE
)
# Pieces of a password that libpq may quote on their own when it misparses the DSN.
_SEPARATORS = re.compile(r"[/?#@:,&=\s]+")


def redact_dsn(dsn: str) -> str:
    """The DSN with any password replaced by ``***``, in the same form (URL or key=value).

    Args:
        dsn: a libpq connection string or URL.

    Returns:
        A string safe to log or show in an error message.
    """
    if "://" in dsn:
        url = _URL_PASSWORD.match(dsn)
        if url is not None and url["secret"]:
            dsn = url["head"] + _MASK + dsn[url.end("secret") :]
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
        for m in _KV_PASSWORD.finditer(dsn):
            found.append(m["bare"] if m["quoted"] is None else re.sub(r"\\(.)", r"\1", m["quoted"]))
    return [secret for secret in found if secret]


def scrub(message: str, dsn: str) -> str:
    """``message`` with the DSN and any of its passwords masked: raw, percent-decoded, and the
    pieces between URL separators that libpq quotes when it misreads a DSN."""
    from urllib.parse import unquote

    message = message.replace(dsn, redact_dsn(dsn))
    for secret in _passwords(dsn):
        forms = {secret, unquote(secret)}
        pieces = {piece for form in forms for piece in _SEPARATORS.split(form) if len(piece) >= 3}
        for form in sorted(forms | pieces, key=len, reverse=True):
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
