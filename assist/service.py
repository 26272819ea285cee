"""AssistService: suggest replies to agents, resolve conversations on its own or hand off, learn from feedback.

Per request: redact the conversation (KVKK: before any LLM call, log line or stored row) -> build the
query -> tenant-scoped hybrid search -> LLM answer with grounding post-check, and/or extractive
replies -> record suggestions and an audit row (ids and codes only, never message text).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ingestion.pipeline import Ingestor, tenant_redactor
from ingestion.redact import Redactor
from ingestion.registry import Registry
from ingestion.registry_models import PiiPattern, Tenant, TenantSettings
from retrieval.index import QueryOptions
from retrieval.index_process import AnyIndex
from retrieval.models import SearchHit, SearchResult
from retrieval.settings import Settings

from .confidence import Evidence, gather_evidence
from .extractive import SNIPPET_CHARS, extractive_replies
from .generate import context_text, generate_answer
from .handoff import ResolveThresholds, customer_message, handoff_summary
from .language import content_terms, conversation_language
from .learning import feedback_item, learned_doc_id, query_of, stored_citations
from .models import (
    AssistRequest,
    Citation,
    ConversationTurn,
    FeedbackAction,
    FeedbackResult,
    Language,
    ResolveResponse,
    Strategy,
    Suggestion,
    SuggestResponse,
    Tone,
)
from .providers import LLMProvider, provider_from_settings
from .query import ConversationQuery, build_query, customer_bursts, deterministic_query
from .resolve import EXTRACTIVE, knowledge_decision, safety_handoff
from .safety import assess

log = logging.getLogger(__name__)

SEARCH_LIMIT = 5
_SEARCH = QueryOptions(limit=SEARCH_LIMIT)
MAX_SUGGESTIONS = 3
# Below this a suggestion is noise, not help: off-domain questions land here.
MIN_SUGGEST_CONFIDENCE = 0.15
# A second or third suggestion must reach this share of the first one's confidence.
SECONDARY_SHARE = 0.5


@lru_cache(maxsize=1024)
def _redactor(patterns: tuple[PiiPattern, ...], allowed: tuple[str, ...]) -> Redactor:
    # Compiling a tenant's patterns once, not per request.
    return tenant_redactor(TenantSettings(pii_patterns=patterns, pii_allowed=allowed))


@dataclass(frozen=True)
class _Conversation:
    """A request made safe to use: redacted messages plus what the tenant and customer imply."""

    tenant: Tenant
    redactor: Redactor
    messages: list[ConversationTurn]
    latest: str  # the customer's latest burst of messages, redacted
    language: Language
    tone: Tone


@dataclass(frozen=True)
class _SuggestStep:
    """What suggest knows before it searches."""

    conv: _Conversation
    query: ConversationQuery
    conversation_id: str
    started: float

    @property
    def tenant_id(self) -> str:
        return self.conv.tenant.id


@dataclass(frozen=True)
class _Draft:
    text: str
    hits: tuple[SearchHit, ...]
    strategy: Strategy
    confidence: float


def _citation(hit: SearchHit) -> Citation:
    snippet = " ".join(context_text(hit).split())
    if len(snippet) > SNIPPET_CHARS:
        snippet = snippet[: SNIPPET_CHARS - 1].rstrip() + "…"
    return Citation(
        doc_id=hit.doc_id,
        chunk_id=hit.chunk_id,
        title=hit.title,
        section=hit.section,
        snippet=snippet,
        source=hit.source,
        ref=hit.ref,
    )


def _retrieved_ids(hits: Sequence[SearchHit]) -> list[str]:
    return [f"{h.doc_id}#{h.chunk_id}" for h in hits]


class AssistService:
    """Agent assist and auto-resolution for every tenant of one index and one registry."""

    def __init__(
        self,
        settings: Settings,
        index: AnyIndex,
        registry: Registry,
        ingestor: Ingestor | None = None,
        provider: LLMProvider | None = None,
    ) -> None:
        """`provider` None means the one `settings` configure (None again for extractive mode)."""
        self.settings = settings
        self.index = index
        self.registry = registry
        self.ingestor = ingestor or Ingestor(index, registry)
        self.provider = provider if provider is not None else provider_from_settings(settings)

    @property
    def mode(self) -> str:
        """Return "extractive" or the provider name, e.g. "anthropic:claude-haiku-4-5"."""
        return self.provider.name if self.provider else EXTRACTIVE

    # ----- shared steps -----

    def _tenant(self, tenant: str | Tenant) -> Tenant:
        if isinstance(tenant, Tenant):
            return tenant
        found = self.registry.get_tenant(tenant)
        if found is None:
            raise LookupError(f"Unknown tenant {tenant!r}")
        return found

    def _conversation(self, tenant: Tenant, request: AssistRequest) -> _Conversation:
        s = tenant.settings
        redactor = _redactor(tuple(s.pii_patterns), tuple(s.pii_allowed))
        # model_construct: a placeholder can be longer than what it replaces, past the request's length limit.
        messages = [
            ConversationTurn.model_construct(role=m.role, text=redactor(m.text)) for m in request.messages
        ]
        bursts = customer_bursts(messages)
        return _Conversation(
            tenant=tenant,
            redactor=redactor,
            messages=messages,
            latest=bursts[-1],
            language=conversation_language(bursts, s.language),
            tone=s.tone,
        )

    def _retrieve(self, tenant_id: str, query: str) -> tuple[list[SearchHit], list[Evidence], str | None]:
        result = self.index.search(tenant_id, query, _SEARCH)
        return result.hits, gather_evidence(content_terms(query), result.hits), result.note

    def _audit(
        self,
        tenant_id: str,
        conversation_id: str,
        kind: str,
        started: float,
        hits: Sequence[SearchHit],
        decision: str,
        provider: str,
        reason: str | None,
        confidence: float | None,
        suggestions: Sequence[dict[str, object]] = (),
    ) -> list[str]:
        """Store the audit row (and the suggestions, in the same transaction); return the suggestion ids."""
        latency_ms = int((time.perf_counter() - started) * 1000)
        _, ids = self.registry.record_audit(
            tenant_id,
            conversation_id,
            kind,  # type: ignore[arg-type]
            retrieved_ids=_retrieved_ids(hits),
            decision=decision,
            provider=provider,
            reason=reason,
            confidence=confidence,
            latency_ms=latency_ms,
            suggestions=suggestions,
        )
        log.info(
            "%s tenant=%s conversation=%s decision=%s reason=%s provider=%s latency_ms=%d",
            kind,
            tenant_id,
            conversation_id,
            decision,
            reason,
            provider,
            latency_ms,
        )
        return ids

    def search_query(self, tenant: str | Tenant, request: AssistRequest) -> ConversationQuery:
        """Return the (redacted) search query suggest and resolve build from this conversation."""
        conv = self._conversation(self._tenant(tenant), request)
        return build_query(conv.messages, self.provider)

    # ----- suggest -----

    def suggest(self, tenant: str | Tenant, request: AssistRequest) -> SuggestResponse:
        """Return up to three grounded reply suggestions for the agent, best first.

        `tenant`: an id, or the Tenant record a caller already holds (saves a registry read).
        """
        step = self._prepare_suggest(tenant, request)
        return self._finish_suggest(step, self.index.search(step.tenant_id, step.query.text, _SEARCH))

    async def suggest_async(
        self, tenant: str | Tenant, request: AssistRequest, run: Callable[..., Awaitable[Any]]
    ) -> SuggestResponse:
        """suggest() for an event loop: the CPU steps go through `run` (the server's compute slots).

        With the index in its own process, the search is awaited without holding a thread or a slot, so
        many searches queue in that process at once (and are encoded as one batch) while the slots serve
        other requests.
        """
        step: _SuggestStep = await run(self._prepare_suggest, tenant, request)
        submit = getattr(self.index, "submit_search", None)
        if submit is None:
            result = await run(self.index.search, step.tenant_id, step.query.text, _SEARCH)
        else:
            result = await asyncio.wrap_future(submit(step.tenant_id, step.query.text, _SEARCH))
        response: SuggestResponse = await run(self._finish_suggest, step, result)
        return response

    def _prepare_suggest(self, tenant: str | Tenant, request: AssistRequest) -> _SuggestStep:
        started = time.perf_counter()
        conv = self._conversation(self._tenant(tenant), request)
        return _SuggestStep(conv, build_query(conv.messages, self.provider), request.conversation_id, started)

    def _finish_suggest(self, step: _SuggestStep, result: SearchResult) -> SuggestResponse:
        conv, query, tenant_id = step.conv, step.query, step.tenant_id
        hits, note = result.hits, result.note
        evidence = gather_evidence(content_terms(query.text), hits)
        drafts: list[_Draft] = []
        mode, failure = EXTRACTIVE, None
        if self.provider and hits and evidence[0].confidence >= MIN_SUGGEST_CONFIDENCE:
            generation = generate_answer(
                self.provider, "suggest", hits, evidence, conv.messages, conv.language, conv.tone
            )
            if generation.answer:
                a = generation.answer
                drafts.append(_Draft(a.text, a.cited, "llm", a.confidence))
                mode = self.provider.name
            else:
                failure = f"llm_{generation.failure}"
        terms = content_terms(query.text)
        seen = {" ".join(d.text.lower().split()) for d in drafts}
        for reply in extractive_replies(
            query.text, terms, hits, evidence, limit=MAX_SUGGESTIONS, min_confidence=MIN_SUGGEST_CONFIDENCE
        ):
            key = " ".join(reply.text.lower().split())
            if len(drafts) < MAX_SUGGESTIONS and key not in seen:
                seen.add(key)
                drafts.append(_Draft(reply.text, (reply.hit,), reply.strategy, reply.confidence))
        if drafts:
            # Alternatives far weaker than the best one are noise in the agent's inbox.
            floor = SECONDARY_SHARE * drafts[0].confidence
            drafts = drafts[:1] + [d for d in drafts[1:] if d.confidence >= floor]
        # Knowledge is redacted at ingestion; redacting again guards what an LLM might echo.
        texts = [conv.redactor(d.text) for d in drafts]
        citations = [[_citation(h) for h in d.hits] for d in drafts]
        rows = [
            {
                "text": text,
                "strategy": d.strategy,
                "confidence": d.confidence,
                "citations": stored_citations(cits, query.text),
            }
            for d, text, cits in zip(drafts, texts, citations, strict=True)
        ]
        ids = self._audit(
            tenant_id,
            step.conversation_id,
            "suggest",
            step.started,
            hits,
            decision="suggested" if drafts else "no_suggestion",
            provider=mode,
            reason=failure,
            confidence=drafts[0].confidence if drafts else None,
            suggestions=rows,
        )
        suggestions = [
            Suggestion(id=sid, text=text, citations=cits, confidence=d.confidence, strategy=d.strategy)
            for sid, d, text, cits in zip(ids, drafts, texts, citations, strict=True)
        ]
        if not suggestions and note is None:
            note = "Bu soruya yeterince yakın bilgi bulunamadı; öneri yok."
        return SuggestResponse(
            suggestions=suggestions, mode=mode, language=conv.language, query=query.text, note=note
        )

    # ----- resolve -----

    def resolve(self, tenant: str | Tenant, request: AssistRequest) -> ResolveResponse:
        """Return an answer the customer can be sent, or a handoff with its reason and an agent summary.

        `tenant`: an id, or the Tenant record a caller already holds.
        """
        started = time.perf_counter()
        conv = self._conversation(self._tenant(tenant), request)
        tenant_id = conv.tenant.id
        thresholds = ResolveThresholds.from_tenant(conv.tenant.settings.resolve_thresholds)
        hits: list[SearchHit] = []
        decision = safety_handoff(assess(conv.latest), thresholds)
        if decision is not None:
            # No LLM rewrite for a conversation that goes to a human anyway.
            request_text = deterministic_query(customer_bursts(conv.messages)).text
        else:
            query = build_query(conv.messages, self.provider)
            request_text = query.text
            hits, evidence, _ = self._retrieve(tenant_id, query.text)
            decision = knowledge_decision(
                query.text, hits, evidence, thresholds, self.provider, conv.messages, conv.language, conv.tone
            )
        self._audit(
            tenant_id,
            request.conversation_id,
            "resolve",
            started,
            hits,
            decision="answer" if decision.is_answer else "handoff",
            provider=decision.mode,
            reason=decision.reason,
            confidence=decision.confidence,
        )
        if decision.is_answer:
            return ResolveResponse(
                decision="answer",
                text=conv.redactor(decision.text or ""),
                citations=[_citation(h) for h in decision.cited],
                confidence=decision.confidence or 0.0,
                mode=decision.mode,
                language=conv.language,
            )
        assert decision.reason is not None
        return ResolveResponse(
            decision="handoff",
            text=customer_message(conv.language, conv.tone),
            confidence=decision.confidence or 0.0,
            reason=decision.reason,
            summary=handoff_summary(request_text, decision.reason, decision.tried, decision.detail),
            mode=decision.mode,
            language=conv.language,
        )

    # ----- feedback -----

    def feedback(
        self, tenant_id: str, suggestion_id: str, action: FeedbackAction, final_text: str | None = None
    ) -> FeedbackResult:
        """Return the stored feedback; an accepted or edited reply is also indexed as `chat` knowledge.

        LookupError for an unknown suggestion (or another tenant's), ValueError for "edited" without text.
        """
        tenant = self._tenant(tenant_id)
        redactor = _redactor(tuple(tenant.settings.pii_patterns), tuple(tenant.settings.pii_allowed))
        suggestion = self.registry.get_suggestion(tenant_id, suggestion_id)
        if suggestion is None:
            raise LookupError(f"No suggestion {suggestion_id!r} for tenant {tenant_id!r}")
        final = redactor(final_text) if final_text and final_text.strip() else None
        stored = self.registry.record_feedback(tenant_id, suggestion_id, action, final)
        learned = None
        answer = final if action == "edited" else suggestion.text if action == "accepted" else None
        question = query_of(suggestion.citations)
        if answer and question:
            item = feedback_item(tenant_id, suggestion_id, question, answer, action)
            job = self.ingestor.run(tenant_id, "chats", [item])
            if job.status == "succeeded":
                learned = learned_doc_id(suggestion_id)
            else:
                log.warning(
                    "learning from suggestion %s failed: job %s %s", suggestion_id, job.id, job.status
                )
        return FeedbackResult(
            id=stored.id, suggestion_id=suggestion_id, action=action, learned_doc_id=learned
        )
