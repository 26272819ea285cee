"""The demo tenant: a small Turkish bank knowledge base that ships with the service."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ingestion.sources import chat_items, file_items, sheet_item

from .context import ServiceContext

DEMO_DATA = Path(__file__).resolve().parent / "demo_data"
DEMO_TENANT = "demo"


@dataclass(frozen=True)
class DemoSeed:
    tenant_id: str
    api_key: str
    chunks: int
    documents: int


def seed_demo(ctx: ServiceContext, tenant_id: str = DEMO_TENANT) -> DemoSeed:
    """Create (or refresh) the demo tenant with its knowledge base and return a fresh API key for it."""
    ctx.ingestor.ensure_tenant(tenant_id, "DBank (demo)")
    # The bank's own call-centre number is public: redaction keeps it (every other phone number goes).
    ctx.registry.update_tenant_settings(tenant_id, {"pii_allowed": ["0850 222 00 00"]})
    ctx.ingestor.run(tenant_id, "files", file_items(tenant_id, [DEMO_DATA / "kredi.html"]))
    ctx.ingestor.run(tenant_id, "faq", [sheet_item(tenant_id, DEMO_DATA / "sss.csv", "faq")])
    ctx.ingestor.run(
        tenant_id, "quick_replies", [sheet_item(tenant_id, DEMO_DATA / "hazir-yanitlar.csv", "quick_reply")]
    )
    ctx.ingestor.run(tenant_id, "chats", chat_items(tenant_id, DEMO_DATA / "sohbetler.jsonl").items)
    _, key = ctx.registry.create_api_key(tenant_id, "demo")
    docs = [d for d in ctx.registry.list_documents(tenant_id) if d.status == "indexed"]
    return DemoSeed(tenant_id, key, ctx.index.count(tenant_id), len(docs))
