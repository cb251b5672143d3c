"""Checks every store runs on a batch before writing any of it, and on a search before running it."""

from __future__ import annotations

import math
from collections.abc import Sequence

from memstrata.errors import InvalidEpisode, InvalidInput, PromptTooLong
from memstrata.ports import TokenCounter
from memstrata.schemas import ChatMessage, Episode, Scope, SearchQuery, check_text

DEFAULT_MAX_TEXT_BYTES = 1_000_000


def check_batch(
    episodes: Sequence[Episode],
    vectors: Sequence[Sequence[float]],
    *,
    dimensions: int,
    max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES,
    vectors_checked: bool = False,
) -> None:
    """Raise on the first bad item; a batch that passes can be written whole.

    The text checks repeat the schema's because ``model_construct`` bypasses validation.
    ``vectors_checked``: the caller checked every vector already (all of ``dimensions`` values,
    all finite), e.g. as one array.

    Raises:
        InvalidEpisode: naming the item's index, the field and the problem.
    """
    if len(episodes) != len(vectors):
        raise InvalidEpisode(f"{len(episodes)} episodes but {len(vectors)} vectors")
    seen: set[object] = set()
    for index, (episode, vector) in enumerate(zip(episodes, vectors, strict=True)):
        if not isinstance(episode, Episode):
            raise InvalidEpisode(f"expected an Episode, got {type(episode).__name__}", index=index)
        check_episode(episode, index=index, max_text_bytes=max_text_bytes)
        if not vectors_checked:
            check_vector(vector, dimensions=dimensions, index=index)
        if episode.id in seen:
            raise InvalidEpisode(f"duplicate id {episode.id} in one batch", index=index, field="id")
        seen.add(episode.id)


def check_texts(texts: Sequence[str]) -> None:
    """Check an embedder's batch before any model sees it.

    Raises:
        InvalidInput: ``texts`` is a single string (it would be embedded letter by letter), or an
            item is not a string.
    """
    if isinstance(texts, str | bytes):
        raise InvalidInput("embed() takes a sequence of texts, got a single string (wrap it in a list)")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidInput(f"item {index}: expected a str, got {type(text).__name__}")


def check_scope(scope: object) -> Scope:
    """Return ``scope`` if it is a :class:`Scope`: every store call is scoped.

    Raises:
        InvalidInput: anything else (None, a user id string, a dict).
    """
    if not isinstance(scope, Scope):
        raise InvalidInput(
            f"a store call needs a memstrata Scope, got {type(scope).__name__} (e.g. Scope(user_id='alice'))"
        )
    return scope


def check_leg(query: SearchQuery, *, dimensions: int) -> bool:
    """Check a :meth:`~memstrata.ports.EpisodeStore.rank` leg; return whether it ranks anything
    (a vector, or a text with a word character).

    Raises:
        InvalidInput: no valid scope, both a vector and a text, or a bad vector.
    """
    check_scope(getattr(query, "scope", None))
    has_text = bool(query.text.strip())
    if query.vector is not None and has_text:
        raise InvalidInput(
            "rank takes one retriever at a time (a vector or a text, not both): "
            "memstrata.fusion.hybrid_search fuses the two"
        )
    if query.vector is not None:
        check_vector(query.vector, dimensions=dimensions)
    return query.vector is not None or has_text


def check_episode(episode: Episode, *, index: int | None = None, max_text_bytes: int) -> None:
    """Raise :class:`InvalidEpisode` if the episode's text cannot be stored."""
    if not isinstance(getattr(episode, "scope", None), Scope):  # model_construct skips the schema
        raise InvalidEpisode("the episode has no scope", index=index, field="scope")
    if not isinstance(getattr(episode, "text", None), str):
        raise InvalidEpisode("the episode has no text", index=index, field="text")
    try:
        check_text(episode.text)
    except ValueError as exc:
        raise InvalidEpisode(str(exc), index=index, field="text") from None
    if not episode.text.strip():
        raise InvalidEpisode("text is empty", index=index, field="text")
    size = len(episode.text.encode("utf-8"))
    if size > max_text_bytes:
        raise InvalidEpisode(
            f"text is {size} bytes, over the limit of {max_text_bytes} "
            "(raise max_text_bytes in the store's configuration to accept it)",
            index=index,
            field="text",
        )


def check_vector(vector: Sequence[float], *, dimensions: int, index: int | None = None) -> None:
    """Raise :class:`InvalidEpisode` unless the vector has the store's dimension and finite values."""
    try:
        length = len(vector)
    except TypeError:
        raise InvalidEpisode(
            f"vector is a {type(vector).__name__}, not a sequence", index=index, field="vector"
        ) from None
    if length != dimensions:
        raise InvalidEpisode(
            f"vector has {length} dimensions, the store holds {dimensions}", index=index, field="vector"
        )
    try:
        # Fast path (docs/benchmarks.md): any NaN or infinity makes the sum non-finite.
        if math.isfinite(sum(vector)):
            return
    except (TypeError, ValueError, OverflowError):
        pass  # not plain numbers, or a sum too large: check value by value
    for value in vector:
        problem = _vector_value_problem(value)
        if problem is not None:
            raise InvalidEpisode(f"vector contains {problem}", index=index, field="vector")


def _vector_value_problem(value: object) -> str | None:
    if isinstance(value, str | bytes):
        return f"a {type(value).__name__}, not a number"
    try:
        number = float(value)  # type: ignore[arg-type]  # any object is tried; TypeError says no
    except OverflowError:
        number = math.inf
    except (TypeError, ValueError):
        return f"a {type(value).__name__}, not a number"
    return None if math.isfinite(number) else "NaN or infinity"


def check_chat_request(
    counter: TokenCounter,
    messages: Sequence[ChatMessage],
    *,
    max_tokens: int,
    temperature: float,
    window: int,
    model_label: str,
) -> int:
    """Check a chat request before any model runs it; return the prompt's tokens.

    Shared by every :class:`~memstrata.ports.ChatModel` so none lets its backend truncate silently.

    Raises:
        InvalidInput: ``max_tokens < 1`` (llama.cpp reads 0 as "fill the window") or a negative temperature.
        PromptTooLong: the prompt plus ``max_tokens`` does not fit ``window`` (both counts given).
    """
    if max_tokens < 1:
        raise InvalidInput(f"max_tokens must be at least 1, got {max_tokens}")
    if temperature < 0:
        raise InvalidInput(f"temperature must be >= 0, got {temperature}")
    prompt_tokens = counter.count_prompt(messages)
    if prompt_tokens + max_tokens > window:
        raise PromptTooLong(
            f"the prompt plus max_tokens={max_tokens} does not fit {model_label}'s {window}-token window; "
            "shorten the prompt or lower max_tokens",
            prompt_tokens=prompt_tokens,
            available_tokens=window - max_tokens,
        )
    return prompt_tokens
