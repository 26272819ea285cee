"""Compare two eval runs metric by metric, and check a run's metrics against quality gates."""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

METRICS_FILE = "metrics.json"

# A metric is lower-is-better when its name contains one of these words; everything else
# (recall, mrr, ndcg, accuracy, faithfulness, ...) is higher-is-better.
_LOWER_IS_BETTER = re.compile(r"latency|_ms\b|_ms_|error|fail|cost|tokens|wrong|false_|noise|brier|_ece\b")

# Changes smaller than this are rounding noise between runs, not a difference.
_SAME = 1e-9

Verdict = Literal["better", "worse", "same", "only in a", "only in b"]


@dataclass(frozen=True)
class MetricDelta:
    """One metric of two runs: both values, the change from a to b, and whether that change is good."""

    name: str
    a: float | None
    b: float | None
    higher_is_better: bool

    @property
    def delta(self) -> float | None:
        if self.a is None or self.b is None:
            return None
        return self.b - self.a

    @property
    def verdict(self) -> Verdict:
        if self.a is None:
            return "only in b"
        if self.b is None:
            return "only in a"
        delta = self.b - self.a
        if math.isnan(delta) or abs(delta) <= _SAME:
            return "same"
        return "better" if (delta > 0) == self.higher_is_better else "worse"


def higher_is_better(metric: str) -> bool:
    """Return False for metrics where less is better (latency, errors, cost), True otherwise."""
    return _LOWER_IS_BETTER.search(metric) is None


def load_metrics(run: Path) -> dict[str, float]:
    """Return the numeric entries of a run's metrics.json, per-tag ones as "<tag>.<metric>" (`run`: the run
    directory or the file)."""
    path = Path(run)
    if path.is_dir():
        path = path / METRICS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {METRICS_FILE} at {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object of metric: value")
    return _numeric(data)


def compare_runs(a: Path, b: Path) -> list[MetricDelta]:
    """Return one MetricDelta per metric found in either run's metrics.json, in a's order then b's new ones."""
    metrics_a, metrics_b = load_metrics(a), load_metrics(b)
    names = list(metrics_a) + [n for n in metrics_b if n not in metrics_a]
    return [MetricDelta(n, metrics_a.get(n), metrics_b.get(n), higher_is_better(n)) for n in names]


def format_comparison(deltas: list[MetricDelta], label_a: str = "a", label_b: str = "b") -> str:
    """Return an aligned text table of the deltas: values, signed change and ▲ better / ▼ worse."""
    header = ["metric", label_a, label_b, "change", ""]
    rows = [header]
    for d in deltas:
        change = "" if d.delta is None else f"{d.delta:+.4f}"
        marker = {"better": "▲ better", "worse": "▼ worse", "same": "= same"}.get(d.verdict, d.verdict)
        rows.append([d.name, _value(d.a), _value(d.b), change, marker])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for i, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:4], widths[1:4], strict=True)]
        lines.append("  ".join(cells + [row[4]]).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths[:4]) + "  " + "-" * widths[4])
    return "\n".join(lines)


def _value(v: float | None) -> str:
    if v is None:
        return "-"
    if float(v).is_integer() and abs(v) >= 1000:
        return f"{v:.0f}"
    return f"{v:.4f}"


# --- gates --------------------------------------------------------------------------------------

_GATE = re.compile(r"^\s*(?P<name>[^<>=\s]+)\s*(?P<op><=|>=|=)\s*(?P<value>\S+)\s*$")


class GateError(ValueError):
    """A gate cannot be checked: it is malformed or names a metric the run does not have."""


@dataclass(frozen=True)
class Gate:
    """A threshold: `metric >= value` (written `metric=value` or `metric>=value`) or `metric <= value`."""

    metric: str
    op: Literal[">=", "<="]
    value: float

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


def parse_gates(at_least: Sequence[str] = (), at_most: Sequence[str] = ()) -> list[str]:
    """Return gate strings from `--fail-under` (at least) and `--fail-over` (at most) options.

    `--fail-over wrong_answer_rate=0.03` is `wrong_answer_rate<=0.03`; either option also takes the
    explicit `<=` / `>=` forms.
    """
    upper = []
    for text in at_most:
        gate = parse_gate(text)
        explicit = re.search(r"(<=|>=)", text) is not None
        upper.append(text if explicit else f"{gate.metric}<={gate.value:g}")
    return [*at_least, *upper]


def parse_gate(text: str) -> Gate:
    """Return the Gate written as `recall@1=0.93`, `recall@1>=0.93` or `latency_ms_p95<=50`."""
    match = _GATE.match(text)
    if not match:
        raise GateError(
            f"cannot read gate {text!r}: write metric=value (at least) or metric<=value (at most)"
        )
    try:
        value = float(match["value"])
    except ValueError:
        raise GateError(f"gate {text!r}: {match['value']!r} is not a number") from None
    op: Literal[">=", "<="] = "<=" if match["op"] == "<=" else ">="
    return Gate(match["name"], op, value)


def check_gates(metrics: dict[str, Any], gates: list[str]) -> list[str]:
    """Return one line per failed gate (empty when all pass).

    Raises GateError, naming the known metrics, for a gate on a metric `metrics` does not have,
    and for a malformed gate: a gate that cannot be checked must not pass silently.
    """
    known = _numeric(metrics)
    parsed = [parse_gate(g) for g in gates]
    unknown = sorted({g.metric for g in parsed if g.metric not in known})
    if unknown:
        raise GateError(
            f"unknown metric{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} in gates; "
            f"known metrics: {', '.join(sorted(known)) or '(none)'}"
        )
    failures = []
    for gate in parsed:
        actual = known[gate.metric]
        if math.isnan(actual):
            failures.append(f"{gate.metric} is nan, gate requires {gate.op} {gate.value:g}")
            continue
        if gate.op == ">=" and actual < gate.value:
            failures.append(
                f"{gate.metric} = {actual:.4f}, gate requires >= {gate.value:g} (short by {gate.value - actual:.4f})"
            )
        elif gate.op == "<=" and actual > gate.value:
            failures.append(
                f"{gate.metric} = {actual:.4f}, gate requires <= {gate.value:g} (over by {actual - gate.value:.4f})"
            )
    return failures


def _numeric(data: dict[str, Any]) -> dict[str, float]:
    # Booleans are numbers to Python but not metrics; nested objects (config, versions) are not compared,
    # except per-tag metrics, which are named "<tag>.<metric>" ("near_miss.wrong_answer_rate").
    found = {
        k: float(v)
        for k, v in data.items()
        if isinstance(v, numbers.Real) and not isinstance(v, bool) and isinstance(k, str)
    }
    per_tag = data.get("per_tag")
    if isinstance(per_tag, dict):
        for tag, metrics in per_tag.items():
            if isinstance(metrics, dict):
                found.update({f"{tag}.{k}": v for k, v in _numeric(metrics).items()})
    return found
