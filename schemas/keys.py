"""API keys of ``memstrata serve``: who a key speaks for (one user, or one tenant's users)."""

from __future__ import annotations

from datetime import datetime

from ._model import FrozenModel

__all__ = ["TENANT_SEPARATOR", "ApiKey"]

TENANT_SEPARATOR = ":"
"""Joins a tenant and a user it names into the stored user id (``acme:alice``). A tenant id and
a user named through a tenant key never contain it, so one tenant cannot name into another."""


class ApiKey(FrozenModel):
    """A stored key (never its secret: only a hash of it is kept).

    Attributes:
        id: the key's public id (shown by ``memstrata keys list``, used to revoke it).
        user_id: the one user the key may act for, or None for a tenant key.
        tenant: the tenant whose users the key may name, or None for a user key.
        name: a note given at creation.
        created_at: when it was created.
        revoked_at: when it was revoked (None while it is valid).
    """

    id: str
    user_id: str | None = None
    tenant: str | None = None
    name: str | None = None
    created_at: datetime | None = None
    revoked_at: datetime | None = None

    def user_for(self, requested: str | None) -> str | None:
        """The stored user id a request naming ``requested`` acts for, or None if this key may
        not act for it (a user key naming someone else; a tenant key naming a user with the
        separator). A user key naming nobody acts for its user; a tenant key must name one."""
        if self.user_id is not None:
            return self.user_id if requested in (None, self.user_id) else None
        if requested is None or TENANT_SEPARATOR in requested or self.tenant is None:
            return None
        return f"{self.tenant}{TENANT_SEPARATOR}{requested}"
