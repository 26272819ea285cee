"""What an ingestion request asks for, checked before a job is made: file names, sizes and content
types (413/415/422 problems), FAQ and quick-reply sheets, chat exports and text documents.

Each check returns an `ingestion.jobs.IngestionInput` that the job runner saves and ingests.
"""

from __future__ import annotations

import json
import os
import shutil
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Literal

from fastapi import UploadFile

from ingestion.jobs import FILES_DIR, TEXTS_FILE, IngestionInput, disk_name
from ingestion.loaders import DEFAULT_MAX_BYTES, unsupported_content
from ingestion.sources import chat_items, sheet_problems

from .errors import ProblemError
from .schemas import TextDocumentIn

MiB = 1024 * 1024
# Limits; they move to Settings once it has fields for them.
MAX_FILE_BYTES = DEFAULT_MAX_BYTES  # per file, the loader's own limit
MAX_FILES = 100  # per upload request
MAX_UPLOAD_BYTES = 256 * MiB  # a whole multipart upload request, counted while it streams in
MAX_TEXT_DOCUMENTS_BYTES = 32 * MiB  # a JSON request of text documents
MAX_JSON_BYTES = 2 * MiB  # every other request body (assist: 200 messages of 4,000 characters fit)

_SNIFF_BYTES = 8192
_SUPPORTED = "PDF, DOCX, PPTX, XLSX, HTML, Markdown, TXT, CSV or JSON"


def clean_filename(raw: str | None) -> str:
    """Return the upload's base name without directories, control characters or leading dots."""
    name = unicodedata.normalize("NFC", (raw or "").replace("\\", "/").rsplit("/", 1)[-1])
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip().lstrip(". ")
    if len(name) > 200:
        stem, suffix = os.path.splitext(name)
        name = stem[: 200 - len(suffix)] + suffix
    if not name:
        raise ProblemError(
            422,
            "unnamed-file",
            "File without a name",
            "Every uploaded file needs a file name; its extension is checked against its content.",
        )
    return name


def _check(name: str, size: int, head: bytes) -> None:
    """Refuse a file over the per-file limit (413) or one whose first bytes show it is no document (415)."""
    if size > MAX_FILE_BYTES:
        raise ProblemError(
            413,
            "file-too-large",
            "File too large",
            f"{name} is {size / MiB:.1f} MiB, over the {MAX_FILE_BYTES / MiB:.0f} MiB limit per file.",
        )
    found = unsupported_content(head)
    if found:
        raise ProblemError(
            415,
            "unsupported-file-type",
            "Unsupported file type",
            f"{name} is {found}, not a document; upload {_SUPPORTED} files.",
            file=name,
        )


def _checked(upload: UploadFile, name: str) -> None:
    size = upload.size if upload.size is not None else upload.file.seek(0, os.SEEK_END)
    upload.file.seek(0)
    head = upload.file.read(_SNIFF_BYTES)
    upload.file.seek(0)
    _check(name, size, head)


def _repeated(values: list[str]) -> list[str]:
    return sorted(value for value, n in Counter(values).items() if n > 1)


def _save(upload: UploadFile, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    upload.file.seek(0)
    with target.open("wb") as out:
        shutil.copyfileobj(upload.file, out, MiB)


# --- What a request asks to ingest ---------------------------------------------------------------


def file_uploads(uploads: list[UploadFile]) -> IngestionInput:
    """Return documents to ingest; 413/422 problems for too many or clashing files.

    A file too large or binary fails alone (it is listed failed in the job and in `problems`); only when
    every file is refused is the request refused, with the first file's 413/415 problem.
    """
    if not uploads:
        raise ProblemError(422, "no-files", "No files", "Send one or more files in the `files` form field.")
    if len(uploads) > MAX_FILES:
        raise too_many_files(f"{len(uploads)} files sent")
    names = [clean_filename(u.filename) for u in uploads]
    clashes = _repeated(names)
    if clashes:
        raise ProblemError(
            422,
            "duplicate-file-names",
            "Duplicate file names",
            f"File names must be unique in one upload (they become document ids): {', '.join(clashes)}.",
        )
    refused: dict[str, ProblemError] = {}
    for upload, name in zip(uploads, names, strict=True):
        try:
            _checked(upload, name)
        except ProblemError as problem:
            refused[name] = problem
    if len(refused) == len(uploads):
        first = refused[names[0]]
        if len(refused) > 1:
            first.extensions["problems"] = [p.detail or p.title for p in refused.values()]
        raise first
    kept = [(upload, name) for upload, name in zip(uploads, names, strict=True) if name not in refused]

    def write(job_dir: Path) -> None:
        for upload, name in kept:
            _save(upload, job_dir / FILES_DIR / disk_name(name))

    reasons = {name: problem.detail or problem.title for name, problem in refused.items()}
    return IngestionInput(
        "files",
        names,
        write,
        stored=[name for _, name in kept],
        problems=list(reasons.values()),
        refused=reasons,
    )


def too_many_files(sent: str) -> ProblemError:
    return ProblemError(413, "too-many-files", "Too many files", f"{sent}; at most {MAX_FILES} per request.")


def sheet_upload(tenant_id: str, upload: UploadFile, form: Literal["faq", "quick_replies"]) -> IngestionInput:
    """Return a FAQ or quick-reply sheet (CSV, XLSX or JSON) to import; rows that cannot be used are
    listed in `problems` (the job indexes the rest)."""
    name = clean_filename(upload.filename)
    _checked(upload, name)
    upload.file.seek(0)
    problems = sheet_problems(tenant_id, upload.file.read(), "faq" if form == "faq" else "quick_reply", name)
    return IngestionInput(
        form,
        [name],
        lambda job_dir: _save(upload, job_dir / FILES_DIR / disk_name(name)),
        stored=[name],
        problems=problems,
    )


def chat_export(tenant_id: str, data: bytes, filename: str | None) -> IngestionInput:
    """Return the resolved conversations of an export (JSONL, JSON list or one conversation) to import.

    `names` is empty when no conversation is resolved with a customer question and an agent answer.
    """
    name = clean_filename(filename)
    _check(name, len(data), data[:_SNIFF_BYTES])
    try:
        imported = chat_items(tenant_id, data, filename=name)
    except ValueError as exc:
        raise ProblemError(422, "unreadable-export", "Unreadable conversation export", str(exc)) from exc

    def write(job_dir: Path) -> None:
        target = job_dir / FILES_DIR / disk_name(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    return IngestionInput("chats", [i.name for i in imported.items], write, [name], imported.problems)


def text_documents(documents: list[TextDocumentIn]) -> IngestionInput:
    """Return documents that are already text; their ids are their document ids."""
    ids = [d.id for d in documents]
    clashes = _repeated(ids)
    if clashes:
        raise ProblemError(
            422,
            "duplicate-document-ids",
            "Duplicate document ids",
            f"Ids repeated: {', '.join(clashes[:10])}.",
        )
    payload = [d.model_dump() for d in documents]

    def write(job_dir: Path) -> None:
        (job_dir / TEXTS_FILE).write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")

    return IngestionInput("text", ids, write)
