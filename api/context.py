"""The service's long-lived parts, opened once from Settings and shared by the CLI and the HTTP app."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ingestion.pipeline import Ingestor
from ingestion.pseudonym import guard_for, install_log_redaction
from ingestion.registry import Registry
from retrieval.embedders import Embedder
from retrieval.index import KnowledgeIndex
from retrieval.index_process import AnyIndex, open_index
from retrieval.settings import Settings


@dataclass
class ServiceContext:
    """Index, registry and ingestor for one data dir; close() releases the index lock."""

    settings: Settings
    index: AnyIndex
    registry: Registry
    ingestor: Ingestor
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, settings: Settings, embedder: Embedder | None = None) -> ServiceContext:
        # An embedder given by the caller (tests, eval) can only run in this process.
        install_log_redaction()
        ids = guard_for(settings)
        index = KnowledgeIndex(settings, embedder=embedder) if embedder is not None else open_index(settings)
        try:
            registry = Registry(settings.registry_url, ids=ids)
        except Exception:
            index.close()
            raise
        return cls(settings, index, registry, Ingestor(index, registry))

    def close(self) -> None:
        self.index.close()
        self.registry.close()

    def __enter__(self) -> ServiceContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
