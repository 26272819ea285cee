"""Past resolved conversations into question/answer `Chunk`s (source "chat").

The Invekto conversation export (full description in docs/conversation-format.md)::

    {"conversation_id": "c-1001", "channel": "whatsapp", "status": "resolved",
     "messages": [{"role": "customer", "text": "Kargom nerede?", "ts": "2024-05-02T10:15:00+03:00"},
                  {"role": "agent", "text": "Yarın teslim edilecek.", "ts": "2024-05-02T10:17:00+03:00",
                   "agent_id": "a-7"}],
     "tags": ["kargo"], "csat": 5}

- channel: whatsapp | instagram | messenger | telegram | sms | voip | webchat
- status: resolved | open (only resolved conversations teach anything)
- role: customer | agent | bot | system; `ts` is ISO 8601; `agent_id` only for agents
- csat: optional, 1-5

A file is JSONL (one conversation per line; a bad line is reported by number and the rest
are read), one conversation object, or a JSON list of them.

From a resolved conversation, each customer question (consecutive customer messages merged,
an elliptical follow-up like "peki taksit var mı?" prefixed with the customer's previous
question) is paired with the agent reply that follows (consecutive agent messages merged).
Greetings, thanks and closings are dropped, as are system messages; bot messages are never
answers and are skipped over.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from rapidfuzz import fuzz, process

from retrieval.models import Chunk
from retrieval.text import fold_turkish, normalise_for_match

Channel = Literal["whatsapp", "instagram", "messenger", "telegram", "sms", "voip", "webchat"]
Role = Literal["customer", "agent", "bot", "system"]
Status = Literal["resolved", "open"]

DUPLICATE_REPLY_SIMILARITY = 92.0  # rapidfuzz ratio (0-100) from which two replies count as one


class Message(BaseModel):
    """One message of a conversation, in the order it was sent."""

    model_config = ConfigDict(extra="ignore")

    role: Role
    text: str = ""
    ts: datetime
    agent_id: str | None = None

    @field_validator("role", mode="before")
    @classmethod
    def _lower_role(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("text", mode="before")
    @classmethod
    def _null_text(cls, value: Any) -> Any:
        return "" if value is None else value  # media messages come without text

    @field_validator("agent_id", mode="before")
    @classmethod
    def _agent_id_as_text(cls, value: Any) -> Any:
        # A numeric id is text with digits; a boolean is not an id (str(False) would store "False").
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class Conversation(BaseModel):
    """One exported Invekto conversation."""

    # Exports carry more fields (customer name, phone); they are ignored, not stored.
    model_config = ConfigDict(extra="ignore")

    conversation_id: str = Field(min_length=1)
    channel: Channel
    status: Status
    messages: list[Message]
    tags: list[str] = Field(default_factory=list)
    csat: int | None = Field(default=None, ge=1, le=5)

    @field_validator("conversation_id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        return str(value).strip() if isinstance(value, int | str) else value

    @field_validator("channel", "status", mode="before")
    @classmethod
    def _lower_code(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


@dataclass
class ConversationImport:
    """Conversations read from a file and, per unreadable line or item, a line saying where and why."""

    conversations: list[Conversation] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class QAPair:
    """A customer question (with context) and the agent reply it got, from one conversation."""

    conversation_id: str
    channel: str
    position: int  # 0-based order among the pairs of its conversation; keeps chunk ids stable
    question: str
    answer: str
    ts: datetime  # when the agent replied
    agent_id: str | None = None
    tags: tuple[str, ...] = ()
    csat: int | None = None
    count: int = 1  # how many near-identical replies this pair stands for after collapsing


# --- reading -------------------------------------------------------------------------------


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in item["loc"]).lstrip(".")
        given = item.get("input")
        shown = f" (got {given!r})" if isinstance(given, str | int | float) and len(repr(given)) < 40 else ""
        parts.append(f"{where or 'conversation'}: {item['msg']}{shown}")
    return "; ".join(parts)


def _validate(raw: Any, where: str, result: ConversationImport, seen: dict[str, str]) -> None:
    if not isinstance(raw, dict):
        result.problems.append(f"{where}: expected a conversation object, got {type(raw).__name__}")
        return
    try:
        conversation = Conversation.model_validate(raw)
    except ValidationError as err:
        named = f" conversation {raw['conversation_id']}:" if raw.get("conversation_id") else ""
        result.problems.append(f"{where}:{named} {_describe(err)}")
        return
    if conversation.conversation_id in seen:
        first = seen[conversation.conversation_id]
        result.problems.append(
            f"{where}: conversation {conversation.conversation_id} already read at {first}; kept that one"
        )
        return
    seen[conversation.conversation_id] = where
    result.conversations.append(conversation)


def parse_conversations(text: str, jsonl: bool | None = None) -> ConversationImport:
    """Return the conversations in a JSONL, JSON object or JSON list text, and the parts that failed.

    `jsonl=None` tries the whole text as one JSON document first, then line by line.
    """
    result = ConversationImport()
    seen: dict[str, str] = {}
    if jsonl is not True:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as err:
            if jsonl is False:
                raise ValueError(f"not valid JSON: {err}") from err
        else:
            if isinstance(document, list):
                for n, raw in enumerate(document, start=1):
                    _validate(raw, f"item {n}", result, seen)
            else:
                _validate(document, "document", result, seen)
            return result
    # Split on newlines only: str.splitlines() also breaks on U+2028, which JSON strings may hold raw.
    for n, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as err:
            result.problems.append(f"line {n}: not valid JSON ({err.msg}, column {err.colno})")
            continue
        _validate(raw, f"line {n}", result, seen)
    return result


def load_conversations(source: Path | str | bytes, filename: str | None = None) -> ConversationImport:
    """Return the conversations of an export file (path, or bytes with an optional `filename`)."""
    if isinstance(source, bytes):
        data = source
    else:
        data = Path(source).read_bytes()
        filename = filename or Path(source).name
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{filename or 'export'}: not UTF-8 text ({err})") from err
    suffix = Path(filename or "").suffix.lower()
    jsonl = True if suffix in (".jsonl", ".ndjson") else False if suffix == ".json" else None
    return parse_conversations(text, jsonl=jsonl)


# --- pleasantries --------------------------------------------------------------------------

_TR_UPPER = str.maketrans({"i": "İ", "ı": "I"})
# Folding is length-preserving on NFC text, so a match on the folded text slices the original.
_fold = fold_turkish


_GREETINGS = (
    "merhaba", "merhabalar", "selam", "selamlar", "selamün aleyküm", "selamünaleyküm", "aleyküm selam",
    "iyi günler", "iyi akşamlar", "iyi sabahlar", "günaydın", "iyi çalışmalar", "kolay gelsin",
    "hoş geldiniz", "hoşgeldiniz", "hello", "hi", "hey", "good morning", "good afternoon", "good evening",
    "nasıl yardımcı olabilirim", "size nasıl yardımcı olabilirim", "size nasıl yardımcı olabiliriz",
    "nasıl yardımcı olabiliriz",
)  # fmt: skip
_THANKS = (
    "teşekkürler", "teşekkür ederim", "teşekkür ederiz", "çok teşekkürler", "çok teşekkür ederim",
    "sağolun", "sağ olun", "çok sağolun", "sağol", "sağ ol", "tşk", "tşkler", "eyvallah",
    "thanks", "thank you", "thx",
)  # fmt: skip
_CLOSINGS = (
    "iyi günler dileriz", "iyi günler dilerim", "iyi akşamlar dileriz", "rica ederiz", "rica ederim",
    "biz teşekkür ederiz", "görüşmek üzere", "hoşça kalın", "hoşçakalın", "iyi alışverişler",
    "keyifli alışverişler", "başka bir konuda yardımcı olabilir miyim",
    "yardımcı olabileceğimiz başka bir konu var mı", "başka yardımcı olabileceğim bir konu var mı", "bye",
)  # fmt: skip
# Acknowledgements are dropped as whole messages but never cut off a longer one ("tamam mı?").
_ACKS = ("tamam", "tamamdır", "ok", "okey", "okay", "anladım", "peki")


def _alternation(phrases: Iterable[str]) -> str:
    folded = sorted({_fold(p) for p in phrases}, key=len, reverse=True)
    return "|".join(r"\s+".join(map(re.escape, p.split())) for p in folded)


_POLITE = _alternation(_GREETINGS + _THANKS + _CLOSINGS)
_ONLY_POLITE = re.compile(rf"^\W*(?:(?:{_POLITE}|{_alternation(_ACKS)})(?!\w)\W*)*$")
# Cut only where the phrase stands apart (followed by punctuation or an emoji) ...
_LEADING_POLITE = re.compile(rf"^\W*(?:(?:{_POLITE})(?=\s*[^\w\s])\W*)+")
# ... or starts a sentence, so "...göndermenizi rica ederiz." keeps its verb.
_TRAILING_POLITE = re.compile(rf"(?:^|(?<=[^\w\s]))\s*(?:(?:{_POLITE})(?!\w)\W*)+$")

# Follow-ups that lean on what was asked before.
_ELLIPTICAL_START = re.compile(
    r"^(?:peki|ya|bir\s*de|o\s+zaman|ayrica|bunun|bunu|bunda|onun|onu|ayni|"
    r"and|also|what\s+about|how\s+about)(?!\w)"
)
_SHORT_QUESTION_WORDS = 3


def _core(text: str) -> str:
    """Return `text` without greetings, thanks and closings around it ("" if nothing else is left)."""
    text = unicodedata.normalize("NFC", text).strip()
    folded = _fold(text)
    if _ONLY_POLITE.match(folded):
        return ""
    if len(folded) != len(text):
        return text  # positions would not map back; keep the message whole
    start = m.end() if (m := _LEADING_POLITE.match(folded)) else 0
    end = m.start() if (m := _TRAILING_POLITE.search(folded, start)) else len(text)
    core = text[start:end].strip().rstrip(",;:-–—").strip()
    if start and core[:1].islower():
        # "Merhaba, siparişiniz ..." loses its greeting; the reply still starts a sentence.
        core = core[0].translate(_TR_UPPER).upper() + core[1:]
    return core


def _is_elliptical(question: str) -> bool:
    folded = _fold(question)
    return bool(_ELLIPTICAL_START.match(folded)) or len(folded.split()) <= _SHORT_QUESTION_WORDS


# --- pairs ---------------------------------------------------------------------------------


@dataclass
class _Turn:
    role: Literal["customer", "agent"]
    texts: list[str]
    ts: datetime
    agent_id: str | None


def _turns(messages: Iterable[Message]) -> Iterator[_Turn]:
    current: _Turn | None = None
    for message in messages:
        if message.role not in ("customer", "agent"):
            continue  # system notes and bot menus neither ask nor answer
        text = _core(message.text)
        if not text:
            continue
        if current is not None and current.role == message.role:
            current.texts.append(text)
            continue
        if current is not None:
            yield current
        current = _Turn(message.role, [text], message.ts, message.agent_id)
    if current is not None:
        yield current


def extract_pairs(conversation: Conversation) -> list[QAPair]:
    """Return the customer question -> agent reply pairs of a resolved conversation ([] if open)."""
    if conversation.status != "resolved":
        return []
    pairs: list[QAPair] = []
    question: str | None = None
    previous_question = ""
    for turn in _turns(conversation.messages):
        text = " ".join(turn.texts)
        if turn.role == "customer":
            question = text
            continue
        if question is None:
            continue  # the agent spoke first (a campaign message, a follow-up): no question to pair
        in_context = question
        if previous_question and _is_elliptical(question):
            in_context = f"{previous_question} {question}"
        pairs.append(
            QAPair(
                conversation_id=conversation.conversation_id,
                channel=conversation.channel,
                position=len(pairs),
                question=in_context,
                answer=text,
                ts=turn.ts,
                agent_id=turn.agent_id,
                tags=tuple(conversation.tags),
                csat=conversation.csat,
            )
        )
        previous_question, question = question, None
    return pairs


def _reply_key(answer: str) -> str:
    return fold_turkish(normalise_for_match(answer))


def _preference(pair: QAPair) -> tuple[int, float]:
    # The copy kept is the one from the happiest customer, then the most recent.
    return (pair.csat or 0, pair.ts.timestamp())


def collapse_duplicates(
    pairs: Iterable[QAPair], similarity: float = DUPLICATE_REPLY_SIMILARITY
) -> list[QAPair]:
    """Return `pairs` with near-identical agent replies merged into one pair whose `count` says how many.

    Replies are compared Turkish-lower-cased without punctuation; rapidfuzz ratio >= `similarity`
    (0-100) counts as the same reply. The output keeps the order of first appearance.
    """
    kept: list[QAPair] = []
    keys: list[str] = []
    for pair in pairs:
        key = _reply_key(pair.answer)
        match = process.extractOne(key, keys, scorer=fuzz.ratio, score_cutoff=similarity) if keys else None
        if match is None:
            kept.append(pair)
            keys.append(key)
            continue
        index = match[2]
        best = max(kept[index], pair, key=_preference)
        kept[index] = replace(best, count=kept[index].count + pair.count)
    return kept


def pairs_to_chunks(
    tenant_id: str, pairs: Iterable[QAPair], redact: Callable[[str], str] | None = None
) -> list[Chunk]:
    """Return one "chat" chunk per pair, with doc_id "chat:<conversation_id>".

    `redact` (e.g. a `Redactor`) is applied to the question and answer before they go into
    the text or the metadata; chats are where customers type phone numbers and IBANs.
    """
    chunks = []
    for pair in pairs:
        question = redact(pair.question) if redact else pair.question
        answer = redact(pair.answer) if redact else pair.answer
        chunks.append(
            Chunk(
                tenant_id=tenant_id,
                doc_id=f"chat:{pair.conversation_id}",
                chunk_id=f"pair-{pair.position}",
                text=f"Müşteri: {question}\nTemsilci: {answer}",
                source="chat",
                title=question,
                section=pair.channel,
                metadata={
                    "conversation_id": pair.conversation_id,
                    "channel": pair.channel,
                    "ts": pair.ts.isoformat(),
                    "question": question,
                    "answer": answer,
                    "tags": list(pair.tags),
                    "csat": pair.csat,
                    "agent_id": pair.agent_id,
                    "count": pair.count,
                },
            )
        )
    return chunks
