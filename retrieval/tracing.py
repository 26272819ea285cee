"""Optional OpenTelemetry tracing of the request -> search -> answer path.

Off unless `INVEKTO_OTEL=1` (a set `OTEL_EXPORTER_OTLP_ENDPOINT` alone does not turn it on: an endpoint
shared by a deployment's other services must not switch on an optional feature here). On, it needs the
`otel` extra (`pip install 'invekto-knowledge[otel]'`); spans go over OTLP/HTTP to the endpoint of the
standard `OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT` variables (default http://localhost:4318), service name
`invekto-knowledge` unless `OTEL_SERVICE_NAME` says otherwise. A provider set up already in the process
(e.g. by `opentelemetry-instrument`) is used as it is.

Spans: the HTTP request (`POST /v1/assist/suggest`, continuing the caller's `traceparent`), and below it
`assist.query`, `retrieval.search`, `assist.verify`, `assist.generate` and `assist.answer`. Attributes
carry ids and counts (tenant, request id, hits, mode), never customer or knowledge text.

Off, nothing here imports OpenTelemetry and each `span()` is one global read returning a shared no-op.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

TRACER_NAME = "invekto-knowledge"
_tracer: Any = None
_NO_SPAN: AbstractContextManager[Any] = contextlib.nullcontext()


def enabled() -> bool:
    return _tracer is not None


def enable(provider: Any = None) -> None:
    """Trace from now on, with `provider` (an SDK TracerProvider) or the process's global one."""
    global _tracer
    from opentelemetry import trace

    _tracer = (provider or trace.get_tracer_provider()).get_tracer(TRACER_NAME)


def disable() -> None:
    global _tracer
    _tracer = None


def tracing_problem(settings: Any) -> str | None:
    """Return why tracing cannot start as configured (the extra is missing), or None."""
    if not settings.otel or importlib.util.find_spec("opentelemetry.sdk") is not None:
        return None
    return "INVEKTO_OTEL=1 needs the otel extra: pip install 'invekto-knowledge[otel]'"


def configure(settings: Any) -> None:
    """Turn tracing on when `settings.otel`: export over OTLP/HTTP unless the process has a provider."""
    if not settings.otel:
        return
    problem = tracing_problem(settings)
    if problem:
        raise ValueError(problem)
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": TRACER_NAME}
        provider = TracerProvider(resource=Resource.create(attributes))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
    enable()


def span(name: str, **attributes: Any) -> AbstractContextManager[Any]:
    """A child span of the current one; a shared no-op while tracing is off. No text in `attributes`."""
    if _tracer is None:
        return _NO_SPAN
    return _tracer.start_as_current_span(name, attributes=attributes)


def traced(name: str) -> Callable[[F], F]:
    """Decorate a function to run in a span called `name` while tracing is on (a plain call when off)."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            if _tracer is None:
                return fn(*args, **kwargs)
            with _tracer.start_as_current_span(name):
                return fn(*args, **kwargs)

        return call  # type: ignore[return-value]

    return decorate


def set_attribute(key: str, value: Any) -> None:
    """Set an attribute on the current span (none while tracing is off)."""
    if _tracer is None:
        return
    from opentelemetry import trace

    trace.get_current_span().set_attribute(key, value)


@contextlib.contextmanager
def _server_span(scope: Any, request_id: str) -> Iterator[Any]:
    from opentelemetry import trace
    from opentelemetry.propagate import extract

    carrier = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
    attributes = {"http.request.method": scope["method"], "invekto.request_id": request_id}
    with _tracer.start_as_current_span(
        scope["method"], context=extract(carrier), kind=trace.SpanKind.SERVER, attributes=attributes
    ) as current:
        yield current


def request_span(scope: Any, request_id: str) -> AbstractContextManager[Any]:
    """The span of one HTTP request (named and finished by `end_request`); a no-op while tracing is off."""
    if _tracer is None:
        return _NO_SPAN
    return _server_span(scope, request_id)


def end_request(current: Any, scope: Any, status: int) -> None:
    """Name the request span by its route template and give it the response status."""
    if current is None:
        return
    route = getattr(scope.get("route"), "path", None)
    if route:
        current.update_name(f"{scope['method']} {route}")
        current.set_attribute("http.route", route)
    current.set_attribute("http.response.status_code", status)
    if status >= 500:
        from opentelemetry.trace import Status, StatusCode

        current.set_status(Status(StatusCode.ERROR))
