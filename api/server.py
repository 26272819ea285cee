"""How `serve` and `demo` run uvicorn: read deadlines per connection, a cap on connections, and the
admin token's minimum length.

uvicorn closes an idle keep-alive connection, but a client that connects and then sends nothing, or
sends its headers a byte at a time, or stops half-way through a body, holds its socket for ever; a few
hundred of them exhaust the process's file descriptors. Each connection here gets:

- a header deadline: the request line and headers must arrive within `header_timeout_s` of the
  connection opening (or of the first byte of a following request), however slowly they drip;
- a body idle limit: while a request body is being sent, `body_timeout_s` without a byte closes the
  connection (not while the server itself holds off reading, when the app is busy with what came);
- at most `max_connections` open connections; requests beyond them are answered 503 at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import uvicorn

    from retrieval.settings import Settings

log = logging.getLogger(__name__)

HEADER_TIMEOUT_S = 10.0
BODY_TIMEOUT_S = 30.0
MAX_CONNECTIONS = 512
KEEP_ALIVE_S = 5
MIN_ADMIN_TOKEN_CHARS = 32


def admin_token_problem(settings: Settings) -> str | None:
    """Return why the configured admin token is refused (too short to resist guessing), or None."""
    token = settings.admin_token.get_secret_value() if settings.admin_token else ""
    if not token or len(token) >= MIN_ADMIN_TOKEN_CHARS:
        return None
    return (
        f"INVEKTO_ADMIN_TOKEN has {len(token)} characters; it must have at least {MIN_ADMIN_TOKEN_CHARS} "
        "(make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'), "
        "or leave it unset to keep the admin API closed"
    )


def _deadline_protocol(header_timeout_s: float, body_timeout_s: float) -> type:
    """Return uvicorn's httptools protocol (a C parser) with a header deadline and a body idle limit.

    A connection must send a request's line and headers within `header_timeout_s` of its first byte (or
    of connecting): trickling them does not move the deadline. Each piece of a body starts the
    `body_timeout_s` idle limit again. Between requests uvicorn's keep-alive timeout applies.
    """
    import asyncio

    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class DeadlineHttpToolsProtocol(HttpToolsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            self._deadline: asyncio.TimerHandle | None = None
            self._waiting_for: str | None = None
            self._phase: str | None = None  # "headers", "body", or None between requests
            super().connection_made(transport)
            self._expect("headers", header_timeout_s)

        def data_received(self, data: bytes) -> None:
            if self._phase is None and self._waiting_for != "headers":
                self._expect("headers", header_timeout_s)  # the first byte of the next request
            super().data_received(data)
            if self._phase == "body":  # every piece of body starts the idle limit again
                self._expect("body", body_timeout_s)

        def on_message_begin(self) -> None:
            self._phase = "headers"
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            self._phase = "body"
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._phase = None
            self._stop_waiting()
            super().on_message_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_waiting()
            super().connection_lost(exc)

        def _expect(self, what: str, timeout_s: float) -> None:
            self._stop_waiting()
            self._waiting_for = what
            self._deadline = self.loop.call_later(timeout_s, self._timed_out)

        def _stop_waiting(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline, self._waiting_for = None, None

        def _timed_out(self) -> None:
            what = self._waiting_for
            if what == "body" and self.flow.read_paused:  # we are not reading: the client is not late
                self._expect("body", body_timeout_s)
                return
            self._deadline, self._waiting_for = None, None
            if self.transport.is_closing():
                return
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
            log.info("closing the connection of %s: no complete request %s in time", client, what)
            self.transport.close()

    return DeadlineHttpToolsProtocol


def uvicorn_config(
    app: Any,
    *,
    host: str,
    port: int,
    log_level: str,
    access_log: bool,
    header_timeout_s: float = HEADER_TIMEOUT_S,
    body_timeout_s: float = BODY_TIMEOUT_S,
    max_connections: int = MAX_CONNECTIONS,
    log_format: str | None = None,
) -> uvicorn.Config:
    """Return the uvicorn settings of one worker process: httptools with read deadlines, a connection cap,
    and the log format (`log_format`, else the app's INVEKTO_LOG_FORMAT; see api/logs.py)."""
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    from .logs import json_log_config, resolve_format

    settings = getattr(getattr(app, "state", None), "settings", None)
    if resolve_format(log_format or getattr(settings, "log_format", None)) == "json":
        # One JSON line per request from api.logs replaces uvicorn's access log.
        log_config, access_log = json_log_config(log_level, access_log), False
    else:
        log_config = LOGGING_CONFIG
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        workers=1,
        log_level=log_level,
        access_log=access_log,
        log_config=log_config,
        http=_deadline_protocol(header_timeout_s, body_timeout_s),
        limit_concurrency=max_connections,
        timeout_keep_alive=KEEP_ALIVE_S,
    )


@dataclass(frozen=True)
class ServeOptions:
    """How `serve` runs uvicorn, in its own process or in each worker process (api/workers.py)."""

    host: str
    port: int
    log_level: str = "info"
    access_log: bool = True
    header_timeout_s: float = HEADER_TIMEOUT_S
    body_timeout_s: float = BODY_TIMEOUT_S
    max_connections: int = MAX_CONNECTIONS

    def config(self, app: Any, settings: Settings) -> uvicorn.Config:
        """Return the uvicorn settings for `app`, with the graceful-shutdown time `settings` give."""
        config = uvicorn_config(
            app,
            host=self.host,
            port=self.port,
            log_level=self.log_level,
            access_log=self.access_log,
            header_timeout_s=self.header_timeout_s,
            body_timeout_s=self.body_timeout_s,
            max_connections=self.max_connections,
        )
        # SIGTERM: requests still open get this long before the lifespan stops the ingestion jobs, which
        # wait at most settings.shutdown_timeout_s (the running one resumes at the next start).
        config.timeout_graceful_shutdown = int(max(1.0, settings.shutdown_timeout_s))
        return config
