"""The LLM answer path: retrieved chunks -> prompt -> provider -> parsed and grounding-checked answer."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from retrieval.models import SearchHit

from .confidence import Evidence
from .grounding import GroundingCheck, MalformedOutput, parse_model_answer
from .models import ConversationTurn, Language, Tone
from .prompts import ContextBlock, render_answer_request, system_prompt
from .providers import LLMProvider, ProviderError
from .sentences import analyse

log = logging.getLogger(__name__)

MAX_CONTEXT_BLOCKS = 5
MAX_ANSWER_TOKENS = 600


@dataclass(frozen=True)
class GeneratedAnswer:
    """A model answer that passed the post-checks, with the chunks it cites."""

    text: str
    cited: tuple[SearchHit, ...]
    confidence: float


@dataclass(frozen=True)
class Generation:
    """The answer, or why there is none: provider_error | malformed | not_answerable | ungrounded."""

    answer: GeneratedAnswer | None
    failure: str | None = None
    detail: str | None = None


def context_text(hit: SearchHit) -> str:
    """Return the chunk text the model may see: sentences that try to instruct the model are removed."""
    analysis = analyse(hit.text)
    return analysis.clean_text() if analysis.has_injection else hit.text


@lru_cache(maxsize=16)
def _prompt_and_check(purpose: str, language: Language, tone: Tone) -> tuple[str, GroundingCheck]:
    prompt = system_prompt(purpose, language, tone)
    return prompt, GroundingCheck(prompt)


def generate_answer(
    provider: LLMProvider,
    purpose: str,
    hits: Sequence[SearchHit],
    evidence: Sequence[Evidence],
    messages: Sequence[ConversationTurn],
    language: Language,
    tone: Tone,
) -> Generation:
    """Return the model's grounded answer to the (redacted) conversation, or the reason it has none."""
    system, check = _prompt_and_check(purpose, language, tone)
    blocks: list[ContextBlock] = []
    by_id: dict[str, tuple[SearchHit, Evidence]] = {}
    for n, (hit, ev) in enumerate(zip(hits[:MAX_CONTEXT_BLOCKS], evidence, strict=False), start=1):
        text = context_text(hit)
        if not text.strip():
            continue
        block = ContextBlock(f"b{n}", hit.source, hit.title, text)
        blocks.append(block)
        by_id[block.id] = (hit, ev)
    if not blocks:
        return Generation(None, "not_answerable", "no usable context")
    try:
        raw = provider.complete(system, render_answer_request(blocks, messages), max_tokens=MAX_ANSWER_TOKENS)
    except ProviderError as exc:
        log.warning("%s failed: %s after %d attempt(s)", provider.name, exc.kind, exc.attempts)
        return Generation(None, "provider_error", exc.kind)
    try:
        answer = parse_model_answer(raw)
    except MalformedOutput as exc:
        log.warning("%s gave malformed output: %s", provider.name, exc)
        return Generation(None, "malformed", "the model's reply was not valid JSON")
    if not answer.answerable or not answer.text:
        return Generation(None, "not_answerable")
    conversation = "\n".join(m.text for m in messages)
    verdict = check.check(answer, {b.id: b.text for b in blocks}, conversation)
    if not verdict.ok:
        log.warning("%s answer dropped by the grounding check: %s", provider.name, verdict.problem)
        return Generation(None, "ungrounded", verdict.problem)
    cited = [by_id[c] for c in answer.citations]
    # The answer is as trustworthy as the best source it cites for this question (the grounding check
    # above already dropped answers those sources do not support).
    confidence = max(ev.confidence for _, ev in cited)
    return Generation(GeneratedAnswer(answer.text, tuple(hit for hit, _ in cited), confidence))
