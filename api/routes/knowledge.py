"""Knowledge gaps: what customers asked that the tenant's knowledge could not answer, and writing it up."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from assist.conflicts import Conflict, Passage, StaleSource
from assist.gaps import GapTopic

from ..deps import AssistDep, ComputeDep, TenantDep
from ..errors import TENANT_ERRORS, ProblemError, problem_responses

router = APIRouter(prefix="/v1/knowledge", tags=["knowledge"], responses=TENANT_ERRORS)

DEFAULT_PERIOD = timedelta(days=30)


class CandidateAnswerOut(BaseModel):
    text: str = Field(description="What an agent of the tenant already answered to such a question.")
    ref: str = Field(description="Where it was found, e.g. `chat:c-014`.")
    question: str = Field("", description="The question that answer was given to.")


class GapTopicOut(BaseModel):
    label: str = Field(description="The words the topic's questions share.")
    count: int = Field(description="How many handed-off questions the topic holds.")
    examples: list[str] = Field(description="A few of its questions (redacted), the most typical first.")
    first_asked: datetime
    last_asked: datetime
    reasons: dict[str, int] = Field(description="Handoff reasons: `no_knowledge`, `low_confidence`.")
    off_topic: bool = Field(description="Not about the tenant's business; listed after the others.")
    candidate: CandidateAnswerOut | None = None

    @classmethod
    def of(cls, topic: GapTopic) -> GapTopicOut:
        candidate = topic.candidate
        return cls(
            label=topic.label,
            count=topic.count,
            examples=list(topic.examples),
            first_asked=topic.first_asked,
            last_asked=topic.last_asked,
            reasons=topic.reasons,
            off_topic=topic.off_topic,
            candidate=CandidateAnswerOut(text=candidate.text, ref=candidate.ref, question=candidate.question)
            if candidate
            else None,
        )


class GapReportOut(BaseModel):
    since: datetime
    questions: int = Field(description="Handed-off questions in the period.")
    topics: list[GapTopicOut]


class GapAnswerIn(BaseModel):
    question: str = Field(min_length=1, max_length=500, examples=["Öğretmenlere indirim var mı?"])
    answer: str = Field(
        min_length=1, max_length=4000, examples=["Öğretmenlere özel bir indirimimiz bulunmuyor."]
    )
    asked: list[str] = Field(
        default_factory=list,
        max_length=200,
        description="The gap questions this answer settles (a topic's examples); they leave the report.",
    )


class GapAnswerOut(BaseModel):
    doc_id: str = Field(description="The FAQ entry's document; writing the same question again replaces it.")
    status: str = Field(description="The ingestion job's status: `succeeded` when it can be answered now.")


class PassageOut(BaseModel):
    ref: str = Field(description="The source, e.g. `faq:sss-012`, `doc:iade-politikasi.md`, `chat:c-014`.")
    source: str
    text: str = Field(description="The sentence that states the value.")
    topic: str = Field(description="What the source answers: its question, or the page's section.")
    value: str = Field(description="The value as written, e.g. `14 gün`.")

    @classmethod
    def of(cls, passage: Passage) -> PassageOut:
        return cls(**passage.__dict__)


class ConflictOut(BaseModel):
    kind: str = Field(
        description="What differs: `gün`, `iş günü`, `TL`, `%`, `taksit`, `saat`, `evet/hayır`, …"
    )
    first: PassageOut
    second: PassageOut
    reason: str


class StaleOut(BaseModel):
    ref: str = Field(description="The document a newer one replaced.")
    replaced_by: str = Field(description="The newer document.")
    reason: str
    updated: date = Field(description="The older document's own date.")
    replaced_on: date = Field(description="The newer document's date.")


class ConflictReportOut(BaseModel):
    conflicts: list[ConflictOut] = Field(
        description="Sources that state different values about the same thing; neither answers customers "
        "automatically until one is fixed."
    )
    stale: list[StaleOut]


def _conflict_out(conflict: Conflict) -> ConflictOut:
    return ConflictOut(
        kind=conflict.kind,
        first=PassageOut.of(conflict.first),
        second=PassageOut.of(conflict.second),
        reason=conflict.reason,
    )


def _stale_out(stale: StaleSource) -> StaleOut:
    return StaleOut(
        ref=stale.ref,
        replaced_by=stale.replaced_by,
        reason=stale.reason,
        updated=stale.updated,
        replaced_on=stale.replaced_on,
    )


@router.get("/conflicts", response_model=ConflictReportOut)
async def conflicts(tenant: TenantDep, assist: AssistDep, compute: ComputeDep) -> ConflictReportOut:
    """Where the tenant's sources disagree (the FAQ says 14 days, a page 30, an agent 7) and which
    documents a newer one replaced."""
    found, stale = await compute.run(assist.knowledge_conflicts, tenant)
    return conflict_report(found, stale)


def conflict_report(found: list[Conflict], stale: list[StaleSource]) -> ConflictReportOut:
    """Return the conflicts and stale documents as the API (and `report conflicts --json`) shows them."""
    return ConflictReportOut(
        conflicts=[_conflict_out(c) for c in found], stale=[_stale_out(s) for s in stale]
    )


def gap_report(since: datetime, topics: list[GapTopic]) -> GapReportOut:
    """Return the gap topics as the API (and `report gaps --json`) shows them."""
    return GapReportOut(
        since=since, questions=sum(t.count for t in topics), topics=[GapTopicOut.of(t) for t in topics]
    )


@router.get("/gaps", response_model=GapReportOut)
async def gaps(
    tenant: TenantDep,
    assist: AssistDep,
    compute: ComputeDep,
    since: Annotated[
        datetime | None, Query(description="Start of the period (default: 30 days ago).")
    ] = None,
) -> GapReportOut:
    """Questions handed off for `no_knowledge` or `low_confidence`, grouped into topics, most asked first,
    each with an agent's earlier answer where one exists."""
    start = since or datetime.now(UTC) - DEFAULT_PERIOD
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    topics = await compute.run(assist.knowledge_gaps, tenant, start)
    return gap_report(start, topics)


@router.post("/gaps/answer", response_model=GapAnswerOut, responses=problem_responses(422))
async def answer_gap(
    body: GapAnswerIn, tenant: TenantDep, assist: AssistDep, compute: ComputeDep
) -> GapAnswerOut:
    """Write up a gap: the answer becomes a FAQ entry (redacted, screened, versioned) that answers the
    same questions from now on."""
    try:
        doc_id, status = await compute.run(
            assist.answer_gap, tenant.id, body.question, body.answer, body.asked
        )
    except ValueError as exc:
        raise ProblemError(422, "invalid-gap-answer", "Invalid gap answer", str(exc)) from exc
    return GapAnswerOut(doc_id=doc_id, status=status)
