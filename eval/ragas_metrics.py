"""ragas answer metrics: offline string and context scores, and LLM-judged scores with Claude as the judge.

Importing this module imports ragas (a few seconds). ragas' usage telemetry is switched off here
before ragas loads, unless RAGAS_DO_NOT_TRACK is already set.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.util
import logging
import math
import os
import sys
import types
import warnings
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anthropic
import numpy as np
from pydantic import BaseModel

from eval.metrics import normalise_answer

os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")


def _install_vertexai_stand_in() -> None:
    # ragas 0.4.3 imports ChatVertexAI from langchain_community.chat_models.vertexai, a module no
    # langchain-community 0.4 release has (vibrantlabsai/ragas#2745), so `import ragas` fails.
    # ragas only uses the class in an isinstance() list; an empty stand-in class lets it import.
    # Drop this once ragas imports ChatVertexAI from its new home.
    name = "langchain_community.chat_models.vertexai"
    if name in sys.modules or importlib.util.find_spec(name) is not None:
        return
    stand_in = types.ModuleType(name, "Stand-in installed by eval.ragas_metrics so that ragas 0.4.3 imports.")
    stand_in.ChatVertexAI = type("ChatVertexAI", (), {})  # type: ignore[attr-defined]
    sys.modules[name] = stand_in


_install_vertexai_stand_in()

from ragas.dataset_schema import SingleTurnSample  # noqa: E402
from ragas.embeddings.base import BaseRagasEmbedding  # noqa: E402
from ragas.llms.base import InstructorBaseRagasLLM  # noqa: E402
from ragas.metrics.collections import (  # noqa: E402
    AnswerRelevancy,
    ContextPrecisionWithReference,
    ContextRecall,
    Faithfulness,
    NonLLMStringSimilarity,
)

with warnings.catch_warnings():
    # The non-LLM context metrics have no ragas.metrics.collections version yet; the old import
    # path is the only one and warns that it is deprecated.
    warnings.simplefilter("ignore", DeprecationWarning)
    from ragas.metrics import NonLLMContextPrecisionWithReference, NonLLMContextRecall  # noqa: E402

logger = logging.getLogger(__name__)

ModelT = TypeVar("ModelT", bound=BaseModel)
ResultT = TypeVar("ResultT")

DEFAULT_JUDGE_MODEL = "claude-haiku-4-5"

# Errors that no retry or other sample can fix: stop the whole run at the first one.
_FATAL_JUDGE_ERRORS = (
    anthropic.AuthenticationError,
    anthropic.PermissionDeniedError,
    anthropic.NotFoundError,
)


@dataclass(frozen=True)
class AnswerSample:
    """One answered question as the ragas metrics see it.

    `answer` is empty when the assistant handed the question off; `reference` is the gold answer
    and `reference_contexts` the texts of the gold documents (both empty for unanswerable questions).
    """

    question: str
    answer: str
    reference: str = ""
    retrieved_contexts: list[str] = field(default_factory=list)
    reference_contexts: list[str] = field(default_factory=list)
    query_id: str = ""


# --- offline metrics ----------------------------------------------------------------------------


def ragas_nonllm_scores(samples: Sequence[AnswerSample]) -> dict[str, float]:
    """Return mean offline answer and context scores, each in [0, 1], over the samples each applies to.

    - non_llm_string_similarity: ragas' Levenshtein similarity of answer and reference
      (samples with a reference; a handed-off, empty answer scores 0).
    - rouge_l_f1: ROUGE-L F1 of answer and reference over Turkish-normalised words. ragas'
      RougeScore needs the rouge_score package, whose tokenizer drops every non-ASCII letter
      (ç, ğ, ı, ö, ş, ü), so it would score Turkish wrongly; this is computed here instead.
    - non_llm_context_recall, non_llm_context_precision_with_reference: ragas' string-similarity
      context metrics (samples with reference contexts; nothing retrieved scores 0). A retrieved
      text counts as a reference context when their Levenshtein similarity is above 0.5, so
      retrieved chunks much shorter than the reference documents never count.

    A metric with no applicable sample is left out of the result.
    """
    return _run_coroutine(_nonllm_scores(list(samples)))


async def _nonllm_scores(samples: list[AnswerSample]) -> dict[str, float]:
    similarity = NonLLMStringSimilarity()
    context_recall = NonLLMContextRecall()
    context_precision = NonLLMContextPrecisionWithReference()
    values: dict[str, list[float]] = {
        "non_llm_string_similarity": [],
        "rouge_l_f1": [],
        "non_llm_context_recall": [],
        "non_llm_context_precision_with_reference": [],
    }
    for sample in samples:
        if sample.reference.strip():
            result = await similarity.ascore(reference=sample.reference, response=sample.answer)
            values["non_llm_string_similarity"].append(float(result.value))
            values["rouge_l_f1"].append(rouge_l_f1(sample.answer, sample.reference))
        if sample.reference_contexts:
            if not sample.retrieved_contexts:
                values["non_llm_context_recall"].append(0.0)
                values["non_llm_context_precision_with_reference"].append(0.0)
                continue
            turn = SingleTurnSample(
                retrieved_contexts=list(sample.retrieved_contexts),
                reference_contexts=list(sample.reference_contexts),
            )
            values["non_llm_context_recall"].append(float(await context_recall.single_turn_ascore(turn)))
            values["non_llm_context_precision_with_reference"].append(
                float(await context_precision.single_turn_ascore(turn))
            )
    return {name: float(np.mean(v)) for name, v in values.items() if v}


def rouge_l_f1(answer: str, reference: str) -> float:
    """Return the ROUGE-L F1 of `answer` against `reference`, on words of normalise_answer()."""
    a, r = normalise_answer(answer).split(), normalise_answer(reference).split()
    if not a or not r:
        return 0.0
    lcs = _lcs_length(a, r)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(a), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


def _lcs_length(a: list[str], b: list[str]) -> int:
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


# --- the judge ----------------------------------------------------------------------------------


class JudgeError(RuntimeError):
    """Claude answered, but not with the structured output the metric asked for."""


class ClaudeJudge(InstructorBaseRagasLLM):
    """A ragas judge LLM that asks Claude for each prompt's pydantic output model as structured JSON.

    Works with a sync `anthropic.Anthropic` (calls run in worker threads when ragas awaits them)
    or an `anthropic.AsyncAnthropic` client. Build the client with the transport you need
    (`http_client=httpx2.Client(transport=...)`: the anthropic SDK 2.x takes httpx2 clients).
    """

    def __init__(
        self,
        client: anthropic.Anthropic | anthropic.AsyncAnthropic,
        model: str = DEFAULT_JUDGE_MODEL,
        max_tokens: int = 4096,
        system: str | None = None,
    ) -> None:
        if not isinstance(client, anthropic.Anthropic | anthropic.AsyncAnthropic):
            raise TypeError(
                f"ClaudeJudge needs an anthropic.Anthropic or AsyncAnthropic client, got {type(client)}"
            )
        self.client = client
        self.model = model
        self.max_tokens = max_tokens
        self.system = system

    def generate(self, prompt: str, response_model: type[ModelT]) -> ModelT:
        """Return Claude's answer to `prompt` parsed into `response_model`."""
        if isinstance(self.client, anthropic.AsyncAnthropic):
            return _run_coroutine(self.agenerate(prompt, response_model))
        message = self.client.messages.parse(**self._request(prompt, response_model))
        return self._parsed(message, response_model)

    async def agenerate(self, prompt: str, response_model: type[ModelT]) -> ModelT:
        """Return Claude's answer to `prompt` parsed into `response_model`, without blocking the event loop."""
        if isinstance(self.client, anthropic.Anthropic):
            return await asyncio.to_thread(self.generate, prompt, response_model)
        message = await self.client.messages.parse(**self._request(prompt, response_model))
        return self._parsed(message, response_model)

    def _request(self, prompt: str, response_model: type[BaseModel]) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "messages": [{"role": "user", "content": prompt}],
            "output_format": response_model,
        }
        if self.system:
            request["system"] = self.system
        return request

    def _parsed(self, message: Any, response_model: type[ModelT]) -> ModelT:
        if message.stop_reason == "max_tokens":
            raise JudgeError(
                f"{self.model} ran out of tokens ({self.max_tokens}) writing {response_model.__name__}; "
                "raise ClaudeJudge(max_tokens=...)"
            )
        parsed = message.parsed_output
        if not isinstance(parsed, response_model):
            raise JudgeError(
                f"{self.model} returned no {response_model.__name__} (stop_reason={message.stop_reason!r})"
            )
        return parsed

    def __repr__(self) -> str:
        kind = "async" if isinstance(self.client, anthropic.AsyncAnthropic) else "sync"
        return f"ClaudeJudge(model={self.model!r}, client={kind}, max_tokens={self.max_tokens})"


class CallableEmbeddings(BaseRagasEmbedding):
    """ragas embeddings around any `embed(texts) -> array of shape (len(texts), dim)` function."""

    def __init__(self, embed: Callable[[list[str]], Any]) -> None:
        super().__init__()
        self._embed = embed

    def embed_text(self, text: str, **kwargs: Any) -> list[float]:
        return self.embed_texts([text])[0]

    async def aembed_text(self, text: str, **kwargs: Any) -> list[float]:
        return (await self.aembed_texts([text]))[0]

    def embed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
        vectors = np.asarray(self._embed(list(texts)), dtype=float)
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            raise ValueError(
                f"embed() must return one vector per text: got shape {vectors.shape} for {len(texts)}"
            )
        return vectors.tolist()

    async def aembed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
        return await asyncio.to_thread(self.embed_texts, texts)


# --- LLM-judged metrics -------------------------------------------------------------------------


def ragas_llm_scores(
    samples: Sequence[AnswerSample],
    judge: InstructorBaseRagasLLM,
    embeddings: BaseRagasEmbedding | None = None,
    *,
    concurrency: int = 4,
) -> dict[str, float]:
    """Return mean LLM-judged scores in [0, 1] plus `ragas_llm_errors`, the count of samples that failed.

    - faithfulness: answer claims supported by the retrieved contexts (answered samples with contexts).
    - answer_relevancy: how well questions generated back from the answer match the question
      (answered samples; needs `embeddings`, otherwise left out). Three judge calls a sample.
    - context_precision_with_reference: whether useful contexts rank first (samples with a
      reference and contexts). One judge call per retrieved context, so pass the top few only.
    - context_recall: reference claims found in the retrieved contexts (same samples).

    A sample whose score is undefined (e.g. the judge found no claims) is left out of the mean.
    A failed call is logged and counted; a rejected key or unknown model stops the run at once,
    and if every call of a metric fails the first error is raised: a broken judge, not hard samples.
    """
    return _run_coroutine(_llm_scores(list(samples), judge, embeddings, concurrency))


async def _llm_scores(
    samples: list[AnswerSample],
    judge: InstructorBaseRagasLLM,
    embeddings: BaseRagasEmbedding | None,
    concurrency: int,
) -> dict[str, float]:
    metrics: dict[str, tuple[Any, Callable[[AnswerSample], dict[str, Any] | None]]] = {
        "faithfulness": (Faithfulness(llm=judge), _faithfulness_inputs),
        "context_precision_with_reference": (ContextPrecisionWithReference(llm=judge), _context_inputs),
        "context_recall": (ContextRecall(llm=judge), _context_inputs),
    }
    if embeddings is not None:
        metrics["answer_relevancy"] = (AnswerRelevancy(llm=judge, embeddings=embeddings), _relevancy_inputs)

    gate = asyncio.Semaphore(max(1, concurrency))
    fatal: list[BaseException] = []

    async def score(metric: Any, sample: AnswerSample, inputs: dict[str, Any]) -> float | BaseException:
        async with gate:
            if fatal:  # the jobs queued behind a fatal error must not call the API any more
                raise fatal[0]
            try:
                result = await metric.ascore(**inputs)
            except _FATAL_JUDGE_ERRORS as exc:
                fatal.append(exc)
                raise  # every other call would fail the same way
            except Exception as exc:  # one bad sample must not lose the other 600 judge calls
                logger.warning("ragas %s failed on query %r: %s", metric.name, sample.query_id, exc)
                return exc
            return float(result.value)

    jobs: list[tuple[str, Awaitable[float | BaseException]]] = []
    for name, (metric, inputs_of) in metrics.items():
        for sample in samples:
            inputs = inputs_of(sample)
            if inputs is not None:
                jobs.append((name, score(metric, sample, inputs)))
    outcomes = await asyncio.gather(*(job for _, job in jobs))
    results: dict[str, list[float | BaseException]] = {name: [] for name in metrics}
    for (name, _), outcome in zip(jobs, outcomes, strict=True):
        results[name].append(outcome)

    scores: dict[str, float] = {}
    errors = 0
    for name, outcomes_of_metric in results.items():
        failures = [o for o in outcomes_of_metric if isinstance(o, BaseException)]
        values = [o for o in outcomes_of_metric if not isinstance(o, BaseException) and not math.isnan(o)]
        if outcomes_of_metric and len(failures) == len(outcomes_of_metric):
            first = failures[0]
            raise RuntimeError(f"every ragas {name} call failed; first error: {first!r}") from first
        errors += len(failures)
        if values:
            scores[name] = float(np.mean(values))
    scores["ragas_llm_errors"] = float(errors)
    return scores


def _faithfulness_inputs(sample: AnswerSample) -> dict[str, Any] | None:
    if not sample.answer.strip() or not sample.retrieved_contexts:
        return None
    return {
        "user_input": sample.question,
        "response": sample.answer,
        "retrieved_contexts": list(sample.retrieved_contexts),
    }


def _relevancy_inputs(sample: AnswerSample) -> dict[str, Any] | None:
    if not sample.answer.strip():
        return None
    return {"user_input": sample.question, "response": sample.answer}


def _context_inputs(sample: AnswerSample) -> dict[str, Any] | None:
    if not sample.reference.strip() or not sample.retrieved_contexts:
        return None
    return {
        "user_input": sample.question,
        "reference": sample.reference,
        "retrieved_contexts": list(sample.retrieved_contexts),
    }


def _run_coroutine(coro: Coroutine[Any, Any, ResultT]) -> ResultT:
    """Run `coro` to completion from sync code, even when the caller is itself inside an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
