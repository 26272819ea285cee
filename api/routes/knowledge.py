"""Knowledge gaps: what customers asked that the tenant's knowledge could not answer, and writing it up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

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
    return GapReportOut(
        since=start, questions=sum(t.count for t in topics), topics=[GapTopicOut.of(t) for t in topics]
    )


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
