"""Soak benchmark: ingestion and searching at the same time, on the index as `serve` runs it.

An index of `base` points (real USE and BM25 vectors of the dataset's texts, perturbed: see
`retrieval.bench.PointFactory`) is built and optimised, then opened in its own process (`HostedIndex`,
as `serve` opens it). Search clients query it back to back while `jobs` ingestion jobs of `job_chunks`
real passages each are written (encoded in the index process) and each ends with `maintain()`, as an
ingestion job does. Reported: search latency percentiles (the stalls) while idle, while chunks are
written and while the index is optimised, per job and overall; the index's disk and the index process's
RSS after every job; and both against a fresh open of the same index at the end.
"""

from __future__ import annotations

import os
import platform
import random
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .bench import PointFactory, read_dataset
from .edge_store import current_shard_dir
from .embedders import Embedder
from .index import KnowledgeIndex
from .index_process import HostedIndex
from .models import Chunk
from .settings import Settings
from .sparse import TurkishBm25

BASE_BATCH = 1_000
WARM_SEARCHES = 100


def disk_bytes(path: Path) -> int:
    """Return the bytes the files under `path` occupy on disk (allocated blocks: the engine's files are sparse)."""
    return sum(f.stat().st_blocks * 512 for f in Path(path).rglob("*") if f.is_file())


def apparent_bytes(path: Path) -> int:
    """Return the summed file sizes under `path` (what `du --apparent-size` shows)."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def rss_kib(pid: int | None = None) -> int:
    """Return the resident set size of process `pid` (this one by default), in KiB."""
    for line in Path(f"/proc/{pid or 'self'}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def latency_stats(samples: Sequence[float]) -> dict[str, float | int]:
    """Return count, p50, p95, p99 and max of latencies in ms (zeros when there are none)."""
    if not samples:
        return {"n": 0, "p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))], 1)

    return {"n": len(ordered), "p50": at(0.5), "p95": at(0.95), "p99": at(0.99), "max": round(ordered[-1], 1)}


class _Searchers:
    """Clients that search back to back (a pause between an answer and the next question), timing each."""

    def __init__(
        self, index: HostedIndex, questions: list[str], tenants: int, clients: int, pause_s: float
    ) -> None:
        self.samples: list[tuple[float, float]] = []  # (started, latency ms)
        self.errors = 0
        self._index, self._questions, self._tenants, self._pause = index, questions, tenants, pause_s
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._client, args=(n,), name=f"soak-search-{n}", daemon=True)
            for n in range(clients)
        ]

    def _client(self, n: int) -> None:
        rng = random.Random(n)
        while not self._stop.is_set():
            tenant = f"tenant-{rng.randrange(self._tenants):02d}"
            started = time.perf_counter()
            try:
                self._index.search(tenant, rng.choice(self._questions))
            except Exception:
                self.errors += 1
            else:
                self.samples.append((started, (time.perf_counter() - started) * 1e3))
            self._stop.wait(self._pause)

    def __enter__(self) -> _Searchers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def between(self, start: float, end: float) -> list[float]:
        """Latencies of the searches that started in [start, end)."""
        return [ms for started, ms in list(self.samples) if start <= started < end]

    def overlapping(self, windows: Sequence[tuple[float, float]]) -> list[float]:
        """Latencies of the searches that were waiting at some moment of one of `windows`."""
        return [
            ms
            for started, ms in list(self.samples)
            if any(started < end and started + ms / 1e3 > start for start, end in windows)
        ]


def _footprint(index: HostedIndex, index_dir: Path) -> dict[str, Any]:
    info = index.store_info()
    return {
        "disk_mib": round(disk_bytes(index_dir) / 2**20, 1),
        "apparent_mib": round(apparent_bytes(index_dir) / 2**20, 1),
        "rss_mib": round(rss_kib(index.pid) / 1024, 1),
        "segments": info.get("segments"),
        "segment_dirs": len(list((current_shard_dir(index_dir) / "segments").glob("*"))),
        "points": info.get("points"),
    }


def _warm(index: HostedIndex, questions: list[str], tenants: int) -> None:
    for n in range(WARM_SEARCHES):
        index.search(f"tenant-{n % tenants:02d}", questions[n % len(questions)])


def _job_chunks(job: int, count: int, corpus: list[dict[str, Any]], tenants: int) -> list[Chunk]:
    tenant = f"tenant-{job % tenants:02d}"
    return [
        Chunk(tenant, f"soak-{job}-{n}", "0000", row["text"], source="doc", title=row.get("title", ""))
        for n, row in ((n, corpus[(job * count + n) % len(corpus)]) for n in range(count))
    ]


def run_soak(
    settings: Settings,
    embedder: Embedder,
    dataset: Path,
    *,
    base: int = 20_000,
    jobs: int = 10,
    job_chunks: int = 1_000,
    clients: int = 4,
    pause_ms: int = 20,
    tenants: int = 50,
    idle_s: float = 5.0,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the soak in a temporary data dir and return a JSON-ready report."""
    corpus, questions, texts = read_dataset(dataset)
    with tempfile.TemporaryDirectory(prefix="invekto-soak-") as tmp:
        # Every job ends with an optimize, as a 1k-chunk job does at the default threshold.
        soak_settings = settings.model_copy(
            update={
                "data_dir": Path(tmp),
                "store": "edge",
                "index_process": True,
                "optimize_threshold": min(settings.optimize_threshold, job_chunks),
            }
        )
        index_dir = soak_settings.index_dir
        progress(f"building the base index: {base:,} points")
        started = time.perf_counter()
        with KnowledgeIndex(
            soak_settings.model_copy(update={"index_process": False}), embedder=embedder
        ) as local:
            factory = PointFactory(texts, questions, embedder, TurkishBm25())
            for start in range(0, base, BASE_BATCH):
                local.store.upsert(factory.points(start, min(BASE_BATCH, base - start), tenants))
            local.store.optimize()
        base_s = time.perf_counter() - started

        index = HostedIndex(soak_settings)
        timeline: list[dict[str, Any]] = []
        writes: list[tuple[float, float]] = []
        optimizes: list[tuple[float, float]] = []
        try:
            _warm(index, questions, tenants)
            opened = _footprint(index, index_dir)
            progress(f"opened: {opened}")
            with _Searchers(index, questions, tenants, clients, pause_ms / 1e3) as searchers:
                idle_start = time.perf_counter()
                time.sleep(idle_s)
                idle = searchers.between(idle_start, time.perf_counter())
                for job in range(jobs):
                    chunks = _job_chunks(job, job_chunks, corpus, tenants)
                    t0 = time.perf_counter()
                    index.upsert(chunks)
                    t1 = time.perf_counter()
                    ran = index.maintain()
                    t2 = time.perf_counter()
                    writes.append((t0, t1))
                    optimizes.append((t1, t2))
                    row = {
                        "job": job + 1,
                        "chunks": len(chunks),
                        "write_s": round(t1 - t0, 2),
                        "optimize_s": round(t2 - t1, 2),
                        "optimized": ran,
                        **_footprint(index, index_dir),
                    }
                    timeline.append(row)
                    progress(
                        f"job {job + 1}/{jobs}: write {row['write_s']} s, optimize {row['optimize_s']} s, "
                        f"disk {row['disk_mib']} MiB, rss {row['rss_mib']} MiB, {row['segments']} segments"
                    )
                # Searches on the index the jobs left (more segments), with nothing else running.
                settled = time.perf_counter()
                time.sleep(idle_s)
                idle_after = searchers.between(settled, time.perf_counter())
            # Per job only now: a search that waited for the job's optimize is answered after it.
            for row, (job_start, _), (_, job_end) in zip(timeline, writes, optimizes, strict=True):
                row["search_ms"] = latency_stats(searchers.between(job_start, job_end))
            after = timeline[-1] if timeline else opened
            stalls = {
                "idle": latency_stats(idle),
                "during_writes": latency_stats(searchers.overlapping(writes)),
                "during_optimize": latency_stats(searchers.overlapping(optimizes)),
                "idle_after_jobs": latency_stats(idle_after),
                "all_jobs": latency_stats(searchers.between(writes[0][0], optimizes[-1][1]) if jobs else []),
            }
        finally:
            index.close()
        index = HostedIndex(soak_settings)
        try:
            _warm(index, questions, tenants)
            fresh = _footprint(index, index_dir)
        finally:
            index.close()
    ingest_s = sum(b - a for a, b in writes)
    return {
        "config": {
            "base_points": base,
            "jobs": jobs,
            "job_chunks": job_chunks,
            "clients": clients,
            "pause_ms": pause_ms,
            "tenants": tenants,
            "embedder": embedder.model_id,
        },
        "base_build_s": round(base_s, 1),
        "ingest_chunks_per_s": round(jobs * job_chunks / ingest_s, 1) if ingest_s else 0.0,
        "optimize_s_total": round(sum(b - a for a, b in optimizes), 1),
        "search_ms": stalls,
        "search_errors": searchers.errors,
        "searches": len(searchers.samples),
        "opened": opened,
        "after_jobs": {k: after[k] for k in opened},
        "fresh_open": fresh,
        "disk_vs_fresh": round(after["disk_mib"] / fresh["disk_mib"], 2),
        "rss_vs_fresh": round(after["rss_mib"] / fresh["rss_mib"], 2),
        "timeline": timeline,
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_1m_after": round(os.getloadavg()[0], 2),
        },
    }


def markdown_table(report: dict[str, Any]) -> str:
    """Return the soak as Markdown: stall percentiles, disk and RSS against a fresh open, the timeline."""
    c = report["config"]
    lines = [
        f"{c['base_points']:,} points, then {c['jobs']} jobs of {c['job_chunks']:,} chunks; {c['clients']} search "
        f"clients ({c['pause_ms']} ms pause); {report['searches']:,} searches, {report['search_errors']} errors; "
        f"ingestion {report['ingest_chunks_per_s']} chunks/s; load average after: "
        f"{report['machine']['load_average_1m_after']} on {report['machine']['cpus']} cores.",
        "",
        "| searches | n | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for phase, s in report["search_ms"].items():
        lines.append(
            f"| {phase.replace('_', ' ')} | {s['n']} | {s['p50']} | {s['p95']} | {s['p99']} | {s['max']} |"
        )
    lines += [
        "",
        "| index | disk MiB (apparent) | index process RSS MiB | segments (folders) | points |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in ("opened", "after_jobs", "fresh_open"):
        f = report[name]
        lines.append(
            f"| {name.replace('_', ' ')} | {f['disk_mib']} ({f['apparent_mib']}) | {f['rss_mib']} | "
            f"{f['segments']} ({f['segment_dirs']}) | {f['points']:,} |"
        )
    lines += [
        "",
        f"After the jobs vs a fresh open: disk **{report['disk_vs_fresh']}×**, RSS **{report['rss_vs_fresh']}×**.",
        "",
        "| job | write s | optimize s | search p50 / p99 / max ms | disk MiB | RSS MiB | segments (folders) |",
        "|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in report["timeline"]:
        s = r["search_ms"]
        lines.append(
            f"| {r['job']} | {r['write_s']} | {r['optimize_s']} | {s['p50']} / {s['p99']} / {s['max']} | "
            f"{r['disk_mib']} | {r['rss_mib']} | {r['segments']} ({r['segment_dirs']}) |"
        )
    return "\n".join(lines) + "\n"
