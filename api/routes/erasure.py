"""Erasure (KVKK): a customer's data by phone, e-mail, TCKN or IBAN; a conversation; a document."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from assist.learning import learned_doc_id
from ingestion.erasure import Eraser, ErasureResult

from ..deps import ContextDep, JobsDep, TenantDep
from ..errors import TENANT_ERRORS, ProblemError, not_found, problem_responses
from ..schemas import ErasureOut, ErasureRequest

router = APIRouter(prefix="/v1/erasure", tags=["erasure"], responses=TENANT_ERRORS)


def eraser(context: ContextDep, jobs: JobsDep) -> Eraser:
    return Eraser(context.ingestor, jobs.uploads_dir, learned_doc_id)


def _out(results: list[ErasureResult]) -> ErasureOut:
    return ErasureOut.model_validate(asdict(ErasureResult.merged(results)))


@router.post("/customer", response_model=ErasureOut, responses=problem_responses(422))
def erase_customer(body: ErasureRequest, tenant: TenantDep, context: ContextDep, jobs: JobsDep) -> ErasureOut:
    """Erase a customer's data: documents named after them, chats they wrote in, their conversations'
    suggestions, feedback and audit entries; the index is rewritten without them."""
    values = body.values()
    if not values:
        raise ProblemError(422, "nothing-to-erase", "Nothing to erase", "Give a phone, email, tckn or iban.")
    try:
        return _out([eraser(context, jobs).subject(tenant.id, value) for value in values])
    except ValueError as err:
        raise ProblemError(422, "not-personal-data", "Not personal data", str(err)) from err


@router.delete(
    "/conversations/{conversation_id:path}", response_model=ErasureOut, responses=problem_responses(404)
)
def erase_conversation(
    conversation_id: str, tenant: TenantDep, context: ContextDep, jobs: JobsDep
) -> ErasureOut:
    """Erase a conversation: its chat knowledge, suggestions, feedback, learned replies and audit entries."""
    result = eraser(context, jobs).conversation(tenant.id, conversation_id)
    if not result.found:
        raise not_found("Conversation", "This tenant has nothing stored for that conversation.")
    return _out([result])


@router.delete("/documents/{doc_id:path}", response_model=ErasureOut, responses=problem_responses(404))
def erase_document(doc_id: str, tenant: TenantDep, context: ContextDep, jobs: JobsDep) -> ErasureOut:
    """Erase a document: no tombstone, and the index is rewritten without it (DELETE /v1/documents/{id}
    keeps a tombstone and leaves the rewrite to the next erasure)."""
    result = eraser(context, jobs).document(tenant.id, doc_id)
    if result is None:
        raise not_found("Document", "This tenant has no such document.")
    return _out([result])
