"""Which suggestions reach the agent: the best one only when it is probable enough to help, then the
alternatives that may hold the right source even when weaker (they carry a caution in the response)."""

from __future__ import annotations

from dataclasses import dataclass

from assist.service import (
    MIN_SECONDARY_CONFIDENCE,
    MIN_SUGGEST_CONFIDENCE,
    SECONDARY_SHARE,
    shortlist,
)


@dataclass(frozen=True)
class Draft:
    name: str
    confidence: float


def names(drafts: list[Draft]) -> list[str]:
    return [d.name for d in shortlist(drafts)]


def test_best_first_whatever_the_order_they_were_made_in() -> None:
    drafts = [Draft("faq", 0.41), Draft("llm", 0.83), Draft("chat", 0.62)]
    assert names(drafts) == ["llm", "chat", "faq"]


def test_a_weaker_alternative_is_still_shown() -> None:
    # The right source is often the second or third most probable: a 0.79 past chat beside a 0.30 FAQ row
    # (a question where the FAQ row was the right answer) shows both.
    assert names([Draft("chat", 0.79), Draft("faq", 0.30)]) == ["chat", "faq"]


def test_alternatives_far_below_the_best_or_near_zero_are_dropped() -> None:
    best = 0.9
    far = SECONDARY_SHARE * best - 0.01
    assert names([Draft("a", best), Draft("b", far)]) == ["a"]
    low = MIN_SECONDARY_CONFIDENCE - 0.01
    assert names([Draft("a", 0.3), Draft("b", low)]) == ["a"]


def test_nothing_when_even_the_best_is_too_weak() -> None:
    # An off-domain question: everything it finds is below the floor, so the agent sees no suggestion.
    weak = MIN_SUGGEST_CONFIDENCE - 0.01
    assert shortlist([Draft("a", weak), Draft("b", MIN_SECONDARY_CONFIDENCE)]) == []
    assert shortlist([]) == []
