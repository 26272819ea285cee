"""A FAQ page (question headings, answers below) gives the answer under the matching question."""

from __future__ import annotations

from assist.models import AssistRequest, ConversationTurn
from assist.service import AssistService
from ingestion.pipeline import Ingestor
from ingestion.registry import Registry
from ingestion.sources import file_items
from retrieval.index import KnowledgeIndex
from retrieval.settings import Settings
from tests.conftest import DBANK


def test_answer_is_the_text_under_the_matching_question(settings: Settings, use_embedder) -> None:  # noqa: ANN001
    with (
        KnowledgeIndex(settings, embedder=use_embedder) as index,
        Registry(settings.registry_url) as registry,
    ):
        ingestor = Ingestor(index, registry)
        ingestor.ensure_tenant("dbank")
        ingestor.run("dbank", "files", file_items("dbank", [DBANK / "kredi.html"]))
        service = AssistService(settings, index, registry, ingestor)
        request = AssistRequest(
            conversation_id="c1",
            messages=[ConversationTurn(role="customer", text="Taşıt kredisi için şartlar nelerdir?")],
        )
        top = service.suggest("dbank", request).suggestions[0]
    assert "18 yaşından büyük" in top.text and "haciz" in top.text
    assert "?" not in top.text  # the page's own question is not repeated back
    assert top.citations[0].doc_id == "kredi.html"
