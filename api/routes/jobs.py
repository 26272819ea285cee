"""Ingestion jobs: status with progress, and the 202 answer every ingestion request gives."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from ..deps import ContextDep, JobsDep, TenantDep
from ..errors import TENANT_ERRORS, not_found, problem_responses
from ..jobs import Accepted
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


@router.get("/{job_id}", response_model=JobOut, responses=problem_responses(404))
def get_job(job_id: str, tenant: TenantDep, jobs: JobsDep) -> JobOut:
    """An ingestion job: status, counts, progress and per-file results."""
    job = jobs.job(tenant.id, job_id)
    if job is None:
        raise not_found("Job", f"This tenant has no ingestion job {job_id!r}.")
    return job


@router.get("", response_model=list[JobOut])
def list_jobs(
    tenant: TenantDep, context: ContextDep, jobs: JobsDep, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> list[JobOut]:
    """The tenant's most recent ingestion jobs, newest first."""
    return [jobs.shown(job) for job in context.registry.list_jobs(tenant.id, limit=limit)]
