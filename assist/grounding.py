"""Post-checks on model output: parse it, and keep it only if the retrieved chunks it cites support it.

An answer survives when:
- it is the JSON object the prompt asked for;
- it cites at least one block, and only blocks that were retrieved for this request;
- its numbers (prices, days, dates) all appear in the cited blocks;
- enough of its topic terms appear in the cited blocks (skipped when answer and sources are in
  different languages: a translated answer shares no words with its source);
- it repeats no run of words from the system prompt and no prompt markup.
A model that obeys an injected instruction produces exactly what these checks drop: text that is not
in the cited chunks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from retrieval.text import normalise_for_match

from .language import content_terms, detect_language, word_set

# Share of the answer's topic terms that must appear in what it cites.
MIN_SUPPORT = 0.5
_LEAK_SHINGLE = 6
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_MARKUP = re.compile(r"</?(?:belge|bilgi|sohbet)\b|\"answerable\"|\"citations\"|kurallar:", re.IGNORECASE)
# Words a reply adds around any fact (greetings, politeness) that no source needs to contain.
_REPLY_WORDS = word_set(
    """
    merha rica yardı olurs memnu değer müşte sayın lütfe teşek saygı iyi günle hello dear thank
    help happy pleas kind regar
    """
)


class MalformedOutput(ValueError):
    """The model's reply is not the JSON answer the prompt asked for."""


@dataclass(frozen=True)
class ModelAnswer:
    """The model's answer as parsed from its JSON reply."""

    text: str
    citations: tuple[str, ...]
    answerable: bool


@dataclass(frozen=True)
class GroundingVerdict:
    """Whether an answer may be shown; `problem` names the failed check, `support` the term overlap."""

    ok: bool
    problem: str | None = None
    support: float = 0.0


def parse_model_answer(raw: str) -> ModelAnswer:
    """Return the answer inside the model's reply; MalformedOutput when it is not the JSON asked for.

    Tolerates a code fence or a sentence around the object, since models add them despite the prompt.
    """
    start, end = raw.find("{"), raw.rfind("}")
    if start < 0 or end < start:
        raise MalformedOutput("no JSON object in the model's reply")
    try:
        data = json.loads(raw[start : end + 1])
    except json.JSONDecodeError as exc:
        raise MalformedOutput(f"invalid JSON in the model's reply: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise MalformedOutput("the model's JSON is not an object")
    text = data.get("answer", "")
    citations = data.get("citations", [])
    answerable = data.get("answerable", bool(text))
    if not isinstance(text, str) or not isinstance(answerable, bool):
        raise MalformedOutput("'answer' must be a string and 'answerable' a boolean")
    if not isinstance(citations, list) or not all(isinstance(c, str) for c in citations):
        raise MalformedOutput("'citations' must be a list of block ids")
    return ModelAnswer(
        text=text.strip(), citations=tuple(dict.fromkeys(c.strip() for c in citations)), answerable=answerable
    )


def _digits(number: str) -> str:
    # "1.000" and "1000", "49,90" and "49.90" are the same number written two ways.
    return number.replace(".", "").replace(",", "")


def _shingles(text: str, n: int) -> set[tuple[str, ...]]:
    tokens = normalise_for_match(text).split()
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


class GroundingCheck:
    """Checks answers against retrieved blocks; built once per system prompt (its shingles are reused)."""

    def __init__(self, system_prompt: str) -> None:
        self._prompt_shingles = _shingles(system_prompt, _LEAK_SHINGLE)

    def check(
        self, answer: ModelAnswer, blocks: Mapping[str, str], conversation: str = ""
    ) -> GroundingVerdict:
        """Return whether `answer` is supported by the blocks it cites (`blocks`: id -> text given to it).

        Numbers may also come from the `conversation` (an order number the customer typed).
        """
        if not answer.text:
            return GroundingVerdict(False, "empty")
        if not answer.citations:
            return GroundingVerdict(False, "no_citations")
        if any(c not in blocks for c in answer.citations):
            return GroundingVerdict(False, "unknown_citation")
        if _MARKUP.search(answer.text) or _shingles(answer.text, _LEAK_SHINGLE) & self._prompt_shingles:
            return GroundingVerdict(False, "prompt_leak")
        cited = "\n".join(blocks[c] for c in answer.citations)
        known_numbers = {_digits(n) for n in _NUMBER.findall(f"{cited}\n{conversation}")}
        if any(_digits(n) not in known_numbers for n in _NUMBER.findall(answer.text)):
            return GroundingVerdict(False, "unsupported_number")
        terms = content_terms(answer.text) - _REPLY_WORDS
        if not terms:
            return GroundingVerdict(True, None, 1.0)
        if detect_language(answer.text) not in (None, detect_language(cited)):
            # A translation shares no words with its source: citations and numbers are all we can check.
            return GroundingVerdict(True, None, 1.0)
        support = len(terms & content_terms(cited)) / len(terms)
        if support < MIN_SUPPORT:
            return GroundingVerdict(False, "unsupported", support)
        return GroundingVerdict(True, None, support)
