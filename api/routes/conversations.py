"""Past conversations: bulk import of an export, and Invekto's "conversation closed" webhook."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Response, UploadFile

from ingestion.chats import Conversation

from ..deps import IdempotencyKey, JobsDep, TenantDep
from ..errors import TENANT_ERRORS, ProblemError, problem_responses
from ..schemas import ConversationClosedOut, JobAccepted
from ..uploads import MAX_UPLOAD_BYTES, chat_export
from ..webhooks import SignedTenantDep
from .jobs import job_accepted

router = APIRouter(prefix="/v1/conversations", tags=["conversations"], responses=TENANT_ERRORS)


@router.post(
    "/import",
    status_code=202,
    response_model=JobAccepted,
    responses=problem_responses(413, 415),
    max_body_size=MAX_UPLOAD_BYTES,
)
def import_conversations(
    response: Response,
    tenant: TenantDep,
    jobs: JobsDep,
    file: Annotated[UploadFile, File(description="Invekto export: JSONL (one conversation a line) or JSON.")],
    idempotency_key: IdempotencyKey = None,
) -> JobAccepted:
    """Import past conversations; resolved ones become question/answer chunks (docs/conversation-format.md).

    Lines that cannot be read are listed in `problems` and the rest is imported.
    """
    job_input = chat_export(tenant.id, file.file.read(), file.filename)
    if not job_input.names:
        raise ProblemError(
            422,
            "nothing-to-index",
            "Nothing to index",
            "No resolved conversation in the file has a customer question with an agent answer.",
            problems=job_input.problems,
        )
    return job_accepted(response, jobs.accept(tenant.id, job_input, idempotency_key))


@router.post(
    "/closed",
    status_code=202,
    response_model=ConversationClosedOut,
    responses={200: {"model": ConversationClosedOut, "description": "Acknowledged, nothing to index."}},
)
def conversation_closed(
    conversation: Conversation,
    response: Response,
    tenant: SignedTenantDep,
    jobs: JobsDep,
    idempotency_key: IdempotencyKey = None,
) -> ConversationClosedOut:
    """Webhook for a closed conversation: a resolved one is indexed (202); an open one is acknowledged (200).

    When the tenant has a webhook secret (`POST /v1/admin/tenants/{tenant_id}/webhook-secret`, recommended),
    the request must be signed: `X-Invekto-Timestamp` and `X-Invekto-Signature: v1=<hex HMAC-SHA256 of
    '<timestamp>.<raw body>'>`, within INVEKTO_WEBHOOK_TOLERANCE_S (300 s) of the server's clock; 401 otherwise.
    """
    cid = conversation.conversation_id
    if conversation.status != "resolved":
        response.status_code = 200
        return ConversationClosedOut(
            conversation_id=cid,
            indexed=False,
            note="The conversation is open: only resolved ones are indexed.",
        )
    job_input = chat_export(tenant.id, conversation.model_dump_json().encode(), "conversation.json")
    if not job_input.names:
        response.status_code = 200
        return ConversationClosedOut(
            conversation_id=cid,
            indexed=False,
            note="No customer question with an agent answer in this conversation: nothing to index.",
        )
    job = job_accepted(response, jobs.accept(tenant.id, job_input, idempotency_key))
    return ConversationClosedOut(
        conversation_id=cid, indexed=True, note=f"Indexing as document chat:{cid}.", job=job
    )
