"""Evaluation datasets on disk: a `corpus.jsonl` of documents and a `queries.jsonl` of questions with gold ids.

Format (one JSON object a line, UTF-8):

- corpus.jsonl: {"id", "text", "title"?, "metadata"?}
- queries.jsonl: {"id", "question", "relevant_ids", "reference_answer"?, "history"?, "tags"?}
  where `relevant_ids` lists corpus ids that answer the question; an empty list marks the
  question as unanswerable from the corpus (the assistant must hand it off), `history` is
  the conversation before the question as [{"role", "text"}, ...], and `tags` are words every
  metric is also reported by ("informal", "near_miss", ...).

A tenant bundle (knowledge/ folder instead of corpus.jsonl) is read by `eval.bundle`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

CORPUS_FILE = "corpus.jsonl"
QUERIES_FILE = "queries.jsonl"

# Past this many problems the message only counts the rest: nobody reads 600 identical lines.
MAX_LISTED_PROBLEMS = 50

_CORPUS_FIELDS = {"id", "text", "title", "metadata"}
_QUERY_FIELDS = {"id", "question", "relevant_ids", "reference_answer", "history", "tags"}
_TURN_FIELDS = {"role", "text"}


@dataclass(frozen=True)
class CorpusDoc:
    """One document of the evaluation corpus."""

    id: str
    text: str
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ConversationTurn:
    """One earlier message of the conversation a question comes from."""

    role: str
    text: str


@dataclass(frozen=True)
class EvalQuery:
    """A question with the ids of the corpus documents that answer it."""

    id: str
    question: str
    relevant_ids: list[str]
    reference_answer: str | None = None
    history: list[ConversationTurn] = field(default_factory=list)
    tags: tuple[str, ...] = ()

    @property
    def answerable(self) -> bool:
        """False when no corpus document answers the question, so the right outcome is a handoff."""
        return bool(self.relevant_ids)


@dataclass
class EvalDataset:
    """A corpus and the questions asked against it."""

    corpus: list[CorpusDoc]
    queries: list[EvalQuery]

    @cached_property
    def docs_by_id(self) -> dict[str, CorpusDoc]:
        """Return the corpus keyed by document id."""
        return {d.id: d for d in self.corpus}

    @property
    def answerable_queries(self) -> list[EvalQuery]:
        """Return the queries some corpus document answers (the ones retrieval metrics count)."""
        return [q for q in self.queries if q.answerable]


class DatasetError(ValueError):
    """The dataset cannot be used; `problems` holds every `file:line: problem` found."""

    def __init__(self, dataset_dir: Path, problems: list[str]) -> None:
        self.dataset_dir = dataset_dir
        self.problems = problems
        listed = problems[:MAX_LISTED_PROBLEMS]
        lines = [
            f"Dataset {dataset_dir} is invalid ({len(problems)} problem{'s' if len(problems) != 1 else ''}):"
        ]
        lines += [f"  {p}" for p in listed]
        if len(problems) > len(listed):
            lines.append(f"  ... and {len(problems) - len(listed)} more")
        super().__init__("\n".join(lines))


def load_dataset(dataset_dir: Path) -> EvalDataset:
    """Return the dataset in `dataset_dir`, or raise DatasetError listing every bad line of both files."""
    dataset_dir = Path(dataset_dir)
    problems: list[str] = []
    corpus_rows = _read_jsonl(dataset_dir / CORPUS_FILE, problems)
    if corpus_rows is None and (dataset_dir / "knowledge").is_dir():
        problems.append(f"{dataset_dir} is a tenant bundle (knowledge/ folder): load it with eval.bundle")
    query_rows = _read_jsonl(dataset_dir / QUERIES_FILE, problems)

    corpus: list[CorpusDoc] = []
    first_line_of_doc: dict[str, int] = {}
    for line_no, row in corpus_rows or []:
        where = f"{CORPUS_FILE}:{line_no}"
        doc = _parse_doc(row, where, problems)
        if doc is None:
            continue
        if doc.id in first_line_of_doc:
            problems.append(f"{where}: duplicate id {doc.id!r} (first on line {first_line_of_doc[doc.id]})")
            continue
        first_line_of_doc[doc.id] = line_no
        corpus.append(doc)

    # Only check references when the corpus itself was readable; otherwise every query would be
    # reported for a problem that is really the corpus file's.
    known = set(first_line_of_doc) if corpus_rows is not None else None
    queries = parse_queries(query_rows, known, CORPUS_FILE, problems)

    if corpus_rows is not None and not corpus_rows:
        problems.append(f"{CORPUS_FILE}: has no documents")
    if problems:
        raise DatasetError(dataset_dir, sorted(problems, key=_file_and_line))
    return EvalDataset(corpus=corpus, queries=queries)


def read_queries(path: Path, problems: list[str]) -> list[tuple[int, dict[str, Any]]] | None:
    """Return the (line number, object) rows of a queries.jsonl; problems are appended to `problems`."""
    return _read_jsonl(path, problems)


def parse_queries(
    query_rows: list[tuple[int, dict[str, Any]]] | None,
    known_ids: set[str] | None,
    known_where: str,
    problems: list[str],
) -> list[EvalQuery]:
    """Return the valid queries of `query_rows`; each bad line, duplicate id or unknown relevant id is a problem.

    `known_ids` None skips the relevant-id check; `known_where` names where ids come from in messages.
    """
    queries: list[EvalQuery] = []
    first_line_of_query: dict[str, int] = {}
    for line_no, row in query_rows or []:
        where = f"{QUERIES_FILE}:{line_no}"
        query = _parse_query(row, where, problems)
        if query is None:
            continue
        if query.id in first_line_of_query:
            problems.append(
                f"{where}: duplicate id {query.id!r} (first on line {first_line_of_query[query.id]})"
            )
            continue
        first_line_of_query[query.id] = line_no
        if known_ids is not None:
            for rid in query.relevant_ids:
                if rid not in known_ids:
                    problems.append(f"{where}: relevant id {rid!r} names nothing in {known_where}")
        queries.append(query)
    if query_rows is not None and not query_rows:
        problems.append(f"{QUERIES_FILE}: has no queries")
    return queries


def _file_and_line(problem: str) -> tuple[int, int]:
    # Report in reading order: the corpus first, then each file top to bottom.
    name, _, rest = problem.partition(":")
    line = rest.split(":", 1)[0]
    return (0 if name == CORPUS_FILE else 1, int(line) if line.isdigit() else 0)


def write_dataset(dataset_dir: Path, corpus: Iterable[CorpusDoc], queries: Iterable[EvalQuery]) -> None:
    """Write `corpus.jsonl` and `queries.jsonl` into `dataset_dir` (created if missing), readable by load_dataset."""
    dataset_dir = Path(dataset_dir)
    dataset_dir.mkdir(parents=True, exist_ok=True)
    _write_jsonl(dataset_dir / CORPUS_FILE, (_doc_row(d) for d in corpus))
    _write_jsonl(dataset_dir / QUERIES_FILE, (_query_row(q) for q in queries))


# --- reading -------------------------------------------------------------------------------------


def _read_jsonl(path: Path, problems: list[str]) -> list[tuple[int, dict[str, Any]]] | None:
    """Return (line number, object) pairs; None when the file is missing (as opposed to empty)."""
    if not path.is_file():
        problems.append(f"{path.name}: file not found ({path})")
        return None
    rows: list[tuple[int, dict[str, Any]]] = []
    for line_no, raw in enumerate(path.read_bytes().splitlines(), start=1):
        where = f"{path.name}:{line_no}"
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(f"{where}: not valid UTF-8 ({exc.reason} at byte {exc.start})")
            continue
        if line_no == 1:
            text = text.removeprefix("\ufeff")
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            problems.append(f"{where}: invalid JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(value, dict):
            problems.append(f"{where}: expected a JSON object, got {_json_type(value)}")
            continue
        rows.append((line_no, value))
    return rows


def _parse_doc(row: dict[str, Any], where: str, problems: list[str]) -> CorpusDoc | None:
    _unknown_fields(row, _CORPUS_FIELDS, where, problems)
    doc_id = _required_str(row, "id", where, problems)
    text = _required_str(row, "text", where, problems)
    title = _optional_str(row, "title", where, problems)
    metadata = row.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        problems.append(f"{where}: 'metadata' must be an object, got {_json_type(metadata)}")
        metadata = None
    # A document with a usable id is returned even when other fields are bad, so that the queries
    # naming it are not reported as well; load_dataset raises before such a document escapes.
    if doc_id is None:
        return None
    return CorpusDoc(id=doc_id, text=text or "", title=title or "", metadata=dict(metadata or {}))


def _parse_query(row: dict[str, Any], where: str, problems: list[str]) -> EvalQuery | None:
    _unknown_fields(row, _QUERY_FIELDS, where, problems)
    query_id = _required_str(row, "id", where, problems)
    question = _required_str(row, "question", where, problems)
    relevant_ids = _relevant_ids(row, where, problems)
    reference = _optional_str(row, "reference_answer", where, problems)
    history = _history(row, where, problems)
    tags = _tags(row, where, problems)
    if query_id is None:
        return None
    return EvalQuery(
        id=query_id,
        question=question or "",
        relevant_ids=relevant_ids or [],
        reference_answer=reference,
        history=history,
        tags=tags,
    )


def _tags(row: dict[str, Any], where: str, problems: list[str]) -> tuple[str, ...]:
    value = row.get("tags")
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(t, str) and t.strip() for t in value):
        problems.append(f"{where}: 'tags' must be a list of non-empty strings, got {value!r}")
        return ()
    if any("." in t for t in value):
        # A tag names per-tag metrics ("near_miss.wrong_answer_rate"); a dot would make them ambiguous.
        problems.append(f"{where}: a tag must not contain '.', got {value!r}")
        return ()
    return tuple(dict.fromkeys(t.strip() for t in value))


def _relevant_ids(row: dict[str, Any], where: str, problems: list[str]) -> list[str] | None:
    if "relevant_ids" not in row:
        # Required even when empty: a forgotten field must not silently turn a question into an unanswerable one.
        problems.append(f"{where}: missing 'relevant_ids' (use [] for a question the corpus cannot answer)")
        return None
    value = row["relevant_ids"]
    if not isinstance(value, list):
        problems.append(f"{where}: 'relevant_ids' must be a list of strings, got {_json_type(value)}")
        return None
    ids: list[str] = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            problems.append(f"{where}: relevant_ids[{i}] must be a non-empty string, got {item!r}")
            return None
        if item in ids:
            problems.append(f"{where}: relevant_ids lists {item!r} twice")
            return None
        ids.append(item)
    return ids


def _history(row: dict[str, Any], where: str, problems: list[str]) -> list[ConversationTurn]:
    value = row.get("history")
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append(
            f"{where}: 'history' must be a list of {{role, text}} objects, got {_json_type(value)}"
        )
        return []
    turns: list[ConversationTurn] = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            problems.append(f"{where}: history[{i}] must be an object, got {_json_type(item)}")
            continue
        extra = sorted(set(item) - _TURN_FIELDS)
        if extra:
            problems.append(f"{where}: history[{i}] has unknown field(s) {', '.join(extra)}")
        role, text = item.get("role"), item.get("text")
        if not isinstance(role, str) or not role.strip():
            problems.append(f"{where}: history[{i}].role must be a non-empty string")
            continue
        if not isinstance(text, str) or not text.strip():
            problems.append(f"{where}: history[{i}].text must be a non-empty string")
            continue
        turns.append(ConversationTurn(role=role, text=text))
    return turns


def _required_str(row: dict[str, Any], name: str, where: str, problems: list[str]) -> str | None:
    if name not in row:
        problems.append(f"{where}: missing {name!r}")
        return None
    value = row[name]
    if not isinstance(value, str):
        problems.append(f"{where}: {name!r} must be a string, got {_json_type(value)}")
        return None
    if not value.strip():
        problems.append(f"{where}: {name!r} is empty")
        return None
    return value


def _optional_str(row: dict[str, Any], name: str, where: str, problems: list[str]) -> str | None:
    value = row.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        problems.append(f"{where}: {name!r} must be a string, got {_json_type(value)}")
        return None
    return value


def _unknown_fields(row: dict[str, Any], known: set[str], where: str, problems: list[str]) -> None:
    # Catches typos such as "relevant_id" that would otherwise be ignored.
    extra = sorted(set(row) - known)
    if extra:
        problems.append(f"{where}: unknown field(s) {', '.join(extra)}; expected {', '.join(sorted(known))}")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


# --- writing -------------------------------------------------------------------------------------


def _doc_row(doc: CorpusDoc) -> dict[str, Any]:
    row: dict[str, Any] = {"id": doc.id}
    if doc.title:
        row["title"] = doc.title
    row["text"] = doc.text
    if doc.metadata:
        row["metadata"] = doc.metadata
    return row


def _query_row(query: EvalQuery) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": query.id,
        "question": query.question,
        "relevant_ids": list(query.relevant_ids),
    }
    if query.reference_answer is not None:
        row["reference_answer"] = query.reference_answer
    if query.history:
        row["history"] = [{"role": t.role, "text": t.text} for t in query.history]
    if query.tags:
        row["tags"] = list(query.tags)
    return row


def _write_jsonl(path: Path, rows: Iterator[dict[str, Any]]) -> None:
    # Write then rename, so a crash never leaves a half-written file that loads as a smaller dataset.
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)
