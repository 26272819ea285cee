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

from retrieval.text import normalise_for_match

from .language import FUNCTION_WORDS, PREFIX_LEN, content_terms, match_form, word_set, words
from .models import ConversationTurn
from .prompts import REWRITE_SYSTEM, render_rewrite
from .providers import LLMProvider, ProviderError

log = logging.getLogger(__name__)

MAX_QUERY_CHARS = 600
# The current question needs earlier context when it has fewer topic terms than this.
MIN_STANDALONE_TERMS = 3
MAX_CONTEXT_BURSTS = 2
MAX_SUBJECT_WORDS = 3
MAX_WHOLE_SUBJECT_WORDS = 8
# A latest message this short may lean on the earlier subject even without "peki" ("cumartesi kaça
# kadar açık" after a question about a pick-up point): the subject is added, after it.
MAX_FOLLOW_UP_TERMS = 6
# Words that say what is asked about a subject (its fee, its duration), not what the subject is.
_ASPECT_STEMS = frozenset(
    w[:5]
    for w in word_set(
        """
        ücret ücreti fiyat fiyatı süre süresi kaç zaman tarih saat gün günde şart koşul durum bedel bedeli
        tutar tutarı para parası nasıl nereden nerede mümkün olur oluyor yapabilir miyim istiyorum
        fee price cost time long
        """
    )
)

# Words that place a question in time or point at the people in it ("geçen hafta sizden tost makinesi
# aldım"): never its subject, and no end of it either.
_NOT_SUBJECT = frozenset(
    match_form(w)
    for w in word_set(
        """
        geçen hafta haftaya dün bugün yarın önce sonra şimdi hala hâlâ demin az önceki sabah akşam öğlen
        gece ay yıl tekrar zaten yine sizden sizde bizden benden sizinle bizimle
        """
    )
)
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


def subject_of(question: str, asked: str, whole: bool = False) -> list[str]:
    """Return the subject words of an earlier `question` that the follow-up `asked` does not name itself.

    A Turkish question usually opens with its subject ("kargo ücreti ne kadar", "öğrenci indirimi var
    mı"); the words that name what is asked about it (ücret, süre, fiyat) belong to that question, not
    to the follow-up, which asks its own ("peki kaç günde gelir?" is about kargo, not its fee).
    `whole`: the follow-up names nothing of its own ("o zaman ne yapabiliriz"), so every content word of
    the earlier question is its subject ("siparişimin adresini değiştirmek").
    """
    known = {t[:PREFIX_LEN] for t in content_terms(asked)}
    limit = MAX_WHOLE_SUBJECT_WORDS if whole else MAX_SUBJECT_WORDS
    subject: list[str] = []
    for word in normalise_for_match(question).split():
        form = match_form(word)
        if form in _NOT_SUBJECT or (len(form) < 2 and not form.isdigit()):
            continue  # a suffix cut off by an apostrophe ("Van'a") is part of the word before it
        if form in FUNCTION_WORDS:
            if subject and not whole:
                break  # the subject ends where the question words begin ("... var mı")
            continue
        if form[:PREFIX_LEN] not in _ASPECT_STEMS and form[:PREFIX_LEN] not in known:
            subject.append(word)
        if len(subject) == limit:
            break
    return subject


def deterministic_query(bursts: Sequence[str]) -> ConversationQuery:
    """Return the latest substantive customer burst; an elliptical one gets the earlier question's subject.

    Only the subject is carried over, after the latest question: joining the whole earlier question made
    it dominate, so the previous question was answered again.
    """
    substantive = [b for b in bursts if not _is_small_talk(b)] or list(bursts[-1:])
    if not substantive:
        raise ValueError("The conversation has no customer message to build a query from")
    latest = substantive[-1]
    parts = [latest]
    used = 1
    names_nothing = not {t for t in content_terms(latest) if t[:PREFIX_LEN] not in _ASPECT_STEMS}
    if _needs_context(latest) or len(content_terms(latest)) <= MAX_FOLLOW_UP_TERMS:
        for earlier in reversed(substantive[:-1][-MAX_CONTEXT_BURSTS:]):
            used += 1
            subject = subject_of(earlier, " ".join(parts), whole=names_nothing)
            if any(not w.isdigit() for w in subject):  # a number alone ("bugün 6. gün") names no subject
                parts.append(" ".join(subject))
                if not _needs_context(earlier):
                    break  # a question that stood on its own carries the whole subject
    text = " ".join(parts)
    if len(text) > MAX_QUERY_CHARS:
        text = text[:MAX_QUERY_CHARS]  # the latest question comes first
    return ConversationQuery(text=text, bursts_used=used, rewritten_by="deterministic")


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
