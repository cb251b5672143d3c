"""An OpenAI-compatible chat server with memory (``memstrata serve``): FastAPI, streaming.

Needs the ``server`` extra (``pip install memstrata[server]``).
"""

from memstrata.adapters.extras import require

require("fastapi", extra="server", purpose="memstrata.adapters.server")

from .app import SESSION_HEADER, USER_HEADER, create_app  # noqa: E402

__all__ = ["SESSION_HEADER", "USER_HEADER", "create_app"]
