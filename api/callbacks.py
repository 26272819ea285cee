"""Job callbacks: a finished ingestion job announced to the tenant's `callback_url`, signed, with retries.

When a job ends (succeeded, partial or failed) and its tenant has a `callback_url` setting, a background
thread POSTs `{"event": "job.finished", "tenant_id": ..., "job": {...}}` to it, signed like incoming webhooks
(api/webhooks.py: X-Invekto-Timestamp and X-Invekto-Signature, with the tenant's current webhook secret;
unsigned when it has none). A network error, a 5xx or a 429 is retried after each of `retry_delays`
(1, 4, 16, 64 s: five attempts), each attempt signed anew; any other 4xx is final. The outcome is logged
(job id, attempts, final status; never the secret) and counted in invekto_job_callbacks_total.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from typing import Any, Protocol

import httpx

from ingestion.registry import Registry
from ingestion.registry_models import Job

from .webhooks import signed_headers

log = logging.getLogger(__name__)

RETRY_DELAYS_S: tuple[float, ...] = (1.0, 4.0, 16.0, 64.0)
TIMEOUT_S = 10.0
EVENT = "job.finished"


class CallbackMetrics(Protocol):
    def callback_delivered(self, outcome: str) -> None: ...


def job_event(job: Job) -> dict[str, Any]:
    """Return the callback body announcing the finished `job`."""
    return {
        "event": EVENT,
        "tenant_id": job.tenant_id,
        "job": {
            "id": job.id,
            "kind": job.kind,
            "status": job.status,
            "files_total": job.files_total,
            "files_done": job.files_done,
            "files_failed": job.files_failed,
            "chunks_written": job.chunks_written,
            "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        },
    }


class CallbackSender:
    """Sends job callbacks on background threads; the job runner and requests never wait for them."""

    def __init__(
        self,
        registry: Registry,
        metrics: CallbackMetrics | None = None,
        *,
        retry_delays: Sequence[float] = RETRY_DELAYS_S,
        transport: httpx.BaseTransport | None = None,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        self.registry = registry
        self.metrics = metrics
        self.retry_delays = tuple(retry_delays)
        self.transport = transport
        self.timeout_s = timeout_s
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()

    def job_finished(self, job: Job) -> None:
        """Announce `job` to its tenant's callback URL, if it has one, on a thread of its own."""
        tenant = self.registry.get_tenant(job.tenant_id)
        if tenant is None or not tenant.settings.callback_url or self._stopping.is_set():
            return
        secret = tenant.webhook.current if tenant.webhook else None
        body = json.dumps(job_event(job), ensure_ascii=False).encode()
        thread = threading.Thread(
            target=self._deliver,
            args=(job.id, tenant.settings.callback_url, body, secret),
            name=f"callback-{job.id[:8]}",
            daemon=True,
        )
        with self._lock:
            self._threads.add(thread)
        thread.start()

    def wait(self, timeout_s: float) -> bool:
        """Return True once every callback started so far is delivered or given up (for tests and shutdown)."""
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout_s)
        return not any(t.is_alive() for t in threads)

    def close(self) -> None:
        """Stop retrying: callbacks waiting for their next attempt give up (a request in flight finishes)."""
        self._stopping.set()

    def _deliver(self, job_id: str, url: str, body: bytes, secret: str | None) -> None:
        try:
            attempts, outcome, detail = self._attempts(url, body, secret)
            if outcome == "delivered":
                log.info("job %s callback delivered after %d attempt(s): %s", job_id, attempts, detail)
            else:
                log.warning("job %s callback %s after %d attempt(s): %s", job_id, outcome, attempts, detail)
            if self.metrics is not None:
                self.metrics.callback_delivered(outcome)
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _attempts(self, url: str, body: bytes, secret: str | None) -> tuple[int, str, str]:
        """Return (attempts made, outcome: delivered, refused or failed, the last status or error)."""
        delays = iter(self.retry_delays)
        attempt = 0
        with httpx.Client(transport=self.transport, timeout=self.timeout_s, follow_redirects=False) as client:
            while True:
                attempt += 1
                headers = {"Content-Type": "application/json", "User-Agent": "invekto-knowledge"}
                if secret:
                    headers.update(signed_headers(secret, body))
                try:
                    status = client.post(url, content=body, headers=headers).status_code
                    detail = f"HTTP {status}"
                except httpx.HTTPError as exc:
                    status, detail = None, f"{type(exc).__name__}: {exc}"
                if status is not None and 200 <= status < 300:
                    return attempt, "delivered", detail
                if status is not None and status < 500 and status != 429:
                    return attempt, "refused", detail  # the receiver said no: sending again changes nothing
                delay = next(delays, None)
                if delay is None or self._stopping.wait(delay):
                    return attempt, "failed", detail
