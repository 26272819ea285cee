"""A client generated from the service's OpenAPI document, type-checked with the inbox's calls.

openapi-typescript turns `/openapi.json` into TypeScript types; clients/typescript/inbox.ts makes the calls
the inbox makes (suggest, resolve, feedback, the conversation-closed webhook and its job's status, see
docs/integration.md) through openapi-fetch, and `tsc --noEmit` checks them. A change of the API that
breaks those calls fails here. The tools come from clients/typescript/package-lock.json (`npm ci`, which
.ci/run does).
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from api.app import create_app
from retrieval.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
CLIENT = ROOT / "clients" / "typescript"
BIN = CLIENT / "node_modules" / ".bin"

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (BIN / "tsc").exists() or not (BIN / "openapi-typescript").exists(),
    reason="the TypeScript client tools are not installed: cd clients/typescript && npm ci",
)


def _spec(tmp_path: Path) -> dict[str, Any]:
    settings = Settings(data_dir=tmp_path / "data", admin_token="t" * 40, _env_file=None)  # type: ignore[call-arg]
    return create_app(settings).openapi()


def _type_check(work: Path, spec: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """Generate the client's types from `spec` in `work` and type-check the inbox's calls against them."""
    work.mkdir()
    (work / "openapi.json").write_text(json.dumps(spec), encoding="utf-8")
    for name in ("inbox.ts", "tsconfig.json"):
        shutil.copy(CLIENT / name, work / name)
    (work / "node_modules").symlink_to(CLIENT / "node_modules", target_is_directory=True)
    generate = [str(BIN / "openapi-typescript"), "openapi.json", "-o", "schema.d.ts"]
    subprocess.run(generate, cwd=work, check=True, capture_output=True, text=True, timeout=120)
    return subprocess.run(
        [str(BIN / "tsc"), "-p", "."], cwd=work, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_inbox_calls_type_check_against_the_generated_client(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    done = _type_check(tmp_path / "client", spec)
    assert done.returncode == 0, done.stdout + done.stderr
    schema = (tmp_path / "client" / "schema.d.ts").read_text(encoding="utf-8")
    for operation in (
        "suggestReplies",
        "sendFeedback",
        "conversationClosed",
        "getJob",
        "resolveConversation",
    ):
        assert f"{operation}: {{" in schema, operation
    # The headers of a service key's signed webhook (clients/typescript/inbox.ts, onConversationClosedFor).
    for header in ("X-Invekto-Tenant", "X-Invekto-Timestamp", "X-Invekto-Signature"):
        assert f'"{header}"?: string | null;' in schema, header


def test_a_change_that_breaks_the_inbox_fails_the_type_check(tmp_path: Path) -> None:
    spec = copy.deepcopy(_spec(tmp_path))
    schemas = spec["components"]["schemas"]
    # Suggestions renamed, and the job id of the webhook's answer gone.
    suggest = schemas["SuggestResponse"]
    suggest["properties"]["replies"] = suggest["properties"].pop("suggestions")
    suggest["required"] = ["replies" if r == "suggestions" else r for r in suggest["required"]]
    schemas["JobAccepted"]["properties"].pop("id")
    schemas["JobAccepted"]["required"].remove("id")
    done = _type_check(tmp_path / "client", spec)
    assert done.returncode != 0
    errors = done.stdout + done.stderr
    assert "inbox.ts" in errors and "'suggestions'" in errors and "'id'" in errors, errors
