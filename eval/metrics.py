"""Retrieval metrics (through ranx), Turkish-aware answer matching and latency percentiles.

ragas answer metrics live in `eval.ragas_metrics`, because importing ragas takes seconds.
"""

from __future__ import annotations

import math
import re
import unicodedata
import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from retrieval.text import fold_turkish, turkish_lower

RETRIEVAL_METRICS: tuple[str, ...] = ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10")

Qrels = Mapping[str, Sequence[str]]
RankedRun = Mapping[str, Sequence[tuple[str, float]]]


def retrieval_metrics(qrels: Qrels, run: RankedRun) -> dict[str, float]:
    """Return the mean of each of RETRIEVAL_METRICS over the queries that have relevant ids.

    Queries whose relevant-id list is empty (unanswerable) are left out; a query missing from
    `run`, or with nothing retrieved, counts as 0. Raises ValueError when no query has a relevant
    id. The first call in a fresh environment pays ranx's numba compilation (about a minute on
    two cores); numba caches the result next to ranx, so later processes start fast.
    """
    per_query = per_query_retrieval_metrics(qrels, run)
    if not per_query:
        raise ValueError("no query has relevant ids, so retrieval metrics are undefined")
    return {
        name: float(np.mean([scores[name] for scores in per_query.values()])) for name in RETRIEVAL_METRICS
    }


def per_query_retrieval_metrics(qrels: Qrels, run: RankedRun) -> dict[str, dict[str, float]]:
    """Return {query id: {metric: value}} for every query with relevant ids (see retrieval_metrics).

    The order of each run list is the ranking: ranx sorts by score, so scores are replaced by
    rank-derived ones and ties in the system's scores cannot reorder what the user saw. A
    document retrieved twice (two chunks of one document) counts once, at its best rank.
    """
    answerable = {qid: list(dict.fromkeys(ids)) for qid, ids in qrels.items() if ids}
    if not answerable:
        return {}
    from ranx import Qrels as RanxQrels
    from ranx import Run as RanxRun
    from ranx import evaluate

    qids = sorted(answerable)
    ranx_qrels = RanxQrels({qid: dict.fromkeys(answerable[qid], 1) for qid in qids})
    ranx_run = RanxRun({qid: _rank_scores(run.get(qid, ())) for qid in qids})
    with warnings.catch_warnings():
        # numba warns about int casts inside ranx while compiling; nothing a reader can act on.
        warnings.simplefilter("ignore")
        evaluate(ranx_qrels, ranx_run, list(RETRIEVAL_METRICS), return_mean=False, save_results_in_run=True)
    # ranx stores each query's score in the run, keyed by query id, so no ordering is assumed here.
    return {qid: {name: float(ranx_run.scores[name][qid]) for name in RETRIEVAL_METRICS} for qid in qids}


def _rank_scores(ranked: Sequence[tuple[str, float]]) -> dict[str, float]:
    scores: dict[str, float] = {}
    n = len(ranked)
    for i, (doc_id, _score) in enumerate(ranked):
        scores.setdefault(doc_id, float(n - i))
    return scores


def first_relevant_rank(relevant_ids: Sequence[str], retrieved_ids: Sequence[str]) -> int | None:
    """Return the 1-based rank of the first retrieved id that is relevant, or None if none is."""
    relevant = set(relevant_ids)
    for rank, doc_id in enumerate(retrieved_ids, start=1):
        if doc_id in relevant:
            return rank
    return None


def recall_at_k(relevant_ids: Sequence[str], retrieved_ids: Sequence[str], k: int) -> float:
    """Return the share of relevant ids found in the top k retrieved ids (ranx's recall@k for one query)."""
    relevant = set(relevant_ids)
    if not relevant:
        raise ValueError("recall is undefined for a query without relevant ids")
    top = set(retrieved_ids[:k])
    return len(relevant & top) / len(relevant)


# --- answers ------------------------------------------------------------------------------------

_APOSTROPHES = "'’‘`´ʼ′"
# A word, an apostrophe, then the letters after it: in Turkish that is a suffix on a proper noun
# ("Denver Broncos'u", "İstanbul'da", "1990'larda").
_APOSTROPHE_SUFFIX = re.compile(rf"(\w)[{_APOSTROPHES}](\w+)")
# "1.000" and "1,5": number separators join the digits, so "1.000" and "1000" match.
_NUMBER_SEPARATOR = re.compile(r"(?<=\d)[.,](?=\d)")


def normalise_answer(text: str) -> str:
    """Return `text` lower-cased the Turkish way, without punctuation, apostrophe suffixes or extra spaces.

    The suffix after an apostrophe is dropped ("Broncos'u" → "broncos") unless it starts with a
    capital in mixed-case text, which marks a name such as "O'Brien" (kept as "obrien").
    """
    text = unicodedata.normalize("NFC", text)
    text = _APOSTROPHE_SUFFIX.sub(_drop_suffix, text)
    text = _NUMBER_SEPARATOR.sub("", text)
    text = turkish_lower(text)
    # Python's lower() leaves a combining dot after some dotted capitals outside the Turkish rule.
    text = text.replace("\u0307", "")
    text = "".join(" " if unicodedata.category(ch)[0] in "PSZC" else ch for ch in text)
    return " ".join(text.split())


def _drop_suffix(match: re.Match[str]) -> str:
    before, suffix = match.group(1), match.group(2)
    word_start = max(match.string.rfind(space, 0, match.start(1)) for space in " \t\n\r") + 1
    word = match.string[word_start : match.end(2)]
    if suffix[0].isupper() and not word.isupper():
        return before + suffix
    return before


def contains_reference(answer: str, reference: str) -> bool:
    """Return True when the normalised reference occurs in the normalised answer, starting at a word.

    The match may run on into a suffix ("istanbul" in "istanbuldaki"), because Turkish attaches
    suffixes without an apostrophe to common nouns, but a number must end where the reference
    does ("308" is not found in "3080"). Diacritics are folded on both sides ("odeme" matches
    "ödeme"): customers and agents write both. An empty reference is never contained.
    """
    ref = fold_turkish(normalise_answer(reference))
    if not ref:
        return False
    pattern = r"(?<!\w)" + re.escape(ref) + (r"(?!\d)" if ref[-1].isdigit() else "")
    return re.search(pattern, fold_turkish(normalise_answer(answer))) is not None


# --- latency ------------------------------------------------------------------------------------


def latency_summary(latencies_ms: Sequence[float]) -> dict[str, float]:
    """Return {p50, p95, p99, mean} of the latencies in milliseconds (linear-interpolated percentiles).

    Raises ValueError for an empty list or a negative or non-finite value: a summary of nothing,
    or of a broken timer, would look like a real number in a report.
    """
    if len(latencies_ms) == 0:
        raise ValueError("no latencies to summarise")
    values = np.asarray(latencies_ms, dtype=float)
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        bad = next(v for v in latencies_ms if not math.isfinite(v) or v < 0)
        raise ValueError(f"latency must be a finite number of milliseconds >= 0, got {bad!r}")
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "mean": float(values.mean())}
