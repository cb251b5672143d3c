"""LangChain's standard chat-model suites (``langchain-tests``) against ``ChatMemstrataLlamaCpp`` on
the default model (SmolLM2-135M-Instruct).

Every test instance shares one loaded model (``llm=``, a documented constructor argument): the suites
build a new chat model per test, and loading the weights each time made the run slow and its memory
grow with every failure's traceback. Answers are capped at 64 tokens to keep the run short.

What remains expected to fail is a capability of a 135M model, never a parameter or parsing bug:
the xfail below names the capability and what the model does instead (2 of the 38 integration
tests that run, December 2026). Before llama.cpp's repeat penalty (1.1 by default) the model also
looped inside JSON strings for TypedDict and optional-field schemas. ``strict=False``: a bigger
model may pass them.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests
from memstrata.adapters.langchain import ChatMemstrataLlamaCpp
from memstrata.adapters.llamacpp import LlamaCppChatModel

pytestmark = [pytest.mark.model]

AUTO_TOOL_CHOICE = (
    "tool calling with tool_choice='auto': the 135M model answers in prose ('The value of ... is ...') "
    "instead of calling the tool"
)


@cache
def shared_model() -> LlamaCppChatModel:
    return LlamaCppChatModel(n_ctx=2048, n_threads=1)


def params() -> dict[str, Any]:
    return {"llm": shared_model()}


def standard_params() -> dict[str, Any]:
    # The suites' standard parameters, with shorter answers (100 tokens by default).
    return {"temperature": 0, "max_tokens": 64, "timeout": 60, "stop": [], "max_retries": 2}


class TestChatMemstrataUnit(ChatModelUnitTests):
    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        return standard_params()

    @property
    def chat_model_class(self) -> type[ChatMemstrataLlamaCpp]:
        return ChatMemstrataLlamaCpp

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return params()


class TestChatMemstrataIntegration(ChatModelIntegrationTests):
    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        return standard_params()

    @property
    def chat_model_class(self) -> type[ChatMemstrataLlamaCpp]:
        return ChatMemstrataLlamaCpp

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return params()

    # Declared, not inferred: what the adapter really does.
    @property
    def has_tool_calling(self) -> bool:
        return True

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return True

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return False  # with_structured_output(method="json_mode") is not implemented

    @property
    def supports_image_inputs(self) -> bool:
        return False  # a text-only model

    @pytest.mark.xfail(reason=AUTO_TOOL_CHOICE, raises=AssertionError, strict=False)
    @pytest.mark.parametrize("model", [{}, {"output_version": "v1"}], indirect=True)
    def test_agent_loop(self, model: BaseChatModel) -> None:
        super().test_agent_loop(model)
