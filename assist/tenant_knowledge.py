"""What assist derives from a tenant's whole knowledge, once per change: word rarity (`TenantVocabulary`),
conflicting and stale sources, and the auto-answer policy calibrated on a self-test of the knowledge and
on the agents' feedback.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from ingestion.registry_models import Tenant
from retrieval.index_process import AnyIndex

from .conflicts import Conflict, StaleSource, conflicted_refs, find_conflicts, stale_sources
from .handoff import ResolveThresholds
from .policy import AutoAnswerPolicy, EvidenceSample, choose_policy
from .records import AssistRecords
from .self_test import Probe, knowledge_probes
from .verify import TenantVocabulary

log = logging.getLogger(__name__)

# How often a tenant's knowledge is checked for changes that call for a new auto-answer policy.
POLICY_RECHECK_S = 30.0


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


# How the service answers one self-test probe with the knowledge derived so far (policy not yet set).
ProbeScorer = Callable[[Tenant, Probe, "TenantKnowledge"], EvidenceSample]


class TenantKnowledgeCache:
    """Each tenant's derived knowledge, kept until its knowledge, feedback or settings change."""

    def __init__(self, index: AnyIndex, records: AssistRecords, score_probe: ProbeScorer) -> None:
        self.index = index
        self.records = records
        self._score_probe = score_probe
        self._knowledge: dict[str, TenantKnowledge] = {}
        self._knowledge_lock = threading.Lock()

    def get(self, tenant: Tenant) -> TenantKnowledge:
        """Return what was derived from the tenant's knowledge, derived again when its knowledge, its
        feedback or its settings changed (checked every POLICY_RECHECK_S)."""
        now = time.monotonic()
        cached = self._knowledge.get(tenant.id)
        thresholds = ResolveThresholds.from_tenant(tenant.settings.resolve_thresholds)
        same_settings = cached is not None and cached.thresholds == thresholds
        if cached and same_settings:
            if now - cached.checked < POLICY_RECHECK_S:
                return cached
            stamp = (self.index.count(tenant.id), self.records.count_feedback(tenant.id))
            if cached.stamp == stamp:
                cached.checked = now
                return cached
        with self._knowledge_lock:
            stamp = (self.index.count(tenant.id), self.records.count_feedback(tenant.id))
            knowledge = self._derive(tenant, stamp, now)
            self._knowledge[tenant.id] = knowledge
        return knowledge

    def forget(self, tenant_id: str) -> None:
        """Drop what was derived from a tenant's knowledge; the next request derives it again."""
        self._knowledge.pop(tenant_id, None)

    def _derive(self, tenant: Tenant, stamp: tuple[int, int], now: float) -> TenantKnowledge:
        thresholds = ResolveThresholds.from_tenant(tenant.settings.resolve_thresholds)
        chunks = self.index.chunks(tenant.id)
        vocabulary = TenantVocabulary(chunks)
        # Words alone (no embedder): a little stricter than with meaning, and cheap enough for every change.
        conflicts = tuple(find_conflicts(chunks, vocabulary=vocabulary))
        stale = tuple(stale_sources(chunks))
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
