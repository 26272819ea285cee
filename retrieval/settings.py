"""The one settings object of the whole service, read once from the environment (prefix INVEKTO_) or `.env`.

It lives in `retrieval/`, the bottom layer, because every layer reads it: besides the index and the
embedder it holds the settings of ingestion (parse limits), assist (LLM provider, precision target) and
the API (limits, timeouts, retention). One object, one list of variables, one check for typos
(`unknown_variables`); each layer reads only its own fields.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, PositiveFloat, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

FusionMethod = Literal["score", "rrf", "wrrf", "dbsf", "bm25", "dense"]
SourceKind = Literal["faq", "quick_reply", "doc", "chat"]


def _default_source_weights() -> dict[SourceKind, float]:
    return {"doc": 1.2, "chat": 0.95}


class Settings(BaseSettings):
    """Service configuration. Every field can be set as INVEKTO_<NAME> (e.g. INVEKTO_DATA_DIR)."""

    model_config = SettingsConfigDict(env_prefix="INVEKTO_", env_file=".env", extra="ignore")

    data_dir: Path = Path("./data")

    # Embedding and retrieval
    embedder: str = "use-multilingual"
    # Run the index (encoder and engine) in a child process, on the other core: the server process keeps
    # HTTP and assist. None: on for `serve`, off elsewhere.
    index_process: bool | None = None
    # Encode in a child process when the index runs in this one. None: on for `serve`, off elsewhere.
    encoder_process: bool | None = None
    # Processes that encode chunks for ingestion, beside the searches (each holds a copy of the model and
    # stops after two idle minutes). None: one per CPU core (at most 4) for `serve` and for an `ingest` of
    # 256 KB or more, none elsewhere; 0: chunks are encoded in the index's own process.
    encode_workers: int | None = Field(default=None, ge=0, le=64)
    store: Literal["edge", "server"] = "edge"
    qdrant_url: str | None = None
    qdrant_api_key: SecretStr | None = None
    collection: str = "invekto_knowledge"
    fusion: FusionMethod = "score"
    # Weight of the dense (semantic) score in score-level fusion; BM25 gets 1 - dense_weight.
    dense_weight: float = Field(default=0.4, ge=0.0, le=1.0)
    # The same for a question written in English: BM25 is built for Turkish (stems, folded letters,
    # spoken forms) and finds only noise in English words, so the multilingual dense side decides.
    english_dense_weight: float = Field(default=1.0, ge=0.0, le=1.0)
    rrf_k: int = 60
    # Candidates per side before fusion: 30 and 50 give the same dev metrics (R@1 0.954, R@10 1.0); 30 is cheaper.
    prefetch_limit: int = 30
    rerank_model: str | None = None
    mmr_lambda: float | None = Field(default=None, ge=0.0, le=1.0)
    # Multiplier of the fused score per kind of source, applied to the 20 best before the final cut (a
    # source not named keeps 1.0). A policy page's section is long, so its cosine and its BM25 share run
    # below a one-line FAQ row's on the same topic; past chats are the noisiest kind. Measured on the shop
    # bundle (docs/fusion.md): source hit@1 0.738 -> 0.781, and better on each half of its queries with the
    # weights picked on the other half. {} turns it off; e.g. INVEKTO_SOURCE_WEIGHTS='{"doc": 1.3}'.
    source_weights: dict[SourceKind, PositiveFloat] = Field(default_factory=_default_source_weights)
    # Edge: build the HNSW index once this many points are not yet indexed (see README "Index maintenance").
    optimize_threshold: int = Field(default=1_000, ge=1)

    # Registry
    database_url: str | None = None
    # Key of the hashes that replace personal data in ids (file names, conversation ids); unset: a random
    # one is generated in <data dir>/id_secret. Changing it orphans the ids stored with the old one.
    id_secret: SecretStr | None = None

    # Assist
    llm_provider: Literal["auto", "anthropic", "openai-compatible", "extractive"] = "auto"
    anthropic_api_key: SecretStr | None = Field(default=None, validation_alias="ANTHROPIC_API_KEY")
    anthropic_model: str = "claude-haiku-4-5"
    openai_base_url: str | None = None
    openai_api_key: SecretStr | None = None
    openai_model: str | None = None
    llm_timeout_s: float = 20.0

    # API
    host: str = "127.0.0.1"
    port: int = 7104
    admin_token: SecretStr | None = None
    # Per-tenant token bucket: requests per second (0: no limit) and how many may come at once.
    rate_limit: float = Field(default=20.0, ge=0.0)
    rate_burst: int = Field(default=40, ge=1)
    # Threads running assist and search Python at once. None: 4 with the index process, else 2.
    compute_slots: int | None = Field(default=None, ge=1)
    # Hours between the server's prunings of expired audit entries and suggestions (each tenant's
    # retention_days; see assist/retention.py). 0: the server never prunes (`invekto-knowledge prune` does).
    retention_prune_hours: float = Field(default=6.0, ge=0.0)
    # Seconds the request that finds a tenant's knowledge changed waits for its auto-answer policy to be
    # derived again (assist/tenant_knowledge.py); until it is, the tenant is served suggest-only.
    knowledge_wait_s: float = Field(default=2.0, ge=0.0)
    # Seconds a signed webhook's X-Invekto-Timestamp may be from the server's clock, either way (api/webhooks.py):
    # an older request is refused as a possible replay.
    webhook_tolerance_s: float = Field(default=300.0, gt=0.0)

    # Ingestion: each file is parsed and chunked in a worker process that may take this long and use this
    # much memory beyond its start; a file over either fails alone. 0: no limit.
    parse_timeout_s: float = Field(default=300.0, ge=0.0)
    parse_memory_mb: int = Field(default=1024, ge=0)
    # Seconds the server waits at shutdown for the running ingestion job to stop (it resumes at the next start).
    shutdown_timeout_s: float = Field(default=10.0, gt=0.0)

    # Logs and tracing (api/logs.py, retrieval/tracing.py): one JSON object a line or uvicorn's text lines;
    # None: text when stderr is a terminal, JSON otherwise. INVEKTO_OTEL=1: OpenTelemetry spans over OTLP
    # (needs the otel extra).
    log_format: Literal["json", "text"] | None = None
    otel: bool = False

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def registry_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'registry.sqlite3').resolve()}"


def unknown_variables(environ: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """Return each INVEKTO_* variable of `environ` that no setting reads (a typo such as INVEKTO_DATADIR),
    with the closest known name, if any."""
    known = {f"INVEKTO_{name.upper()}" for name in Settings.model_fields}
    unknown = sorted(name for name in environ if name.startswith("INVEKTO_") and name not in known)
    return [
        (name, next(iter(difflib.get_close_matches(name, known, n=1, cutoff=0.8)), None)) for name in unknown
    ]
