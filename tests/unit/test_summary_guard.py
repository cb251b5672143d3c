"""The summary guard on real small-model outputs: loops, echoed transcripts and invention are
rejected; short factual summaries pass."""

from __future__ import annotations

import pytest
from memstrata.summary_guard import content_words, echoed_lines, faithfulness, reject_reason
from memstrata.testing import WordTokenCounter

SOURCE = "\n".join(
    [
        "Caroline: I went to the LGBTQ support group yesterday and it was so powerful.",
        "Melanie: That's amazing! What happened there?",
        "Caroline: The transgender stories were inspiring. I'm thinking of studying counseling.",
        "Melanie: You'd be a great counselor. I ran a charity race for mental health last Saturday.",
        "Caroline: Wow, how far did you run?",
        "Melanie: 5 km! It took me 28 minutes, and the traffic on the way there was annoying.",
        "Caroline: I'm sure you're right, 20 minutes in traffic is annoying.",
        "Melanie: My kids and I are going camping at the beach next month.",
    ]
)
PROMPT = f"Conversation from 8 May 2023 to 8 May 2023:\n{SOURCE}\n\nSummarize this conversation."


def reason(summary: str, source: str = SOURCE) -> str | None:
    return reject_reason(summary, source=source, prompt=PROMPT, counter=WordTokenCounter())


@pytest.mark.parametrize(
    "summary",
    [
        # Seen from SmolLM2-135M in `make demo` (issue 15).
        "I'm sure you're right, 20 minutes is annoying, 10 minutes is annoying, and 10 minutes is "
        "annoying. I'm sure you're right, 10 minutes is annoying, and 10 minutes is annoying.",
        "Caroline went to a support group. Caroline went to a support group. Caroline went to a "
        "support group. Caroline went to a support group.",
    ],
)
def test_loops_are_rejected(summary: str) -> None:
    assert (reason(summary) or "").startswith("the summary repeats itself")


@pytest.mark.parametrize(
    "summary",
    [
        "user: I went to the support group.\nassistant: That's amazing!\nuser: I'm studying counseling.",
        "Caroline: went to the LGBTQ support group. Melanie: ran a charity race, 5 km in 28 minutes.",
        "The user: went to the support group. The assistant: That's amazing.",
    ],
)
def test_transcripts_echoed_with_role_or_speaker_prefixes_are_rejected(summary: str) -> None:
    assert (reason(summary) or "").startswith("the summary echoes the transcript")


@pytest.mark.parametrize(
    "summary",
    [
        # Fluent, and mostly made up (the kind of summary the small model writes from a long chunk).
        "Caroline and Melanie planned a wedding in Paris with their parents, bought a new car and "
        "adopted a golden retriever named Max in October 2021.",
        "The speakers argued about politics, taxes and the election, then cooked dinner together.",
    ],
)
def test_invented_summaries_are_rejected(summary: str) -> None:
    assert (reason(summary) or "").startswith("the summary invents")
    assert faithfulness(summary, SOURCE) < 0.6


@pytest.mark.parametrize(
    "summary",
    [
        "Caroline went to an LGBTQ support group and is thinking of studying counseling. Melanie ran "
        "a 5 km charity race for mental health in 28 minutes last Saturday and is going camping at "
        "the beach with her kids next month.",
        "Caroline found the transgender stories at the LGBTQ support group inspiring. Melanie ran a charity "
        "race last Saturday (5 km, 28 minutes; 20 minutes of traffic) and plans a beach camping trip.",
    ],
)
def test_short_factual_summaries_pass(summary: str) -> None:
    assert reason(summary) is None
    assert faithfulness(summary, SOURCE) >= 0.8


def test_faithfulness_counts_content_words_with_crude_stems() -> None:
    assert content_words("Caroline discussed the 5 km race with her kids.") == [
        "caroline",
        "km",
        "race",
        "kids",
    ]
    assert faithfulness("Melanie hiked.", "Melanie: I love hiking.") == 1.0
    assert faithfulness("Melanie hiked in Peru.", "Melanie: I love hiking.") == pytest.approx(2 / 3)
    assert faithfulness("They talked.", "anything") == 1.0  # nothing to check


def test_speaker_names_count_as_prefixes_only_before_a_colon() -> None:
    assert echoed_lines("Caroline said: hello. Melanie likes it.", SOURCE) == 0
    assert echoed_lines("Caroline: hello\nMelanie: hi", SOURCE) == 2
