"""Eval datasets: the shared dev split loads, and every bad line of a broken dataset is reported by number."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.datasets import (
    ConversationTurn,
    CorpusDoc,
    DatasetError,
    EvalQuery,
    load_dataset,
    write_dataset,
)

# The dev split ships with the tests (tests/data/README.md).
DEV_SPLIT = Path(__file__).resolve().parent / "data" / "xquad-tr-dev"


def _write(path: Path, lines: list[str | dict]) -> None:
    path.write_text(
        "".join(
            (line if isinstance(line, str) else json.dumps(line, ensure_ascii=False)) + "\n" for line in lines
        ),
        encoding="utf-8",
    )


def _problems(dataset_dir: Path) -> list[str]:
    with pytest.raises(DatasetError) as info:
        load_dataset(dataset_dir)
    return info.value.problems


def test_the_shared_dev_split_loads() -> None:
    dataset = load_dataset(DEV_SPLIT)
    assert len(dataset.corpus) == 120
    assert len(dataset.queries) == 632
    assert all(q.answerable and q.reference_answer for q in dataset.queries)
    first = dataset.queries[0]
    assert first.question == "Panthers savunması kaç sayı bırakmıştır?"
    assert first.relevant_ids == ["Super_Bowl_50-0"]
    assert first.reference_answer == "308"
    assert dataset.docs_by_id["Super_Bowl_50-0"].title == "Super Bowl 50"
    assert "308 sayı" in dataset.docs_by_id["Super_Bowl_50-0"].text


def test_write_then_load_keeps_every_field(tmp_path: Path) -> None:
    corpus = [
        CorpusDoc(
            id="iade-1",
            title="İade politikası",
            text="İade 14 gün içinde yapılır.",
            metadata={"kanal": "web"},
        ),
        CorpusDoc(id="kargo-1", text="Kargo 2 iş gününde çıkar."),
    ]
    queries = [
        EvalQuery(
            id="q1",
            question="Ürünü kaç gün içinde iade edebilirim?",
            relevant_ids=["iade-1"],
            reference_answer="14 gün",
            history=[
                ConversationTurn(role="customer", text="Merhaba"),
                ConversationTurn(role="agent", text="Buyrun"),
            ],
        ),
        EvalQuery(id="q2", question="Şirketin hisse fiyatı nedir?", relevant_ids=[]),
    ]
    write_dataset(tmp_path / "ds", corpus, queries)
    loaded = load_dataset(tmp_path / "ds")
    assert loaded.corpus == corpus
    assert loaded.queries == queries
    assert [q.answerable for q in loaded.queries] == [True, False]
    assert [q.id for q in loaded.answerable_queries] == ["q1"]
    # Turkish text is written as is, not as \\u escapes.
    assert "İade politikası" in (tmp_path / "ds" / "corpus.jsonl").read_text(encoding="utf-8")


def test_every_bad_line_is_reported_with_its_line_number(tmp_path: Path) -> None:
    _write(
        tmp_path / "corpus.jsonl",
        [
            {"id": "d1", "text": "Bir."},
            {"id": "d2", "text": "İki."},
            {"id": "d1", "text": "Yine bir."},  # 3: duplicate
            {"id": "d4", "text": "   "},  # 4: empty text
            {"id": "d5", "text": "Beş.", "metadata": "web"},  # 5: metadata not an object
        ],
    )
    _write(
        tmp_path / "queries.jsonl",
        [
            {"id": "q1", "question": "Bir?", "relevant_ids": ["d1"]},
            '{"id": "q2", "question": "İki?", ',  # 2: bad JSON
            {"id": "q3", "relevant_ids": ["d1"]},  # 3: missing question
            {"id": "q4", "question": "Dört?", "relevant_ids": "d1"},  # 4: not a list
            {"id": "q1", "question": "Yine?", "relevant_ids": []},  # 5: duplicate id
            {"id": "q6", "question": "Altı?", "relevant_ids": ["d1", "yok"]},  # 6: unknown doc
            "",  # 7: blank lines are fine
            {
                "id": "q8",
                "question": "Sekiz?",
                "relevant_ids": ["d2"],
                "history": [{"role": "customer"}],
            },  # 8
            {"id": "q9", "question": "Dokuz?"},  # 9: missing relevant_ids
            {"id": "q10", "question": "On?", "relevant_id": ["d1"], "relevant_ids": ["d1"]},  # 10: typo field
            [1, 2],  # 11: not an object
            {"id": 12, "question": "On iki?", "relevant_ids": []},  # 12: id not a string
            {"id": "q13", "question": "On üç?", "relevant_ids": ["d4"]},  # d4 exists (its own line is bad)
        ],
    )
    problems = _problems(tmp_path)
    where = sorted({p.split(": ", 1)[0] for p in problems})
    assert where == sorted(
        ["corpus.jsonl:3", "corpus.jsonl:4", "corpus.jsonl:5"]
        + [f"queries.jsonl:{n}" for n in (2, 3, 4, 5, 6, 8, 9, 10, 11, 12)]
    )
    text = "\n".join(problems)
    assert "corpus.jsonl:3: duplicate id 'd1' (first on line 1)" in text
    assert "queries.jsonl:2: invalid JSON" in text
    assert "queries.jsonl:3: missing 'question'" in text
    assert "queries.jsonl:4: 'relevant_ids' must be a list of strings, got a string" in text
    assert "queries.jsonl:5: duplicate id 'q1' (first on line 1)" in text
    assert "queries.jsonl:6: relevant id 'yok' names nothing in corpus.jsonl" in text
    assert "queries.jsonl:8: history[0].text must be a non-empty string" in text
    assert "queries.jsonl:9: missing 'relevant_ids'" in text
    assert "queries.jsonl:10: unknown field(s) relevant_id" in text
    assert "queries.jsonl:11: expected a JSON object, got a list" in text
    assert "queries.jsonl:12: 'id' must be a string, got a number" in text


def test_the_error_message_lists_the_problems_and_caps_long_lists(tmp_path: Path) -> None:
    _write(tmp_path / "corpus.jsonl", [{"id": "d1", "text": "Bir."}])
    _write(
        tmp_path / "queries.jsonl",
        [{"id": f"q{i}", "question": "Soru?", "relevant_ids": ["eksik"]} for i in range(120)],
    )
    with pytest.raises(DatasetError) as info:
        load_dataset(tmp_path)
    message = str(info.value)
    assert len(info.value.problems) == 120
    assert "(120 problems)" in message
    assert "queries.jsonl:1: relevant id 'eksik'" in message
    assert "queries.jsonl:50: " in message
    assert "queries.jsonl:51: " not in message
    assert "... and 70 more" in message


def test_missing_files_are_both_reported(tmp_path: Path) -> None:
    problems = _problems(tmp_path / "does-not-exist")
    assert [p.split(":")[0] for p in problems] == ["corpus.jsonl", "queries.jsonl"]
    assert all("file not found" in p for p in problems)


def test_empty_files_are_an_error(tmp_path: Path) -> None:
    (tmp_path / "corpus.jsonl").write_text("", encoding="utf-8")
    (tmp_path / "queries.jsonl").write_text("\n", encoding="utf-8")
    assert _problems(tmp_path) == ["corpus.jsonl: has no documents", "queries.jsonl: has no queries"]


def test_invalid_utf8_and_a_byte_order_mark(tmp_path: Path) -> None:
    (tmp_path / "corpus.jsonl").write_bytes(
        "\ufeff".encode() + b'{"id": "d1", "text": "Bir."}\n{"id": "d2", "text": "\xff"}\n'
    )
    _write(tmp_path / "queries.jsonl", [{"id": "q1", "question": "Bir?", "relevant_ids": ["d1"]}])
    problems = _problems(tmp_path)
    assert len(problems) == 1
    assert problems[0].startswith("corpus.jsonl:2: not valid UTF-8")
