"""API load benchmark: a real server on loopback, ~10k chunks indexed, wrk posting suggest requests.

Steps: start `invekto-knowledge serve` in a subprocess with a temporary data dir and the extractive
provider; create a tenant and key over the admin API; index xquad-tr-dev passages (repeated under
distinct ids) through `POST /v1/text-documents` until the target chunk count; warm up; then run wrk
with a Lua script that rotates Turkish questions and reports p50/p95/p99 from wrk's own histogram.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from .app import API_VERSION, HOSTED_INDEX_COMPUTE_SLOTS

TEXT_BATCH = 500
INDEXED_MARKER = "bench-indexed.json"
WARMUP_S = 5
# wrk drops a response slower than its timeout (2 s by default) from the latencies; a loaded machine's
# slow answers belong in them, so only a hung request times out.
WRK_TIMEOUT_S = 30
# How long the bench waits for the tenant's policy to be derived before the load (minutes at 100k chunks).
POLICY_TIMEOUT_S = 900.0


class BenchError(RuntimeError):
    """The benchmark could not run; the message says why."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _lua_script(bodies: list[str], key: str, pause_ms: int = 0) -> str:
    quoted = ",\n".join(f"[==[{body}]==]" for body in bodies)
    # wrk calls delay() before each request: a client that reads the answer before it asks again.
    pause = f"delay = function()\n  return {pause_ms}\nend\n" if pause_ms > 0 else ""
    return (
        pause
        + f"""
local bodies = {{
{quoted}
}}
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"

request = function()
  i = i % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[i])
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {{"requests": %d, "duration_us": %d, "bytes": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p95_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f, "errors_connect": %d, ' ..
    '"errors_read": %d, "errors_write": %d, "errors_status": %d, "errors_timeout": %d}}\\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50), latency:percentile(90),
    latency:percentile(95), latency:percentile(99), latency.max, latency.mean, e.connect, e.read,
    e.write, e.status, e.timeout))
end
"""
    )


def _rss_kib(pid: int) -> dict[str, int]:
    """Return VmRSS and VmHWM (peak RSS) of a process, in KiB, from /proc."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])
    return values


def _children_rss_kib(pid: int) -> int:
    """Return the summed VmRSS of a process's children (the index process), in KiB."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                total += _rss_kib(int(stat.parent.name)).get("VmRSS", 0)
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we looked
    return total


def _wait_policy(client: httpx.Client, headers: dict[str, str], progress: Callable[[str], None]) -> float:
    """Wait until the tenant's auto-answer policy is derived for its knowledge (the server serves it
    suggest-only meanwhile); return how long that took. The load measures the steady state after it."""
    from assist.policy import CALIBRATING_NOTE

    started = time.perf_counter()
    progress("waiting for the tenant's policy to be derived")
    while time.perf_counter() - started < POLICY_TIMEOUT_S:
        note = client.get("/v1/assist/policy", headers=headers, timeout=POLICY_TIMEOUT_S).json().get("note")
        if note != CALIBRATING_NOTE:
            return time.perf_counter() - started
        time.sleep(0.5)
    raise BenchError(f"the tenant's policy was not derived within {POLICY_TIMEOUT_S:.0f} s")


def _wait_ready(client: httpx.Client, server: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise BenchError(f"the server exited with code {server.returncode} before it was ready")
        try:
            if client.get("/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise BenchError(f"the server was not ready after {timeout_s:.0f} s")


def _index_passages(
    client: httpx.Client,
    headers: dict[str, str],
    corpus: list[dict[str, Any]],
    chunks: int,
    say: Callable[[str], None],
) -> int:
    """Send passages (repeated under distinct ids) as text documents until `chunks` chunks are indexed."""
    written, copy = 0, 0
    while written < chunks:
        docs = [
            {"id": f"{row['id']}#{copy}-{n}", "title": row.get("title", ""), "text": row["text"]}
            for n in range(max(1, TEXT_BATCH // len(corpus)))
            for row in corpus
        ]
        copy += 1
        job = client.post("/v1/text-documents", json={"documents": docs}, headers=headers)
        if job.status_code != 202:
            raise BenchError(f"indexing failed: {job.status_code} {job.text[:300]}")
        status, location = job.json(), job.headers["Location"]
        while status["status"] in ("queued", "running"):
            time.sleep(0.5)
            status = client.get(location, headers=headers).json()
        if status["status"] != "succeeded":
            raise BenchError(f"indexing job {status['id']} ended {status['status']}: {status.get('error')}")
        written += status["chunks_written"]
        say(f"indexed {written:,} / {chunks:,} chunks")
    return written


def run_api_benchmark(
    dataset: Path,
    *,
    chunks: int = 10_000,
    connections: int = 32,
    duration_s: int = 60,
    threads: int = 1,
    compute_slots: int | None = None,
    data_dir: Path | None = None,
    pause_ms: int = 0,
    workers: int = 1,
    source: Path | None = None,
    progress: Callable[[str], None] = lambda _msg: None,
) -> dict[str, Any]:
    """Return req/s, latency percentiles, errors and server RSS of suggest under wrk load.

    `source`: the checkout of this project whose `serve` is measured (its code runs, with this
    environment's packages); None: this one.

    `workers` above 1: `serve --workers N` (N HTTP processes in front of one index process; the server's
    RSS is then the supervisor's, and its children's figure holds the workers and the index process).

    `pause_ms` 0: every client sends its next request as soon as the last is answered (the server's
    saturation throughput; latency is then clients / throughput). Above 0: each client pauses that long
    between an answer and its next request (latency at the load those clients offer).

    `data_dir` keeps the index between runs: the passages are indexed into it once (a marker file records
    how many chunks), later runs reuse it. None: a temporary directory, removed afterwards.
    """
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchError("wrk is not installed (apt-get install -y wrk)")
    root = _checkout(source)
    corpus, queries = _read_jsonl(dataset / "corpus.jsonl"), _read_jsonl(dataset / "queries.jsonl")
    port, admin = free_port(), secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory(prefix="invekto-bench-api-") as scratch:
        data = Path(data_dir) if data_dir is not None else Path(scratch)
        data.mkdir(parents=True, exist_ok=True)
        marker = data / INDEXED_MARKER
        env = {
            **os.environ,
            "INVEKTO_DATA_DIR": str(data),
            "INVEKTO_DATABASE_URL": "",
            "INVEKTO_STORE": "edge",
            "INVEKTO_ADMIN_TOKEN": admin,
            "INVEKTO_LLM_PROVIDER": "extractive",
        }
        # No per-tenant limit in the way: the load comes from one tenant on purpose (its 10k chunks).
        cmd = [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--rate-limit", "100000"]
        cmd += ["--burst", "100000", "--no-access-log", "--log-level", "warning"]
        if compute_slots is not None:
            cmd += ["--compute-slots", str(compute_slots)]
        if workers > 1:
            cmd += ["--workers", str(workers)]
        server = subprocess.Popen(cmd, env=env, cwd=root)
        try:
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base, timeout=60) as client:
                _wait_ready(client, server)
                admin_headers = {"Authorization": f"Bearer {admin}"}
                client.post("/v1/admin/tenants", json={"id": "bench", "name": "Bench"}, headers=admin_headers)
                key = client.post("/v1/admin/tenants/bench/keys", json={"name": "wrk"}, headers=admin_headers)
                headers = {"Authorization": f"Bearer {key.json()['key']}"}
                previous = json.loads(marker.read_text()) if marker.exists() else {}
                if previous.get("chunks", 0) >= chunks:
                    indexed, index_s = previous["chunks"], previous["index_build_s"]
                    progress(f"reusing {indexed:,} chunks indexed in {data}")
                else:
                    started = time.perf_counter()
                    indexed = _index_passages(client, headers, corpus, chunks, progress)
                    index_s = time.perf_counter() - started
                    marker.write_text(json.dumps({"chunks": indexed, "index_build_s": round(index_s, 1)}))
                policy_s = _wait_policy(client, headers, progress)
            bodies = [
                json.dumps(
                    {
                        "conversation_id": f"bench-{n}",
                        "messages": [{"role": "customer", "text": q["question"]}],
                    },
                    ensure_ascii=False,
                )
                for n, q in enumerate(queries)
            ]
            script = Path(scratch) / "suggest.lua"
            token = headers["Authorization"].split()[1]
            warmup = Path(scratch) / "warmup.lua"
            warmup.write_text(_lua_script(bodies, token), encoding="utf-8")
            script.write_text(_lua_script(bodies, token, pause_ms), encoding="utf-8")
            url = f"{base}/v1/assist/suggest"
            progress(f"warm-up {WARMUP_S} s")
            subprocess.run(
                [wrk, "-t1", "-c4", f"-d{WARMUP_S}s", f"--timeout={WRK_TIMEOUT_S}s", "-s", str(warmup), url],
                capture_output=True,
                check=True,
            )
            rss_before = _rss_kib(server.pid)
            progress(f"wrk: {connections} connections, {duration_s} s")
            run = subprocess.run(
                [
                    wrk,
                    f"-t{threads}",
                    f"-c{connections}",
                    f"-d{duration_s}s",
                    f"--timeout={WRK_TIMEOUT_S}s",
                    "--latency",
                    "-s",
                    str(script),
                    url,
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            rss_after = _rss_kib(server.pid)
            children_kib = _children_rss_kib(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=60)
    match = re.search(r"^BENCH_JSON (\{.*\})$", run.stdout, re.MULTILINE)
    if match is None:
        raise BenchError(f"no result line in wrk's output:\n{run.stdout}\n{run.stderr}")
    raw = json.loads(match.group(1))
    errors = sum(raw[k] for k in raw if k.startswith("errors_"))
    seconds = raw["duration_us"] / 1e6
    return {
        "endpoint": "POST /v1/assist/suggest",
        "provider": "extractive",
        "load_generator": "wrk "
        + subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout.split()[1],
        "connections": connections,
        "pause_ms": pause_ms,
        "threads": threads,
        # `serve` runs the index in its own process by default.
        "index_process": True,
        "workers": workers,
        "compute_slots": compute_slots or HOSTED_INDEX_COMPUTE_SLOTS,
        "duration_s": round(seconds, 1),
        "chunks_indexed": indexed,
        "index_build_s": round(index_s, 1),
        "policy_ready_s": round(policy_s, 1),
        "requests": raw["requests"],
        "requests_per_s": round(raw["requests"] / seconds, 1),
        "latency_ms": {
            "p50": round(raw["p50_us"] / 1000, 1),
            "p90": round(raw["p90_us"] / 1000, 1),
            "p95": round(raw["p95_us"] / 1000, 1),
            "p99": round(raw["p99_us"] / 1000, 1),
            "max": round(raw["max_us"] / 1000, 1),
            "mean": round(raw["mean_us"] / 1000, 1),
        },
        "errors": errors,
        "non_2xx": raw["errors_status"],
        "error_breakdown": {k.removeprefix("errors_"): v for k, v in raw.items() if k.startswith("errors_")},
        "server_rss_mib": round(rss_after["VmRSS"] / 1024, 1),
        "server_rss_before_mib": round(rss_before["VmRSS"] / 1024, 1),
        "server_peak_rss_mib": round(rss_after["VmHWM"] / 1024, 1),
        # The index (encoder and engine) runs in a child process of the server (retrieval/index_process.py).
        "server_children_rss_mib": round(children_kib / 1024, 1),
        "cpu_count": os.cpu_count(),
        # Other work on the machine shows here (the benchmark itself adds about 2 on 2 cores).
        "load_average_1m_after": round(os.getloadavg()[0], 2),
        "api_version": API_VERSION,
        "source": str(root),
        "commit": _commit(root),
        "wrk_output": run.stdout,
    }


def _checkout(source: Path | None) -> Path:
    """Return the root of the checkout whose server runs: `source`, or the one this module is in."""
    root = Path(__file__).resolve().parents[1] if source is None else Path(source).resolve()
    if not (root / "api" / "cli" / "__main__.py").is_file():
        raise BenchError(f"{root} is not a checkout of this project (no api/cli/__main__.py in it)")
    return root


def _commit(root: Path) -> str | None:
    """Return the commit checked out at `root` (with "+changes" when its files differ), or None."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True
        )
    except OSError:
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def run_api_comparison(
    dataset: Path,
    baseline: Path,
    *,
    rounds: int = 2,
    data_dir: Path | None = None,
    progress: Callable[[str], None] = lambda _msg: None,
    **options: Any,
) -> dict[str, Any]:
    """Return `run_api_benchmark` of the `baseline` checkout and of this one, alternately for `rounds`
    rounds on one kept index, with each build's median.

    This machine's throughput drifts between runs minutes apart; runs taken in turns meet the same drift,
    so only they compare. The index is built once (by the first run) in `data_dir` or a temporary dir.
    """
    if rounds < 1:
        raise BenchError("rounds must be at least 1")
    builds = {"baseline": _checkout(baseline), "this build": _checkout(None)}
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="invekto-bench-compare-") as scratch:
        data = Path(data_dir) if data_dir is not None else Path(scratch)
        for n in range(rounds):
            for build, root in builds.items():
                progress(f"round {n + 1} of {rounds}: {build} ({root})")
                report = run_api_benchmark(dataset, data_dir=data, source=root, progress=progress, **options)
                runs.append({"build": build, "round": n + 1, **report})
    summary = {}
    for build in builds:
        mine = [r for r in runs if r["build"] == build]
        summary[build] = {
            "commit": mine[0]["commit"],
            "requests_per_s": _median([r["requests_per_s"] for r in mine]),
            "p50_ms": _median([r["latency_ms"]["p50"] for r in mine]),
            "p95_ms": _median([r["latency_ms"]["p95"] for r in mine]),
            "p99_ms": _median([r["latency_ms"]["p99"] for r in mine]),
            "errors": sum(r["errors"] for r in mine),
        }
    return {"rounds": rounds, "runs": runs, "summary": summary}


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 1)


def comparison_table(report: dict[str, Any]) -> str:
    """Return the alternated runs of two builds and their medians as a Markdown table."""
    lines = [
        "| round | build | commit | req/s | p50 ms | p95 ms | p99 ms | errors |",
        "|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in report["runs"]:
        lat = r["latency_ms"]
        lines.append(
            f"| {r['round']} | {r['build']} | {r['commit'] or '-'} | {r['requests_per_s']:.1f} | {lat['p50']} | "
            f"{lat['p95']} | {lat['p99']} | {r['errors']} |"
        )
    for build, m in report["summary"].items():
        lines.append(
            f"| median | {build} | {m['commit'] or '-'} | {m['requests_per_s']:.1f} | {m['p50_ms']} | "
            f"{m['p95_ms']} | {m['p99_ms']} | {m['errors']} |"
        )
    first = report["runs"][0]
    return (
        "\n".join(lines)
        + f"\n\nThe two builds run in turns on one index of {first['chunks_indexed']:,} chunks, "
        f"{first['connections']} clients, {first['duration_s']:.0f} s each, same {first['cpu_count']}-core machine; "
        "a difference smaller than the spread between one build's own runs is none.\n"
    )


def markdown_table(report: dict[str, Any]) -> str:
    """Return the load benchmark as a Markdown table."""
    lat = report["latency_ms"]
    return (
        "| endpoint | chunks | clients | pause ms | duration | req/s | p50 ms | p95 ms | p99 ms | errors (non-2xx) "
        "| server RSS (+ index process) |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        f"| {report['endpoint']} ({report['provider']}) | {report['chunks_indexed']:,} | {report['connections']} | "
        f"{report.get('pause_ms', 0)} | "
        f"{report['duration_s']:.0f} s | {report['requests_per_s']:.1f} | {lat['p50']} | {lat['p95']} | "
        f"{lat['p99']} | {report['errors']} ({report['non_2xx']}) | {report['server_rss_mib']:.0f} MiB "
        f"(+ {report.get('server_children_rss_mib', 0):.0f} MiB) |\n\n"
        f"{report['load_generator']} on loopback, {report['threads']} thread(s), same {report['cpu_count']}-core "
        f"machine as the server; {report['requests']:,} requests; peak server RSS "
        f"{report['server_peak_rss_mib']:.0f} MiB; the tenant's policy was derived "
        f"{report.get('policy_ready_s', 0):.1f} s after the server started serving it (suggest-only meanwhile; "
        "the load starts after).\n"
    )
