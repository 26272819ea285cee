"""What assist derives from a tenant's whole knowledge, once per change: word rarity (`TenantVocabulary`),
conflicting and stale sources, and the auto-answer policy calibrated on a self-test of the knowledge and
on the agents' feedback.

Deriving takes seconds to a minute for a large tenant (the self-test asks every source's question). In
the server (`wait_s` set) it runs in the background: the request that finds the knowledge changed waits
up to `wait_s` for it, and until it is ready the tenant is served in suggest-only mode (no automatic
answer rests on a policy calibrated for other knowledge). Without `wait_s` (eval, CLI) it runs in the
caller, as before. In the background the word-pair work (conflicts, stale documents: tens of seconds of
pure Python at 10k chunks) runs in a worker process of its own, so it never holds the server's GIL while
requests are answered.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace

from ingestion.registry_models import Tenant
from retrieval.embed_process import spawned_pool, start_idle_timer
from retrieval.heap import settle_if_server
from retrieval.index_process import AnyIndex
from retrieval.models import SearchHit

from .conflicts import Conflict, StaleSource, conflicted_refs, find_conflicts, stale_sources
from .handoff import ResolveThresholds
from .policy import CALIBRATING_NOTE, AutoAnswerPolicy, EvidenceSample, choose_policy, suggest_only
from .records import AssistRecords
from .self_test import Probe, knowledge_probes
from .verify import TenantVocabulary

log = logging.getLogger(__name__)

# How often a tenant's knowledge is checked for changes that call for a new auto-answer policy.
POLICY_RECHECK_S = 30.0
# The process that finds sources at odds stops after this long without a derivation (it holds about
# 170 MB, and knowledge changes rarely); the next derivation starts it again (about 2 s).
WORKER_IDLE_S = 120.0


@dataclass
class TenantKnowledge:
    """What assist derives from a tenant's whole knowledge: word rarity and the auto-answer policy."""

    vocabulary: TenantVocabulary
    policy: AutoAnswerPolicy
    thresholds: ResolveThresholds  # the tenant's settings it was derived with
    stamp: tuple[int, int]  # (indexed chunks, feedback rows) when it was derived
    checked: float
    conflicts: tuple[Conflict, ...] = ()
    stale: tuple[StaleSource, ...] = ()
    # The refs of `conflicts`, derived once here: every request checks its hits against them.
    conflicted: frozenset[str] = frozenset()
    # Served while the knowledge is being derived: suggest-only, conflicts as last derived (if ever).
    interim: bool = False


def sources_at_odds(
    chunks: Sequence[SearchHit], vocabulary: TenantVocabulary | None = None
) -> tuple[tuple[Conflict, ...], tuple[StaleSource, ...]]:
    """Return the knowledge's conflicting values and stale documents (words alone, no embedder)."""
    vocabulary = vocabulary or TenantVocabulary(chunks)
    return tuple(find_conflicts(chunks, vocabulary=vocabulary)), tuple(stale_sources(chunks))


# How the service answers one self-test probe with the knowledge derived so far (policy not yet set).
ProbeScorer = Callable[[Tenant, Probe, "TenantKnowledge"], EvidenceSample]


class TenantKnowledgeCache:
    """Each tenant's derived knowledge, kept until its knowledge, feedback or settings change."""

    def __init__(
        self,
        index: AnyIndex,
        records: AssistRecords,
        score_probe: ProbeScorer,
        *,
        wait_s: float | None = None,
    ) -> None:
        """`wait_s`: derive in the background and let a request wait this long for it (None: derive in
        the caller)."""
        self.index = index
        self.records = records
        self._score_probe = score_probe
        self.wait_s = wait_s
        self._knowledge: dict[str, TenantKnowledge] = {}
        self._knowledge_lock = threading.Lock()
        self._pending: dict[str, tuple[tuple[object, ...], Future[TenantKnowledge]]] = {}
        self._generation: dict[str, int] = {}
        self._executor = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="tenant-knowledge")
            if wait_s is not None
            else None
        )
        self._worker: ProcessPoolExecutor | None = None  # started with the first background derivation
        self._worker_busy = False  # a call is in the worker (one derivation runs at a time)
        self._worker_lock = threading.Lock()
        self._worker_idle: threading.Timer | None = None  # stops the worker after WORKER_IDLE_S without work
        self._closed = False

    def get(self, tenant: Tenant) -> TenantKnowledge:
        """Return what was derived from the tenant's knowledge, derived again when its knowledge, its
        feedback or its settings changed (checked every POLICY_RECHECK_S)."""
        known = self.peek(tenant)
        if known is not None:
            return known
        now = time.monotonic()
        cached = self._knowledge.get(tenant.id)
        thresholds = ResolveThresholds.from_tenant(tenant.settings.resolve_thresholds)
        same_settings = cached is not None and cached.thresholds == thresholds
        stamp: tuple[int, int] | None = None
        if cached and same_settings and not cached.interim:  # last checked POLICY_RECHECK_S ago or more
            stamp = self._stamp(tenant.id)
            if cached.stamp == stamp:
                cached.checked = now
                return cached
        if self._executor is None:
            with self._knowledge_lock:  # counted again inside: another request may have derived meanwhile
                knowledge = self._derive(tenant, self._stamp(tenant.id), now)
                self._knowledge[tenant.id] = knowledge
            return knowledge
        stamp = stamp or self._stamp(tenant.id)
        future, started = self._derivation(tenant, stamp, thresholds)
        if started or cached is None:
            try:
                return future.result(timeout=self.wait_s)
            except FutureTimeout:
                pass
        elif future.done() and future.exception() is None:
            return future.result()
        return self._interim(tenant, cached, thresholds, stamp, now)

    def peek(self, tenant: Tenant) -> TenantKnowledge | None:
        """Return what `get` would without any check or wait (the last check is recent enough), else None."""
        cached = self._knowledge.get(tenant.id)
        if (
            cached is None
            or cached.interim
            or time.monotonic() - cached.checked >= POLICY_RECHECK_S
            or cached.thresholds != ResolveThresholds.from_tenant(tenant.settings.resolve_thresholds)
        ):
            return None
        return cached

    def _stamp(self, tenant_id: str) -> tuple[int, int]:
        """Return what says the tenant's knowledge or feedback changed: (indexed chunks, feedback rows)."""
        return self.index.count(tenant_id), self.records.count_feedback(tenant_id)

    def forget(self, tenant_id: str) -> None:
        """Drop what was derived from a tenant's knowledge; the next request derives it again."""
        with self._knowledge_lock:
            self._generation[tenant_id] = self._generation.get(tenant_id, 0) + 1
            self._knowledge.pop(tenant_id, None)

    def close(self) -> None:
        """Stop deriving in the background (a derivation under way finishes; none starts)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        with self._worker_lock:
            self._closed = True
            if self._worker_idle is not None:
                self._worker_idle.cancel()
            worker, self._worker = self._worker, None
        if worker is not None:
            # An idle worker is joined, so the pool's semaphores are released before this process exits (the
            # resource tracker reported them leaked); a busy one is not waited for.
            worker.shutdown(wait=not self._worker_busy, cancel_futures=True)

    def _derivation(
        self, tenant: Tenant, stamp: tuple[int, int], thresholds: ResolveThresholds
    ) -> tuple[Future[TenantKnowledge], bool]:
        """Return the tenant's derivation for this knowledge and these settings, and whether this call
        started it (one at a time per tenant and knowledge)."""
        assert self._executor is not None
        with self._knowledge_lock:
            key = (stamp, thresholds, self._generation.get(tenant.id, 0))
            pending = self._pending.get(tenant.id)
            if pending is not None and pending[0] == key:
                return pending[1], False
            future = self._executor.submit(self._derive_and_keep, tenant, stamp, key)
            self._pending[tenant.id] = (key, future)
            return future, True

    def _derive_and_keep(
        self, tenant: Tenant, stamp: tuple[int, int], key: tuple[object, ...]
    ) -> TenantKnowledge:
        try:
            knowledge = self._derive(tenant, stamp, time.monotonic())
        except Exception:
            log.exception("deriving the knowledge of tenant %s failed; it stays suggest-only", tenant.id)
            raise
        finally:
            with self._knowledge_lock:
                if self._pending.get(tenant.id, ((),))[0] == key:
                    del self._pending[tenant.id]
        with self._knowledge_lock:
            kept = key[2] == self._generation.get(tenant.id, 0)  # not forgotten meanwhile
            if kept:
                self._knowledge[tenant.id] = knowledge
        if kept:  # it lives until the knowledge changes again
            settle_if_server(f"knowledge of tenant {tenant.id} derived")
        return knowledge

    def _sources_at_odds(
        self, chunks: Sequence[SearchHit], vocabulary: TenantVocabulary
    ) -> tuple[tuple[Conflict, ...], tuple[StaleSource, ...]]:
        if self._executor is None:
            return sources_at_odds(chunks, vocabulary)
        with self._worker_lock:
            if self._closed:
                return sources_at_odds(chunks, vocabulary)
            if self._worker_idle is not None:
                self._worker_idle.cancel()
                self._worker_idle = None
            if self._worker is None:
                # Spawned (no fork of a threaded server), and it exits with this process even when that is
                # killed: it would otherwise wait on its queue for ever.
                self._worker = spawned_pool(1)
            worker = self._worker
            self._worker_busy = True
        try:
            return worker.submit(sources_at_odds, list(chunks)).result()
        except BrokenProcessPool:
            log.warning("the knowledge worker process stopped; conflicts are found in the server process")
            with self._worker_lock:
                if self._worker is worker:
                    self._worker = None
            return sources_at_odds(chunks, vocabulary)
        finally:
            with self._worker_lock:
                self._worker_busy = False
                if self._worker is not None and not self._closed:
                    # Knowledge changes in bursts (a server's first requests, an upload): the worker waits
                    # a while for the next derivation, then gives its memory back.
                    self._worker_idle = start_idle_timer(WORKER_IDLE_S, self._stop_idle_worker)

    def _stop_idle_worker(self) -> None:
        with self._worker_lock:
            if self._worker_busy or self._worker is None:
                return
            worker, self._worker, self._worker_idle = self._worker, None, None
        worker.shutdown(wait=True)
        log.info("the knowledge worker process stopped after %.0f s without work", WORKER_IDLE_S)

    def _interim(
        self,
        tenant: Tenant,
        cached: TenantKnowledge | None,
        thresholds: ResolveThresholds,
        stamp: tuple[int, int],
        now: float,
    ) -> TenantKnowledge:
        """Return what to serve while the knowledge is derived: suggest-only, with the vocabulary and
        conflicts derived last (or the vocabulary alone, for knowledge never derived)."""
        policy = suggest_only(thresholds.precision_target, CALIBRATING_NOTE)
        if cached is not None:
            return replace(cached, policy=policy, thresholds=thresholds, interim=True)
        with self._knowledge_lock:
            cached = self._knowledge.get(tenant.id)
            if cached is None or cached.stamp != stamp:
                vocabulary = TenantVocabulary(self.index.chunks(tenant.id))
                cached = TenantKnowledge(vocabulary, policy, thresholds, stamp, now, interim=True)
                self._knowledge[tenant.id] = cached
        return cached

    def _derive(self, tenant: Tenant, stamp: tuple[int, int], now: float) -> TenantKnowledge:
        thresholds = ResolveThresholds.from_tenant(tenant.settings.resolve_thresholds)
        chunks = self.index.chunks(tenant.id)
        vocabulary = TenantVocabulary(chunks)
        # Words alone (no embedder): a little stricter than with meaning, and cheap enough for every change.
        conflicts, stale = self._sources_at_odds(chunks, vocabulary)
        unscored = TenantKnowledge(
            vocabulary,
            choose_policy([]),
            thresholds,
            stamp,
            now,
            conflicts=conflicts,
            stale=stale,
            conflicted=conflicted_refs(conflicts),
        )
        samples = [
            self._score_probe(tenant, probe, unscored) for probe in knowledge_probes(chunks, vocabulary)
        ]
        samples += [
            EvidenceSample(confidence, action != "rejected", "feedback")
            for confidence, action in self.records.feedback_evidence(tenant.id)
        ]
        policy = choose_policy(
            samples, thresholds.precision_target, manual_threshold=thresholds.auto_threshold
        )
        log.info(
            "auto-answer policy tenant=%s mode=%s threshold=%s samples=%d",
            tenant.id,
            policy.mode,
            policy.threshold,
            len(samples),
        )
        return replace(unscored, policy=policy)
