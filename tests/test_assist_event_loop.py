"""Suggest on a server's event loop: without an LLM its short steps run on the loop itself, and anything
that would wait (the database held by another writer, an LLM call) goes to a compute slot, so the loop
never waits. A real index, SQLite registry file and ingestion pipeline (tests/assist_env.py)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from assist.models import SuggestResponse
from assist.records import AssistRecords
from assist.service import AssistService
from retrieval.embedders import UseMultilingualEmbedder
from tests.assist_env import SHOP, AssistEnv, anthropic_provider, ask, shop_env

QUESTION = "Kargo ücreti ne kadar?"


@pytest.fixture(scope="module")
def shop(
    tmp_path_factory: pytest.TempPathFactory, use_embedder: UseMultilingualEmbedder
) -> Iterator[AssistEnv]:
    yield from shop_env(tmp_path_factory, use_embedder)


def _slots(used: list[str]) -> Callable[..., Awaitable[Any]]:
    """A compute slot that notes which steps were handed to it."""

    async def run(fn: Callable[..., Any], *args: Any) -> Any:
        used.append(fn.__name__)
        return await asyncio.to_thread(fn, *args)

    return run


def _audit_count(env: AssistEnv, conversation_id: str) -> int:
    entries = AssistRecords(env.registry).list_audit(SHOP, limit=1000)
    return sum(1 for e in entries if e.conversation_id == conversation_id)


async def _suggest_while_ticking(
    service: AssistService, conversation_id: str, run: Callable[..., Awaitable[Any]]
) -> tuple[SuggestResponse, int]:
    """Return the suggest response and how often a 10 ms ticker ran on the loop meanwhile."""
    ticks = 0
    done = asyncio.Event()

    async def tick() -> None:
        nonlocal ticks
        while not done.is_set():
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        response = await service.suggest_async(SHOP, ask(QUESTION, conversation_id), run)
    finally:
        done.set()
        await ticker
    return response, ticks


def test_without_an_llm_suggest_stores_its_answer_on_the_loop(shop: AssistEnv) -> None:
    service = shop.service()
    service.suggest(SHOP, ask(QUESTION, "c-warm"))  # the tenant's knowledge is derived once, first
    used: list[str] = []
    response = asyncio.run(service.suggest_async(SHOP, ask(QUESTION, "c-loop"), _slots(used)))
    assert response.suggestions and "kargo" in response.suggestions[0].text.lower()
    # Only the search of this in-process index went to a slot; the row was stored on the loop.
    assert used == ["_search"]
    assert _audit_count(shop, "c-loop") == 1


def test_a_database_held_by_another_writer_does_not_hold_the_loop(shop: AssistEnv) -> None:
    service = shop.service()
    service.suggest(SHOP, ask(QUESTION, "c-warm"))
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:  # e.g. an ingestion job writing its documents' rows
        with shop.registry.transaction():
            holding.set()
            release.wait(10)

    writer = threading.Thread(target=hold)
    writer.start()
    assert holding.wait(10)
    threading.Timer(1.0, release.set).start()
    used: list[str] = []
    try:
        response, ticks = asyncio.run(_suggest_while_ticking(service, "c-held", _slots(used)))
    finally:
        release.set()
        writer.join(10)
    # The write went to a slot and waited there for the other writer; the loop kept running meanwhile
    # (about 100 ticks in that second; none while a write waits on the loop itself).
    assert used == ["_search", "_record_suggest"]
    assert ticks >= 20, ticks
    assert response.suggestions and len({s.id for s in response.suggestions}) == len(response.suggestions)
    assert _audit_count(shop, "c-held") == 1


def test_with_an_llm_every_step_goes_to_a_slot(shop: AssistEnv) -> None:
    # An LLM call waits on the network: nothing of an LLM-backed suggest runs on the loop.
    provider, _ = anthropic_provider()
    service = shop.service(provider)
    service.suggest(SHOP, ask(QUESTION, "c-warm"))
    used: list[str] = []
    response = asyncio.run(service.suggest_async(SHOP, ask(QUESTION, "c-llm"), _slots(used)))
    assert response.suggestions
    assert used == ["_prepare_suggest", "_search", "_finish_suggest"]
    assert _audit_count(shop, "c-llm") == 1
