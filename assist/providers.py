"""LLM providers behind one narrow interface: `complete(system, user) -> text`, or a ProviderError.

- `anthropic`: Claude through the official SDK (its HTTP client is `httpx2`).
- `openai-compatible`: any server speaking the OpenAI chat API (vLLM, Ollama, ...) through the official
  `openai` SDK (HTTP client `httpx`), for tenants who keep data on-premise under KVKK.
- `extractive`: no provider at all (`provider_from_settings` returns None).

Retries are ours, not the SDKs' (both are built with max_retries=0): rate limits (429), overload
(529) and server errors are retried with exponential backoff and jitter, honouring Retry-After up
to the backoff cap. A timeout is not retried: the request has already used its time budget.
Tests swap the transport (`httpx2.MockTransport` / `httpx.MockTransport`), never our code.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from retrieval.settings import Settings

log = logging.getLogger(__name__)

ProviderErrorKind = Literal[
    "timeout", "rate_limited", "overloaded", "server_error", "connection", "rejected", "invalid_response"
]
_RETRY_STATUSES = frozenset({408, 409, 429})


class ProviderError(RuntimeError):
    """The LLM could not give an answer; `kind` says why, `attempts` how many requests were sent."""

    def __init__(self, kind: ProviderErrorKind, message: str, attempts: int = 1) -> None:
        super().__init__(message)
        self.kind = kind
        self.attempts = attempts


class LLMProvider(Protocol):
    """A chat model that turns a system prompt and one user message into text."""

    @property
    def name(self) -> str: ...

    def complete(self, system: str, user: str, *, max_tokens: int = 600) -> str: ...


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a retryable failure."""

    max_retries: int = 2
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 4.0

    def delay(self, retry: int, retry_after_s: float | None = None) -> float:
        """Return the wait before retry number `retry` (0-based): Retry-After if given, else 2^n backoff."""
        if retry_after_s is not None and retry_after_s >= 0:
            return min(retry_after_s, self.max_backoff_s)
        base = min(self.initial_backoff_s * 2**retry, self.max_backoff_s)
        return base * (1 - 0.25 * random.random())


def _retry_after(headers: Any) -> float | None:
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return float(value) / scale
        except ValueError:
            continue
    return None


def _classify_status(status: int) -> ProviderErrorKind | None:
    """Return the error kind of a retryable HTTP status, None for one that retrying cannot fix."""
    if status == 429:
        return "rate_limited"
    if status == 529:
        return "overloaded"
    if status >= 500 or status in _RETRY_STATUSES:
        return "server_error"
    return None


def _with_retries(
    call: Callable[[], str],
    policy: RetryPolicy,
    sleep: Callable[[float], None],
    errors: Any,
    label: str,
) -> str:
    """Return call() once it succeeds, retrying what `policy` allows; raise ProviderError otherwise.

    `errors` is the SDK's exception module: both SDKs name their exceptions the same way.
    """
    attempt = 0
    while True:
        attempt += 1
        retry_after: float | None = None
        try:
            return call()
        except errors.APITimeoutError as exc:
            raise ProviderError("timeout", f"{label} timed out", attempt) from exc
        except errors.APIConnectionError as exc:
            kind: ProviderErrorKind = "connection"
            error: Exception = exc
        except errors.APIStatusError as exc:
            status_kind = _classify_status(exc.status_code)
            if status_kind is None:
                raise ProviderError(
                    "rejected", f"{label} refused the request ({exc.status_code})", attempt
                ) from exc
            kind, error = status_kind, exc
            retry_after = _retry_after(exc.response.headers)
        except errors.APIError as exc:  # any other SDK error, e.g. a body that fails the SDK's validation
            raise ProviderError("invalid_response", f"{label} sent an unusable response", attempt) from exc
        except (
            ValueError,
            TypeError,
            AttributeError,
            KeyError,
        ) as exc:  # a 200 whose body is not the API's shape
            raise ProviderError("invalid_response", f"{label} sent an unreadable response", attempt) from exc
        if attempt > policy.max_retries:
            raise ProviderError(kind, f"{label} failed after {attempt} attempts ({kind})", attempt) from error
        wait = policy.delay(attempt - 1, retry_after)
        log.info("%s %s, retry %d in %.2fs", label, kind, attempt, wait)
        sleep(wait)


class AnthropicProvider:
    """Claude through the official `anthropic` SDK."""

    def __init__(
        self,
        api_key: str,
        model: str,
        *,
        timeout_s: float = 20.0,
        retry: RetryPolicy | None = None,
        transport: Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """`transport` is an httpx2 transport (tests pass httpx2.MockTransport)."""
        import anthropic
        import httpx2

        self._errors = anthropic
        self.model = model
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._client = anthropic.Anthropic(
            api_key=api_key,
            http_client=httpx2.Client(transport=transport, timeout=timeout_s),
            max_retries=0,
            timeout=timeout_s,
        )

    @property
    def name(self) -> str:
        return f"anthropic:{self.model}"

    def complete(self, system: str, user: str, *, max_tokens: int = 600) -> str:
        """Return the text of Claude's reply."""

        def call() -> str:
            message = self._client.messages.create(
                model=self.model,
                max_tokens=max_tokens,
                system=system,
                messages=[{"role": "user", "content": user}],
            )
            return "".join(getattr(block, "text", "") for block in message.content)

        return _with_retries(call, self.retry, self._sleep, self._errors, "anthropic")


class OpenAICompatibleProvider:
    """An OpenAI-compatible chat server (vLLM, Ollama, LM Studio, ...) through the official `openai` SDK."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 20.0,
        retry: RetryPolicy | None = None,
        transport: Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """`transport` is an httpx transport (tests pass httpx.MockTransport)."""
        import httpx
        import openai

        self._errors = openai
        self.model = model
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._client = openai.OpenAI(
            base_url=base_url,
            # Local servers usually take no key, but the SDK insists on one.
            api_key=api_key or "not-needed",
            http_client=httpx.Client(transport=transport, timeout=timeout_s),
            max_retries=0,
            timeout=timeout_s,
        )

    @property
    def name(self) -> str:
        return f"openai-compatible:{self.model}"

    def complete(self, system: str, user: str, *, max_tokens: int = 600) -> str:
        """Return the text of the model's reply."""

        def call() -> str:
            response = self._client.chat.completions.create(
                model=self.model,
                max_tokens=max_tokens,
                temperature=0.0,
                messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
            )
            if not response.choices:
                return ""
            return response.choices[0].message.content or ""

        return _with_retries(call, self.retry, self._sleep, self._errors, "openai-compatible")


def provider_from_settings(settings: Settings) -> LLMProvider | None:
    """Return the configured provider, or None for extractive mode.

    `auto` picks anthropic when an API key is set, else an OpenAI-compatible server when a base URL is
    set, else extractive. Asking for a provider without its configuration is a ValueError.
    """
    choice = settings.llm_provider
    if choice == "auto":
        if settings.anthropic_api_key:
            choice = "anthropic"
        elif settings.openai_base_url:
            choice = "openai-compatible"
        else:
            return None
    if choice == "extractive":
        return None
    if choice == "anthropic":
        if not settings.anthropic_api_key:
            raise ValueError("INVEKTO_LLM_PROVIDER=anthropic needs ANTHROPIC_API_KEY")
        return AnthropicProvider(
            settings.anthropic_api_key.get_secret_value(),
            settings.anthropic_model,
            timeout_s=settings.llm_timeout_s,
        )
    if not settings.openai_base_url or not settings.openai_model:
        raise ValueError(
            "INVEKTO_LLM_PROVIDER=openai-compatible needs INVEKTO_OPENAI_BASE_URL and INVEKTO_OPENAI_MODEL"
        )
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    return OpenAICompatibleProvider(
        settings.openai_base_url, settings.openai_model, api_key=key, timeout_s=settings.llm_timeout_s
    )
