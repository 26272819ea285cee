"""Eval reports: files written, plots embedded, worst queries listed first, and hostile text escaped."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from eval.report import QueryOutcome, RetrievedDoc, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EVIL = "<script>alert('x')</script> | kaç?"


def _outcomes() -> list[QueryOutcome]:
    return [
        QueryOutcome(
            query_id="q-hit",
            question="Panthers savunması kaç sayı bıraktı?",
            relevant_ids=["sb-0"],
            retrieved=[("sb-0", "Super Bowl 50", "Panthers savunması 308 sayı bıraktı.", 0.91)],
            first_relevant_rank=1,
            latency_ms=12.0,
            answer="308",
            confidence=0.9,
            correct=True,
            decision="resolve",
            reference_answer="308",
        ),
        QueryOutcome(
            query_id="q-third",
            question="Kawann Short kaç sack yaptı?",
            relevant_ids=["sb-0"],
            retrieved=[
                RetrievedDoc("sb-1", "Super Bowl 50", "Broncos & Panthers", 0.8),
                RetrievedDoc("nt-3", "Nikola Tesla", "Tesla 1856'da doğdu.", 0.7),
                RetrievedDoc("sb-0", "Super Bowl 50", "Kawann Short 11 sack.", 0.6),
            ],
            first_relevant_rank=3,
            latency_ms=30.0,
            answer="11",
            confidence=0.4,
            correct=True,
            decision="suggest",
            reference_answer="11",
        ),
        QueryOutcome(
            query_id="q-evil",
            question=EVIL,
            relevant_ids=["sb-0"],
            retrieved=[RetrievedDoc("nt-3", "<b>Tesla</b>", "<img src=x onerror=alert(1)>", 0.5)],
            first_relevant_rank=None,
            latency_ms=55.0,
            answer="Tesla 1856'da doğdu.",
            confidence=0.95,
            correct=False,
            decision="resolve",
            reference_answer="308",
        ),
        QueryOutcome(
            query_id="q-unanswerable",
            question="Hisse fiyatı nedir?",
            relevant_ids=[],
            retrieved=[],
            first_relevant_rank=None,
            latency_ms=8.0,
            answer="",
            confidence=0.1,
            correct=True,
            decision="handoff",
        ),
    ]


METRICS = {
    "recall@1": 1 / 3,
    "mrr@10": 0.4444,
    "latency_ms": {"p50": 21.0, "p95": 51.25},
    "queries": 4,
    "config": {"dataset": "xquad-tr-dev", "fusion": "score", "dense_weight": 0.3},
    "versions": {"ranx": "0.3.21", "ragas": "0.4.3"},
}


def _images(page: str) -> list[bytes]:
    return [
        base64.b64decode(m)
        for m in re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([^"]+)">', page)
    ]


def test_retrieval_report_files_and_embedded_plots(tmp_path: Path) -> None:
    files = write_report(tmp_path / "run", METRICS, _outcomes(), "retrieval")
    assert files.markdown == tmp_path / "run" / "report.md" and files.markdown.is_file()
    page = files.html.read_text(encoding="utf-8")

    images = _images(page)
    assert len(images) == 2  # recall@k curve and latency histogram
    assert all(img.startswith(PNG_MAGIC) for img in images)
    assert 'src="recall_at_k.png"' not in page  # the HTML needs no file beside it

    markdown = files.markdown.read_text(encoding="utf-8")
    assert "![Recall@k](recall_at_k.png)" in markdown and "![Latency](latency.png)" in markdown
    assert (tmp_path / "run" / "recall_at_k.png").read_bytes().startswith(PNG_MAGIC)


def test_hostile_text_is_escaped(tmp_path: Path) -> None:
    files = write_report(tmp_path, METRICS, _outcomes(), "answers")
    page = files.html.read_text(encoding="utf-8")
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<b>Tesla</b>" not in page
    assert "Broncos &amp; Panthers" in page

    markdown = files.markdown.read_text(encoding="utf-8")
    assert "<script>" not in markdown
    # A pipe inside a cell would split the Markdown table row.
    assert "\\| kaç?" in markdown


def test_worst_queries_come_first_with_what_was_retrieved(tmp_path: Path) -> None:
    page = write_report(tmp_path, METRICS, _outcomes(), "retrieval").html.read_text(encoding="utf-8")
    worst = page.split("<h2>Worst retrievals</h2>", 1)[1].split("</table>", 1)[0]
    assert worst.index("q-evil") < worst.index("q-third")
    assert "not found" in worst
    assert "q-hit" not in worst  # found first: nothing to fix
    assert "q-unanswerable" not in worst  # nothing to retrieve
    assert "1. sb-1 (Super Bowl 50) [0.800]: Broncos &amp; Panthers" in worst
    assert "3. sb-0 (Super Bowl 50) ✓ [0.600]: Kawann Short 11 sack." in worst
    assert "2 of 3 answerable queries did not have a relevant document first" in page


def test_answer_report_adds_confidence_plot_and_confident_mistakes(tmp_path: Path) -> None:
    page = write_report(tmp_path, METRICS, _outcomes(), "answers").html.read_text(encoding="utf-8")
    assert len(_images(page)) == 3
    mistakes = page.split("<h2>Wrong answers, most confident first</h2>", 1)[1].split("</table>", 1)[0]
    assert "q-evil" in mistakes and "0.9500" in mistakes
    assert "q-hit" not in mistakes
    assert (tmp_path / "confidence.png").is_file()


def test_metrics_config_and_versions_are_shown(tmp_path: Path) -> None:
    page = write_report(tmp_path, METRICS, _outcomes(), "retrieval").html.read_text(encoding="utf-8")
    assert "<title>Eval report: retrieval on xquad-tr-dev</title>" in page
    assert "<td>recall@1</td><td>0.3333</td>" in page
    assert "<td>latency_ms.p95</td><td>51.2500</td>" in page
    assert "<td>queries</td><td>4</td>" in page
    assert "<h2>Configuration</h2>" in page and "<td>dense_weight</td><td>0.3000</td>" in page
    assert "<h2>Package versions</h2>" in page and "<td>ranx</td><td>0.3.21</td>" in page


def test_a_run_without_answerable_queries_still_reports(tmp_path: Path) -> None:
    only_unanswerable = [o for o in _outcomes() if not o.relevant_ids]
    files = write_report(tmp_path, {}, only_unanswerable, "retrieval")
    page = files.html.read_text(encoding="utf-8")
    assert len(_images(page)) == 1  # latency only: no recall curve without relevant documents
    assert "0 of 0 answerable queries" in page
