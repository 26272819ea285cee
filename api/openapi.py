"""The OpenAPI document as a client generator reads it: stable, readable operation ids and named schemas.

Generated clients (NSwag or Kiota for the .NET inbox, openapi-python-client, …) name their methods and
classes after `operationId` and the component schemas, so neither may carry FastAPI's path-derived
defaults (`upload_documents_v1_documents_post`, `Body_upload_documents_v1_documents_post`).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute

from .errors import PROBLEM_JSON
from .openapi_examples import PROBLEM_EXAMPLES, RESPONSE_EXAMPLES

# Where the route function's own name would read poorly as a client method.
_OPERATION_IDS = {
    "suggest": "suggestReplies",
    "resolve": "resolveConversation",
    "feedback": "sendFeedback",
    "search": "searchKnowledge",
    "policy": "getAutoAnswerPolicy",
    "assist_mode": "getAssistMode",
    "gaps": "listKnowledgeGaps",
    "answer_gap": "answerKnowledgeGap",
    "conflicts": "listKnowledgeConflicts",
    "conversation_closed": "conversationClosed",
    "healthz": "getLiveness",
    "readyz": "getReadiness",
    "metrics": "getMetrics",
}
# Multipart bodies: FastAPI names them Body_<operation id>.
_FORM_PREFIX = "Body_"

_CONVERSATION = {
    "conversation_id": "wa-1001",
    "messages": [
        {"role": "customer", "text": "Merhaba, taşıt kredisi için şartlar nelerdir?"},
    ],
    "channel": "whatsapp",
}
# One example body per JSON operation, shown in /docs and used by client generators; a test posts each one
# to the running service.
REQUEST_EXAMPLES: dict[str, dict[str, Any]] = {
    "addTextDocuments": {
        "documents": [
            {
                "id": "kargo-sss",
                "title": "Kargo",
                "text": "Kargo ücreti 500 TL ve üzeri siparişlerde ücretsizdir.",
                "metadata": {"kategori": "kargo"},
            }
        ]
    },
    "conversationClosed": {
        "conversation_id": "wa-1002",
        "channel": "whatsapp",
        "status": "resolved",
        "messages": [
            {"role": "customer", "text": "İade süresi kaç gün?", "ts": "2026-11-30T10:01:10+03:00"},
            {
                "role": "agent",
                "text": "Ürünü teslim aldıktan sonra 14 gün içinde iade edebilirsiniz.",
                "ts": "2026-11-30T10:03:00+03:00",
                "agent_id": "a-7",
            },
        ],
    },
    "eraseCustomer": {"phone": "+90 532 634 54 16"},
    "searchKnowledge": {"query": "kargo ücreti ne kadar", "limit": 5, "sources": ["faq", "doc"]},
    "suggestReplies": _CONVERSATION,
    "resolveConversation": _CONVERSATION,
    "sendFeedback": {"suggestion_id": "3f2b0c1e-8a4d-4c55-9b1e-2f6d7a9c0e11", "action": "accepted"},
    "answerKnowledgeGap": {
        "question": "Öğretmenlere indirim var mı?",
        "answer": "Öğretmenlere özel bir indirimimiz bulunmuyor.",
        "asked": ["ogretmen indirimi var mi"],
    },
    "createTenant": {
        "id": "acme-tr",
        "name": "Acme Kargo",
        "settings": {"tone": "siz", "retention_days": 180},
    },
    "updateTenantSettings": {"settings": {"resolve_thresholds": {"precision_target": 0.95}}},
    "createApiKey": {"name": "inbox"},
    "createServiceKey": {"name": "crm", "tenants": ["acme-tr"]},
}

SERVERS = [{"url": "http://127.0.0.1:7104", "description": "`invekto-knowledge serve` on this machine"}]


def operation_id(route: APIRoute) -> str:
    """Return the route's operationId: lower camel case of its function name (`uploadDocuments`)."""
    name = _OPERATION_IDS.get(route.name, route.name)
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _form_name(name: str) -> str:
    """Return the schema name of a multipart body: `Body_importFaq` → `ImportFaqForm`."""
    op = name[len(_FORM_PREFIX) :]
    return op[:1].upper() + op[1:] + "Form"


def _renamed(node: Any, names: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {
            k: (_ref(v, names) if k == "$ref" and isinstance(v, str) else _renamed(v, names))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_renamed(v, names) for v in node]
    return node


def _ref(ref: str, names: dict[str, str]) -> str:
    prefix = "#/components/schemas/"
    if ref.startswith(prefix) and ref[len(prefix) :] in names:
        return prefix + names[ref[len(prefix) :]]
    return ref


_SCALARS = {"string", "integer", "number", "boolean", "array", "object"}


def _simple_nullable(node: Any) -> Any:
    """Return `node` with each `anyOf: [{type: T, ...}, {type: null}]` of a plain type written as OpenAPI 3.1's
    `type: [T, "null"]` (one schema, as generators read it best); unions of references stay."""
    if isinstance(node, list):
        return [_simple_nullable(v) for v in node]
    if not isinstance(node, dict):
        return node
    node = {k: _simple_nullable(v) for k, v in node.items()}
    options = node.get("anyOf")
    if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
        other = next(o for o in options if o != {"type": "null"})
        if isinstance(other.get("type"), str) and other["type"] in _SCALARS and "$ref" not in other:
            merged = {k: v for k, v in node.items() if k != "anyOf"}
            merged.update({**other, "type": [other["type"], "null"]})
            return merged
    return node


def _add_response_examples(op: dict[str, Any]) -> None:
    """Give each JSON response of `op` its example, and each problem+json response the problem's."""
    examples = RESPONSE_EXAMPLES.get(op.get("operationId", ""), {})
    for status, response in op.get("responses", {}).items():
        content = response.get("content", {})
        if "application/json" in content and status in examples:
            content["application/json"]["example"] = examples[status]
        if PROBLEM_JSON in content and status in PROBLEM_EXAMPLES:
            content[PROBLEM_JSON]["example"] = PROBLEM_EXAMPLES[status]


def install_openapi(app: FastAPI) -> None:
    """Make `app.openapi()` name every multipart body schema after its operation (`UploadDocumentsForm`)
    and give every JSON request body and every response body its example (api/openapi_examples.py)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = build()
        schemas = spec.get("components", {}).get("schemas", {})
        for ops in spec.get("paths", {}).values():
            for op in ops.values():
                body = op.get("requestBody", {}).get("content", {}).get("application/json")
                if body is not None and op.get("operationId") in REQUEST_EXAMPLES:
                    body["example"] = REQUEST_EXAMPLES[op["operationId"]]
                _add_response_examples(op)
        spec = _simple_nullable(spec)
        schemas = spec.get("components", {}).get("schemas", {})
        names = {n: _form_name(n) for n in schemas if n.startswith(_FORM_PREFIX)}
        if names:
            spec = _renamed(spec, names)
            spec["components"]["schemas"] = {
                names.get(k, k): v for k, v in spec["components"]["schemas"].items()
            }
            for new in names.values():
                spec["components"]["schemas"][new]["title"] = new
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


# Swagger UI 5 (swagger-ui-dist, Apache-2.0, api/static/swagger-ui-LICENSE.txt) ships in the package:
# /docs must work where the service runs without internet.
SWAGGER_ASSETS = "/playground/static"


def install_docs(app: FastAPI) -> None:
    """Serve the interactive API docs at /docs from the package's own copy of Swagger UI (no CDN)."""

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} — docs",
            swagger_js_url=f"{SWAGGER_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER_ASSETS}/swagger-ui-favicon.png",
        )
