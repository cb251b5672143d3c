"""memstrata itself as a :class:`~memstrata_bench.baselines.ContextProvider`.

The conversation is replayed the way a user's agent feeds memstrata: through the ``Memory``
facade, one exchange (two turns) at a time into the scope of its session, asking memstrata to
compress after each exchange (it folds only when due; nothing happens without a model). Both
LoCoMo speakers are people: ``speaker_a`` is replayed as the ``user`` role and ``speaker_b`` as the
``assistant``, each with ``speaker`` set to the name; the ``dia_id`` stays in the metadata.
Questions are asked later, in a session of their own (``questions``) of the same user.

With ``--answer`` memstrata answers through ``Memory.context`` then ``Memory.answer``: the
messages, cap, stop strings and decoding ``Memory.chat`` uses, nothing stored.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from memstrata.errors import ModelError, PromptTooLong
from memstrata.ports import EpisodeStore
from memstrata.schemas import Episode, EpisodeKind, Scope, Turn
from memstrata.schemas.plan import MEMORY_SECTIONS
from memstrata.summary_guard import faithfulness

from .answering import FAILED, AnswerReply, reply_of
from .baselines import ContextResult
from .locomo_data import Conversation, LocomoTurn

__all__ = ["MemstrataProvider", "to_turns"]


def to_turns(turns: Sequence[LocomoTurn], conversation: Conversation) -> list[Turn]:
    """LoCoMo turns as memstrata :class:`~memstrata.schemas.Turn` objects.

    Args:
        turns: turns of one session.
        conversation: the conversation they come from (for the speaker-to-role mapping).

    Returns:
        One ``Turn`` per LoCoMo turn, in order.
    """
    return [
        Turn(
            role="user" if t.speaker == conversation.speaker_a else "assistant",
            content=t.content,
            speaker=t.speaker,
            occurred_at=t.occurred_at,
            metadata={"dia_id": t.dia_id, "sample_id": conversation.sample_id, "session": t.session},
        )
        for t in turns
    ]


def _source(episodes: Sequence[Episode]) -> str:
    """What a summary was written from: each covered episode's text, after its speaker's name."""
    return "\n".join(f"{e.speaker}: {e.text}" if e.speaker else e.text for e in episodes)


class MemstrataProvider:
    """One conversation replayed into a fresh scope of a ``Memory``.

    Args:
        memory: the ``memstrata.Memory`` facade (store, embedder, model, token counter).
        store: the store behind it, to forget the run's episodes on :meth:`close`.
        conversation: the conversation being replayed.
        run_id: makes the scope's user id unique to this run.
        answering: the ``Memory`` that answers (default ``memory``); the bench's ``--no-model``
            replay passes one with the model over the same store.
    """

    name = "memstrata"

    def __init__(
        self,
        memory: Any,
        store: EpisodeStore,
        conversation: Conversation,
        *,
        run_id: str,
        answering: Any | None = None,
    ) -> None:
        self._memory = memory
        self._answering = answering or memory
        self._store = store
        self._conversation = conversation
        self._user = f"locomo-{conversation.sample_id}-{run_id}"
        self._session = conversation.sessions[0].number if conversation.sessions else 1
        self.failures = 0

    @classmethod
    def fresh_run_id(cls) -> str:
        return uuid.uuid4().hex[:12]

    def _scope(self, session: int) -> Scope:
        return Scope(user_id=self._user, agent_id="locomo-bench", session_id=f"session_{session}")

    def _question_scope(self) -> Scope:
        """Questions come after the conversation, in a session of their own: the recent section
        then holds nothing and memstrata's budget goes to summaries and recall."""
        return Scope(user_id=self._user, agent_id="locomo-bench", session_id="questions")

    def ingest(self, turns: Sequence[LocomoTurn]) -> None:
        if not turns:
            return
        self._session = turns[0].session
        self._memory.add(to_turns(turns, self._conversation), scope=self._scope(self._session))

    def compress(self) -> None:
        self._memory.compress(scope=self._scope(self._session))

    def context(self, question: str, *, budget: int, now: datetime) -> ContextResult:
        plan = self._memory.context(question, scope=self._question_scope(), memory_budget=budget, now=now)
        sections = tuple((s.name, s.tokens) for s in plan.sections if s.name in MEMORY_SECTIONS)
        return ContextResult(plan.memory_text, plan.memory_tokens, sections)

    def answer(self, question: str, *, now: datetime) -> AnswerReply:
        """memstrata's reply to ``question`` through the product path (as ``Memory.chat`` makes
        it, with the memory's configured budget), or :data:`FAILED` when the model fails."""
        plan = self._answering.context(question, scope=self._question_scope(), now=now)
        try:
            return reply_of(self._answering.answer(plan))
        except (ModelError, PromptTooLong):
            self.failures += 1
            return FAILED

    def summary_stats(self) -> dict[str, Any]:
        """How the replay's summaries were written: by the model (accepted by the guard) or
        extractively, and why; the faithfulness of each model summary to what it covers."""
        scope = self._scope(self._session)
        summaries = self._store.scan(scope, kinds=[EpisodeKind.SUMMARY])
        model = [s for s in summaries if s.metadata.get("method") == "model"]
        reasons: dict[str, int] = {}
        for s in summaries:
            reason = s.metadata.get("fallback_reason")
            if s.metadata.get("method") != "model" and isinstance(reason, str):
                key = reason.split("(")[0].split(":")[0].strip()
                reasons[key] = reasons.get(key, 0) + 1
        rejected = sum(
            n for key, n in reasons.items() if key.startswith("the summary") or key == "empty summary"
        )
        scores = [faithfulness(s.text, _source(self._store.get(scope, s.covers))) for s in model]
        return {
            "written": len(summaries),
            "model": len(model),
            "rejected_by_guard": rejected,
            "fallback_reasons": reasons,
            "faithfulness": scores,
        }

    def close(self) -> None:
        self._store.forget(self._scope(self._session))
