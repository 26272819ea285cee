"""AssistService: suggest replies to agents, resolve conversations on its own or hand off, learn from feedback.

Per request: redact the conversation (KVKK: before any LLM call, log line or stored row) -> build the
stand-alone query -> tenant-scoped hybrid search -> verify each source answers *this* question (a
calibrated probability) -> LLM answer with grounding post-check, and/or extractive replies -> decide
against the tenant's precision target (`policy`) -> record suggestions and an audit row (ids and codes
only, never message text).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache, partial
from typing import Any, NamedTuple, Protocol, TypeVar

import numpy as np

from ingestion.pipeline import Ingestor, tenant_redactor
from ingestion.redact import Redactor
from ingestion.registry import Registry
from ingestion.registry_db import WouldWait
from ingestion.registry_models import PiiPattern, Tenant, TenantSettings
from retrieval.embedders import embed_queries
from retrieval.index import QueryOptions, encoder_text
from retrieval.index_process import AnyIndex
from retrieval.models import SearchHit, SearchResult
from retrieval.settings import Settings
from retrieval.tracing import set_attribute, span, traced

from .confidence import BLOCK_REASONS, Evidence, gather_evidence
from .conflicts import Conflict, StaleSource
from .extractive import SNIPPET_CHARS, extractive_replies
from .gap_log import GapLog
from .gaps import CandidateAnswer, GapTopic, gap_topics
from .generate import context_text, generate_answer
from .handoff import ResolveThresholds, customer_message, handoff_summary
from .language import content_terms, conversation_language, foreign_language
from .learning import feedback_item, gap_answer_item, gap_doc_id, learned_doc_id, query_of, stored_citations
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
from .policy import MIN_SUGGEST_PROBABILITY, AutoAnswerPolicy, EvidenceSample
from .providers import LLMProvider, provider_from_settings
from .query import ConversationQuery, build_query, customer_bursts, deterministic_query
from .records import AssistRecords
from .resolve import EXTRACTIVE, Decision, knowledge_decision, safety_handoff
from .safety import assess
from .self_test import Probe, answers_probe
from .tenant_knowledge import TenantKnowledge, TenantKnowledgeCache
from .verify import ready_answer, source_key

log = logging.getLogger(__name__)

SEARCH_LIMIT = 5
_SEARCH = QueryOptions(limit=SEARCH_LIMIT)
MAX_SUGGESTIONS = 3
# Below this a suggestion is noise, not help: off-domain questions land here.
MIN_SUGGEST_CONFIDENCE = MIN_SUGGEST_PROBABILITY
# Chunks embedded to place a tenant's knowledge in meaning space for the gap report (its mean vector).
CENTROID_SAMPLE = 400
# A second or third suggestion must reach this share of the first one's confidence and this probability
# (the first one needs MIN_SUGGEST_CONFIDENCE). They are there for recall: the right source is often the
# second or third most probable one, and a weak alternative carries a caution saying why it is weak.
SECONDARY_SHARE = 0.2
MIN_SECONDARY_CONFIDENCE = 0.10
# Without a certified threshold (suggest-only), a suggestion this probable needs no caution.
STRONG_SUGGESTION = 0.7


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
    # The latest message's language when it is neither Turkish nor English ("de", "ru"), else None.
    foreign: str | None = None


class _SuggestDraft(NamedTuple):
    """The suggestions of one request before they are stored."""

    drafts: list[_Draft]
    hits: list[SearchHit]
    mode: str
    failure: str | None
    note: str | None


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
    caution: str | None = None


class _Scored(Protocol):
    @property
    def confidence(self) -> float: ...


_D = TypeVar("_D", bound=_Scored)


def shortlist(drafts: Sequence[_D]) -> list[_D]:
    """Return the suggestions to show, most probable first (whatever produced them).

    None when even the best is below MIN_SUGGEST_CONFIDENCE (an off-domain question gets nothing); after
    it, alternatives above both MIN_SECONDARY_CONFIDENCE and SECONDARY_SHARE of the best one's confidence.
    """
    ranked = sorted(drafts, key=lambda d: -d.confidence)
    if not ranked or ranked[0].confidence < MIN_SUGGEST_CONFIDENCE:
        return []
    floor = max(SECONDARY_SHARE * ranked[0].confidence, MIN_SECONDARY_CONFIDENCE)
    return ranked[:1] + [d for d in ranked[1:] if d.confidence >= floor]


def _caution(evidence: Evidence, threshold: float | None) -> str | None:
    """Return what the agent should know before sending a suggestion from this source (None: nothing)."""
    if evidence.blocked:
        return f"Otomatik gönderilmez: {BLOCK_REASONS[evidence.blocked]}."
    if evidence.confidence >= (threshold if threshold is not None else STRONG_SUGGESTION):
        return None
    if evidence.missing:
        return (
            "Zayıf eşleşme: kaynak sorudaki şu kelimeleri içermiyor: " + ", ".join(evidence.missing[:3]) + "."
        )
    return "Zayıf eşleşme: kaynağın bu soruyu yanıtladığı kesin değil; göndermeden önce kontrol edin."


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
        *,
        knowledge_wait_s: float | None = None,
    ) -> None:
        """`provider` None means the one `settings` configure (None again for extractive mode).
        `knowledge_wait_s`: derive a tenant's knowledge and policy in the background, a request waiting at
        most this long (the server); None: in the request (eval, CLI)."""
        self.settings = settings
        self.index = index
        self.registry = registry
        self.records = AssistRecords(registry)
        self.ingestor = ingestor or Ingestor(index, registry)
        self.provider = provider if provider is not None else provider_from_settings(settings)
        self.knowledge = TenantKnowledgeCache(
            index, self.records, self._probe_sample, wait_s=knowledge_wait_s
        )
        self.gap_log = GapLog(registry)
        # New or removed knowledge changes word rarity and the policy's evidence: derive both again.
        self.ingestor.on_change.append(self.forget_knowledge)

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
        foreign = foreign_language(bursts[-1])
        return _Conversation(
            tenant=tenant,
            redactor=redactor,
            messages=messages,
            latest=bursts[-1],
            # Handoff messages to a customer writing in a third language are in English.
            language="en" if foreign else conversation_language(bursts, s.language),
            tone=s.tone,
            foreign=foreign,
        )

    def _retrieve(
        self, tenant: Tenant, query: str, knowledge: TenantKnowledge | None = None
    ) -> tuple[list[SearchHit], list[Evidence], str | None]:
        result = self._search(tenant.id, query)
        knowledge = knowledge or self.knowledge.get(tenant)
        with span("assist.verify"):
            hits, evidence = gather_evidence(
                query, result.hits, knowledge.vocabulary, conflicted=knowledge.conflicted
            )
        return hits, evidence, result.note

    def _search(self, tenant_id: str, query: str) -> SearchResult:
        with span("retrieval.search", **{"invekto.tenant_id": tenant_id}) as current:
            result = self.index.search(tenant_id, query, _SEARCH)
            if current is not None:
                current.set_attribute("retrieval.hits", len(result.hits))
            return result

    # ----- auto-answer policy -----

    def policy(self, tenant: str | Tenant) -> AutoAnswerPolicy:
        """Return the tenant's auto-answer policy, recomputed when its knowledge or feedback changed."""
        return self.knowledge.get(self._tenant(tenant)).policy

    def close(self) -> None:
        """Stop the background work (deriving tenants' knowledge)."""
        self.knowledge.close()

    def forget_knowledge(self, tenant_id: str) -> None:
        """Drop what was derived from a tenant's knowledge; the next request derives it again."""
        self.knowledge.forget(tenant_id)

    def calibrate(self, tenant: str | Tenant) -> AutoAnswerPolicy:
        """Return a new auto-answer policy from the tenant's self-test probes and its agents' feedback."""
        tenant = self._tenant(tenant)
        self.forget_knowledge(tenant.id)
        return self.knowledge.get(tenant).policy

    def _probe_sample(self, tenant: Tenant, probe: Probe, knowledge: TenantKnowledge) -> EvidenceSample:
        hits, evidence, _ = self._retrieve(tenant, probe.question, knowledge)
        eligible = next(((h, e) for h, e in zip(hits, evidence, strict=True) if e.blocked is None), None)
        if eligible is None:
            return EvidenceSample(0.0, False, "self_test")
        hit, ev = eligible
        return EvidenceSample(ev.confidence, answers_probe(probe, hit), "self_test")

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
        wait: bool = True,
    ) -> list[str]:
        """Store the audit row (and the suggestions, in the same transaction); return the suggestion ids.
        `wait=False`: WouldWait instead of waiting for the database (AssistRecords.record_audit)."""
        latency_ms = int((time.perf_counter() - started) * 1000)
        _, ids = self.records.record_audit(
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
            wait=wait,
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
        return self._finish_suggest(step, self._search(step.tenant_id, step.query.text))

    async def suggest_async(
        self, tenant: str | Tenant, request: AssistRequest, run: Callable[..., Awaitable[Any]]
    ) -> SuggestResponse:
        """suggest() for an event loop: what may wait goes through `run` (the server's compute slots).

        With the index in its own process, the search is awaited without holding a thread or a slot, so
        many searches queue in that process at once (and are encoded as one batch) while the slots serve
        other requests. Without an LLM the steps before and after the search are short pure Python and
        run on the event loop itself: on a slot's thread they took turns for the GIL with the loop, which
        cost more than the steps (suggest at 10k chunks, 32 clients: docs/benchmarks.md). The database
        writes, and a tenant's knowledge still being derived, stay on a slot.
        """
        inline = self.provider is None
        step: _SuggestStep = (
            self._prepare_suggest(tenant, request)
            if inline
            else await run(self._prepare_suggest, tenant, request)
        )
        submit = getattr(self.index, "submit_search", None)
        if submit is None:
            result = await run(self._search, step.tenant_id, step.query.text)
        else:
            with span("retrieval.search", **{"invekto.tenant_id": step.tenant_id}) as current:
                result = await asyncio.wrap_future(submit(step.tenant_id, step.query.text, _SEARCH))
                if current is not None:
                    current.set_attribute("retrieval.hits", len(result.hits))
        if not inline:
            response: SuggestResponse = await run(self._finish_suggest, step, result)
            return response
        knowledge = self.knowledge.peek(step.conv.tenant) or await run(self.knowledge.get, step.conv.tenant)
        with span("assist.answer"):
            draft = self._draft_suggest(step, result, knowledge)
            recorded = self._record_suggest_now(step, draft)
            if recorded is None:
                recorded = await run(self._record_suggest, step, draft)
        return recorded

    @traced("assist.query")
    def _prepare_suggest(self, tenant: str | Tenant, request: AssistRequest) -> _SuggestStep:
        started = time.perf_counter()
        conv = self._conversation(self._tenant(tenant), request)
        return _SuggestStep(conv, build_query(conv.messages, self.provider), request.conversation_id, started)

    @traced("assist.answer")
    def _finish_suggest(self, step: _SuggestStep, result: SearchResult) -> SuggestResponse:
        draft = self._draft_suggest(step, result, self.knowledge.get(step.conv.tenant))
        return self._record_suggest(step, draft)

    def _draft_suggest(
        self, step: _SuggestStep, result: SearchResult, knowledge: TenantKnowledge
    ) -> _SuggestDraft:
        """The suggestions for a search result, before anything is stored (no I/O without an LLM)."""
        conv, query = step.conv, step.query
        with span("assist.verify"):
            hits, evidence = gather_evidence(
                query.text, result.hits, knowledge.vocabulary, conflicted=knowledge.conflicted
            )
        threshold = knowledge.policy.threshold
        caution = {h.point_id: _caution(e, threshold) for h, e in zip(hits, evidence, strict=True)}
        drafts: list[_Draft] = []
        mode, failure = EXTRACTIVE, None
        if self.provider and hits and evidence[0].confidence >= MIN_SUGGEST_CONFIDENCE:
            with span("assist.generate", **{"llm.provider": self.provider.name}):
                generation = generate_answer(
                    self.provider, "suggest", hits, evidence, conv.messages, conv.language, conv.tone
                )
            if generation.answer:
                a = generation.answer
                weakest = next((caution[h.point_id] for h in a.cited if caution.get(h.point_id)), None)
                drafts.append(_Draft(a.text, a.cited, "llm", a.confidence, weakest))
                mode = self.provider.name
            else:
                failure = f"llm_{generation.failure}"
        terms = content_terms(query.text)
        seen = {" ".join(d.text.lower().split()) for d in drafts}
        for reply in extractive_replies(
            query.text, terms, hits, evidence, limit=MAX_SUGGESTIONS, min_confidence=MIN_SECONDARY_CONFIDENCE
        ):
            key = " ".join(reply.text.lower().split())
            if len(drafts) < MAX_SUGGESTIONS and key not in seen:
                seen.add(key)
                drafts.append(
                    _Draft(
                        reply.text,
                        (reply.hit,),
                        reply.strategy,
                        reply.confidence,
                        caution[reply.hit.point_id],
                    )
                )
        return _SuggestDraft(shortlist(drafts), hits, mode, failure, result.note)

    def _record_suggest_now(self, step: _SuggestStep, draft: _SuggestDraft) -> SuggestResponse | None:
        """_record_suggest if that is one write nobody else holds the database for; else None, nothing stored.

        On the event loop a wait would hold every request: the write is tried without waiting, and one
        that would wait (another writer, a database over the network, a gap question to store as well)
        goes to a compute slot instead.
        """
        if not draft.drafts:
            return None
        try:
            return self._record_suggest(step, draft, wait=False)
        except WouldWait:
            return None

    def _record_suggest(self, step: _SuggestStep, draft: _SuggestDraft, wait: bool = True) -> SuggestResponse:
        """Store the audit row and the suggestions (a gap question when there are none); the response."""
        conv, query, tenant_id = step.conv, step.query, step.tenant_id
        drafts, hits, mode, failure, note = draft
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
            wait=wait,
        )
        suggestions = [
            Suggestion(
                id=sid,
                text=text,
                citations=cits,
                confidence=d.confidence,
                strategy=d.strategy,
                caution=d.caution,
            )
            for sid, d, text, cits in zip(ids, drafts, texts, citations, strict=True)
        ]
        if not suggestions and not conv.foreign:
            self.gap_log.record(tenant_id, step.conversation_id, query.text, "no_knowledge")
        if not suggestions and note is None:
            note = "Bu soruya yeterince yakın bilgi bulunamadı; öneri yok."
        if conv.foreign:
            note = f"Müşteri başka bir dilde yazdı ({conv.foreign}); öneriler çevrilmeden gönderilmemeli."
        set_attribute("assist.suggestions", len(suggestions))
        set_attribute("assist.mode", mode)
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
        if decision is None and conv.foreign:
            detail = f"müşterinin dili: {conv.foreign}"
            decision = Decision(EXTRACTIVE, reason="unsupported_language", detail=detail)
        if decision is not None:
            # No LLM rewrite for a conversation that goes to a human anyway.
            request_text = deterministic_query(customer_bursts(conv.messages)).text
        else:
            query = build_query(conv.messages, self.provider)
            request_text = query.text
            knowledge = self.knowledge.get(conv.tenant)
            hits, evidence, _ = self._retrieve(conv.tenant, query.text, knowledge)
            with span("assist.answer"):
                decision = knowledge_decision(
                    query.text,
                    hits,
                    evidence,
                    thresholds,
                    knowledge.policy,
                    self.provider,
                    conv.messages,
                    conv.language,
                    conv.tone,
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
        if decision.reason is not None:
            self.gap_log.record(tenant_id, request.conversation_id, request_text, decision.reason)
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

    # ----- knowledge gaps -----

    def knowledge_gaps(self, tenant: str | Tenant, since: datetime | None = None) -> list[GapTopic]:
        """Return the questions handed off since `since` for want of knowledge, grouped into topics, each
        with an earlier agent answer when one exists (see assist.gaps)."""
        tenant = self._tenant(tenant)
        questions = self.gap_log.questions(tenant.id, since)
        if not questions:
            return []
        knowledge = self.knowledge.get(tenant)
        embedder = getattr(self.index, "embedder", None)
        embed, centroid = None, None
        if embedder is not None:
            embed = partial(embed_queries, embedder)
            sample = [encoder_text(h.text) for h in self.index.chunks(tenant.id)[:CENTROID_SAMPLE]]
            if sample:
                mean = np.asarray(embedder.embed_documents(sample)).mean(axis=0)
                centroid = mean / (np.linalg.norm(mean) or 1.0)

        def candidate(topic: GapTopic) -> CandidateAnswer | None:
            hits, evidence, _ = self._retrieve(tenant, topic.examples[0], knowledge)
            for hit, ev in zip(hits, evidence, strict=True):
                answer = ready_answer(hit)
                if hit.source == "chat" and answer and ev.confidence >= MIN_SUGGEST_CONFIDENCE:
                    return CandidateAnswer(answer, hit.ref, source_key(hit))
            return None

        return gap_topics(
            questions, knowledge.vocabulary, embed=embed, knowledge_centroid=centroid, candidate=candidate
        )

    def knowledge_conflicts(self, tenant: str | Tenant) -> tuple[list[Conflict], list[StaleSource]]:
        """Return where the tenant's sources disagree (their refs are never sent automatically) and the
        documents a newer one replaced."""
        knowledge = self.knowledge.get(self._tenant(tenant))
        return list(knowledge.conflicts), list(knowledge.stale)

    def answer_gap(
        self, tenant_id: str, question: str, answer: str, asked: Sequence[str] = ()
    ) -> tuple[str, str]:
        """Index `answer` to `question` as a FAQ entry (redacted, screened, versioned like any FAQ row) and
        clear the gap questions `asked` it answers; return (document id, job status)."""
        tenant = self._tenant(tenant_id)
        redactor = _redactor(tuple(tenant.settings.pii_patterns), tuple(tenant.settings.pii_allowed))
        question, answer = redactor(question.strip()), redactor(answer.strip())
        if not question or not answer:
            raise ValueError("question and answer must not be empty")
        job = self.ingestor.run(tenant.id, "faq", [gap_answer_item(tenant.id, question, answer)])
        if job.status == "succeeded":
            self.gap_log.forget(tenant.id, [question, *asked])
        return gap_doc_id(question), job.status

    # ----- feedback -----

    def feedback(
        self, tenant_id: str, suggestion_id: str, action: FeedbackAction, final_text: str | None = None
    ) -> FeedbackResult:
        """Return the stored feedback; an accepted or edited reply is also indexed as `chat` knowledge.

        LookupError for an unknown suggestion (or another tenant's), ValueError for "edited" without text.
        """
        tenant = self._tenant(tenant_id)
        redactor = _redactor(tuple(tenant.settings.pii_patterns), tuple(tenant.settings.pii_allowed))
        suggestion = self.records.get_suggestion(tenant_id, suggestion_id)
        if suggestion is None:
            raise LookupError(f"No suggestion {suggestion_id!r} for tenant {tenant_id!r}")
        final = redactor(final_text) if final_text and final_text.strip() else None
        stored = self.records.record_feedback(tenant_id, suggestion_id, action, final)
        self.forget_knowledge(tenant_id)  # feedback is evidence: the next request recomputes the policy
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
