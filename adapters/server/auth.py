"""Who a request speaks for: an API key (``Authorization: Bearer msk_...``), or, only when the
operator opts in, the user an upstream gateway names in a header.

A key bound to one user acts for that user: a request naming nobody is that user's, a request
naming another user is refused (403). A tenant key must name a user (``user`` field or
``X-Memstrata-User``) and acts for ``<tenant>:<user>``: it can never name a user outside its
tenant. No key, or an unknown or revoked one, is a 401. See ``docs/security.md``.
"""

from __future__ import annotations

import logging
from typing import Protocol

from memstrata.errors import ConfigError, InvalidInput
from memstrata.memory import Memory
from memstrata.schemas.keys import ApiKey

__all__ = ["USER_HEADER", "Access", "KeyVerifier", "RequestRefused"]

USER_HEADER = "X-Memstrata-User"
_log = logging.getLogger(__name__)


class KeyVerifier(Protocol):
    """Finds the valid key a secret belongs to (e.g. :class:`memstrata.adapters.postgres.api_keys.ApiKeys`)."""

    def verify(self, secret: str) -> ApiKey | None: ...


class RequestRefused(InvalidInput):
    """A request the server refuses, with its HTTP status and OpenAI's ``param`` and ``code``."""

    def __init__(self, message: str, *, status: int = 400, param: str | None = None, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.param = param
        self.code = code


class Access:
    """The server's rule for choosing a request's user.

    Args:
        keys: where keys are checked; None: the memory store's own (bound when the app starts).
        trust_user_header: take the user from the request's ``user`` field or header without a
            key (only behind a gateway that authenticates callers and sets it).
    """

    def __init__(self, keys: KeyVerifier | None, *, trust_user_header: bool) -> None:
        if keys is not None and trust_user_header:
            raise ConfigError("give API keys or trust the user header, not both")
        self.keys = keys
        self.trust_user_header = trust_user_header

    def bind(self, memory: Memory) -> None:
        """Use the store's keys when none were given.

        Raises:
            ConfigError: no keys given, not trusting the header, and the store keeps no keys.
        """
        if self.trust_user_header:
            _log.warning(
                "memstrata serve trusts the %s header and the 'user' field without an API key: "
                "only run it this way behind a gateway that authenticates every caller",
                USER_HEADER,
            )
            return
        if self.keys is not None:
            return
        from memstrata.adapters.postgres import PostgresEpisodeStore

        store = memory.store
        if not isinstance(store, PostgresEpisodeStore):
            raise ConfigError(
                "the server checks API keys in the PostgreSQL store: give create_app(keys=...) "
                "or trust_user_header=True (behind an authenticating gateway only)"
            )
        from memstrata.adapters.postgres.api_keys import ApiKeys

        self.keys = ApiKeys(store.pool, schema=store.schema)

    def key(self, authorization: str | None) -> ApiKey | None:
        """The request's key (None when the header is trusted instead).

        Raises:
            RequestRefused: 401, no valid key.
        """
        if self.trust_user_header:
            return None
        scheme, _, secret = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise RequestRefused(
                "no API key: send 'Authorization: Bearer <key>' (memstrata keys create)",
                status=401,
                code="invalid_api_key",
            )
        if self.keys is None:
            raise ConfigError("the server has not started (no key store bound)")
        found = self.keys.verify(secret.strip())
        if found is None:
            raise RequestRefused("invalid or revoked API key", status=401, code="invalid_api_key")
        return found

    def user(self, key: ApiKey | None, requested: str | None) -> str:
        """The stored user id a request with ``key`` (from :meth:`key`) naming ``requested`` acts for.

        Raises:
            RequestRefused: 403 a user the key may not name, 400 no user.
        """
        named = requested if requested is not None and requested.strip() else None
        if key is None or (key.tenant is not None and named is None):
            if named is None:
                raise RequestRefused(
                    f"no user: set the request's 'user' field or the {USER_HEADER} header; "
                    "memory is kept per user",
                    param="user",
                    code="missing_user",
                )
            return named
        user = key.user_for(named)
        if user is None:
            raise RequestRefused(
                f"this API key may not act for user {named!r}",
                status=403,
                param="user",
                code="forbidden_user",
            )
        return user
