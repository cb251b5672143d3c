"""Token counts exactly as llama.cpp evaluates them: the model's own tokenizer and chat template.

A chat prompt is rendered with llama-cpp-python's ``Jinja2ChatFormatter`` from the template in the
GGUF metadata (``tokenizer.chat_template``) and tokenized the way its chat handler does (special
tokens parsed, no extra BOS because the template writes its own). :class:`LlamaCppChatModel` runs
its prompts through a handler built from this same formatter, so ``count_prompt`` equals the
``prompt_tokens`` llama.cpp reports, token for token.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from memstrata.adapters.extras import require
from memstrata.errors import ConfigError, InvalidInput, ModelUnavailable
from memstrata.schemas import ChatMessage

from .model_file import load_vocabulary, resolve_model_path
from .segments import SPLITTABLE_PRETOKENIZERS, SegmentCounts

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp._internals import LlamaModel
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter, LlamaChatCompletionHandler

TemplateSource = Literal["override", "gguf", "chatml-fallback"]

_log = logging.getLogger(__name__)

__all__ = ["LlamaCppTokenCounter", "TemplateSource"]


class LlamaCppTokenCounter:
    """A :class:`~memstrata.ports.TokenCounter` for one GGUF model.

    Constructed from a path it loads the vocabulary only, not the weights. A
    :class:`LlamaCppChatModel` builds its counter from the model it already loaded instead.

    Args:
        model_path: the GGUF file; None is the default model.
        chat_template: a Jinja chat template overriding the file's. A file without one gets
            ChatML, as llama.cpp's server does (a warning is logged).

    Raises:
        ConfigError: no file at ``model_path``, or the chat template does not compile.
        ModelUnavailable: the file cannot be read or is not a GGUF model.
    """

    def __init__(self, model_path: str | Path | None = None, *, chat_template: str | None = None) -> None:
        path = resolve_model_path(model_path)
        vocab = load_vocabulary(path)
        try:
            self._setup(vocab, path, chat_template, owner=None)
        except BaseException:
            vocab.close()  # type: ignore[no-untyped-call]  # llama_cpp leaves LlamaModel.close unannotated
            raise

    @classmethod
    def from_llama(cls, llama: Llama, *, chat_template: str | None = None) -> LlamaCppTokenCounter:
        """The counter of an already loaded model, sharing its vocabulary (nothing is loaded again).

        Args:
            llama: a ``llama_cpp.Llama``.
            chat_template: as in the constructor.
        """
        counter = cls.__new__(cls)
        # llama-cpp-python's own LlamaTokenizer reads the same attribute.
        counter._setup(llama._model, Path(llama.model_path), chat_template, owner=llama)
        return counter

    def _setup(
        self, vocab: LlamaModel, path: Path, chat_template: str | None, *, owner: Llama | None
    ) -> None:
        from llama_cpp.llama_chat_format import CHATML_CHAT_TEMPLATE

        self._vocab = vocab
        self._owner = owner  # keeps the Llama (and so the vocabulary) alive as long as this counter
        self._path = path
        self._metadata: dict[str, str] = dict(vocab.metadata())
        self._source: TemplateSource
        if chat_template is not None:
            self._template, self._source = chat_template, "override"
        elif "tokenizer.chat_template" in self._metadata:
            self._template, self._source = self._metadata["tokenizer.chat_template"], "gguf"
        else:
            _log.warning(
                "%s has no chat template; using ChatML (pass chat_template= to use the model's own)",
                path.name,
            )
            self._template, self._source = CHATML_CHAT_TEMPLATE, "chatml-fallback"
        self._formatter = self._build_formatter()
        self._segments = self._build_segments()
        # Special tokens llama.cpp adds to a prompt that does not write its own (BOS, maybe EOS).
        self._added_specials = len(self._tokenize(b"", add_bos=True, special=True))

    def _build_segments(self) -> SegmentCounts:
        llama_cpp = require("llama_cpp", extra="local", purpose="llama.cpp")

        special = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED
        strips = llama_cpp.LLAMA_TOKEN_ATTR_LSTRIP | llama_cpp.LLAMA_TOKEN_ATTR_RSTRIP
        vocab = self._vocab
        specials = [(t, vocab.token_get_attr(t)) for t in range(vocab.n_vocab())]
        specials = [(t, a) for t, a in specials if a & special]
        texts = {t: vocab.token_get_text(t) for t, _ in specials}
        separator = next(((texts[t], t) for t, a in specials if not a & strips and texts[t]), None)
        pre = self._metadata.get("tokenizer.ggml.pre", "")
        cut_lines = (
            vocab.vocab_type() == llama_cpp.LLAMA_VOCAB_TYPE_BPE
            and pre in SPLITTABLE_PRETOKENIZERS
            and separator is not None
            and not any("\n" in text for text in texts.values())
        )
        return SegmentCounts(
            lambda data: self._tokenize(data, add_bos=False, special=True),
            separator=separator or ("", -1),
            lstrip_specials=[texts[t] for t, a in specials if a & llama_cpp.LLAMA_TOKEN_ATTR_LSTRIP],
            cut_lines=cut_lines,
        )

    def _build_formatter(self) -> Jinja2ChatFormatter:
        import jinja2
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        bos_id, eos_id = self._vocab.token_bos(), self._vocab.token_eos()
        try:
            # The same arguments llama_cpp.Llama passes for a template found in the metadata.
            return Jinja2ChatFormatter(
                template=self._template,
                eos_token=self._vocab.token_get_text(eos_id) if eos_id != -1 else "",
                bos_token=self._vocab.token_get_text(bos_id) if bos_id != -1 else "",
                stop_token_ids=[eos_id],
            )
        except jinja2.TemplateError as exc:
            raise ConfigError(
                f"the chat template ({self._source}) of {self._path.name} does not compile: {exc}"
            ) from exc

    @property
    def model_path(self) -> Path:
        """The GGUF file this counter reads."""
        return self._path

    @property
    def chat_template(self) -> str:
        """The Jinja chat template prompts are rendered with."""
        return self._template

    @property
    def template_source(self) -> TemplateSource:
        """Where the template came from: ``override``, ``gguf`` or ``chatml-fallback``."""
        return self._source

    @property
    def metadata(self) -> dict[str, str]:
        """The GGUF metadata (string values, arrays left out), a copy."""
        return dict(self._metadata)

    @property
    def trained_context_length(self) -> int | None:
        """``<arch>.context_length`` from the metadata, or None when the file does not say."""
        arch = self._metadata.get("general.architecture", "")
        value = self._metadata.get(f"{arch}.context_length")
        return int(value) if value and value.isdigit() else None

    @property
    def counts_by_line(self) -> bool:
        """Whether counts are summed from cached line counts (exact for this model's pre-tokenizer;
        see :mod:`memstrata.adapters.llamacpp.segments`) rather than tokenized whole each time."""
        return self._segments.cut_lines

    def count(self, text: str) -> int:
        """Tokens of a text on its own: no BOS added; special-token text (``<|im_end|>``) is parsed as
        the special token, as it is when the text is part of a prompt."""
        return self._segments.count(text)

    def count_many(self, texts: Sequence[str]) -> list[int]:
        """:meth:`count` of each text, the uncached ones tokenized in one llama.cpp call."""
        return self._segments.count_many(texts)

    def count_prompt(self, messages: Sequence[ChatMessage]) -> int:
        """Tokens llama.cpp evaluates for this chat prompt (template and generation prompt included).

        Raises:
            InvalidInput: no messages, or the chat template rejects them (e.g. roles that do not alternate).
        """
        prompt, added_special = self._render(messages)
        # Equal to len(tokenize_prompt(messages)), from cached line counts (tests compare the two).
        return self._segments.count(prompt) + (0 if added_special else self._added_specials)

    def tokenize_prompt(self, messages: Sequence[ChatMessage]) -> list[int]:
        """The token ids llama.cpp evaluates for this chat prompt.

        Raises:
            InvalidInput: as :meth:`count_prompt`.
        """
        prompt, added_special = self._render(messages)
        # As llama_cpp.llama_chat_format.chat_formatter_to_chat_completion_handler tokenizes it.
        return self._tokenize(prompt.encode("utf-8"), add_bos=not added_special, special=True)

    def render_prompt(self, messages: Sequence[ChatMessage]) -> str:
        """The prompt text the template makes of these messages.

        Raises:
            InvalidInput: as :meth:`count_prompt`.
        """
        return self._render(messages)[0]

    def chat_handler(self) -> LlamaChatCompletionHandler:
        """A llama-cpp-python chat handler that renders prompts exactly as this counter does."""
        return self._formatter.to_chat_handler()

    def _render(self, messages: Sequence[ChatMessage]) -> tuple[str, bool]:
        import jinja2

        if not messages:
            raise InvalidInput("a chat prompt needs at least one message")
        payload: list[Any] = [m.to_openai() for m in messages]
        try:
            result = self._formatter(messages=payload)
        except (ValueError, TypeError, jinja2.TemplateError) as exc:
            raise InvalidInput(
                f"the chat template of {self._path.name} rejected these messages: {exc}"
            ) from exc
        return result.prompt, bool(result.added_special)

    def _tokenize(self, text: bytes, *, add_bos: bool, special: bool) -> list[int]:
        if self._vocab.model is None:
            raise ModelUnavailable(f"the model {self._path.name} was closed; load it again to count tokens")
        tokens: list[int] = self._vocab.tokenize(text, add_bos, special)
        return tokens

    def close(self) -> None:
        """Free the vocabulary if this counter loaded it (a chat model's counter leaves it alone)."""
        if self._owner is None:
            self._vocab.close()  # type: ignore[no-untyped-call]  # llama_cpp leaves LlamaModel.close unannotated

    def __repr__(self) -> str:
        return f"LlamaCppTokenCounter({str(self._path)!r}, template={self._source})"
