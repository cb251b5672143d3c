"""``create_app``: an OpenAI-compatible ``/v1/chat/completions`` server with memory in front of
an upstream model (a local GGUF, or any OpenAI-compatible server).

Point an unmodified OpenAI client at it (``base_url="http://127.0.0.1:8000/v1"``,
``api_key=`` a key from ``memstrata keys create``): each request is answered from its user's
memory and its new messages and the answer are recorded. The key decides the user (see
:mod:`.auth`): a user key acts for its user, a tenant key for the user the request names
(``user=`` or ``X-Memstrata-User``; the header wins). ``X-Memstrata-Session`` names the
conversation (default "default"). History turns the session never stored (a conversation begun
elsewhere) are stored before answering, once each (see :mod:`memstrata.adapters.history`); an
answer reports how many under ``memstrata.history_stored``.

Errors are JSON in OpenAI's shape (``{"error": {"message", "type", "param", "code"}}``): 401
without a valid key, 403 for a user the key may not name, 400 for bad input (no user, bad messages, a prompt too long even without memory:
``code="context_length_exceeded"``), 502 when the upstream model fails, 503 when the store does.
A failed turn records nothing; a stream the client abandons records nothing either.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from typing import Any

from fastapi import BackgroundTasks, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from memstrata.adapters.conversation import Prompt, abuild_prompt, split_exchange
from memstrata.adapters.history import aremember_history
from memstrata.adapters.openai_pipeline import arecord, as_chat_messages, record
from memstrata.errors import ConfigError, MemstrataError, ModelError
from memstrata.memory import Memory
from memstrata.ports import StreamingChatModel
from memstrata.replies import REPLY_STOPS
from memstrata.schemas import ChatMessage, Scope, check_text
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException

from .auth import USER_HEADER, Access, KeyVerifier, RequestRefused
from .relay import StreamRelay
from .wire import (
    ChatCompletionRequest,
    completion_body,
    error_body,
    error_status,
    new_completion_id,
    sse,
    stream_chunk,
    text_content,
)

__all__ = ["SESSION_HEADER", "USER_HEADER", "create_app"]

SESSION_HEADER = "X-Memstrata-Session"
_log = logging.getLogger(__name__)

MemorySource = Memory | Callable[[], AbstractContextManager[Memory]]


class _Service:
    """What a request needs: the memory and the upstream model (set when the app starts)."""

    def __init__(
        self,
        upstream: StreamingChatModel | None,
        agent_id: str,
        max_tokens: int | None,
        name: str | None,
        access: Access,
    ) -> None:
        self.memory: Memory | None = None
        self.access = access
        self.upstream = upstream
        self.agent_id = agent_id
        self.max_tokens = max_tokens
        self.name = name
        self.compress_lock = threading.Lock()

    def bind(self, memory: Memory) -> None:
        self.access.bind(memory)
        self.memory = memory
        if self.upstream is None:
            if not isinstance(memory.model, StreamingChatModel):
                raise ConfigError(
                    "memstrata serve needs an upstream model: pass upstream= or a Memory with a model"
                )
            self.upstream = memory.model

    def ready(self) -> tuple[Memory, StreamingChatModel]:
        if self.memory is None or self.upstream is None:
            raise ConfigError("the server has not started (no memory bound)")
        return self.memory, self.upstream

    @property
    def model_name(self) -> str:
        # Never the OpenAI-compatible model's `model` property: it may ask the upstream server.
        return self.name or str(getattr(self.upstream, "name", None) or "memstrata")

    def compress(self, memory: Memory, scope: Scope) -> None:
        if not memory.config.compression.enabled:
            return
        try:
            with self.compress_lock:
                memory.compress(scope=scope)
        except MemstrataError:
            _log.exception("compression after a turn failed for %s (the turn is stored)", scope)


def create_app(
    memory: MemorySource,
    *,
    upstream: StreamingChatModel | None = None,
    agent_id: str = "default",
    max_tokens: int | None = None,
    model_name: str | None = None,
    keys: KeyVerifier | None = None,
    trust_user_header: bool = False,
) -> FastAPI:
    """The FastAPI app.

    Args:
        memory: a :class:`Memory`, or a factory of context managers yielding one (entered when
            the app starts, exited when it stops; e.g. ``memstrata.adapters.defaults.open_memory``).
        upstream: the model that answers; default the memory's model.
        agent_id: the agent every request's scope belongs to.
        max_tokens: the answer's length when a request gives none; default the memory's reserve.
        model_name: the name ``/v1/models`` lists and answers carry; default the upstream's.
        keys: where API keys are checked; default the PostgreSQL store's own
            (:class:`~memstrata.adapters.postgres.api_keys.ApiKeys`).
        trust_user_header: take the user from the request without a key (logs a warning when
            the app starts; only behind a gateway that authenticates every caller).

    Returns:
        The app: ``POST /v1/chat/completions``, ``GET /v1/models`` (both need a key), ``GET /healthz``.

    Raises:
        ConfigError: keys and ``trust_user_header`` both given, or neither and the store keeps no keys.
    """
    access = Access(keys, trust_user_header=trust_user_header)
    service = _Service(upstream, agent_id, max_tokens, model_name, access)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # While the app runs, requests use the memory's async face on psycopg's async pool.
        from memstrata.adapters.postgres.async_store import async_face

        with memory() if not isinstance(memory, Memory) else nullcontext(memory) as opened:
            async with async_face(opened) as served:
                service.bind(served)
                app.state.memory = served
                yield

    app = FastAPI(title="memstrata", lifespan=lifespan)
    if isinstance(memory, Memory):
        service.bind(memory)  # usable without the lifespan (e.g. a TestClient not used as a context)

    _install_error_handlers(app)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "model": service.model_name, "ready": service.memory is not None}

    def authenticated(request: Request) -> None:
        # A dependency: runs before the body is read, so a caller without a key learns nothing more.
        request.state.api_key = service.access.key(request.headers.get("authorization"))

    @app.get("/v1/models", dependencies=[Depends(authenticated)])
    def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": service.model_name, "object": "model", "created": 0, "owned_by": "memstrata"}],
        }

    @app.post("/v1/chat/completions", response_model=None, dependencies=[Depends(authenticated)])
    async def chat_completions(
        body: ChatCompletionRequest, request: Request, background: BackgroundTasks
    ) -> JSONResponse | StreamingResponse:
        return await _chat_completion(service, body, request, background)

    return app


def _install_error_handlers(app: FastAPI) -> None:
    """Every error in OpenAI's shape: memstrata's own, Starlette's, and bodies that do not validate."""

    @app.exception_handler(MemstrataError)
    async def memstrata_error(_: Request, exc: MemstrataError) -> JSONResponse:
        if isinstance(exc, RequestRefused):
            headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
            body = error_body(exc, code=exc.code, param=exc.param)
            return JSONResponse(body, status_code=exc.status, headers=headers)
        return JSONResponse(error_body(exc), status_code=error_status(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # e.g. a body nested too deep to parse, an unknown path: OpenAI's error shape too
        code = "invalid_request" if exc.status_code < 500 else "internal_error"
        return JSONResponse(
            error_body(str(exc.detail), code=code), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _invalid_request(exc.errors())
        return JSONResponse(error_body(message, param=param), status_code=400)


async def _chat_completion(
    service: _Service, body: ChatCompletionRequest, request: Request, background: BackgroundTasks
) -> JSONResponse | StreamingResponse:
    """One ``/v1/chat/completions`` request: store unseen history, plan, answer, record, on
    ``Memory``'s async face (the model and a stream's pieces in worker threads)."""
    refusal = body.refusal()
    if refusal is not None:
        raise RequestRefused(refusal, param=None, code="unsupported")
    mem, model = service.ready()
    scope = _scope(body, request, service)
    messages = as_chat_messages([{**m, "content": text_content(m.get("content"))} for m in body.messages])
    exchange = split_exchange(messages)
    limit = body.max_completion_tokens or body.max_tokens or service.max_tokens
    limit = limit or mem.config.planner.reserve_tokens
    if limit >= model.context_window:
        asked = "max_completion_tokens" if body.max_completion_tokens else "max_tokens"
        raise RequestRefused(
            f"{asked}={limit} leaves no room for a prompt in the model's {model.context_window}-token "
            "window: ask for a shorter answer",
            param=asked if body.max_completion_tokens or body.max_tokens else None,
            code="context_length_exceeded",
        )
    history_stored = await aremember_history(mem, messages, exchange.new_indices, scope=scope)
    prompt = await abuild_prompt(
        mem,
        exchange,
        scope=scope,
        counter=model.token_counter,
        window=model.context_window,
        reserve=limit,
    )
    new = [messages[i] for i in exchange.new_indices]
    name = body.model or service.model_name
    temperature = body.temperature or 0.0
    if body.stream:
        return await asyncio.to_thread(
            _stream, service, mem, model, prompt, new, scope, name, limit, temperature, body.include_usage
        )
    result = await asyncio.to_thread(
        model.complete, list(prompt.messages), max_tokens=limit, temperature=temperature, stop=REPLY_STOPS
    )
    answer = _answer(result.text)
    await arecord(mem, [*new, answer], scope=scope, compress=False)
    background.add_task(service.compress, mem, scope)
    extra = {**_accounting(prompt, scope), "history_stored": history_stored}
    return JSONResponse(
        completion_body(
            new_completion_id(),
            name,
            result.text,
            str(result.finish_reason),
            result.usage.prompt_tokens,
            result.usage.completion_tokens,
            extra,
        )
    )


def _invalid_request(errors: Sequence[Any]) -> tuple[str, str | None]:
    """The message and ``param`` of a body that did not validate (or did not parse)."""
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":  # its loc holds a character offset, not a field
        offset = next((p for p in first.get("loc", ()) if isinstance(p, int)), None)
        reason = (first.get("ctx") or {}).get("error") or first.get("msg", "malformed")
        return f"invalid request: the body is not valid JSON ({reason} at character {offset})", None
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None
    return f"invalid request: {where + ': ' if where else ''}{first.get('msg', 'malformed body')}", where


def _scope(body: ChatCompletionRequest, request: Request, service: _Service) -> Scope:
    """The request's scope: its user as its key allows (see :class:`.auth.Access`)."""
    user = service.access.user(request.state.api_key, request.headers.get(USER_HEADER) or body.user)
    session = request.headers.get(SESSION_HEADER) or "default"
    try:
        return Scope(user_id=user, agent_id=service.agent_id, session_id=session)
    except ValueError as exc:
        raise RequestRefused(f"bad user or session id: {exc}", param="user", code="invalid_user") from exc


def _answer(text: str) -> ChatMessage:
    """The model's answer as the message to record.

    Raises:
        ModelError: the answer holds a NUL byte or a lone surrogate (it cannot be stored).
    """
    try:
        check_text(text)
    except ValueError as exc:
        raise ModelError(f"the model's answer cannot be stored: {exc}") from None
    return ChatMessage(role="assistant", content=text.strip() or "(no answer)")


def _accounting(prompt: Prompt, scope: Scope) -> dict[str, Any]:
    plan = prompt.plan
    return {
        "scope": str(scope),
        "prompt_tokens": prompt.prompt_tokens,
        "memory_tokens": plan.memory_tokens,
        "recalled": [str(h.episode.id) for h in plan.recalled],
        "left_out": len(plan.left_out),
    }


def _stream(
    service: _Service,
    memory: Memory,
    model: StreamingChatModel,
    prompt: Prompt,
    new: list[ChatMessage],
    scope: Scope,
    name: str,
    max_tokens: int,
    temperature: float,
    include_usage: bool,
) -> StreamingResponse:
    relay = StreamRelay(
        model.stream(list(prompt.messages), max_tokens=max_tokens, temperature=temperature, stop=REPLY_STOPS)
    )
    pieces = iter(relay)
    # Wait for the first piece now, so an upstream that is down is a 502, not a broken stream.
    first = next(pieces, "")
    completion_id = new_completion_id()
    finished = threading.Event()

    def events() -> Iterator[str]:
        text = first
        try:
            yield sse(stream_chunk(completion_id, name, {"role": "assistant", "content": ""}))
            if first:
                yield sse(stream_chunk(completion_id, name, {"content": first}))
            for piece in pieces:
                text += piece
                yield sse(stream_chunk(completion_id, name, {"content": piece}))
            answer = _answer(text)
            record(memory, [*new, answer], scope=scope, compress=False)
        except MemstrataError as exc:
            _log.warning("stream for %s failed after it started: %s (nothing recorded)", scope, exc)
            yield sse(error_body(exc))
            return
        finally:
            relay.cancel()  # a no-op once the stream ended; frees the model if the client left
        finished.set()
        yield sse(stream_chunk(completion_id, name, {}, finish_reason="stop"))
        if include_usage:
            used = model.token_counter.count(text)
            usage = {
                "prompt_tokens": prompt.prompt_tokens,
                "completion_tokens": used,
                "total_tokens": prompt.prompt_tokens + used,
            }
            yield sse(stream_chunk(completion_id, name, None, usage=usage))
        yield sse("[DONE]")

    def after() -> None:
        if finished.is_set():
            service.compress(memory, scope)

    return StreamingResponse(events(), media_type="text/event-stream", background=BackgroundTask(after))
