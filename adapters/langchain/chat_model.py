"""``ChatMemstrataLlamaCpp``: a LangChain chat model over memstrata's llama.cpp model.

Why not langchain-community's ``ChatLlamaCpp``: it counts tokens with a GPT-2 tokenizer that
``transformers`` downloads, so counting fails offline and is wrong for the model anyway. This
one counts with the GGUF's own tokenizer and chat template, exactly what llama.cpp evaluates.

Tool calling, honestly: the default model's template (SmolLM2-135M) has no tool syntax, so tools
are described in the system message and a call is a JSON object in the reply (see
:mod:`.tool_prompt`). With ``tool_choice`` "any"/"required"/a tool name, the reply is grammar-
constrained to a valid call; with "auto" the model may answer in prose, and a 135M model often
does, or calls a tool with made-up arguments. Bigger GGUF models do better with the same code.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from memstrata.adapters.llamacpp import LlamaCppChatModel
from memstrata.errors import OutputParseError
from memstrata.schemas import ChatMessage
from pydantic import Field, model_validator

from .messages import to_chat_messages
from .tool_prompt import forced_tool, parse_tool_calls, render_messages, tool_call_schema, tool_names

__all__ = ["ChatMemstrataLlamaCpp", "TemplateTokenCounter"]


class TemplateTokenCounter:
    """A :class:`~memstrata.ports.TokenCounter` that counts chat messages as
    :class:`ChatMemstrataLlamaCpp` sends them (tool calls written into the text), with the model's
    own tokenizer and template. Give it to memstrata's planner when this model answers."""

    def __init__(self, model: LlamaCppChatModel) -> None:
        self._counter = model.token_counter

    def count(self, text: str) -> int:
        return self._counter.count(text)

    def count_many(self, texts: Sequence[str]) -> list[int]:
        return self._counter.count_many(texts)

    def count_prompt(self, messages: Sequence[ChatMessage]) -> int:
        return self._counter.count_prompt(render_messages(messages))


class ChatMemstrataLlamaCpp(BaseChatModel):
    """A LangChain chat model running a GGUF file in-process with llama.cpp, counted exactly.

    Args:
        gguf_path: the GGUF file; None is memstrata's default model (SmolLM2-135M-Instruct).
        n_ctx: the context window; None reads it from the file.
        n_threads: CPU threads; None uses every available core.
        max_tokens: the most tokens an answer may have (overridable per call).
        temperature: 0 is greedy and deterministic.
        llm: an already loaded :class:`LlamaCppChatModel` to share (the fields above are then unused).

    Raises:
        ConfigError, ModelUnavailable: as :class:`LlamaCppChatModel` (the model is loaded on construction).
    """

    gguf_path: str | None = None
    n_ctx: int | None = Field(default=None, ge=64)
    n_threads: int | None = Field(default=None, ge=1)
    max_tokens: int = Field(default=256, ge=1)
    temperature: float = Field(default=0.0, ge=0.0)
    stop: list[str] | None = None
    """Stop sequences for every call (a call's own ``stop`` replaces them)."""
    llm: LlamaCppChatModel | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _load(self) -> ChatMemstrataLlamaCpp:
        if self.llm is None:
            path = Path(self.gguf_path) if self.gguf_path else None
            self.llm = LlamaCppChatModel(path, n_ctx=self.n_ctx, n_threads=self.n_threads)
        return self

    @property
    def _model(self) -> LlamaCppChatModel:
        assert self.llm is not None  # set by the validator
        return self.llm

    @property
    def _llm_type(self) -> str:
        return "memstrata-llamacpp"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self._model.name,
            "n_ctx": self._model.context_window,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        """Tracing parameters: provider ``memstrata``, the GGUF's name (or a per-call ``model``)."""
        model = kwargs.get("model")
        params = LangSmithParams(
            ls_provider="memstrata",
            ls_model_name=model if isinstance(model, str) else self._model.name,
            ls_model_type="chat",
            ls_temperature=float(kwargs.get("temperature", self.temperature)),
            ls_max_tokens=int(kwargs.get("max_tokens") or self.max_tokens),
        )
        if stop or self.stop:
            params["ls_stop"] = list(stop or self.stop or [])
        return params

    @property
    def context_window(self) -> int:
        """The window llama.cpp allocated, in tokens."""
        return self._model.context_window

    @property
    def token_counter(self) -> TemplateTokenCounter:
        """Counts memstrata chat messages exactly as this model receives them."""
        return TemplateTokenCounter(self._model)

    # -- token counting ----------------------------------------------------------------------

    def get_token_ids(self, text: str) -> list[int]:
        """The model's own token ids for ``text`` (no BOS added)."""
        tokens: list[int] = self._model.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        return tokens

    def get_num_tokens(self, text: str) -> int:
        """Tokens of ``text`` with the model's tokenizer."""
        return self._model.token_counter.count(text)

    def get_num_tokens_from_messages(
        self, messages: list[BaseMessage], tools: Sequence[Any] | None = None
    ) -> int:
        """Tokens llama.cpp evaluates for these messages (chat template, tool descriptions and the
        generation prompt included): exact."""
        return self.count_chat_messages(to_chat_messages(messages), tools=tools)

    def count_chat_messages(self, messages: Sequence[ChatMessage], tools: Sequence[Any] | None = None) -> int:
        """As :meth:`get_num_tokens_from_messages`, for memstrata chat messages."""
        rendered = render_messages(messages, _openai_tools(tools))
        return self._model.token_counter.count_prompt(rendered)

    # -- tools -------------------------------------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (any form LangChain accepts). ``tool_choice``: "auto" (default), "none",
        "any"/"required" or a tool name (the last two force a grammar-constrained call)."""
        return self.bind(tools=_openai_tools(tools), tool_choice=tool_choice, **kwargs)

    # -- generation --------------------------------------------------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        message = self._answer(messages, stop or self.stop, kwargs)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        stop = stop or self.stop
        tools = kwargs.get("tools") or []
        if tools and kwargs.get("tool_choice") != "none":
            # A tool call is only known once the whole reply is read: answer, then send it whole.
            message = self._answer(messages, stop, kwargs)
            chunk = AIMessageChunk(
                content=message.content,
                tool_call_chunks=[
                    {"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": i}
                    for i, c in enumerate(message.tool_calls)
                ],
                usage_metadata=message.usage_metadata,
                response_metadata=message.response_metadata,
            )
            yield ChatGenerationChunk(message=chunk)
            return
        prompt = render_messages(to_chat_messages(messages))
        max_tokens = int(kwargs.get("max_tokens") or self.max_tokens)
        temperature = float(kwargs.get("temperature", self.temperature))
        text = ""
        stream = self._model.stream(prompt, max_tokens=max_tokens, temperature=temperature)
        try:
            for piece in stream:
                cut = _cut_at_stop(text + piece, stop)
                if cut is not None:
                    if len(cut) > len(text):
                        yield self._chunk(cut[len(text) :], run_manager)
                    text = cut
                    break
                yield self._chunk(piece, run_manager)
                text += piece
        finally:
            stream.close()
        usage = _usage(self._model.token_counter.count_prompt(prompt), self._model.token_counter.count(text))
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                usage_metadata=usage,
                response_metadata={"model_name": self._model.name, "finish_reason": "stop"},
                chunk_position="last",
            )
        )

    @staticmethod
    def _chunk(piece: str, run_manager: CallbackManagerForLLMRun | None) -> ChatGenerationChunk:
        chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
        if run_manager is not None:
            run_manager.on_llm_new_token(piece, chunk=chunk)
        return chunk

    def _answer(
        self, messages: list[BaseMessage], stop: list[str] | None, options: Mapping[str, Any]
    ) -> AIMessage:
        tools: list[dict[str, Any]] = list(options.get("tools") or [])
        forced = forced_tool(options.get("tool_choice"), tools)
        offered = tools if options.get("tool_choice") != "none" else []
        prompt = render_messages(to_chat_messages(messages), offered)
        max_tokens = int(options.get("max_tokens") or self.max_tokens)
        temperature = float(options.get("temperature", self.temperature))
        schema = tool_call_schema(tools, forced) if forced else None
        result = self._model.complete(
            prompt, max_tokens=max_tokens, temperature=temperature, json_schema=schema
        )
        text = _cut_at_stop(result.text, stop) or result.text
        content, calls = parse_tool_calls(text, tool_names(offered)) if offered else (text, [])
        if forced and not calls:
            raise OutputParseError(f"the model was required to call a tool but answered {text[:200]!r}")
        return AIMessage(
            content=content,
            tool_calls=[
                {"name": c["name"], "args": c["args"], "id": c["id"], "type": "tool_call"} for c in calls
            ],
            usage_metadata=_usage(result.usage.prompt_tokens, result.usage.completion_tokens),
            response_metadata={
                "model_name": result.model,
                "finish_reason": "tool_calls" if calls else result.finish_reason,
            },
        )


def _openai_tools(tools: Sequence[Any] | None) -> list[dict[str, Any]]:
    return [convert_to_openai_tool(t) for t in tools or ()]


def _usage(prompt_tokens: int, completion_tokens: int) -> UsageMetadata:
    return UsageMetadata(
        input_tokens=prompt_tokens,
        output_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
    )


def _cut_at_stop(text: str, stop: Sequence[str] | None) -> str | None:
    """``text`` up to the first stop sequence, or None when none occurs (llama.cpp's chat API
    here takes no stop list, so stops are applied to the text)."""
    positions = [p for p in (text.find(s) for s in stop or () if s) if p >= 0]
    return text[: min(positions)] if positions else None
