"""Run the server in a background thread of the current process (tests, examples, notebooks)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import FastAPI
from memstrata.errors import ConfigError

__all__ = ["running_server"]


@contextmanager
def running_server(
    app: FastAPI, *, host: str = "127.0.0.1", port: int = 0, timeout_s: float = 60.0
) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a daemon thread until the block exits.

    Args:
        app: the app (e.g. from :func:`~memstrata.adapters.server.create_app`).
        host: the address to listen on.
        port: the port; 0 picks a free one.
        timeout_s: how long to wait for the server to start (its lifespan included).

    Yields:
        The server's root URL, e.g. ``http://127.0.0.1:43127`` (the OpenAI base URL is that + ``/v1``).

    Raises:
        ConfigError: the server did not start in time (its log says why).
    """
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="memstrata-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(timeout=5)
            raise ConfigError(f"the server did not start on {host}:{port} (see its log above)")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=timeout_s)
