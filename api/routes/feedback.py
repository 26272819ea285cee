"""What the agent did with a suggestion; accepted and edited replies become knowledge."""

from __future__ import annotations

from fastapi import APIRouter

from assist.models import FeedbackResult

from ..deps import AssistDep, ComputeDep, TenantDep
from ..errors import TENANT_ERRORS, ProblemError, not_found, problem_responses
from ..schemas import FeedbackRequest

router = APIRouter(prefix="/v1", tags=["assist"], responses=TENANT_ERRORS)


@router.post("/feedback", response_model=FeedbackResult, responses=problem_responses(404))
async def feedback(
    body: FeedbackRequest, tenant: TenantDep, assist: AssistDep, compute: ComputeDep
) -> FeedbackResult:
    """Record accepted / edited / rejected for a suggestion this tenant received."""
    try:
        return await compute.run(assist.feedback, tenant.id, body.suggestion_id, body.action, body.final_text)
    except LookupError as exc:
        raise not_found("Suggestion", f"This tenant has no suggestion {body.suggestion_id!r}.") from exc
    except ValueError as exc:
        raise ProblemError(422, "invalid-feedback", "Invalid feedback", str(exc)) from exc
