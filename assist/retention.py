"""Retention: a tenant's audit entries, suggestions and gap questions (assist.gap_log) expire after its
`retention_days` (180 by default; KVKK: kept no longer than needed).

`prune` deletes what has expired for every tenant; `RetentionPruner` runs it in the server's background
(`invekto-knowledge prune` runs it once). A reply an agent accepted or edited was learned as knowledge
(assist.learning): its suggestion and feedback stay, and so does the knowledge.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ingestion.registry import Registry
from ingestion.registry_models import utcnow

from .gap_log import GapLog
from .records import AssistRecords

log = logging.getLogger(__name__)

# The first pruning waits this long after the server starts, so startup itself stays quick.
FIRST_PRUNE_DELAY_S = 60.0


@dataclass(frozen=True)
class Pruned:
    """What one tenant's pruning deleted."""

    tenant_id: str
    retention_days: int
    audit_entries: int
    suggestions: int
    gap_questions: int = 0


def prune(registry: Registry, now: datetime | None = None, tenant_id: str | None = None) -> list[Pruned]:
    """Delete every tenant's (or one tenant's) expired audit entries and suggestions; return what went."""
    now = now or utcnow()
    out = []
    gaps = GapLog(registry)
    for tenant in registry.list_tenants():
        if tenant_id is not None and tenant.id != tenant_id:
            continue
        days = tenant.settings.retention_days
        before = now - timedelta(days=days)
        audit, suggestions = AssistRecords(registry).prune_assist_records(tenant.id, before)
        out.append(Pruned(tenant.id, days, audit, suggestions, gaps.prune(before, tenant.id)))
    return out


class RetentionPruner:
    """Prunes in a daemon thread every `interval_s` (the first time `first_delay_s` after start; never
    when `interval_s` is 0)."""

    def __init__(
        self,
        registry: Registry,
        interval_s: float,
        first_delay_s: float = FIRST_PRUNE_DELAY_S,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._registry = registry
        self._clock = clock
        self._interval = interval_s
        self._first_delay = first_delay_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="retention", daemon=True)
        self.runs = 0

    def start(self) -> None:
        if self._interval > 0:
            self._thread.start()

    def _run(self) -> None:
        delay = self._first_delay
        while not self._stop.wait(delay):
            delay = self._interval
            try:
                pruned = prune(self._registry, now=self._clock())
            except Exception:  # a locked or unreachable database: the next round tries again
                log.exception("retention pruning failed; trying again in %.0f s", self._interval)
                continue
            self.runs += 1
            audit, suggestions = sum(p.audit_entries for p in pruned), sum(p.suggestions for p in pruned)
            if audit or suggestions:
                log.info("retention: pruned %d audit entries and %d suggestions", audit, suggestions)

    def close(self) -> None:
        """Stop the thread (a pruning in progress finishes its batch first)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30)
