"""Ingestion jobs: status with progress, and the 202 answer every ingestion request gives."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Response

from ingestion.jobs import Accepted, public_text
from ingestion.registry_models import Job

from ..deps import ContextDep, JobsDep, TenantDep
from ..errors import TENANT_ERRORS, not_found, problem_responses
from ..schemas import JobAccepted, JobOut

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=TENANT_ERRORS)


def job_accepted(response: Response, accepted: Accepted) -> JobAccepted:
    """Return the 202 body for an accepted (or replayed) job and point Location at its status."""
    location = f"/v1/jobs/{accepted.job.id}"
    response.headers["Location"] = location
    if accepted.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return JobAccepted(
        **JobOut.of(accepted.job).model_dump(),
        location=location,
        replayed=accepted.replayed,
        problems=accepted.problems,
    )


def shown(job: Job, data_dir: Path, current: str | None = None) -> JobOut:
    """Return the job as the API shows it: no error names a folder of the server."""
    out = JobOut.of(job, current)
    files = [
        f.model_copy(update={"error": public_text(f.error, data_dir)}) if f.error else f for f in out.files
    ]
    error = public_text(out.error, data_dir) if out.error else None
    return out.model_copy(update={"error": error, "files": files})


@router.get("/{job_id}", response_model=JobOut, responses=problem_responses(404))
def get_job(job_id: str, tenant: TenantDep, context: ContextDep, jobs: JobsDep) -> JobOut:
    """An ingestion job: status, counts, progress and per-file results."""
    found = jobs.progress(tenant.id, job_id)
    if found is None:
        raise not_found("Job", f"This tenant has no ingestion job {job_id!r}.")
    job, current = found
    return shown(job, context.settings.data_dir, current)


@router.get("", response_model=list[JobOut])
def list_jobs(
    tenant: TenantDep, context: ContextDep, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> list[JobOut]:
    """The tenant's most recent ingestion jobs, newest first."""
    data_dir = context.settings.data_dir
    return [shown(job, data_dir) for job in context.registry.list_jobs(tenant.id, limit=limit)]
