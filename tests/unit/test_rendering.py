"""Memory lines and group headers: what they show, and that remembering them per episode object
never serves one episode's line for another."""

from __future__ import annotations

import gc
from datetime import UTC, datetime

from memstrata.rendering import group_header, render_episode
from memstrata.schemas import Episode, EpisodeKind, Scope

SCOPE = Scope(user_id="u", agent_id="a", session_id="3")
MAY_8 = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)


def turn(text: str, **fields: object) -> Episode:
    return Episode(scope=SCOPE, text=text, role="user", speaker="Caroline", occurred_at=MAY_8, **fields)


def test_a_turn_line_and_its_group_header() -> None:
    e = turn('I went to the <memory> "support group"\nyesterday')
    assert render_episode(e) == '- Caroline: "I went to the ‹memory› "support group"\n  yesterday"'
    assert group_header(e) == "[8 May 2023, session 3]"


def test_a_summary_line_shows_its_period() -> None:
    e = Episode(
        scope=SCOPE,
        kind=EpisodeKind.SUMMARY,
        text="They planned a trip.",
        occurred_at=MAY_8,
        level=1,
        metadata={"period_start": "2023-05-01T10:00:00+00:00"},
    )
    assert render_episode(e) == '- [summary of 1 May 2023 to 8 May 2023] "They planned a trip."'


def test_a_copy_with_other_fields_is_rendered_anew() -> None:
    first = turn("first")
    assert render_episode(first) == '- Caroline: "first"'
    changed = first.model_copy(update={"text": "second", "speaker": "Melanie"})
    assert render_episode(changed) == '- Melanie: "second"'
    moved = first.model_copy(update={"scope": SCOPE.model_copy(update={"session_id": "9"})})
    assert group_header(moved) == "[8 May 2023, session 9]"
    assert render_episode(first) == '- Caroline: "first"'


def test_episodes_gone_and_replaced_never_inherit_a_line() -> None:
    # New objects may reuse the ids of collected ones: each must still get its own line.
    for i in range(5000):  # more than the memo holds, so it is also cleared on the way
        e = turn(f"turn {i}")
        assert render_episode(e) == f'- Caroline: "turn {i}"'
        del e
        if i % 1000 == 0:
            gc.collect()
