"""Retention on a real SQLite registry: audit entries and suggestions expire after the tenant's
retention_days, in the background and from the CLI; a reply that was learned stays."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from api.cli import app
from assist.gap_log import GapLog
from assist.records import AssistRecords
from assist.retention import Pruned, RetentionPruner, prune
from ingestion.registry import Registry
from ingestion.registry_models import utcnow


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    with Registry(f"sqlite:///{tmp_path / 'data' / 'registry.sqlite3'}") as reg:
        reg.create_tenant("acme", "Acme Kargo", {"retention_days": 30})
        reg.create_tenant("globex", "Globex Market")
        yield reg


def _suggest(registry: Registry, tenant: str, conversation: str, n: int) -> list[str]:
    suggestions = [{"text": f"Yanıt {i}", "strategy": "faq", "confidence": 0.5 + i / 10} for i in range(n)]
    _, ids = AssistRecords(registry).record_audit(
        tenant, conversation, "suggest", retrieved_ids=["p1"], decision="suggested", suggestions=suggestions
    )
    return ids


def _in_days(days: int):  # noqa: ANN202 - a clock for prune
    return utcnow() + timedelta(days=days)


def test_expired_audit_and_suggestions_go_and_learned_replies_stay(registry: Registry) -> None:
    learned, rejected, unanswered = _suggest(registry, "acme", "c1", 3)
    AssistRecords(registry).record_feedback("acme", learned, "edited", "Kargonuz yarın teslim edilir.")
    AssistRecords(registry).record_feedback("acme", rejected, "rejected")
    AssistRecords(registry).record_audit(
        "acme", "c2", "resolve", retrieved_ids=[], decision="handoff", reason="no_knowledge"
    )
    kept = _suggest(registry, "globex", "c9", 1)

    # Within acme's 30 days nothing goes.
    assert prune(registry, now=_in_days(29)) == [Pruned("acme", 30, 0, 0), Pruned("globex", 180, 0, 0)]
    assert len(AssistRecords(registry).list_audit("acme")) == 2

    assert prune(registry, now=_in_days(31)) == [Pruned("acme", 30, 2, 2), Pruned("globex", 180, 0, 0)]
    assert AssistRecords(registry).list_audit("acme") == []
    assert (
        AssistRecords(registry).get_suggestion("acme", rejected) is None
        and AssistRecords(registry).get_suggestion("acme", unanswered) is None
    )
    # The learned reply stays, with its feedback (the precision policy still counts it).
    assert AssistRecords(registry).get_suggestion("acme", learned) is not None
    assert AssistRecords(registry).count_feedback("acme") == 1
    assert AssistRecords(registry).feedback_evidence("acme") == [(0.5, "edited")]
    # Another tenant keeps its own period (the default, 180 days).
    assert (
        len(AssistRecords(registry).list_audit("globex")) == 1
        and AssistRecords(registry).get_suggestion("globex", kept[0]) is not None
    )

    assert prune(registry, now=_in_days(181), tenant_id="globex") == [Pruned("globex", 180, 1, 1)]
    assert AssistRecords(registry).list_audit("globex") == []


def test_gap_questions_expire_with_the_tenants_period(registry: Registry) -> None:
    gaps = GapLog(registry)
    assert gaps.record("acme", "c1", "öğretmenlere indirim var mı", "no_knowledge")
    assert gaps.record("globex", "c2", "hediye kartı satıyor musunuz", "low_confidence")
    assert prune(registry, now=_in_days(29)) == [Pruned("acme", 30, 0, 0, 0), Pruned("globex", 180, 0, 0, 0)]
    assert prune(registry, now=_in_days(31)) == [Pruned("acme", 30, 0, 0, 1), Pruned("globex", 180, 0, 0, 0)]
    assert gaps.questions("acme") == [] and len(gaps.questions("globex")) == 1


def test_pruning_goes_in_batches_past_the_batch_size(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("assist.records._PRUNE_BATCH", 3)
    for n in range(4):
        _suggest(registry, "acme", f"c{n}", 2)
    assert prune(registry, now=_in_days(31), tenant_id="acme") == [Pruned("acme", 30, 4, 8)]


def test_retention_days_is_a_tenant_setting_with_a_default(registry: Registry) -> None:
    tenant = registry.get_tenant("globex")
    assert tenant is not None and tenant.settings.retention_days == 180
    assert registry.update_tenant_settings("globex", {"retention_days": 365}).settings.retention_days == 365
    with pytest.raises((ValueError, ValidationError)):
        registry.update_tenant_settings("globex", {"retention_days": 0})


def test_the_background_pruner_prunes_until_closed(registry: Registry) -> None:
    _suggest(registry, "acme", "c1", 2)
    pruner = RetentionPruner(registry, interval_s=0.05, first_delay_s=0.0, clock=lambda: _in_days(31))
    pruner.start()
    deadline = time.monotonic() + 10
    while AssistRecords(registry).list_audit("acme") and time.monotonic() < deadline:
        time.sleep(0.05)
    pruner.close()
    assert AssistRecords(registry).list_audit("acme") == [] and pruner.runs >= 1
    runs = pruner.runs
    _suggest(registry, "acme", "c2", 1)
    time.sleep(0.2)
    assert (
        pruner.runs == runs and len(AssistRecords(registry).list_audit("acme")) == 1
    )  # closed: no more rounds


def test_a_zero_interval_never_starts_the_pruner(registry: Registry) -> None:
    pruner = RetentionPruner(registry, interval_s=0, first_delay_s=0.0, clock=lambda: _in_days(31))
    pruner.start()
    _suggest(registry, "acme", "c1", 1)
    time.sleep(0.2)
    pruner.close()
    assert pruner.runs == 0 and len(AssistRecords(registry).list_audit("acme")) == 1


def test_cli_prune_reports_each_tenant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVEKTO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("INVEKTO_DATABASE_URL", raising=False)
    with Registry(f"sqlite:///{(tmp_path / 'data' / 'registry.sqlite3').resolve()}") as registry:
        registry.create_tenant("acme", "Acme Kargo", {"retention_days": 30})
        _suggest(registry, "acme", "c1", 1)
    runner = CliRunner()
    result = runner.invoke(app, ["prune"])
    assert result.exit_code == 0, result.output
    assert (
        "acme: 0 audit entries, 0 suggestions and 0 gap questions older than 30 days deleted" in result.output
    )
    result = runner.invoke(app, ["prune", "--tenant", "nobody"])
    assert result.exit_code == 2 and "no tenant 'nobody'" in result.output
