"""ragas metrics: offline scores on real dataset text, and the Claude judge driven through a mock Anthropic API."""

from __future__ import annotations

import json
import socket
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import numpy as np
import pytest

from eval.datasets import load_dataset
from eval.ragas_metrics import (
    AnswerSample,
    CallableEmbeddings,
    ClaudeJudge,
    ragas_llm_scores,
    ragas_nonllm_scores,
    rouge_l_f1,
)

# The dev split ships with the tests (tests/data/README.md).
DEV_SPLIT = Path(__file__).resolve().parent / "data" / "xquad-tr-dev"

RELEVANT = (
    "Panthers savunması ligdeki derecesi altıncı sırada olarak sadece 308 sayı bıraktı. "
    "Kawann Short takımı 11 sack ile sürükledi."
)
UNRELATED = "Super Bowl 50, Santa Clara'daki Levi's Stadyumu'nda oynandı."
QUESTION = "Panthers savunması kaç sayı bıraktı?"


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any test here that tries to open a real connection (model download, telemetry, API)."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _prompt_input(prompt: str) -> dict[str, Any]:
    # ragas prompts end with "input: {json}\nOutput: ".
    return json.loads(prompt.rsplit("input: ", 1)[1].rsplit("Output:", 1)[0])


def _sentences(text: str) -> list[str]:
    return [s.strip().rstrip(".") + "." for s in text.split(". ") if s.strip()]


def _in(sentence: str, context: str) -> int:
    return int(sentence.rstrip(".") in context)


class FakeClaude:
    """Answers the Messages API like a careful judge would, from the input embedded in each ragas prompt."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        assert request.url.path == "/v1/messages"
        body = json.loads(request.content)
        self.requests.append(body)
        schema = body["output_config"]["format"]["schema"]
        data = _prompt_input(body["messages"][0]["content"])
        answer = getattr(self, "answer_" + schema["title"])(data)
        return httpx2.Response(
            200,
            json={
                "id": f"msg_{len(self.requests)}",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": [{"type": "text", "text": json.dumps(answer, ensure_ascii=False)}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 100, "output_tokens": 20},
            },
        )

    def answer_StatementGeneratorOutput(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"statements": _sentences(data["answer"])}

    def answer_NLIStatementOutput(self, data: dict[str, Any]) -> dict[str, Any]:
        return {
            "statements": [
                {"statement": s, "reason": "bağlamda geçiyor mu", "verdict": _in(s, data["context"])}
                for s in data["statements"]
            ]
        }

    def answer_AnswerRelevanceOutput(self, data: dict[str, Any]) -> dict[str, Any]:
        if "308" in data["response"]:
            return {"question": QUESTION, "noncommittal": 0}
        return {"question": "Kim sack lideriydi?", "noncommittal": 0}

    def answer_ContextPrecisionOutput(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"reason": "bağlam yanıtı içeriyor mu", "verdict": _in(data["answer"], data["context"])}

    def answer_ContextRecallOutput(self, data: dict[str, Any]) -> dict[str, Any]:
        return {
            "classifications": [
                {"statement": s, "reason": "bağlamda", "attributed": _in(s, data["context"])}
                for s in _sentences(data["answer"])
            ]
        }


def bag_of_words(texts: list[str]) -> np.ndarray:
    """A deterministic stand-in for the sentence encoder: hashed word counts."""
    vectors = np.zeros((len(texts), 64))
    for i, text in enumerate(texts):
        for word in text.lower().split():
            vectors[i, sum(word.encode()) % 64] += 1.0
    return vectors


def _judge(handler: Any, *, async_client: bool = False) -> ClaudeJudge:
    if async_client:
        client: anthropic.Anthropic | anthropic.AsyncAnthropic = anthropic.AsyncAnthropic(
            api_key="test-key",
            max_retries=0,
            http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)),
        )
    else:
        client = anthropic.Anthropic(
            api_key="test-key",
            max_retries=0,
            http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
        )
    return ClaudeJudge(client, model="claude-haiku-4-5")


SAMPLES = [
    # Right answer plus one claim the context does not support; the useful context ranks first.
    AnswerSample(
        question=QUESTION,
        answer="Panthers savunması ligdeki derecesi altıncı sırada olarak sadece 308 sayı bıraktı. Panthers ligin en iyi hücum takımıdır.",
        reference="Panthers savunması ligdeki derecesi altıncı sırada olarak sadece 308 sayı bıraktı.",
        retrieved_contexts=[RELEVANT, UNRELATED],
        query_id="q-partly-faithful",
    ),
    # Fully supported answer, but the useful context ranks second.
    AnswerSample(
        question=QUESTION,
        answer="Kawann Short takımı 11 sack ile sürükledi.",
        reference="Kawann Short takımı 11 sack ile sürükledi.",
        retrieved_contexts=[UNRELATED, RELEVANT],
        query_id="q-faithful-ranked-second",
    ),
    # Handed off: no answer, so only the context metrics see it, and nothing useful was retrieved.
    AnswerSample(
        question=QUESTION,
        answer="",
        reference="Panthers savunması ligdeki derecesi altıncı sırada olarak sadece 308 sayı bıraktı.",
        retrieved_contexts=[UNRELATED],
        query_id="q-handed-off",
    ),
]


@pytest.mark.parametrize("async_client", [False, True], ids=["sync-client", "async-client"])
def test_claude_judge_scores_match_what_the_judge_said(async_client: bool) -> None:
    fake = FakeClaude()
    scores = ragas_llm_scores(
        SAMPLES, _judge(fake, async_client=async_client), CallableEmbeddings(bag_of_words)
    )

    assert scores["faithfulness"] == pytest.approx((0.5 + 1.0) / 2)
    # Average precision: useful context first = 1, second = 0.5, none = 0.
    assert scores["context_precision_with_reference"] == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    assert scores["context_recall"] == pytest.approx((1.0 + 1.0 + 0.0) / 3)
    # The first answer regenerates the question exactly (cosine 1); the second shares no word with it (0).
    assert scores["answer_relevancy"] == pytest.approx(0.5)
    assert scores["ragas_llm_errors"] == 0
    for name in ("faithfulness", "context_precision_with_reference", "context_recall", "answer_relevancy"):
        assert 0.0 <= scores[name] <= 1.0

    calls = Counter(r["output_config"]["format"]["schema"]["title"] for r in fake.requests)
    assert calls == {
        "StatementGeneratorOutput": 2,  # the handed-off sample is not judged for faithfulness
        "NLIStatementOutput": 2,
        "AnswerRelevanceOutput": 6,  # three generated questions per answer
        "ContextPrecisionOutput": 5,  # one call per retrieved context
        "ContextRecallOutput": 3,
    }
    assert {r["model"] for r in fake.requests} == {"claude-haiku-4-5"}
    assert all(r["output_config"]["format"]["type"] == "json_schema" for r in fake.requests)


def test_answer_relevancy_is_left_out_without_embeddings() -> None:
    scores = ragas_llm_scores(SAMPLES[:1], _judge(FakeClaude()))
    assert "answer_relevancy" not in scores
    assert scores["faithfulness"] == pytest.approx(0.5)


def test_a_rejected_api_key_stops_the_run_at_the_first_call() -> None:
    calls: list[int] = []

    def unauthorised(request: httpx2.Request) -> httpx2.Response:
        calls.append(1)
        return httpx2.Response(
            401,
            json={"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}},
        )

    with pytest.raises(anthropic.AuthenticationError):
        ragas_llm_scores(SAMPLES, _judge(unauthorised), concurrency=1)
    assert len(calls) == 1


def test_a_malformed_judge_answer_is_counted_and_the_rest_still_scored() -> None:
    fake = FakeClaude()

    def sometimes_broken(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        title = body["output_config"]["format"]["schema"]["title"]
        prompt_input = _prompt_input(body["messages"][0]["content"])
        if title == "ContextRecallOutput" and prompt_input["answer"].startswith("Kawann"):
            return httpx2.Response(
                200,
                json={
                    "id": "msg_bad",
                    "type": "message",
                    "role": "assistant",
                    "model": body["model"],
                    "content": [{"type": "text", "text": '{"classifications": "not a list"}'}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {"input_tokens": 1, "output_tokens": 1},
                },
            )
        return fake(request)

    scores = ragas_llm_scores(SAMPLES, _judge(sometimes_broken))
    assert scores["ragas_llm_errors"] == 1
    assert scores["context_recall"] == pytest.approx((1.0 + 0.0) / 2)


def test_nonllm_scores_on_known_cases() -> None:
    samples = [
        AnswerSample(
            question=QUESTION,
            answer="308",
            reference="308",
            retrieved_contexts=[RELEVANT, UNRELATED],
            reference_contexts=[RELEVANT],
        ),
        AnswerSample(
            question=QUESTION,
            answer="",  # handed off
            reference="308",
            retrieved_contexts=[],
            reference_contexts=[RELEVANT],
        ),
        AnswerSample(
            question="Bu soru yanıtlanamaz.", answer="", reference="", retrieved_contexts=[UNRELATED]
        ),
    ]
    scores = ragas_nonllm_scores(samples)
    assert scores == {
        "non_llm_string_similarity": pytest.approx(0.5),
        "rouge_l_f1": pytest.approx(0.5),
        "non_llm_context_recall": pytest.approx(0.5),
        "non_llm_context_precision_with_reference": pytest.approx(0.5),
    }


def test_rouge_l_reads_turkish_letters_and_suffixes() -> None:
    assert rouge_l_f1("Denver Broncos'u.", "Denver Broncos") == pytest.approx(1.0)
    # Two of three answer words match both reference words: P = 2/3, R = 1.
    assert rouge_l_f1("Cevap: Denver Broncos'u.", "Denver Broncos") == pytest.approx(0.8)
    # rouge_score's own tokenizer would drop ı, ş, ğ and score these two as equal.
    assert rouge_l_f1("ışık", "ılık") == 0.0
    assert rouge_l_f1("İSTANBUL ŞEHRİ", "istanbul şehri") == pytest.approx(1.0)


@pytest.mark.slow
def test_nonllm_scores_on_the_whole_dev_split_run_offline_in_seconds() -> None:
    dataset = load_dataset(DEV_SPLIT)
    texts = {d.id: d.text for d in dataset.corpus}
    others = [d.text for d in dataset.corpus]
    samples = [
        AnswerSample(
            question=q.question,
            answer=f"Yanıt: {q.reference_answer}",
            reference=q.reference_answer or "",
            retrieved_contexts=[texts[q.relevant_ids[0]], *others[i % 100 : i % 100 + 4]],
            reference_contexts=[texts[r] for r in q.relevant_ids],
            query_id=q.id,
        )
        for i, q in enumerate(dataset.queries)
    ]
    started = time.perf_counter()
    scores = ragas_nonllm_scores(samples)
    elapsed = time.perf_counter() - started
    assert scores["non_llm_context_recall"] == pytest.approx(1.0)
    assert 0.5 < scores["rouge_l_f1"] < 1.0
    assert elapsed < 60, f"offline ragas metrics took {elapsed:.1f}s on {len(samples)} samples"
