"""A GGUF model run in-process by llama.cpp (llama-cpp-python), as a memstrata chat model."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from memstrata.adapters.extras import require
from memstrata.errors import InvalidInput, ModelError, ModelUnavailable, OutputParseError
from memstrata.schemas import ChatMessage, ChatResult, TokenUsage
from memstrata.schemas.model_config import LlamaCppConfig
from memstrata.validation import check_chat_request

from .model_file import resolve_model_path, unloadable_message
from .prefix_cache import WarmsInFlight, common_length, copy_prefix, evaluate_prefix, paste_prefix
from .tokenizer import LlamaCppTokenCounter

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_types import ChatCompletionRequestResponseFormat

_log = logging.getLogger(__name__)

__all__ = ["LlamaCppChatModel", "available_cores", "default_threads"]


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_threads() -> int:
    """Threads for llama.cpp when none are set: every available core but one (at least one).

    llama.cpp's threads spin while they wait for each other, so one more thread than there are
    free cores slows every token; leaving a core to the embedder, the database and background
    folds keeps a busy or small machine from being oversubscribed.
    """
    return max(1, available_cores() - 1)


class LlamaCppChatModel:
    """A :class:`~memstrata.ports.StreamingChatModel` running a GGUF file with llama.cpp.

    The weights are loaded once; the token counter shares the loaded vocabulary. Calls are
    serialized (one llama.cpp context per model): use one instance per thread for parallelism.

    Args:
        model_path: the GGUF file; None is the default model (SmolLM2-135M-Instruct).
        n_ctx: context window; None reads ``<arch>.context_length`` from the file.
        n_threads: CPU threads; None uses every available core but one (:func:`default_threads`).
        n_batch: prompt tokens evaluated per batch.
        chat_template: a Jinja template overriding the file's ``tokenizer.chat_template``.
        seed: sampling seed (temperature > 0); None is random.

    Raises:
        ConfigError: no file at ``model_path``; the default model is not installed; a bad setting.
        ModelUnavailable: the file is unreadable, not GGUF, or llama.cpp cannot load it.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        n_batch: int = 512,
        chat_template: str | None = None,
        seed: int | None = None,
        repeat_penalty: float = LlamaCppConfig().repeat_penalty,
    ) -> None:
        config = LlamaCppConfig(
            model_path=Path(model_path) if model_path is not None else None,
            n_ctx=n_ctx,
            n_threads=n_threads,
            n_batch=n_batch,
            chat_template=chat_template,
            seed=seed,
            repeat_penalty=repeat_penalty,
        )
        self._config = config
        self._path = resolve_model_path(config.model_path)
        started = time.perf_counter()
        self._llama = self._load(self._path, config)
        try:
            self._counter = LlamaCppTokenCounter.from_llama(self._llama, chat_template=config.chat_template)
        except BaseException:
            self._llama.close()
            raise
        # Our handler, not llama-cpp-python's guess from the template text: prompts are then rendered
        # by exactly the formatter the counter uses, overrides and ChatML fallback included.
        self._llama.chat_handler = self._counter.chat_handler()
        self.load_seconds = time.perf_counter() - started
        self._n_ctx = int(self._llama.n_ctx())
        self._lock = threading.Lock()
        self._holder: int | None = None  # the thread generating, to refuse re-entry instead of deadlocking
        self._name = self._path.stem
        self._closed = False
        self._helper: LlamaCppChatModel | None = None  # the sibling that evaluates warm prefixes
        self._warms = WarmsInFlight()  # what the sibling is evaluating now, for turns to wait on

    @classmethod
    def from_config(cls, config: LlamaCppConfig) -> LlamaCppChatModel:
        """Build from a :class:`~memstrata.schemas.model_config.LlamaCppConfig`."""
        return cls(
            config.model_path,
            n_ctx=config.n_ctx,
            n_threads=config.n_threads,
            n_batch=config.n_batch,
            chat_template=config.chat_template,
            seed=config.seed,
            repeat_penalty=config.repeat_penalty,
        )

    @staticmethod
    def _load(path: Path, config: LlamaCppConfig) -> Llama:
        llama_cpp = require("llama_cpp", extra="local", purpose="llama.cpp")

        threads = config.n_threads or default_threads()
        try:
            llama: Llama = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=config.n_ctx or 0,  # 0: the trained context length from the file
                n_batch=config.n_batch,
                n_threads=threads,
                n_threads_batch=threads,
                seed=config.seed if config.seed is not None else llama_cpp.LLAMA_DEFAULT_SEED,
                verbose=False,
            )
        except ValueError as exc:
            raise ModelUnavailable(unloadable_message(path)) from exc
        except (RuntimeError, MemoryError) as exc:
            raise ModelUnavailable(
                f"llama.cpp loaded {path.name} but could not allocate its context ({exc}); "
                "try a smaller n_ctx (MEMSTRATA_MODEL_N_CTX)"
            ) from exc
        return llama

    def sibling(self, *, n_threads: int = 1) -> LlamaCppChatModel:
        """A second model on the same file and settings, with its own llama.cpp context.

        The weights are memory-mapped, so they are shared; only the context (its KV cache) is
        new. Summaries written by the sibling leave this model's prompt cache intact, and can run
        while this model answers (on ``n_threads`` threads of their own). The first sibling also
        evaluates the prefixes handed to :meth:`warm`.
        """
        sibling = LlamaCppChatModel.from_config(
            self._config.model_copy(update={"n_threads": n_threads, "n_ctx": self._n_ctx})
        )
        if self._helper is None:
            self._helper = sibling
        return sibling

    @property
    def context_window(self) -> int:
        """The context length llama.cpp allocated, in tokens."""
        return self._n_ctx

    @property
    def token_counter(self) -> LlamaCppTokenCounter:
        """The model's own tokenizer and chat template (shares the loaded vocabulary)."""
        return self._counter

    @property
    def model_path(self) -> Path:
        """The GGUF file."""
        return self._path

    @property
    def name(self) -> str:
        """The GGUF file's name without ``.gguf`` (reported as ``ChatResult.model``)."""
        return self._name

    @property
    def parameters(self) -> int:
        """The model's parameter count (how much it can read at once; see ``memstrata.adapters.reader``)."""
        return int(self._llama._model.n_params())

    @property
    def n_threads(self) -> int:
        """Threads llama.cpp uses."""
        return int(self._llama.n_threads)

    @property
    def llama(self) -> Llama:
        """The underlying ``llama_cpp.Llama`` (for benchmarks and advanced use; not thread-safe)."""
        return self._llama

    def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        json_schema: dict[str, Any] | None = None,
        stop: Sequence[str] = (),
    ) -> ChatResult:
        """Generate a reply; with ``json_schema`` the reply is grammar-constrained to that schema.

        Args:
            messages: the prompt, oldest first.
            max_tokens: the most tokens to generate (at least 1).
            temperature: 0 is greedy (deterministic).
            json_schema: a JSON schema the reply must follow; the reply text is then JSON.

        Returns:
            The reply and the token usage llama.cpp reports.

        Raises:
            InvalidInput: no messages, ``max_tokens`` < 1, a negative temperature, or messages the
                chat template rejects.
            PromptTooLong: prompt plus ``max_tokens`` exceeds the window (nothing is evaluated).
            OutputParseError: ``json_schema`` was given and the reply is not JSON (e.g. cut at max_tokens).
            ModelError: llama.cpp failed.
        """
        prompt_tokens = self._check_request(messages, max_tokens, temperature)
        response_format: ChatCompletionRequestResponseFormat | None = (
            {"type": "json_object", "schema": json_schema} if json_schema is not None else None
        )
        self._warms.wait_for(lambda: self._counter.tokenize_prompt(messages))
        with self._exclusive():
            try:
                response: Any = self._llama.create_chat_completion(
                    messages=cast(Any, [m.to_openai() for m in messages]),
                    max_tokens=max_tokens,
                    temperature=temperature,
                    response_format=response_format,
                    stop=list(stop) or None,
                    repeat_penalty=self._config.repeat_penalty,
                )
            except (ValueError, RuntimeError) as exc:
                raise ModelError(f"llama.cpp failed to generate with {self._path.name}: {exc}") from exc
        choice = response["choices"][0]
        text = choice["message"].get("content") or ""
        usage = response["usage"]
        if usage["prompt_tokens"] != prompt_tokens:
            _log.warning(
                "token count mismatch for %s: counted %d prompt tokens, llama.cpp evaluated %d",
                self._path.name,
                prompt_tokens,
                usage["prompt_tokens"],
            )
        finish_reason = choice.get("finish_reason") or "stop"
        if json_schema is not None:
            _check_json(text, finish_reason, max_tokens)
        return ChatResult(
            text=text,
            usage=TokenUsage(
                prompt_tokens=usage["prompt_tokens"], completion_tokens=usage["completion_tokens"]
            ),
            finish_reason=finish_reason,
            model=self._name,
        )

    def warm(self, messages: Sequence[ChatMessage]) -> int:
        """Evaluate the start of a coming prompt into this model's prompt cache, so the turn that
        begins with ``messages`` evaluates only what follows them.

        With a sibling (see :meth:`sibling`), the tokens are evaluated in the sibling's context, on
        its threads, and its cache cells are then copied here in one step: a turn this model is
        answering meanwhile is not held up. Without one, they are evaluated here, between turns.

        Returns:
            The tokens evaluated (0 when this model held them already).

        Raises:
            InvalidInput: the chat template rejects the messages.
            ModelError: llama.cpp failed (the cache is then empty; nothing else is lost).
        """
        tokens = self._counter.tokenize_prompt(messages)
        # Up to where any next message starts (the template's generation prompt is not kept).
        follow = self._counter.tokenize_prompt([*messages, ChatMessage(role="user", content="?")])
        tokens = tokens[: common_length(tokens, follow)]
        if not tokens or len(tokens) >= self._n_ctx:
            return 0
        try:
            helper = self._helper
            if helper is not None:
                with helper._exclusive(), self._warms.warming(tokens):
                    warmed = None if helper._closed else evaluate_prefix(helper._llama, tokens)
                    prefix = None if helper._closed else copy_prefix(helper._llama)
                with self._exclusive():
                    if self._closed or self._holds(tokens):
                        return 0
                    if warmed is not None and prefix is not None and paste_prefix(self._llama, prefix):
                        return warmed
            with self._exclusive():
                return 0 if self._closed else evaluate_prefix(self._llama, tokens)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"llama.cpp failed to warm {self._path.name}'s prompt cache: {exc}") from exc

    def _holds(self, tokens: Sequence[int]) -> bool:
        return common_length(self._llama.input_ids[: self._llama.n_tokens].tolist(), tokens) >= len(tokens)

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
    ) -> Generator[str, None, None]:
        """Yield the reply in pieces as llama.cpp produces them.

        The checks of :meth:`complete` run before the first piece; the model stays busy until the
        iterator is exhausted or closed (another call from the same thread meanwhile raises
        InvalidInput; other threads wait).

        Raises:
            InvalidInput, PromptTooLong, ModelError: as :meth:`complete`.
        """
        self._check_request(messages, max_tokens, temperature)
        return self._stream(messages, max_tokens, temperature, stop)

    def _stream(
        self, messages: Sequence[ChatMessage], max_tokens: int, temperature: float, stop: Sequence[str]
    ) -> Generator[str, None, None]:
        self._warms.wait_for(lambda: self._counter.tokenize_prompt(messages))
        with self._exclusive():
            try:
                chunks: Any = self._llama.create_chat_completion(
                    messages=cast(Any, [m.to_openai() for m in messages]),
                    max_tokens=max_tokens,
                    temperature=temperature,
                    stream=True,
                    stop=list(stop) or None,
                    repeat_penalty=self._config.repeat_penalty,
                )
                for chunk in chunks:
                    piece = chunk["choices"][0]["delta"].get("content")
                    if piece:
                        yield piece
            except (ValueError, RuntimeError) as exc:
                raise ModelError(f"llama.cpp failed to generate with {self._path.name}: {exc}") from exc

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        if self._holder == threading.get_ident():
            raise InvalidInput(
                "this thread is still reading a stream from this model: exhaust or close() that iterator first"
            )
        with self._lock:
            self._holder = threading.get_ident()
            try:
                yield
            finally:
                self._holder = None

    def _check_request(self, messages: Sequence[ChatMessage], max_tokens: int, temperature: float) -> int:
        return check_chat_request(
            self._counter,
            messages,
            max_tokens=max_tokens,
            temperature=temperature,
            window=self.context_window,
            model_label=self._name,
        )

    def close(self) -> None:
        """Free the weights and context; the model and its counter cannot be used afterwards."""
        with self._exclusive():
            self._closed = True
            self._llama.close()

    def __enter__(self) -> LlamaCppChatModel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LlamaCppChatModel({str(self._path)!r}, n_ctx={self.context_window})"


def _check_json(text: str, finish_reason: str, max_tokens: int) -> None:
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        cut = finish_reason == "length"
        hint = f" (generation stopped at max_tokens={max_tokens}: raise it)" if cut else ""
        raise OutputParseError(
            f"the model's constrained output is not valid JSON{hint}: {exc}; got {text[:200]!r}"
        ) from exc
