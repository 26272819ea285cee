"""Stall benchmark: one tenant's large file against another tenant's one-document job, the parse limits,
and how long shutdown takes while the large file is being indexed.

Runs the API's job runner (`IngestionJobs`) on a fresh edge index and registry in a temporary folder,
with real files and the configured embedder: tenant `large` uploads one large .txt, tenant `small`
uploads one short document a moment later, and the time until the small job has finished is measured.
"""

from __future__ import annotations

import inspect
import io
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi import UploadFile

from ingestion.jobs import IngestionJobs
from ingestion.pipeline import Ingestor
from ingestion.registry import Registry
from retrieval.embedders import Embedder
from retrieval.index import KnowledgeIndex
from retrieval.settings import Settings

from .uploads import file_uploads

PARAGRAPH = (
    "Kargo ücreti 59,90 TL olup siparişiniz iki iş günü içinde teslim edilir. İade süresi on dört gündür, "
    "ürün kullanılmamış ve faturasıyla birlikte gönderilmelidir. Taksit seçenekleri kart türüne göre değişir.\n\n"
)
SMALL = "Mağazamız hafta içi 09:00-18:00 saatleri arasında açıktır; cumartesi 10:00-16:00.\n"


def _upload(name: str, data: bytes) -> UploadFile:
    return UploadFile(io.BytesIO(data), filename=name, size=len(data))


def _wait(jobs: IngestionJobs, tenant: str, job_id: str, until: tuple[str, ...], timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        job = jobs.registry.get_job(tenant, job_id)
        if job is not None and job.status in until:
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {job.status if job else '?'} after {timeout_s:.0f} s")
        time.sleep(0.05)


def _jobs(ingestor: Ingestor, uploads: Path, **options: Any) -> IngestionJobs:
    accepted = inspect.signature(IngestionJobs).parameters
    return IngestionJobs(ingestor, uploads, **{k: v for k, v in options.items() if k in accepted})


def run_stall_benchmark(
    settings: Settings,
    embedder: Embedder,
    *,
    large_mb: float = 2.0,
    small_after_s: float = 2.0,
    timeout_limit_s: float = 5.0,
    memory_limit_mb: int = 8,
) -> dict[str, Any]:
    """Return the small job's wait, the large job's time, the parse limits' outcomes and shutdown's time."""
    from ingestion.parse_worker import ParseLimits

    large = PARAGRAPH.encode() * max(1, int(large_mb * 1024 * 1024 / len(PARAGRAPH.encode())))
    report: dict[str, Any] = {
        "large_file_mb": round(len(large) / 1024 / 1024, 2),
        "embedder": embedder.model_id,
    }
    with tempfile.TemporaryDirectory(prefix="invekto-bench-stall-") as tmp:
        run_settings = settings.model_copy(
            update={"data_dir": Path(tmp), "database_url": None, "store": "edge", "index_process": False}
        )
        index = KnowledgeIndex(run_settings, embedder=embedder)
        registry = Registry(run_settings.registry_url)
        ingestor = Ingestor(index, registry)
        for tenant in ("large", "small", "limits"):
            ingestor.ensure_tenant(tenant)
        embedder.embed_documents(["ısınma"])
        uploads = Path(tmp) / "uploads"
        limits = ParseLimits(
            getattr(settings, "parse_timeout_s", 300.0), getattr(settings, "parse_memory_mb", 1024)
        )
        jobs = _jobs(ingestor, uploads, limits=limits)
        report["limits_applied"] = "limits" in inspect.signature(IngestionJobs).parameters

        # 1. A small job of another tenant while the large file is being ingested.
        began = time.monotonic()
        big = jobs.accept("large", file_uploads([_upload("buyuk.txt", large)]), None).job
        _wait(jobs, "large", big.id, ("running", "succeeded", "failed"), 600)
        time.sleep(small_after_s)
        sent = time.monotonic()
        small = jobs.accept("small", file_uploads([_upload("saatler.txt", SMALL.encode())]), None).job
        small_done = _wait(jobs, "small", small.id, ("succeeded", "failed"), 3600)
        small_s = time.monotonic() - sent
        big_done = _wait(jobs, "large", big.id, ("succeeded", "failed"), 3600)
        report.update(
            small_job_s=round(small_s, 2),
            small_job_status=small_done.status,
            large_job_s=round(time.monotonic() - began, 2),
            large_job_chunks=big_done.chunks_written,
            large_job_status=big_done.status,
            peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        )

        # 2. The parse limits: the same large file under a short time limit, then a small memory limit.
        for name, options in (
            ("time_limit", {"timeout_s": timeout_limit_s, "memory_mb": 0}),
            ("memory_limit", {"timeout_s": 0, "memory_mb": memory_limit_mb}),
        ):
            jobs.limits = ParseLimits(**options)
            started = time.monotonic()
            data = large + f"\n{name}\n".encode()  # not unchanged: parsed again
            job = jobs.accept("limits", file_uploads([_upload(f"{name}.txt", data)]), None).job
            done = _wait(jobs, "limits", job.id, ("succeeded", "failed"), 3600)
            report[name] = {
                "limit": options,
                "seconds": round(time.monotonic() - started, 2),
                "file_status": done.files[0].status,
                "error": done.files[0].error,
            }
        jobs.limits = limits

        # 3. Shutdown while the large file is being indexed.
        again = jobs.accept("large", file_uploads([_upload("buyuk-2.txt", large + b"\n2\n")]), None).job
        _wait(jobs, "large", again.id, ("running",), 600)
        time.sleep(small_after_s + 3)
        started = time.monotonic()
        jobs.close()
        report["shutdown_s"] = round(time.monotonic() - started, 2)
        left = registry.get_job("large", again.id)
        report["job_after_shutdown"] = left.status if left else None
        report["input_kept"] = (uploads / "large" / again.id / "manifest.json").is_file()
        index.close()
        registry.close()
    return report


def markdown_table(before: dict[str, Any] | None, after: dict[str, Any]) -> str:
    """Return the stall benchmark (before and after, when given) as a Markdown table."""
    runs = [("before", before), ("after", after)] if before else [("now", after)]

    def limit(report: dict[str, Any], name: str) -> str:
        found = report.get(name)
        if not found:
            return "n/a"
        if not report.get("limits_applied"):
            return f"indexed in {found['seconds']} s (no limits)"
        value = found["limit"]["timeout_s" if name == "time_limit" else "memory_mb"]
        limit = f"{value} s" if name == "time_limit" else f"{value} MB"
        outcome = "failed after" if found["file_status"] == "failed" else "indexed in"
        return f"{outcome} {found['seconds']} s (limit {limit})"

    rows = [
        "| run | large file | small job of another tenant | large job | shutdown | job after shutdown "
        "| time limit | memory limit |",
        "|---|---:|---:|---:|---:|---|---|---|",
    ]
    for label, r in runs:
        assert r is not None
        rows.append(
            f"| {label} | {r['large_file_mb']} MB, {r['large_job_chunks']:,} chunks | {r['small_job_s']} s "
            f"| {r['large_job_s']} s | {r['shutdown_s']} s | {r['job_after_shutdown']}"
            f"{', input kept' if r['input_kept'] else ''} | {limit(r, 'time_limit')} "
            f"| {limit(r, 'memory_limit')} |"
        )
    return "\n".join(rows) + "\n"
