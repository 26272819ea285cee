"""The playground: a static page for trying the API in a browser, and the one read-only call it needs first.

`GET /playground` is plain HTML, CSS and JavaScript from `api/static/` (no build step, nothing fetched
from elsewhere); it talks to the same `/v1` endpoints as any client, with the key the user types in.
`GET /v1/assist/mode` tells the page, before any question, which mode will answer.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from ..deps import AssistDep, TenantDep
from ..errors import TENANT_ERRORS

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
# The page runs only its own files: no inline script, no CDN, nothing framed.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter()
router.mount("/playground/static", StaticFiles(directory=STATIC_DIR), name="playground-static")


class AssistMode(BaseModel):
    """What answers this tenant's suggest and resolve calls."""

    mode: str = Field(description='"extractive", or the LLM, e.g. "anthropic:claude-haiku-4-5".')
    offline: bool = Field(description="True when no LLM is called (extractive answers from the knowledge).")
    tenant_id: str
    tenant_name: str


@router.get("/v1/assist/mode", tags=["assist"], response_model=AssistMode, responses=TENANT_ERRORS)
async def assist_mode(tenant: TenantDep, assist: AssistDep) -> AssistMode:
    """The answering mode (offline extractive or which LLM) and the key's tenant."""
    mode = assist.mode
    return AssistMode(
        mode=mode, offline=assist.provider is None, tenant_id=tenant.id, tenant_name=tenant.name
    )


@router.get("/playground", include_in_schema=False)
async def playground() -> FileResponse:
    """The playground page."""
    return FileResponse(STATIC_DIR / "playground.html", media_type="text/html", headers=_PAGE_HEADERS)
