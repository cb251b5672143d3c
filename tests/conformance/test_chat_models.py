"""The ChatModel contract against every chat model in the repository but the server's (see
test_openai_compat_ports.py): the scripted double and llama.cpp on the default model."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from memstrata.adapters.llamacpp import LlamaCppChatModel
from memstrata.ports import ChatModel
from memstrata.schemas import ChatMessage
from memstrata.testing import ScriptedChatModel
from memstrata.testing.contracts import ChatModelContract


def story(messages: Sequence[ChatMessage]) -> str:
    return f"Once upon a time, in answer to {messages[-1].content!r}, a dragon baked bread all day long."


class TestScriptedChatModel(ChatModelContract):
    def make_chat_model(self) -> ScriptedChatModel:
        return ScriptedChatModel(story, context_window=512)


@pytest.fixture(scope="module")
def smollm2() -> Iterator[LlamaCppChatModel]:
    with LlamaCppChatModel(n_ctx=1024, n_threads=1) as model:
        yield model


@pytest.mark.model
class TestLlamaCppChatModel(ChatModelContract):
    @pytest.fixture
    def chat_model(self, smollm2: LlamaCppChatModel) -> ChatModel:
        return smollm2
