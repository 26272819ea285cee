"""Eval run reports: `report.md` (with PNG plots beside it) and a self-contained `report.html`."""

from __future__ import annotations

import base64
import html
import io
import json
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
from matplotlib.figure import Figure

from eval.metrics import recall_at_k

ReportKind = Literal["retrieval", "answers"]

MAX_K = 10
SNIPPET_CHARS = 160
TEXT_CHARS = 300


class RetrievedDoc(NamedTuple):
    """One retrieved document as the report shows it."""

    doc_id: str
    title: str
    snippet: str
    score: float


@dataclass
class QueryOutcome:
    """What happened to one query in a run: what was retrieved, how fast, and (for answer runs) the answer."""

    query_id: str
    question: str
    relevant_ids: list[str]
    retrieved: list[RetrievedDoc]
    first_relevant_rank: int | None
    latency_ms: float
    answer: str | None = None
    confidence: float | None = None
    correct: bool | None = None
    decision: str | None = None
    reference_answer: str | None = None
    tags: list[str] = field(default_factory=list)
    # Run-specific fields written to per_query.jsonl as they are (the query built, cited sources, ...).
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Runners may pass plain (doc_id, title, snippet, score) tuples.
        self.retrieved = [RetrievedDoc(*r) for r in self.retrieved]

    @property
    def answerable(self) -> bool:
        return bool(self.relevant_ids)


@dataclass(frozen=True)
class Plot:
    name: str
    title: str
    png: bytes


class ReportFiles(NamedTuple):
    markdown: Path
    html: Path


def write_report(
    out_dir: Path,
    metrics: dict[str, Any],
    per_query: Sequence[QueryOutcome],
    kind: ReportKind,
    *,
    worst_n: int = 20,
) -> ReportFiles:
    """Write report.md, its PNG plots and a self-contained report.html into `out_dir`; return the two report paths.

    `metrics` holds the run's numbers (nested dicts are flattened as "a.b"); its "config" and
    "versions" entries, if present, are shown as tables of their own.
    """
    if kind not in ("retrieval", "answers"):
        raise ValueError(f"kind must be 'retrieval' or 'answers', got {kind!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    outcomes = list(per_query)
    plots = [p for p in (_recall_curve(outcomes), _latency_histogram(outcomes)) if p]
    if kind == "answers":
        plots += [p for p in (_confidence_plot(outcomes), _risk_coverage_plot(metrics)) if p]
    for plot in plots:
        (out_dir / f"{plot.name}.png").write_bytes(plot.png)

    sections = _sections(metrics, outcomes, kind, worst_n)
    title = f"Eval report: {kind}"
    if isinstance(metrics.get("config"), dict) and metrics["config"].get("dataset"):
        title += f" on {metrics['config']['dataset']}"
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    md_path.write_text(_markdown(title, sections, plots), encoding="utf-8")
    html_path.write_text(_html(title, sections, plots), encoding="utf-8")
    return ReportFiles(markdown=md_path, html=html_path)


# --- content ------------------------------------------------------------------------------------


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""


def _sections(
    metrics: dict[str, Any], outcomes: list[QueryOutcome], kind: ReportKind, worst_n: int
) -> list[Table]:
    answerable = [o for o in outcomes if o.answerable]
    summary = Table(
        "Metrics",
        ["metric", "value"],
        [[k, _fmt(v)] for k, v in _flatten({k: v for k, v in metrics.items() if k not in _OWN_TABLES})],
        note=f"{len(outcomes)} queries, {len(answerable)} with a relevant document.",
    )
    tables = [summary]
    if isinstance(metrics.get("per_tag"), dict) and metrics["per_tag"]:
        tables.append(_per_tag(metrics["per_tag"]))
    tables.append(_worst_retrieval(answerable, worst_n))
    if kind == "answers":
        tables.append(_confident_mistakes(outcomes, worst_n))
    for key, title in (("config", "Configuration"), ("versions", "Package versions")):
        if isinstance(metrics.get(key), dict) and metrics[key]:
            tables.append(Table(title, ["name", "value"], [[k, _fmt(v)] for k, v in _flatten(metrics[key])]))
    return tables


# Shown in tables or plots of their own, not in the metrics list.
_OWN_TABLES = ("config", "versions", "per_tag", "risk_coverage")
_TAG_COLUMNS = (
    "n_queries",
    "auto_answer_rate",
    "wrong_answer_rate",
    "handoff_rate_unanswerable",
    "suggest_hit@3",
    "answer_contains_reference",
    "hit@1",
    "hit@5",
    "mrr@10",
)


def _per_tag(per_tag: dict[str, dict[str, Any]]) -> Table:
    columns = [c for c in _TAG_COLUMNS if any(c in m for m in per_tag.values())]
    rows = [[tag, *(_fmt(m.get(c)) for c in columns)] for tag, m in per_tag.items()]
    return Table(
        "Per tag", ["tag", *columns], rows, note="Every metric per tag is in metrics.json (per_tag)."
    )


def _worst_retrieval(answerable: list[QueryOutcome], worst_n: int) -> Table:
    # Not found first, then the deepest first hit.
    ranked = sorted(
        answerable,
        key=lambda o: (o.first_relevant_rank is not None, -(o.first_relevant_rank or 0), o.query_id),
    )
    worst = [o for o in ranked if o.first_relevant_rank != 1][:worst_n]
    rows = [
        [
            o.query_id,
            _clip(o.question, TEXT_CHARS),
            ", ".join(o.relevant_ids),
            "not found" if o.first_relevant_rank is None else str(o.first_relevant_rank),
            _top3(o),
        ]
        for o in worst
    ]
    missed = sum(1 for o in answerable if o.first_relevant_rank != 1)
    return Table(
        "Worst retrievals",
        ["query", "question", "relevant", "first relevant rank", "retrieved (top 3)"],
        rows,
        note=f"{missed} of {len(answerable)} answerable queries did not have a relevant document first; "
        f"showing up to {worst_n}, missing ones first.",
    )


def _confident_mistakes(outcomes: list[QueryOutcome], worst_n: int) -> Table:
    wrong = [o for o in outcomes if o.correct is False]
    wrong.sort(key=lambda o: (-(o.confidence if o.confidence is not None else -1.0), o.query_id))
    rows = [
        [
            o.query_id,
            _clip(o.question, TEXT_CHARS),
            o.decision or "",
            _fmt(o.confidence),
            _clip(o.answer or "", TEXT_CHARS),
            _clip(o.reference_answer or ("(unanswerable)" if not o.answerable else ""), TEXT_CHARS),
            _top3(o),
            ", ".join(o.relevant_ids) or "(none: hand off)",
        ]
        for o in wrong[:worst_n]
    ]
    return Table(
        "Wrong answers, most confident first",
        ["query", "question", "decision", "confidence", "answer", "reference", "cited", "relevant"],
        rows,
        note=f"{len(wrong)} wrong of {sum(1 for o in outcomes if o.correct is not None)} judged.",
    )


def _top3(o: QueryOutcome) -> str:
    lines = []
    for i, r in enumerate(o.retrieved[:3], start=1):
        mark = " ✓" if r.doc_id in o.relevant_ids else ""
        title = f" ({r.title})" if r.title else ""
        lines.append(f"{i}. {r.doc_id}{title}{mark} [{r.score:.3f}]: {_clip(r.snippet, SNIPPET_CHARS)}")
    return "\n".join(lines) or "(nothing retrieved)"


def _flatten(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            items += _flatten(v, key + ".")
        else:
            items.append((key, v))
    return items


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, str):
        return v
    if isinstance(v, numbers.Integral):
        return str(int(v))
    if isinstance(v, numbers.Real):
        return f"{float(v):.4f}"
    return json.dumps(v, ensure_ascii=False, default=str)


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- plots --------------------------------------------------------------------------------------


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def _recall_curve(outcomes: list[QueryOutcome]) -> Plot | None:
    answerable = [o for o in outcomes if o.answerable]
    if not answerable:
        return None
    ks = list(range(1, MAX_K + 1))
    ranked_ids = [list(dict.fromkeys(r.doc_id for r in o.retrieved)) for o in answerable]
    recall = [
        sum(recall_at_k(o.relevant_ids, ids, k) for o, ids in zip(answerable, ranked_ids, strict=True))
        / len(answerable)
        for k in ks
    ]
    fig = Figure(figsize=(6, 3.6))
    ax = fig.add_subplot()
    ax.plot(ks, recall, marker="o")
    for k, r in zip(ks, recall, strict=True):
        if k in (1, 5, 10):
            ax.annotate(
                f"{r:.3f}", (k, r), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=8
            )
    ax.set(
        xlabel="k",
        ylabel="recall@k",
        xticks=ks,
        ylim=(0, 1.05),
        title=f"Recall@k ({len(answerable)} queries)",
    )
    ax.grid(alpha=0.3)
    return Plot("recall_at_k", "Recall@k", _png(fig))


def _latency_histogram(outcomes: list[QueryOutcome]) -> Plot | None:
    latencies = sorted(o.latency_ms for o in outcomes if math.isfinite(o.latency_ms))
    if not latencies:
        return None
    fig = Figure(figsize=(6, 3.6))
    ax = fig.add_subplot()
    ax.hist(latencies, bins=min(40, max(5, len(latencies) // 10)), color="#4c72b0")
    for q, style in ((50, "-"), (95, "--")):
        value = float(np.percentile(latencies, q))
        ax.axvline(value, color="#c44e52", linestyle=style, label=f"p{q} = {value:.1f} ms")
    ax.set(xlabel="latency (ms)", ylabel="queries", title=f"Latency ({len(latencies)} queries)")
    ax.legend()
    return Plot("latency", "Latency", _png(fig))


def _risk_coverage_plot(metrics: dict[str, Any]) -> Plot | None:
    curve = metrics.get("risk_coverage")
    if not isinstance(curve, dict) or not curve.get("coverage"):
        return None
    fig = Figure(figsize=(6, 3.6))
    ax = fig.add_subplot()
    ax.plot(curve["coverage"], curve["precision"], marker=".", label="automatic answers")
    for target, style in ((0.95, ":"), (0.98, "--"), (0.99, "-.")):
        ax.axhline(target, color="grey", linestyle=style, linewidth=0.8, label=f"precision {target}")
    ax.set(xlabel="coverage (automatic answers / answerable queries)", ylabel="precision", ylim=(0, 1.02))
    ax.set_title("Risk–coverage: precision at each confidence threshold")
    ax.legend(loc="lower left", fontsize=7)
    ax.grid(alpha=0.3)
    return Plot("risk_coverage", "Risk–coverage", _png(fig))


def _confidence_plot(outcomes: list[QueryOutcome]) -> Plot | None:
    judged = [o for o in outcomes if o.confidence is not None and o.correct is not None]
    if not judged:
        return None
    bins: dict[int, list[bool]] = {}
    for o in judged:
        # Ten bins of width 0.1; a confidence of exactly 1.0 belongs to the last one.
        b = min(max(int((o.confidence or 0.0) * 10), 0), 9)
        bins.setdefault(b, []).append(bool(o.correct))
    centers = [b / 10 + 0.05 for b in sorted(bins)]
    accuracy = [sum(bins[b]) / len(bins[b]) for b in sorted(bins)]
    counts = [len(bins[b]) for b in sorted(bins)]
    fig = Figure(figsize=(6, 3.6))
    ax = fig.add_subplot()
    ax.bar(centers, accuracy, width=0.09, color="#55a868", label="share correct")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="calibrated")
    for x, y, n in zip(centers, accuracy, counts, strict=True):
        ax.annotate(f"n={n}", (x, y), textcoords="offset points", xytext=(0, 3), ha="center", fontsize=7)
    ax.set(xlabel="confidence", ylabel="share correct", xlim=(0, 1), ylim=(0, 1.1))
    ax.set_title(f"Confidence vs correctness ({len(judged)} answers)")
    ax.legend(loc="upper left")
    return Plot("confidence", "Confidence vs correctness", _png(fig))


# --- rendering ----------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
    return text.replace("\n", "<br>")


def _markdown(title: str, tables: list[Table], plots: list[Plot]) -> str:
    out = [f"# {_md_cell(title)}", ""]
    for plot in plots:
        out += [f"![{plot.title}]({plot.name}.png)", ""]
    for t in tables:
        out += [f"## {t.title}", ""]
        if t.note:
            out += [_md_cell(t.note), ""]
        if not t.rows:
            out += ["(none)", ""]
            continue
        out.append("| " + " | ".join(_md_cell(h) for h in t.header) + " |")
        out.append("|" + "|".join("---" for _ in t.header) + "|")
        out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in t.rows]
        out.append("")
    return "\n".join(out)


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.85rem; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.5rem; vertical-align: top; text-align: left; }
th { background: #f3f3f3; }
td { white-space: pre-wrap; max-width: 40rem; }
.plots img { max-width: 32rem; margin: 0 1rem 1rem 0; }
.note { color: #555; }
"""


def _html(title: str, tables: list[Table], plots: list[Plot]) -> str:
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        '<div class="plots">',
    ]
    for plot in plots:
        data = base64.b64encode(plot.png).decode("ascii")
        out.append(f'<img alt="{e(plot.title)}" src="data:image/png;base64,{data}">')
    out.append("</div>")
    for t in tables:
        out.append(f"<h2>{e(t.title)}</h2>")
        if t.note:
            out.append(f'<p class="note">{e(t.note)}</p>')
        if not t.rows:
            out.append("<p>(none)</p>")
            continue
        out.append(
            "<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in t.header) + "</tr></thead><tbody>"
        )
        out += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in t.rows]
        out.append("</tbody></table>")
    out.append("</body></html>")
    return "\n".join(out)
