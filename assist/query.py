"""Conversation -> search query: the customer's current question with the context it leans on.

"peki taksit seçeneği var mı?" means nothing alone; the deterministic rewrite joins it with the
customer's earlier question. When an LLM is configured it rewrites the conversation into one
standalone question instead, and the deterministic query is the fallback for any failure.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .language import content_terms, match_form, word_set, words
from .models import ConversationTurn
from .prompts import REWRITE_SYSTEM, render_rewrite
from .providers import LLMProvider, ProviderError

log = logging.getLogger(__name__)

MAX_QUERY_CHARS = 600
# The current question needs earlier context when it has fewer topic terms than this.
MIN_STANDALONE_TERMS = 3
MAX_CONTEXT_BURSTS = 2

_GREETINGS = word_set(
    """
    merhaba merhabalar selam selamlar slm mrb iyi günler akşamlar sabahlar geceler hayırlı kolay
    gelsin teşekkür teşekkürler teşekkürederim tşk tşkler sağol sağolun sağ olun çok ederim tamam
    ok okey peki anladım evet hayır hello hi hey thanks thank you good morning evening afternoon
    great okay yes no bye görüşürüz hoşçakalın
    """
)
_FOLLOW_UP = re.compile(
    r"^(?:peki|ya|bir de|birde|o zaman|onun|bunun|bu|su|onu|bunu|and|what about|how about|also|so)\b"
)


@dataclass(frozen=True)
class ConversationQuery:
    """The search query and how it was made."""

    text: str
    # Customer message bursts the query was built from (1 = the current question alone).
    bursts_used: int
    rewritten_by: str  # "deterministic" or the provider name


def customer_bursts(messages: Sequence[ConversationTurn]) -> list[str]:
    """Return the customer's messages grouped into bursts (consecutive messages joined), oldest first.

    A customer often splits one question over several messages; an agent or bot reply ends a burst.
    """
    bursts: list[list[str]] = []
    open_burst = False
    for turn in messages:
        if turn.role == "customer":
            if not turn.text.strip():
                continue
            if not open_burst:
                bursts.append([])
                open_burst = True
            bursts[-1].append(turn.text.strip())
        elif turn.role in ("agent", "bot"):
            open_burst = False
    return [" ".join(parts) for parts in bursts]


def _is_small_talk(text: str) -> bool:
    return all(w in _GREETINGS for w in words(text))


def _needs_context(text: str) -> bool:
    return bool(_FOLLOW_UP.match(match_form(text))) or len(content_terms(text)) < MIN_STANDALONE_TERMS


def deterministic_query(bursts: Sequence[str]) -> ConversationQuery:
    """Return the latest substantive customer burst, preceded by earlier ones when it is elliptical."""
    substantive = [b for b in bursts if not _is_small_talk(b)] or list(bursts[-1:])
    if not substantive:
        raise ValueError("The conversation has no customer message to build a query from")
    parts = [substantive[-1]]
    for earlier in reversed(substantive[:-1]):
        if len(parts) > MAX_CONTEXT_BURSTS or not _needs_context(" ".join(parts)):
            break
        parts.insert(0, earlier)
    text = " ".join(parts)
    if len(text) > MAX_QUERY_CHARS:
        text = text[-MAX_QUERY_CHARS:]  # the latest words matter most
    return ConversationQuery(text=text, bursts_used=len(parts), rewritten_by="deterministic")


def build_query(
    messages: Sequence[ConversationTurn], provider: LLMProvider | None = None
) -> ConversationQuery:
    """Return the search query for a (redacted) conversation; an LLM rewrites it when there is context.

    A conversation that is only the customer's question is used as it is: an LLM call would cost
    latency and add nothing. Any failure of the rewrite falls back to the deterministic query.
    """
    bursts = customer_bursts(messages)
    fallback = deterministic_query(bursts)
    only_the_question = len(bursts) == 1 and all(
        m.role == "customer" for m in messages if m.text.strip() and m.role != "system"
    )
    if provider is None or only_the_question:
        return fallback
    try:
        raw = provider.complete(REWRITE_SYSTEM, render_rewrite(messages), max_tokens=200)
        rewritten = _parse_rewrite(raw)
    except (ProviderError, ValueError) as exc:
        log.info("query rewrite fell back to the deterministic query: %s", exc.__class__.__name__)
        return fallback
    return ConversationQuery(text=rewritten, bursts_used=len(bursts), rewritten_by=provider.name)


def _parse_rewrite(raw: str) -> str:
    start, end = raw.find("{"), raw.rfind("}")
    if start < 0 or end < start:
        raise ValueError("the rewrite is not JSON")
    parsed = json.loads(raw[start : end + 1])
    value = parsed.get("query") if isinstance(parsed, dict) else None
    if not isinstance(value, str) or not value.strip():
        raise ValueError("the rewrite has no query")
    text = " ".join(value.split())
    if len(text) > MAX_QUERY_CHARS:
        raise ValueError("the rewrite is too long to be a question")
    return text
