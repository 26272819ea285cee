"""The playground in a real headless Chromium against a real uvicorn: what a newcomer clicks through first.

Seeded with the demo tenant; the steps are the README's: enter the key, see which mode answers, ask the
demo bank a question, open a citation, accept the suggestion, resolve, then upload a document and watch
its job. Screenshots land in test-output/playground-*.png.
"""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common import selenium_manager
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from api.app import create_app
from api.context import ServiceContext
from api.demo import seed_demo
from api.ratelimit import RateLimit
from retrieval.embedders import Embedder
from retrieval.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "test-output"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
QUESTION = "Taşıt kredisi için şartlar nelerdir?"
WAIT_S = 60

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
        reason="needs Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver)",
    ),
]


@dataclass
class Served:
    url: str
    key: str
    data_dir: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, use_embedder: Embedder) -> Iterator[Served]:
    """A real uvicorn on a free loopback port over a data dir seeded with the demo tenant."""
    data = tmp_path_factory.mktemp("playground") / "data"
    settings = Settings(data_dir=data, llm_provider="extractive", knowledge_wait_s=120.0, _env_file=None)  # type: ignore[call-arg]
    ctx = ServiceContext.open(settings, embedder=use_embedder)
    seed = seed_demo(ctx)
    port = _free_port()
    app = create_app(settings, ctx, rate_limit=RateLimit(rate=0))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_S
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield Served(f"http://127.0.0.1:{port}", seed.api_key, data)
    server.should_exit = True
    thread.join(timeout=30)
    ctx.close()


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[webdriver.Chrome]:
    """Headless Debian Chromium through Debian's chromedriver; Selenium Manager must never be asked."""

    def no_selenium_manager(*_args: object, **_kwargs: object) -> Any:
        raise AssertionError("Selenium Manager was called (it would download a driver)")

    monkeypatch.setattr(selenium_manager.SeleniumManager, "binary_paths", no_selenium_manager)
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--window-size=1360,1000",
        "--lang=tr-TR",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def by_testid(scope: webdriver.Chrome | WebElement, testid: str) -> list[WebElement]:
    return scope.find_elements(By.CSS_SELECTOR, f'[data-testid="{testid}"]')


def wait_for(driver: webdriver.Chrome, condition: Callable[[], Any], what: str) -> Any:
    """Return the condition's first truthy value; fail saying `what` did not happen."""

    def check(_driver: webdriver.Chrome) -> Any:
        try:
            return condition()
        except (StaleElementReferenceException, IndexError):  # not there yet, or re-rendered meanwhile
            return None

    try:
        return WebDriverWait(driver, WAIT_S, poll_frequency=0.1).until(check)
    except Exception as exc:
        shot = OUTPUT / "playground-failure.png"
        driver.save_screenshot(str(shot))
        raise AssertionError(f"{what} (screenshot: {shot})") from exc


def screenshot(driver: webdriver.Chrome, name: str) -> Path:
    """Save a screenshot of the whole page (the window grows to the page's height)."""
    OUTPUT.mkdir(exist_ok=True)
    driver.set_window_size(1360, 1000)
    height, chrome = driver.execute_script(
        "return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight]"
    )
    driver.set_window_size(1360, max(1000, min(int(height) + int(chrome), 4000)))
    path = OUTPUT / f"playground-{name}.png"
    assert driver.save_screenshot(str(path))
    return path


def test_a_newcomer_asks_the_demo_bank_accepts_a_cited_suggestion_resolves_and_uploads(
    served: Served, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    driver = browser
    driver.get(f"{served.url}/playground")
    key_input = wait_for(driver, lambda: by_testid(driver, "api-key")[0], "the key field shows")
    assert by_testid(driver, "mode-banner")[0].text == "Başlamak için API anahtarını girin"

    # A wrong key is refused, and the problem is shown readably.
    key_input.send_keys("ik_demo_wrong")
    by_testid(driver, "connect")[0].click()
    error = wait_for(
        driver,
        lambda: by_testid(driver, "error")[0].is_displayed() and by_testid(driver, "error")[0],
        "401 shown",
    )
    assert "Invalid API key (401)" in error.text and "unknown or revoked" in error.text

    key_input.clear()
    key_input.send_keys(served.key)
    by_testid(driver, "connect")[0].click()
    banner = wait_for(
        driver,
        lambda: (b := by_testid(driver, "mode-banner")[0]).get_attribute("data-offline") == "true" and b,
        "the offline banner shows",
    )
    assert "Çevrimdışı çıkarımsal mod (LLM yok)" in banner.text
    assert "DBank (demo)" in by_testid(driver, "tenant")[0].text
    assert not by_testid(driver, "error")[0].is_displayed()

    # Ask, and get a suggestion citing the bank's loan FAQ page.
    by_testid(driver, "turn-text")[0].send_keys(QUESTION)
    by_testid(driver, "suggest")[0].click()
    card = wait_for(
        driver,
        lambda: next(
            (
                s
                for s in by_testid(driver, "suggestion")
                if any(c.get_attribute("data-doc-id") == "kredi.html" for c in by_testid(s, "citation"))
            ),
            None,
        ),
        "a suggestion citing kredi.html",
    )
    assert "18 yaşından büyük" in by_testid(card, "suggestion-text")[0].text
    assert by_testid(card, "strategy")[0].text.strip() != ""
    assert by_testid(card, "confidence")[0].text.endswith("%")
    chip = next(c for c in by_testid(card, "citation") if c.get_attribute("data-doc-id") == "kredi.html")
    assert "kredi.html" in chip.text
    assert not by_testid(card, "citation-detail")[0].is_displayed()
    chip.click()
    detail = wait_for(
        driver,
        lambda: next((d for d in by_testid(card, "citation-detail") if d.is_displayed()), None),
        "the citation opens",
    )
    assert "Taşıt kredisi için şartlar nelerdir?" in by_testid(detail, "citation-snippet")[0].text
    assert "kredi.html#" in detail.text
    suggestion_id = card.get_attribute("data-suggestion-id")
    screenshot(driver, "suggest")

    by_testid(card, "accept")[0].click()
    status = wait_for(
        driver,
        lambda: next(
            (
                f
                for s in by_testid(driver, "suggestion")
                if s.get_attribute("data-suggestion-id") == suggestion_id
                for f in by_testid(s, "feedback-status")
            ),
            None,
        ),
        "the accepted confirmation",
    )
    assert status.get_attribute("data-action") == "accepted" and "Kabul edildi" in status.text
    assert f"feedback:{suggestion_id}" in status.text
    # Recorded: a feedback row in the registry, and the accepted reply learned as knowledge.
    with sqlite3.connect(served.data_dir / "registry.sqlite3") as db:
        rows = db.execute("SELECT action FROM feedback WHERE suggestion_id = ?", (suggestion_id,)).fetchall()
    assert rows == [("accepted",)]
    learned = httpx.get(
        f"{served.url}/v1/documents/feedback:{suggestion_id}", headers={"X-API-Key": served.key}
    )
    assert learned.status_code == 200 and learned.json()["source"] == "chat"

    by_testid(driver, "resolve")[0].click()
    decision = wait_for(driver, lambda: by_testid(driver, "decision")[0], "the resolve decision")
    # The demo bank's nine documents cannot certify the default 98% precision target, so the tenant is
    # suggest-only: resolve hands the question to a human and the summary says why.
    assert decision.get_attribute("data-decision") == "handoff"
    assert by_testid(driver, "reason")[0].get_attribute("data-reason") == "low_confidence"
    assert "yeterli kanıt yok" in by_testid(driver, "summary")[0].text
    screenshot(driver, "assist")

    # A request for a human is handed off with the reason (code and label) and a summary.
    by_testid(driver, "clear")[0].click()
    next(e for e in by_testid(driver, "example") if "temsilci" in e.text).click()
    by_testid(driver, "resolve")[0].click()
    reason = wait_for(driver, lambda: by_testid(driver, "reason")[0], "the handoff reason")
    assert by_testid(driver, "decision")[0].get_attribute("data-decision") == "handoff"
    assert reason.get_attribute("data-reason") == "customer_requested_human"
    assert "Müşteri temsilci istedi" in reason.text and "customer_requested_human" in reason.text
    assert by_testid(driver, "summary")[0].text.strip()

    # The UI speaks English too, results included.
    by_testid(driver, "lang-en")[0].click()
    assert by_testid(driver, "mode-banner")[0].text.startswith("Offline extractive mode (no LLM)")
    assert by_testid(driver, "suggest")[0].text == "Suggest"
    assert "Customer asked for a human" in by_testid(driver, "reason")[0].text
    screenshot(driver, "handoff-en")
    by_testid(driver, "lang-tr")[0].click()

    # Documents: upload a file and watch its job finish.
    by_testid(driver, "tab-documents")[0].click()
    wait_for(
        driver,
        lambda: any(r.get_attribute("data-doc-id") == "kredi.html" for r in by_testid(driver, "document")),
        "the demo documents are listed",
    )
    note = tmp_path / "kampanya.md"
    note.write_text(
        "# Kampanya\n\nHaziran boyunca ihtiyaç kredisinde ilk taksit 3 ay ertelenebilir.\n", encoding="utf-8"
    )
    by_testid(driver, "files")[0].send_keys(str(note))
    by_testid(driver, "upload")[0].click()
    job = wait_for(
        driver,
        lambda: (j := by_testid(driver, "job")) and j[0].get_attribute("data-status") == "succeeded" and j[0],
        "the upload job succeeds",
    )
    assert by_testid(job, "job-status")[0].get_attribute("textContent") == "tamamlandı"
    file_row = by_testid(job, "job-file")[0]
    assert file_row.get_attribute("data-name") == "kampanya.md"
    assert file_row.get_attribute("data-status") == "indexed"
    assert by_testid(job, "job-progress")[0].get_attribute("aria-valuenow") == "100"
    wait_for(
        driver,
        lambda: any(r.get_attribute("data-doc-id") == "kampanya.md" for r in by_testid(driver, "document")),
        "the uploaded document is listed",
    )
    screenshot(driver, "documents")

    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    # The wrong key's 401 is the only error the browser may report.
    assert all("401" in entry["message"] for entry in errors), errors


GAP_QUESTIONS = (
    "kripto para hesabı açabilir miyim",
    "kripto para hesabı var mı",
    "galatasaray maçı kaç kaç bitti",
)


def test_an_admin_sees_the_knowledge_gaps_and_writes_one_up(
    served: Served, browser: webdriver.Chrome
) -> None:
    headers = {"Authorization": f"Bearer {served.key}"}
    for i, question in enumerate(GAP_QUESTIONS):
        body = {"conversation_id": f"gap-{i}", "messages": [{"role": "customer", "text": question}]}
        handed = httpx.post(f"{served.url}/v1/assist/resolve", json=body, headers=headers, timeout=WAIT_S)
        assert handed.status_code == 200 and handed.json()["decision"] == "handoff", handed.text

    driver = browser
    driver.get(f"{served.url}/playground#key={served.key}")
    wait_for(driver, lambda: "DBank" in by_testid(driver, "tenant")[0].text, "connected")
    by_testid(driver, "tab-gaps")[0].click()
    gap = wait_for(driver, lambda: by_testid(driver, "gap")[0], "the gaps are listed")
    assert "kripto" in by_testid(gap, "gap-label")[0].text
    assert by_testid(gap, "gap-count")[0].get_attribute("textContent") == "2 kez soruldu"
    last = by_testid(driver, "gap")[-1]
    assert "galatasaray" in last.text and "işinizle ilgisiz" in last.get_attribute("textContent")
    screenshot(driver, "gaps")

    by_testid(gap, "gap-answer")[0].send_keys("DBank'ta kripto para hesabı bulunmuyor.")
    by_testid(gap, "gap-save")[0].click()
    wait_for(
        driver,
        lambda: all("kripto" not in by_testid(g, "gap-label")[0].text for g in by_testid(driver, "gap")),
        "the written-up gap leaves the list",
    )
    body = {"conversation_id": "gap-after", "messages": [{"role": "customer", "text": GAP_QUESTIONS[0]}]}
    suggested = httpx.post(
        f"{served.url}/v1/assist/suggest", json=body, headers=headers, timeout=WAIT_S
    ).json()
    assert "kripto para hesabı bulunmuyor" in suggested["suggestions"][0]["text"]
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors


def test_the_api_docs_render_without_internet(served: Served, browser: webdriver.Chrome) -> None:
    """Swagger UI comes from the service itself: the operations show with the network cut off."""
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*cdn*", "*jsdelivr*", "*unpkg*"]})
    browser.get(f"{served.url}/docs")
    ops = wait_for(
        browser,
        lambda: browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-operation-id, .opblock"),
        "the operations render",
    )
    assert len(ops) >= 20
    assert "suggestReplies" in browser.page_source
