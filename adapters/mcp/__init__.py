"""A Model Context Protocol server over one user's memory (the official ``mcp`` SDK).

``memstrata mcp --user ID`` serves it over stdio (or streamable HTTP); :func:`create_mcp_server`
builds it for your own process. Needs the ``mcp`` extra (``pip install 'memstrata[mcp]'``).
"""

from memstrata.adapters.extras import require

require("mcp", extra="mcp", purpose="memstrata.adapters.mcp")

from .server import SUMMARY_URI, create_mcp_server, summary_text  # noqa: E402

__all__ = ["SUMMARY_URI", "create_mcp_server", "summary_text"]
