"""An OpenAI-compatible chat server with memory (``memstrata serve``): FastAPI, streaming.

Needs the ``server`` extra (``pip install memstrata[server]``).
"""

from .app import SESSION_HEADER, USER_HEADER, create_app

__all__ = ["SESSION_HEADER", "USER_HEADER", "create_app"]
