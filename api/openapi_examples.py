"""Example response bodies of the OpenAPI document: every JSON response of every operation, and the problem
(RFC 9457) of every error status. Values are a Turkish clothing shop's, as the service returns them;
tests/test_openapi.py validates each against its schema.
"""

from __future__ import annotations

from typing import Any

from .errors import TYPE_PREFIX

_TENANT = "moda-tr"
_CREATED = "2026-11-30T09:12:04.518Z"
_JOB_ID = "4ee7de07-1544-471b-a5e7-5d5c6a39af5e"
_SUGGESTION_ID = "3f2b0c1e-8a4d-4c55-9b1e-2f6d7a9c0e11"
_KEY_ID = "2f0bd1ad-766b-4dfe-99ca-f33ce0f42dc8"

_KARGO = (
    "Kargo ücreti\n750 TL ve üzeri siparişlerde kargo ücretsizdir; altındaki siparişlerde kargo ücreti "
    "59,90 TL'dir."
)
_IADE = (
    "Ürünü teslim aldığınız tarihten itibaren 30 gün içinde ücretsiz iade edebilirsiniz. İade kodu almak "
    "için Hesabım > Siparişlerim sayfasından iade talebi oluşturun."
)


def _job(status: str, done: int, chunks: int, **more: Any) -> dict[str, Any]:
    finished = status not in ("queued", "running")
    files = [
        {
            "name": name,
            "status": "indexed" if finished else "pending",
            "doc_id": name if finished else None,
            "chunks": 1 if finished else 0,
            "error": None,
        }
        for name in ("kargo.md", "iade.pdf")
    ]
    return {
        "id": _JOB_ID,
        "kind": "files",
        "status": status,
        "files_total": 2,
        "files_done": done,
        "files_failed": 0,
        "chunks_written": chunks,
        "progress": done / 2,
        "current": None,
        "created_at": _CREATED,
        "started_at": "2026-11-30T09:12:04.601Z" if status != "queued" else None,
        "finished_at": "2026-11-30T09:12:09.930Z" if finished else None,
        "error": None,
        "idempotency_key": None,
        "files": files,
        **more,
    }


_ACCEPTED = _job("queued", 0, 0, location=f"/v1/jobs/{_JOB_ID}", replayed=False, problems=[])


def _accepted(kind: str, name: str) -> dict[str, Any]:
    """A job of one file, just accepted."""
    return {**_ACCEPTED, "kind": kind, "files_total": 1, "files": [{**_ACCEPTED["files"][0], "name": name}]}


_DOCUMENT = {
    "doc_id": "kargo.md",
    "source": "doc",
    "source_uri": "kargo.md",
    "title": "Kargo ve teslimat",
    "status": "indexed",
    "version": 2,
    "indexed_version": 2,
    "chunk_count": 3,
    "error": None,
    "created_at": _CREATED,
    "updated_at": "2026-11-30T09:12:09.912Z",
    "flagged_chunks": 0,
    "flag_reasons": {},
}
_CHUNK = {
    "chunk_id": "0001",
    "title": "Kargo ve teslimat",
    "section": "Kargo ve teslimat > Kargo ücreti",
    "text": _KARGO,
    "source": "doc",
    "metadata": {"section_path": ["Kargo ve teslimat", "Kargo ücreti"], "doc_version": 2},
}
_CITATION = {
    "doc_id": "iade.pdf",
    "chunk_id": "0000",
    "title": "İade ve değişim",
    "section": "İade ve değişim",
    "snippet": _IADE,
    "source": "doc",
    "ref": "doc:iade.pdf",
}
_TENANT_OUT = {
    "id": _TENANT,
    "name": "Moda Butik",
    "settings": {
        "tone": "siz",
        "language": "tr",
        "resolve_thresholds": {"precision_target": 0.95},
        "pii_patterns": [{"name": "SIPARIS", "regex": "MB-\\d{8}"}],
        "pii_allowed": ["destek@modabutik.com.tr"],
        "own_domains": ["modabutik.com.tr"],
        "retention_days": 180,
        "callback_url": "https://crm.modabutik.com.tr/invekto/jobs",
    },
    "created_at": _CREATED,
    "webhook_secret": {"created_at": _CREATED, "previous_valid_until": None},
}
_SERVICE_KEY = {
    "id": "5b7e1f2a-3c4d-4e8f-9a0b-1c2d3e4f5a6b",
    "name": "crm",
    "key_prefix": "isk_Q2hvbmcx",
    "tenants": [_TENANT, "ev-market"],
    "created_at": _CREATED,
    "revoked_at": None,
}
_KEY = {
    "id": _KEY_ID,
    "tenant_id": _TENANT,
    "name": "inbox",
    "key_prefix": "ik_moda-tr_dODqEsVs",
    "created_at": _CREATED,
    "revoked_at": None,
}
_ERASED = {
    "documents": ["chat:wa-[TELEFON]~qkzjxwmhbtdcfrpa"],
    "conversations": [],
    "suggestions": 3,
    "index_points": 2,
}

# Per operation id: the example of each JSON response, by status code.
RESPONSE_EXAMPLES: dict[str, dict[str, Any]] = {
    "uploadDocuments": {"202": _ACCEPTED},
    "addTextDocuments": {"202": _accepted("files", "kargo-sss")},
    "importFaq": {"202": _accepted("faq", "sss.csv")},
    "importQuickReplies": {"202": _accepted("quick_replies", "hazir_yanitlar.csv")},
    "importConversations": {"202": _accepted("chats", "sohbetler.jsonl")},
    "listDocuments": {
        "200": [
            _DOCUMENT,
            {
                **_DOCUMENT,
                "doc_id": "iade.pdf",
                "source_uri": "iade.pdf",
                "title": "İade ve değişim",
                "version": 1,
                "indexed_version": 1,
                "chunk_count": 2,
            },
        ]
    },
    "getDocument": {
        "200": {
            **_DOCUMENT,
            "chunks": [_CHUNK],
        }
    },
    "getJob": {"200": _job("succeeded", 2, 3)},
    "listJobs": {"200": [_job("succeeded", 2, 3)]},
    "conversationClosed": {
        "202": {
            "conversation_id": "wa-1002",
            "indexed": True,
            "note": "Indexing as document chat:wa-1002.",
            "job": _accepted("chats", "conversation.json"),
        },
        "200": {
            "conversation_id": "wa-1003",
            "indexed": False,
            "note": "The conversation is open: only resolved ones are indexed.",
            "job": None,
        },
    },
    "eraseCustomer": {"200": _ERASED},
    "eraseConversation": {
        "200": {**_ERASED, "documents": [], "conversations": ["wa-1002"], "index_points": 1}
    },
    "eraseDocument": {"200": {**_ERASED, "documents": ["kargo.md"], "suggestions": 0, "index_points": 3}},
    "searchKnowledge": {
        "200": {
            "hits": [{**_CHUNK, "doc_id": "kargo.md", "score": 0.7013}],
            "note": None,
            "timings_ms": {"encode": 3.5, "engine": 5.1, "fuse": 0.3, "total": 8.9},
        }
    },
    "getAutoAnswerPolicy": {
        "200": {
            "precision_target": 0.98,
            "confidence_level": 0.95,
            "threshold": None,
            "mode": "suggest_only",
            "answered": 0,
            "right": 0,
            "precision_lower_bound": 0.0,
            "evidence": {"self_test": 20, "feedback": 0, "wrong": 20},
            "note": "Yeterli kanıt yok: %98 doğruluk hedefi için en az 149 doğrulanmış örnek (hatasız) gerekir; "
            "20 örnek var. Otomatik yanıt kapalı, yalnızca öneri gösterilir.",
            "computed_at": "2026-11-30T09:15:38+00:00",
        }
    },
    "getAssistMode": {
        "200": {"mode": "extractive", "offline": True, "tenant_id": _TENANT, "tenant_name": "Moda Butik"}
    },
    "suggestReplies": {
        "200": {
            "suggestions": [
                {
                    "id": _SUGGESTION_ID,
                    "text": _IADE,
                    "citations": [_CITATION],
                    "confidence": 0.9119,
                    "strategy": "extractive",
                    "caution": None,
                }
            ],
            "mode": "extractive",
            "language": "tr",
            "query": "Ürünü kaç gün içinde iade edebilirim?",
            "note": None,
        }
    },
    "resolveConversation": {
        "200": {
            "decision": "handoff",
            "text": "Sorunuzu bir müşteri temsilcimize aktarıyorum; en kısa sürede size yardımcı olacak.",
            "citations": [],
            "confidence": 0.0,
            "reason": "sensitive_topic",
            "summary": "Müşterinin talebi: Avukatımla görüşeceğim, dolandırıldım!\nDenenen: otomatik yanıt denenmedi.\n"
            "Aktarma nedeni: konu hassas olduğu için otomatik yanıt verilmedi (hukuki).",
            "mode": "extractive",
            "language": "tr",
        }
    },
    "sendFeedback": {
        "200": {
            "id": "9b6c2d4e-1f3a-4e5b-8c7d-0a1b2c3d4e5f",
            "suggestion_id": _SUGGESTION_ID,
            "action": "edited",
            "learned_doc_id": "learned:3f2b0c1e",
        }
    },
    "listKnowledgeConflicts": {
        "200": {
            "conflicts": [
                {
                    "kind": "amount",
                    "first": {
                        "ref": "doc:kargo.md",
                        "source": "doc",
                        "text": "750 TL ve üzeri siparişlerde kargo ücretsizdir.",
                        "topic": "ücretsiz kargo",
                        "value": "750 TL",
                    },
                    "second": {
                        "ref": "faq:sss.csv#4",
                        "source": "faq",
                        "text": "500 TL üzeri siparişlerde kargo bedava.",
                        "topic": "ücretsiz kargo",
                        "value": "500 TL",
                    },
                    "reason": "İki kaynak ücretsiz kargo sınırı için farklı tutar veriyor: 750 TL ve 500 TL.",
                }
            ],
            "stale": [],
        }
    },
    "listKnowledgeGaps": {
        "200": {
            "since": "2026-10-31T09:00:00Z",
            "questions": 2,
            "topics": [
                {
                    "label": "öğretmen indirimi",
                    "count": 2,
                    "examples": ["Öğretmenlere indirim var mı?", "ogretmen indirimi var mi"],
                    "first_asked": "2026-11-28T14:02:11Z",
                    "last_asked": "2026-11-30T08:47:53Z",
                    "reasons": {"no_knowledge": 2},
                    "off_topic": False,
                    "candidate": {
                        "text": "Öğretmenlere özel bir indirimimiz bulunmuyor.",
                        "ref": "chat:wa-1001",
                        "question": "Öğretmenlere indirim var mı?",
                    },
                }
            ],
        }
    },
    "answerKnowledgeGap": {"200": {"doc_id": "gap:5e5dd9fad5f0b37f", "status": "succeeded"}},
    "listTenants": {"200": [_TENANT_OUT]},
    "createTenant": {"201": _TENANT_OUT},
    "getTenant": {"200": _TENANT_OUT},
    "updateTenantSettings": {"200": _TENANT_OUT},
    "createApiKey": {"201": {**_KEY, "key": "ik_moda-tr_dODqEsVsUNHugYVSHIYNDTguOkAkBx_S"}},
    "listApiKeys": {"200": [_KEY]},
    "rotateWebhookSecret": {
        "201": {
            "tenant_id": _TENANT,
            "secret": "whsec_9bq3LxM0yK2v7Tn4Hc8Rw1Pz6Jd5Fs0Ga3Ue7Yi2Ko4",
            "created_at": _CREATED,
            "previous_valid_until": None,
        }
    },
    "createServiceKey": {"201": {**_SERVICE_KEY, "key": "isk_Q2hvbmcxR3tLm8Vw2Xc5Nb7Pq9Zs4Hd6J"}},
    "listServiceKeys": {"200": [_SERVICE_KEY]},
    "getLiveness": {"200": {"status": "ok"}},
    "getReadiness": {
        "200": {"status": "ready", "checks": {"index": "ok", "database": "ok", "ingestion": "ok"}},
        "503": {
            "status": "unavailable",
            "checks": {"index": "ok", "database": "unavailable: connection refused", "ingestion": "ok"},
        },
    },
}


def _problem(status: int, kind: str, title: str, detail: str, instance: str, **more: Any) -> dict[str, Any]:
    return {
        "type": TYPE_PREFIX + kind,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        **more,
    }


# The problem+json body shown for each error status, whichever operation answers it.
PROBLEM_EXAMPLES: dict[str, dict[str, Any]] = {
    "400": _problem(
        400, "bad-request", "Malformed request", "There was an error parsing the body", "/v1/assist/suggest"
    ),
    "401": _problem(
        401,
        "unauthorized",
        "API key required",
        "Send the tenant's API key as `Authorization: Bearer <key>` or `X-API-Key: <key>`.",
        "/v1/assist/suggest",
    ),
    "403": _problem(
        403, "forbidden", "Invalid admin token", "This token may not manage tenants.", "/v1/admin/tenants"
    ),
    "404": _problem(
        404,
        "not-found",
        "Document not found",
        "This tenant has no document 'kampanya.pdf'.",
        "/v1/documents/kampanya.pdf",
    ),
    "409": _problem(
        409, "tenant-exists", "Tenant already exists", "Tenant 'moda-tr' already exists", "/v1/admin/tenants"
    ),
    "413": _problem(
        413,
        "file-too-large",
        "File too large",
        "katalog.pdf is 61.2 MiB, over the 50 MiB limit per file.",
        "/v1/documents",
    ),
    "415": _problem(
        415,
        "unsupported-file-type",
        "Unsupported file type",
        "fatura.exe is a Windows program, not a document; upload PDF, DOCX, PPTX, XLSX, HTML, Markdown, TXT, "
        "CSV or JSON files.",
        "/v1/documents",
        file="fatura.exe",
    ),
    "422": _problem(
        422,
        "validation-error",
        "Invalid request",
        "body.conversation_id: Field required",
        "/v1/assist/suggest",
        errors=[{"location": "body.conversation_id", "message": "Field required", "type": "missing"}],
    ),
    "429": _problem(
        429,
        "rate-limited",
        "Rate limit exceeded",
        "This tenant may send 20 requests per second (bursts up to 40); retry in 1 s.",
        "/v1/assist/suggest",
    ),
    "503": _problem(
        503,
        "database-unavailable",
        "Database unavailable",
        "The registry database did not answer; try again shortly.",
        "/v1/assist/suggest",
    ),
}
