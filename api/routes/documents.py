"""Documents: upload files, FAQ sheets, quick replies and text; list, read and delete what was ingested."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Query, Response, UploadFile

from ingestion.registry_models import DocumentSource, DocumentStatus

from ..deps import ContextDep, IdempotencyKey, JobsDep, TenantDep
from ..errors import TENANT_ERRORS, not_found, problem_responses
from ..schemas import ChunkOut, DocumentDetail, DocumentOut, JobAccepted, TextDocumentsIn
from ..uploads import (
    MAX_TEXT_DOCUMENTS_BYTES,
    MAX_UPLOAD_BYTES,
    file_uploads,
    sheet_upload,
    text_documents,
)
from .jobs import job_accepted

router = APIRouter(prefix="/v1", tags=["documents"], responses=TENANT_ERRORS)

_UPLOAD_ERRORS = problem_responses(413, 415)
_SHEET = "A CSV, XLSX or JSON sheet; the header row names the columns."


@router.post(
    "/documents",
    status_code=202,
    response_model=JobAccepted,
    responses=_UPLOAD_ERRORS,
    max_body_size=MAX_UPLOAD_BYTES,
)
def upload_documents(
    response: Response,
    tenant: TenantDep,
    jobs: JobsDep,
    files: Annotated[
        list[UploadFile], File(description="PDF, DOCX, PPTX, XLSX, HTML, Markdown, TXT, CSV or JSON files.")
    ],
    idempotency_key: IdempotencyKey = None,
) -> JobAccepted:
    """Upload documents; they are parsed, redacted, chunked and indexed by a background job.

    A file's name is its document id: uploading it again replaces the document (or skips it if unchanged).
    """
    return job_accepted(response, jobs.accept(tenant.id, file_uploads(files), idempotency_key))


@router.post(
    "/text-documents",
    status_code=202,
    response_model=JobAccepted,
    max_body_size=MAX_TEXT_DOCUMENTS_BYTES,
)
def add_text_documents(
    body: TextDocumentsIn,
    response: Response,
    tenant: TenantDep,
    jobs: JobsDep,
    idempotency_key: IdempotencyKey = None,
) -> JobAccepted:
    """Index documents that are already text (from another system); each id is a document id."""
    return job_accepted(response, jobs.accept(tenant.id, text_documents(body.documents), idempotency_key))


@router.post(
    "/faq",
    status_code=202,
    response_model=JobAccepted,
    responses=_UPLOAD_ERRORS,
    max_body_size=MAX_UPLOAD_BYTES,
)
def import_faq(
    response: Response,
    tenant: TenantDep,
    jobs: JobsDep,
    file: Annotated[UploadFile, File(description=_SHEET + " Columns: soru/question and cevap/answer.")],
    idempotency_key: IdempotencyKey = None,
) -> JobAccepted:
    """Import a FAQ sheet: one chunk per question and answer (document id `faq:<file name>`)."""
    return job_accepted(
        response, jobs.accept(tenant.id, sheet_upload(tenant.id, file, "faq"), idempotency_key)
    )


@router.post(
    "/quick-replies",
    status_code=202,
    response_model=JobAccepted,
    responses=_UPLOAD_ERRORS,
    max_body_size=MAX_UPLOAD_BYTES,
)
def import_quick_replies(
    response: Response,
    tenant: TenantDep,
    jobs: JobsDep,
    file: Annotated[UploadFile, File(description=_SHEET + " Columns: başlık/title and metin/text.")],
    idempotency_key: IdempotencyKey = None,
) -> JobAccepted:
    """Import Invekto quick replies (canned responses), one chunk each."""
    return job_accepted(
        response, jobs.accept(tenant.id, sheet_upload(tenant.id, file, "quick_replies"), idempotency_key)
    )


@router.get("/documents", response_model=list[DocumentOut])
def list_documents(
    tenant: TenantDep,
    context: ContextDep,
    status: Annotated[
        DocumentStatus | None, Query(description="Only this status; deleted ones only when asked.")
    ] = None,
    source: DocumentSource | None = None,
) -> list[DocumentOut]:
    """The tenant's documents with status, version, chunk count and flagged chunks, ordered by id."""
    docs = context.registry.list_documents(tenant.id, status=status, source=source)
    return [DocumentOut.model_validate(d) for d in docs if status is not None or d.status != "deleted"]


@router.get("/documents/{doc_id:path}", response_model=DocumentDetail, responses=problem_responses(404))
def get_document(
    doc_id: str, tenant: TenantDep, context: ContextDep, include_chunks: bool = False
) -> DocumentDetail:
    """One document; with `include_chunks=true` also its indexed chunks."""
    doc = context.registry.get_document(tenant.id, doc_id)
    if doc is None:
        raise not_found("Document", f"This tenant has no document {doc_id!r}.")
    chunks = None
    if include_chunks:
        chunks = [ChunkOut.model_validate(c) for c in context.index.chunks(tenant.id, doc.doc_id)]
    return DocumentDetail.model_validate(doc).model_copy(update={"chunks": chunks})


@router.delete("/documents/{doc_id:path}", status_code=204, responses=problem_responses(404))
def delete_document(doc_id: str, tenant: TenantDep, context: ContextDep) -> Response:
    """Remove every chunk of a document from the index; the record stays as a tombstone (status deleted)."""
    if not context.ingestor.delete_document(tenant.id, doc_id):
        raise not_found("Document", f"This tenant has no document {doc_id!r}.")
    return Response(status_code=204)
