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

From a resolved conversation, each customer question (consecutive customer messages merged) is
paired with the agent reply that follows (consecutive agent messages merged), so that each pair
stands alone as knowledge:

- greetings, thanks, closings, "kontrol ediyorum" holds and system messages are dropped; bot
  messages are never answers, and the digit a customer types back to a bot menu is dropped;
- a follow-up ("peki taksit var mı?", "business class da olur mu") is stored after the last
  question that stood on its own; the customer's own words stay in `QAPair.asked`;
- a reply an agent corrects later in the chat ("yanlış bilgi verdim ...") is replaced by the
  correction, so only the settled answer is stored;
- `needs_context` says which pairs only make sense in their conversation; their chunks carry
  `"auto_answer": False` and are for suggestions only.
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
from pydantic_core import PydanticSerializationError
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

    # The limit assist requests have: its chunks' doc id "chat:<id>" and guarded id fit the registry's columns.
    conversation_id: str = Field(min_length=1, max_length=200)
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
    """A stand-alone customer question and the agent's settled reply to it, from one conversation."""

    conversation_id: str
    channel: str
    position: int  # 0-based order among the pairs of its conversation; keeps chunk ids stable
    question: str  # stand-alone: a follow-up is stored after the question it follows
    answer: str  # the settled reply: one corrected later in the conversation holds the correction
    ts: datetime  # when the (settled) reply was sent
    agent_id: str | None = None
    tags: tuple[str, ...] = ()
    csat: int | None = None
    count: int = 1  # how many near-identical replies this pair stands for after collapsing
    asked: str = ""  # the customer's own words, when `question` had to be completed ("": the same)
    subject_found: bool = True  # False: a follow-up whose subject its conversation does not give


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
    try:
        conversation.model_dump_json()
    except PydanticSerializationError:  # a lone UTF-16 surrogate ("\\udc80") is no character
        result.problems.append(
            f"{where}: conversation {conversation.conversation_id!r}: "
            "holds an escaped lone surrogate (e.g. \\udc80), which is not text"
        )
        return
    if conversation.conversation_id in seen:
        first = seen[conversation.conversation_id]
        result.problems.append(
            f"{where}: conversation {conversation.conversation_id} already read at {first}; kept that one"
        )
        return
    seen[conversation.conversation_id] = where
    result.conversations.append(conversation)


_TOO_DEEP = "JSON nested too deeply to read"


def parse_conversations(text: str, jsonl: bool | None = None) -> ConversationImport:
    """Return the conversations in a JSONL, JSON object or JSON list text, and the parts that failed.

    `jsonl=None` tries the whole text as one JSON document first, then line by line.
    """
    result = ConversationImport()
    seen: dict[str, str] = {}
    if jsonl is not True:
        try:
            document = json.loads(text)
        except RecursionError:
            if jsonl is False:
                raise ValueError(_TOO_DEEP) from None
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
        except RecursionError:
            result.problems.append(f"line {n}: {_TOO_DEEP}")
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
    "keyifli alışverişler", "iyi alışverişler dileriz", "keyifli alışverişler dileriz",
    "başka bir konuda yardımcı olabilir miyim",
    "yardımcı olabileceğimiz başka bir konu var mı", "başka yardımcı olabileceğim bir konu var mı",
    "başka bir konuda yardımcı olabileceğim bir şey var mı", "bye",
)  # fmt: skip
# Acknowledgements are dropped as whole messages but never cut off a longer one ("tamam mı?").
_ACKS = ("tamam", "tamamdır", "ok", "okey", "okay", "anladım", "peki", "bekliyorum")
_HOLDS = (
    "kontrol ediyorum", "kontrol ediyoruz", "kontrol edip dönüyorum", "kontrol edip size dönüyorum",
    "kontrol edip dönüş yapacağım", "kontrol edip size dönüş yapacağım", "teyit edip dönüyorum",
    "bilgi alıp dönüyorum", "birkaç dakika bekleyebilir misiniz", "bir dakika bekleyebilir misiniz",
    "kısa bir süre bekleyebilir misiniz", "bekleyebilir misiniz", "bir dakika lütfen", "bir saniye lütfen",
    "lütfen bekleyiniz", "lütfen bekleyin", "hemen bakıyorum", "bakıyorum", "hemen inceliyorum",
    "inceliyorum", "one moment please", "let me check",
)  # fmt: skip


def _alternation(phrases: Iterable[str]) -> str:
    folded = sorted({_fold(p) for p in phrases}, key=len, reverse=True)
    return "|".join(r"\s+".join(map(re.escape, p.split())) for p in folded)


_POLITE = _alternation(_GREETINGS + _THANKS + _CLOSINGS)
_ONLY_POLITE = re.compile(rf"^\W*(?:(?:{_POLITE}|{_alternation(_ACKS)})(?!\w)\W*)*$")
# Cut only where the phrase stands apart (followed by punctuation or an emoji) ...
_LEADING_POLITE = re.compile(rf"^\W*(?:(?:{_POLITE})(?=\s*[^\w\s])\W*)+")
# ... or starts a sentence, so "...göndermenizi rica ederiz." keeps its verb.
_TRAILING_POLITE = re.compile(rf"(?:^|(?<=[^\w\s]))\s*(?:(?:{_POLITE})(?!\w)\W*)+$")
# An agent message that only asks the customer to wait answers nothing.
_ONLY_HOLD = re.compile(rf"^\W*(?:(?:{_POLITE}|{_alternation(_HOLDS)})(?!\w)\W*)+$")


def _capitalised(text: str) -> str:
    return text[:1].translate(_TR_UPPER).upper() + text[1:]


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
        core = _capitalised(core)
    return core


# --- questions in context ------------------------------------------------------------------

_WORD = re.compile(r"[^\W\d_]+")
# A digit typed right after a bot's menu ("2", "2.", "2️⃣") picks an option; it asks nothing.
_MENU_CHOICE = re.compile(r"^\W*\d{1,2}\W*$")
# Follow-ups that lean on what was asked before: elliptical openers, an acknowledgement that goes
# on ("tamam param ne zaman yatar") and pushback ("ama aöf öğrencilerine de indirim var").
_ELLIPTICAL_START = re.compile(
    r"^\W*(?:peki|ya|bir\s*de|o\s+zaman|o\s+halde|bu\s+durumda|ayrica|bunun|bunu|bunda|onun|onu|ayni|"
    r"ama|ancak|fakat|yani|neyse|tamam\w*|ok|okey|anladim|super|harika|evet|hayir|"
    r"and|also|but|what\s+about|how\s+about)(?!\w)"
)
# Pronouns pointing at something said before ("düzenli teslimata ekleyebilir miyim onu").
_POINTS_BACK = re.compile(
    r"(?<!\w)(?:bunu|bunun|buna|bunda|bundan|bunlar\w*|onu|onun|ona|onda|ondan|sunu|orada|oraya)(?!\w)"
)
_NEW_TOPIC_START = re.compile(r"^\W*(?:bu\s+arada|baska\s+bir|bir\s+sorum\s+daha|by\s+the\s+way)(?!\w)")
_SHORT_QUESTION_WORDS = 8  # a later question this short nearly always continues the topic
# Words that say nothing about what a question is about (folded); the rest count as its subject.
_FUNCTION_WORDS = frozenset((
    "acaba", "ama", "ancak", "artik", "aslinda", "ayni", "bana", "beni", "benim", "bile", "bize",
    "bizi", "bizim", "buna", "bunda", "bundan", "bunu", "bunun", "burada", "burda", "daha", "dedi",
    "dediniz", "diye", "edebilir", "eder", "ediyor", "evet", "fakat", "gelcek", "gelecek", "gelir",
    "geliyor", "gene", "gerek", "gibi", "hala", "hangi", "hani", "hayir", "hem", "hep", "her", "hic",
    "icin", "ile", "kac", "kaca", "kadar", "lazim", "midir", "misin", "misiniz", "miyim", "miyiz",
    "mudur", "mumkun", "musun", "musunuz", "muyum", "nasi", "nasil", "neden", "nedir", "nerde",
    "nereden", "nerden", "nerede", "nereye", "neydi", "neyse", "niye", "normalde", "olabilir", "olacak",
    "olan", "olarak", "oldu", "olmaz", "olsun", "olur", "olurmu", "oluyor", "ona", "onda", "ondan",
    "once", "onu", "onun", "orada", "oraya", "peki", "sadece", "sey", "seyi", "simdi", "size", "sizi",
    "sizin", "sonra", "sorun", "sunu", "tamam", "tamamdir", "tekrar", "var", "veya", "yani",
    "yapabilir", "yapar", "yapilir", "yapiyor", "yine", "yok", "zaman", "zaten",
))  # fmt: skip


def _subject_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(_fold(text)) if len(w) >= 3 and w not in _FUNCTION_WORDS]


def _is_short(text: str) -> bool:
    return len(text.split()) <= _SHORT_QUESTION_WORDS


def _is_follow_up(asked: str) -> bool:
    folded = _fold(asked)
    if _NEW_TOPIC_START.match(folded):
        return False
    return (
        bool(_ELLIPTICAL_START.match(folded) or _POINTS_BACK.search(folded))
        or _is_short(folded)
        or not _subject_words(asked)
    )


def _in_context(asked: str, subject: str | None, answers_agent: bool) -> tuple[str, str | None, bool]:
    """Return the stand-alone question, the subject for the next follow-up, and whether one was found.

    The subject is the last question that stood on its own; a follow-up is stored after it. What the
    customer writes after the agent asked them something (an order number, "evet samsung") follows up.
    """
    if not (answers_agent or _is_follow_up(asked)):
        return asked, asked, True
    if subject:
        return f"{subject} {asked}", subject, True
    # Nothing came before it: a short first question ("kargo ücretsiz mi") still says what it is
    # about, "bunun fiyatı ne" does not.
    found = bool(_subject_words(asked)) and not (_POINTS_BACK.search(_fold(asked)) and _is_short(asked))
    return asked, asked if found else None, found


# --- corrections ---------------------------------------------------------------------------

# An agent taking back what was said (folded): "yanlış bilgi verdim", "düzeltmem gerekiyor",
# "arkadaşımın verdiği bilgi ...", "özür dilerim, aslında ...", "doğrusu", "pardon, 500 değil ...".
# A bare "pardon" or "düzeltme" is not enough: "Pardon, geç dönüş için ..." and "Düzeltme talebiniz
# alındı" take nothing back.
_CORRECTION = re.compile(
    r"(?<!\w)(?:"
    r"(?:yanlis|hatali|eksik)\s+(?:bilgi\s+(?:verdi|verilmi|vermi|icin|aktar|ilet)\w*|bilgilendir\w*)"
    r"|yanlis\s+(?:yazdi|yazmis|soyledi|soylemis|aktardi|aktarmis|ilettim|iletmis|anladi|anlamis)\w*"
    r"|duzeltme(?:m|miz)?\s+(?:yapmam|yapmamiz|yapayim|yapalim|gerek)\w*|dogrusu|dogru\s+bilgi\s+su"
    r"|(?:(?:kucuk\s+)?bir\s+duzeltme|^\W*duzeltme|duzeltiyorum|duzelteyim)(?=\s*[:\-–—])"
    r"|yanil(?:dim|misim|dik|misiz)|arkadas\w*\s+(?:verdigi|ilettigi|soyledigi)\s+bilgi"
    r"|(?:ozur\s+dile\w*|kusura\s+bakma\w*|^\W*pardon)\W+(?:\w+\W+){0,8}?(?:aslinda|degil)"
    r")(?!\w)"
)
_APOLOGY = re.compile(r"(?<!\w)(?:ozur\s+dile\w*|kusura\s+bakma\w*|affedersiniz|haklisiniz|pardon)(?!\w)")
_APOLOGY_FILLER = frozenset(
    ("bir", "cok", "da", "de", "gerek", "gerekiyor", "icin", "lutfen", "su", "sunu", "tekrar", "ve")
)
_CLAUSE_END = re.compile(r"[,;:.!?]+\s+")


def _is_apology(clause: str) -> bool:
    rest = _CORRECTION.sub(" ", _APOLOGY.sub(" ", _fold(clause)))
    return all(word in _APOLOGY_FILLER for word in _WORD.findall(rest))


def _without_apology(text: str) -> str:
    """Return a correction without the apology and "I was wrong" it opens with ("" if that is all)."""
    start = 0
    for end in _CLAUSE_END.finditer(text):
        if not _is_apology(text[start : end.start()]):
            break
        start = end.end()
    else:
        if _is_apology(text[start:]):
            return ""
    rest = text[start:]
    return _capitalised(rest) if start and rest[:1].islower() else rest


def _stems(text: str) -> set[str]:
    return {word[:5] for word in _subject_words(text) if len(word) >= 4}


def _corrected(pairs: list[QAPair], settled: set[int], correction: str) -> int | None:
    """Return the position of the earlier pair whose reply `correction` takes back (None if there is none).

    That is the unsettled reply sharing most words with the correction (between equals, the latest);
    a reply sharing none is about something else.
    """
    words = _stems(correction)
    shared = {p.position: len(words & _stems(p.answer)) for p in pairs if p.position not in settled}
    best = max(reversed(shared), key=shared.__getitem__, default=None)
    return best if best is not None and shared[best] else None


# --- pairs ---------------------------------------------------------------------------------


@dataclass
class _Turn:
    role: Literal["customer", "agent"]
    texts: list[str]
    ts: datetime
    agent_id: str | None
    corrects_earlier: bool = False  # an agent turn taking back a reply given in an earlier turn


def _turns(messages: Iterable[Message]) -> Iterator[_Turn]:
    current: _Turn | None = None
    after_bot = False
    for message in messages:
        if message.role == "system":
            continue  # platform notes neither ask nor answer
        if message.role == "bot":
            after_bot = True  # bot menus and auto-replies are never answers
            continue
        if message.role == "customer" and after_bot and _MENU_CHOICE.match(message.text):
            continue  # glued to the question, "2" would only add noise
        after_bot = False
        text = _core(message.text)
        if message.role == "customer" and not text and message.text.strip() and current is not None:
            # "tamam", "ok bekliyorum": the agent's next message is news, not more of this answer.
            if current.role == "agent" and current.texts:
                yield current
                current = None
            continue
        correction = False
        if message.role == "agent" and text:
            folded = _fold(text)
            if _ONLY_HOLD.match(folded):
                continue
            # A "correction" that asks something ("Pardon, yanlış mı yazdım?") settles nothing.
            correction = _CORRECTION.search(folded) is not None and "?" not in text
            if correction:
                text = _without_apology(text)
        if not text and not correction:
            continue
        if current is None or current.role != message.role:
            if current is not None and current.texts:
                yield current
            current = _Turn(message.role, [], message.ts, message.agent_id, corrects_earlier=correction)
        elif correction and (not text or _stems(text) & _stems(" ".join(current.texts))):
            # The agent takes back what it wrote earlier in this turn: only the correction stays.
            current.texts.clear()
            current.ts, current.agent_id = message.ts, message.agent_id
        if text:
            current.texts.append(text)
    if current is not None and current.texts:
        yield current


def extract_pairs(conversation: Conversation) -> list[QAPair]:
    """Return the stand-alone question -> settled reply pairs of a resolved conversation ([] if open).

    A reply an agent corrects later in the conversation is replaced by the correction, so no pair
    carries what was taken back.
    """
    if conversation.status != "resolved":
        return []
    pairs: list[QAPair] = []
    settled: set[int] = set()  # corrections, and the replies they corrected: never corrected again
    asked: str | None = None
    subject: str | None = None
    agent_asked = False  # the last reply asked the customer something (an order number, a photo)
    for turn in _turns(conversation.messages):
        text = " ".join(turn.texts)
        if turn.role == "customer":
            asked = text if asked is None else f"{asked} {text}"
            continue
        if turn.corrects_earlier and (target := _corrected(pairs, settled, text)) is not None:
            pairs[target] = replace(pairs[target], answer=text, ts=turn.ts, agent_id=turn.agent_id)
            settled.add(target)
        # With no question before it (a campaign message, news after "tamam") a reply pairs with nothing.
        if asked is not None:
            question, subject, subject_found = _in_context(asked, subject, agent_asked)
            if turn.corrects_earlier:
                settled.add(len(pairs))
            pairs.append(
                QAPair(
                    conversation_id=conversation.conversation_id,
                    channel=conversation.channel,
                    position=len(pairs),
                    question=question,
                    answer=text,
                    ts=turn.ts,
                    agent_id=turn.agent_id,
                    tags=tuple(conversation.tags),
                    csat=conversation.csat,
                    asked=asked,
                    subject_found=subject_found,
                )
            )
            asked = None
        agent_asked = "?" in text
    return pairs


# --- replies that need their conversation --------------------------------------------------

ContextReason = Literal["no subject", "asks back", "refers back", "bare reply", "customer's own case"]

# A reply that keeps fewer than three words once its leading yes/no/okay is gone ("Tabii", "Kesin").
_BARE_REPLY_START = re.compile(
    r"^\W*(?:evet|hayir|olur|olmaz|tabii|tabi|elbette|tamam\w*|aynen|dogru|kesin\w*|sevindim|maalesef|"
    r"var|yok|yes|no|sure|ok)(?!\w)\W*"
)
_REFERS_BACK = re.compile(
    r"(?<!\w)(?:(?:yukarida|daha\s+once|az\s+once|demin)\s+(?:\w+\s+)?(?:belirt|ilet|yaz|soyle|bahset|paylas)"
    r"|(?:belirttigim|dedigim|soyledigim|yazdigim|ilettigim|bahsettigim|paylastigim)\s+gibi"
    r"|^\W*(?:o\s+zaman|o\s+halde|bu\s+durumda))"
)
_SENTENCE = r"(?:[^.!?;]|\.(?=\d))*?"  # within one sentence ("1.050 TL" does not end it)
# What the agent did or found on this customer's order or account: true for them only.
_CASE_REPORT = re.compile(
    r"(?<!\w)(?:"
    r"(?:olustur|gonder|ilet|tanimla|guncelle|yonlendir|baslat|onayla|ekle|kaydet|aktar|degistir|"
    r"iptal\s+et|iade\s+et|al)[dt][iu][mk]"
    r"|\w+m[iu]ss[iu]n[iu]z"
    rf"|\w+n[iu]z{_SENTENCE}(?<!\w)(?:gorunuyor|onaylandi|tanimlandi|bulundu|yuklendi|iptal\s+edildi|"
    r"iade\s+edildi|gonderildi|olusturuldu|yapilmis|verilmis|gonderilmis|onaylanmis|cikti|cikmis)"
    r"|ulasti|ulasmis"
    r")(?!\w)"
)


def needs_context(pair: QAPair) -> ContextReason | None:
    """Return why `pair`'s reply is for suggestions only, or None when it may be sent as it is.

    Checked in this order: a follow-up whose subject the conversation did not give; a reply asking
    the customer something back; one referring back ("yukarıda belirttiğim gibi"); a bare "evet",
    "olur", "tabii"; one reporting what was done or found on that customer's order or account.
    """
    answer = _fold(pair.answer)
    if not pair.subject_found:
        return "no subject"
    if "?" in answer:
        return "asks back"
    if _REFERS_BACK.search(answer):
        return "refers back"
    if len(_BARE_REPLY_START.sub("", answer, count=1).split()) < 3:
        return "bare reply"
    if _CASE_REPORT.search(answer):
        return "customer's own case"
    return None


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
        asked = pair.asked or pair.question
        asked = redact(asked) if redact else asked
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
                    "asked": asked,
                    "answer": answer,
                    "tags": list(pair.tags),
                    "csat": pair.csat,
                    "agent_id": pair.agent_id,
                    "count": pair.count,
                    "auto_answer": needs_context(pair) is None,
                },
            )
        )
    return chunks
