"""Signed webhooks, both ways: HMAC-SHA256 over `<timestamp>.<raw body>` with the tenant's webhook secret.

A signed request carries `X-Invekto-Timestamp: <unix seconds>` and
`X-Invekto-Signature: v1=<hex hmac_sha256(secret, f"{timestamp}.{body}")>`; several comma-separated `v1=`
values may be sent (one per secret while a secret is rotated). The receiver recomputes the signature over
the body exactly as sent, compares in constant time and refuses a timestamp outside its tolerance (a
replayed request). Invekto signs its calls to `POST /v1/conversations/closed` this way when the tenant has
a secret; this service signs its job callbacks (api/callbacks.py) the same way.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Header, Request

from ingestion.registry_models import Tenant
from retrieval.settings import Settings

from .deps import TenantDep, get_settings
from .errors import ProblemError

TIMESTAMP_HEADER = "X-Invekto-Timestamp"
SIGNATURE_HEADER = "X-Invekto-Signature"
SCHEME = "v1"


def signature(secret: str, timestamp: int | str, body: bytes) -> str:
    """Return the hex HMAC-SHA256 of `<timestamp>.<body>` under `secret`."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_headers(secret: str, body: bytes, now: float | None = None) -> dict[str, str]:
    """Return the timestamp and signature headers of a request with `body`, signed now."""
    timestamp = int(time.time() if now is None else now)
    return {
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: f"{SCHEME}={signature(secret, timestamp, body)}",
    }


class SignatureError(ValueError):
    """A webhook whose signature does not verify; `code` says why (for the problem type)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


def verify(
    secrets: Sequence[str],
    timestamp: str | None,
    signature_header: str | None,
    body: bytes,
    *,
    tolerance_s: float,
    now: float | None = None,
) -> None:
    """Return if one `v1=` signature of `signature_header` is `body`'s under one of `secrets` and the
    timestamp is within `tolerance_s` of `now`; SignatureError otherwise."""
    if not timestamp or not signature_header:
        missing = [
            h for h, v in ((TIMESTAMP_HEADER, timestamp), (SIGNATURE_HEADER, signature_header)) if not v
        ]
        raise SignatureError(
            "missing-signature",
            f"This tenant signs its webhooks: send {' and '.join(missing)} "
            f"({SIGNATURE_HEADER}: v1=<hex HMAC-SHA256 of '<timestamp>.<body>' under the webhook secret>).",
        )
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise SignatureError(
            "malformed-signature",
            f"{TIMESTAMP_HEADER} must be the time in whole Unix seconds, e.g. 1764583200.",
        )
    given = []
    for part in signature_header.split(","):
        scheme, sep, value = part.strip().partition("=")
        if not sep or not value:
            raise SignatureError(
                "malformed-signature",
                f"{SIGNATURE_HEADER} must be one or more comma-separated `v1=<hex>` values.",
            )
        if scheme == SCHEME:
            given.append(value.strip().lower())
    if not given:
        raise SignatureError("malformed-signature", f"{SIGNATURE_HEADER} has no `v1=` signature.")
    skew = int(timestamp) - (time.time() if now is None else now)
    if skew < -tolerance_s:
        raise SignatureError(
            "stale-timestamp",
            f"{TIMESTAMP_HEADER} is {-skew:.0f} s old, over the {tolerance_s:g} s allowed: sign each request "
            "when it is sent (a replayed request is refused).",
        )
    if skew > tolerance_s:
        raise SignatureError(
            "future-timestamp",
            f"{TIMESTAMP_HEADER} is {skew:.0f} s in the future, over the {tolerance_s:g} s allowed: check the "
            "sender's clock.",
        )
    expected = [signature(secret, timestamp, body).encode() for secret in secrets]
    # Every pair is compared, so the time taken says nothing about which one matched.
    matched = [hmac.compare_digest(e, g.encode()) for e in expected for g in given]
    if not any(matched):
        raise SignatureError(
            "bad-signature",
            "The signature does not match the body under the tenant's webhook secret: sign the body exactly as "
            "sent, as '<timestamp>.<body>'.",
        )


async def signed_webhook(
    request: Request,
    tenant: TenantDep,
    settings: Annotated[Settings, Depends(get_settings)],
    timestamp: Annotated[
        str | None,
        Header(
            alias=TIMESTAMP_HEADER,
            max_length=20,
            description="Unix seconds when the request was signed; required when the tenant has a webhook secret.",
        ),
    ] = None,
    signature_value: Annotated[
        str | None,
        Header(
            alias=SIGNATURE_HEADER,
            max_length=1000,
            description="`v1=<hex HMAC-SHA256 of '<timestamp>.<raw body>' under the tenant's webhook secret>`; "
            "several comma-separated values while a secret is rotated. Required when the tenant has a secret.",
        ),
    ] = None,
) -> Tenant:
    """Return the tenant once the request's signature verifies; tenants without a webhook secret pass as
    before (configuring one is recommended). 401 with the reason otherwise."""
    if tenant.webhook is None:
        return tenant
    body = await request.body()  # the bytes as sent; FastAPI parses the same cached bytes
    try:
        verify(
            tenant.webhook.valid(datetime.now(UTC)),
            timestamp,
            signature_value,
            body,
            tolerance_s=settings.webhook_tolerance_s,
        )
    except SignatureError as exc:
        raise ProblemError(
            401, exc.code, "Webhook signature refused", str(exc), headers={"WWW-Authenticate": "Signature"}
        ) from exc
    return tenant


SignedTenantDep = Annotated[Tenant, Depends(signed_webhook)]
