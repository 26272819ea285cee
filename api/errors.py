"""Every error the API returns is an RFC 9457 problem (`application/problem+json`) with a clear title.

Routes raise `ProblemError`; the handlers installed by `install_error_handlers` also turn FastAPI's
validation errors, Starlette's routing errors (404, 405), the body limit (413), engine and database
outages (503) and anything unexpected (500) into problems, so a client only ever parses one shape.
"""

from __future__ import annotations

import http
import logging
import re
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from retrieval.store import StoreError

from .logs import REQUEST_ID_HEADER, current_request

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
# Problem types are tag URIs (RFC 4151, as RFC 9457 suggests for types that are not web pages);
# docs/api.md lists them.
TYPE_PREFIX = "tag:invekto.com,2025:knowledge/problem/"


class FieldError(BaseModel):
    """One invalid part of a request: where it is and what is wrong with it."""

    location: str = Field(description='Dotted path, e.g. "body.messages.0.role" or "query.limit".')
    message: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="A URI naming the kind of problem; see docs/api.md.")
    title: str = Field(description="Short, human-readable summary of the kind of problem.")
    status: int
    detail: str | None = Field(default=None, description="What went wrong with this request.")
    instance: str | None = Field(default=None, description="The request path.")
    errors: list[FieldError] | None = Field(default=None, description="Validation errors, one per field.")


class ProblemError(Exception):
    """Raised by routes and dependencies; rendered as a problem response."""

    def __init__(
        self,
        status: int,
        kind: str,
        title: str,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.kind = kind
        self.title = title
        self.detail = detail
        self.headers = dict(headers or {})
        self.extensions = extensions


def not_found(what: str, detail: str) -> ProblemError:
    """Return the 404 problem for a missing (or another tenant's) resource; the two look the same."""
    return ProblemError(404, "not-found", f"{what} not found", detail)


def problem_response(
    request: Request,
    status: int,
    kind: str,
    title: str,
    detail: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + kind,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    body.update({k: v for k, v in extensions.items() if v is not None})
    return JSONResponse(body, status_code=status, headers=dict(headers or {}), media_type=PROBLEM_JSON)


def _human_bytes(size: int) -> str:
    mib = size / (1024 * 1024)
    return f"{mib:.1f} MiB" if mib >= 1 else f"{size / 1024:.0f} KiB"


# Starlette raises bare HTTPExceptions for routing and body limits; each gets a type, a title and a detail
# that says what to do.
def _http_problem(request: Request, exc: StarletteHTTPException) -> tuple[str, str, str]:
    status = exc.status_code
    path = request.url.path
    if status == 404:
        return "not-found", "Not found", f"There is no endpoint at {path}; the API is described at /docs."
    if status == 405:
        allowed = _allowed_methods(request)
        return (
            "method-not-allowed",
            "Method not allowed",
            f"{request.method} is not allowed on {path}; allowed: {allowed}.",
        )
    if status == 413:
        limit = request.scope.get(MAX_BODY_SIZE_SCOPE_KEY)
        size = f" of {_human_bytes(limit)}" if isinstance(limit, int) else ""
        return (
            "payload-too-large",
            "Request body too large",
            f"The request body is over this endpoint's limit{size}.",
        )
    if status == 400:
        return "bad-request", "Malformed request", str(exc.detail)
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return phrase.lower().replace(" ", "-"), phrase, str(exc.detail)


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(
        request, exc.status, exc.kind, exc.title, exc.detail, exc.headers, **exc.extensions
    )


def _allowed_methods(request: Request) -> str:
    """Return every method the path supports: Starlette's Allow names only the first route matching it."""
    methods = {
        method
        for route in iter_route_contexts(request.app.routes)
        if route.route.matches(request.scope)[0] != Match.NONE
        for method in route.methods or ()
    }
    return ", ".join(sorted(methods))


async def _on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and str(exc.detail).startswith("Too many files"):
        # Starlette's form parser stops at 1,000 files with a bare 400; it is our too-many-files 413.
        from .uploads import too_many_files  # uploads uses this module

        limit = re.search(r"\d+", str(exc.detail))
        return await _on_problem(request, too_many_files(f"Over {limit[0] if limit else 'the'} files sent"))
    kind, title, detail = _http_problem(request, exc)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return problem_response(request, exc.status_code, kind, title, detail, headers)


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # The submitted values are left out on purpose: they may be large or carry personal data.
    errors = [
        FieldError(location=_location(e.get("loc", ())), message=e.get("msg", ""), type=e.get("type", ""))
        for e in exc.errors()
    ]
    if any(e.type == "json_invalid" for e in errors):
        return problem_response(
            request,
            422,
            "malformed-json",
            "Malformed JSON",
            "The request body is not valid JSON.",
            errors=[e.model_dump() for e in errors],
        )
    shown = "; ".join(f"{e.location}: {e.message}" for e in errors[:3])
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return problem_response(
        request,
        422,
        "validation-error",
        "Invalid request",
        shown + more,
        errors=[e.model_dump() for e in errors],
    )


async def _on_store_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("index error on %s: %s", request.url.path, exc)
    return problem_response(
        request, 503, "index-unavailable", "Index unavailable", str(exc), {"Retry-After": "5"}
    )


async def _on_database_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("database error on %s: %s", request.url.path, exc)
    return problem_response(
        request,
        503,
        "database-unavailable",
        "Database unavailable",
        "The registry database did not answer; try again shortly.",
        {"Retry-After": "5"},
    )


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    # This handler answers outside the request id middleware: the id goes into the response here.
    context = current_request()
    return problem_response(
        request,
        500,
        "internal-error",
        "Internal server error",
        "The server hit an unexpected error; it has been logged.",
        {REQUEST_ID_HEADER: context.request_id} if context else None,
    )


class BodyLimitProblems:
    """Turns the plain-text 413 Starlette's body limiter sends (when Content-Length is over the limit) into
    a problem; every other response passes untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        replacing = False

        async def send_problem(message: Message) -> None:
            nonlocal replacing
            if message["type"] == "http.response.start" and message["status"] == 413:
                content_type = dict(message.get("headers", [])).get(b"content-type", b"")
                replacing = not content_type.startswith(PROBLEM_JSON.encode())
            if not replacing:
                await send(message)
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                request = Request(scope)
                kind, title, detail = _http_problem(request, StarletteHTTPException(413))
                await problem_response(request, 413, kind, title, detail)(scope, receive, send)

        await self.app(scope, receive, send_problem)


def _problems_only_in_openapi(app: FastAPI) -> None:
    """Make the OpenAPI document list error bodies as problem+json only (FastAPI adds application/json)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            for operations in generate()["paths"].values():
                for operation in operations.values():
                    for response in operation.get("responses", {}).values():
                        content = response.get("content", {})
                        if PROBLEM_JSON in content:
                            content.pop("application/json", None)
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StoreError, _on_store_error)
    app.add_exception_handler(DBAPIError, _on_database_error)
    app.add_exception_handler(Exception, _on_unexpected)
    app.add_middleware(BodyLimitProblems)
    _problems_only_in_openapi(app)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Return OpenAPI `responses` entries documenting `statuses` as problem+json."""
    # `model` puts Problem in the components; the application/json entry it adds is dropped again.
    return {
        status: {
            "model": Problem,
            "description": http.HTTPStatus(status).phrase,
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


# What any tenant route may answer besides its own errors: bad body, no key, body limit, validation,
# rate limit, index or database down.
TENANT_ERRORS = problem_responses(400, 401, 403, 413, 422, 429, 503)
ADMIN_ERRORS = problem_responses(400, 401, 403, 413, 422, 503)
