"""Structured logs: a request id on every request, and JSON lines (one per event) for log collectors.

`INVEKTO_LOG_FORMAT` picks the format of `serve` and `demo`: `json` (one JSON object a line), `text`
(uvicorn's usual lines), or unset: text when stderr is a terminal, JSON otherwise (a container, systemd,
a file). Every line of a request carries its request id, its tenant (once the API key is checked) and
its route template (`/v1/documents/{doc_id}`, never the raw path); the request line adds method, status
and duration. Personal data stays redacted: the service's log record factory
(`ingestion.pseudonym.install_log_redaction`) redacts messages, arguments and tracebacks before any
formatter sees them, and this formatter only uses what the record holds.

The request id is the client's `X-Request-ID` when it is short and made of safe characters (and carries
no personal data), else a new one; the response returns it in `X-Request-ID`.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ingestion.redact import Redactor
from retrieval import tracing

REQUEST_ID_HEADER = "X-Request-ID"
_HEADER_KEY = REQUEST_ID_HEADER.lower().encode()
_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_REDACT = Redactor()  # a phone number or TCKN sent as a request id is not logged
# The logger of the one line per request (JSON format; the text format keeps uvicorn's access log).
request_log = logging.getLogger("api.request")


class RequestLogContext:
    """What every log record of one request carries; the tenant is filled in once the key is checked."""

    __slots__ = ("request_id", "tenant_id", "_scope")

    def __init__(self, request_id: str, scope: Scope) -> None:
        self.request_id = request_id
        self.tenant_id: str | None = None
        self._scope = scope

    @property
    def route(self) -> str | None:
        """The matched route template (the router stores it in the scope), None before or without one."""
        return getattr(self._scope.get("route"), "path", None)


_current: ContextVar[RequestLogContext | None] = ContextVar("invekto_request", default=None)


def current_request() -> RequestLogContext | None:
    return _current.get()


def set_tenant(tenant_id: str) -> None:
    """Put the authenticated tenant on the log records (and the trace) of the current request."""
    context = _current.get()
    if context is not None:
        context.tenant_id = tenant_id
    tracing.set_attribute("invekto.tenant_id", tenant_id)


def request_id_of(headers: list[tuple[bytes, bytes]]) -> str:
    """Return the client's X-Request-ID when it is acceptable, else a new random one."""
    for key, value in headers:
        if key == _HEADER_KEY:
            given = value.decode("latin-1")
            if _SAFE_ID.fullmatch(given) and _REDACT(given) == given:
                return given
            break
    return uuid.uuid4().hex


class RequestContextMiddleware:
    """Pure ASGI middleware: a request id and log context per HTTP request, the id in the response, one
    `api.request` log line when the request ends, and the request span when tracing is on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        context = RequestLogContext(request_id_of(scope["headers"]), scope)
        # Not reset afterwards on purpose: the 500 handler runs outside this middleware, in the same task
        # (each request has its own task, so nothing leaks into the next request).
        _current.set(context)
        header = (_HEADER_KEY, context.request_id.encode())
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                if all(key.lower() != _HEADER_KEY for key, _ in headers):
                    headers.append(header)
                message = {**message, "headers": headers}
            await send(message)

        with tracing.request_span(scope, context.request_id) as span:
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                tracing.end_request(span, scope, status)
                if request_log.isEnabledFor(logging.INFO):
                    duration_ms = round((time.perf_counter() - started) * 1000, 1)
                    request_log.info(
                        "%s %s %d %.1f ms",
                        scope["method"],
                        context.route or "unmatched",
                        status,
                        duration_ms,
                        extra={"method": scope["method"], "status": status, "duration_ms": duration_ms},
                    )


# Attributes of every LogRecord: anything else on a record came as `extra=` and goes into the JSON line
# (uvicorn's terminal colours excepted).
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "color_message",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, request id, tenant id, route, the
    request line's method, status and duration, and the exception text (already redacted)."""

    def format(self, record: logging.LogRecord) -> str:
        context = _current.get()
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": context.request_id if context else None,
            "tenant_id": context.tenant_id if context else None,
            "route": context.route if context else None,
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and key not in line:
                line[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, ensure_ascii=False, default=str)


def resolve_format(configured: str | None) -> str:
    """Return `json` or `text`: the configured format, else text on a terminal and JSON elsewhere."""
    if configured:
        return configured
    return "text" if sys.stderr.isatty() else "json"


def json_log_config(log_level: str, access_log: bool) -> dict[str, Any]:
    """Return the `logging.config.dictConfig` of the JSON format: every logger (uvicorn's, the service's)
    writes JSON lines to stderr; the request line replaces uvicorn's access log."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
        },
        "root": {"handlers": ["stderr"], "level": log_level.upper()},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": False},
            # Like uvicorn's access log: on unless --no-access-log, and only at --log-level info or below.
            request_log.name: {"level": log_level.upper() if access_log else "WARNING"},
        },
    }
