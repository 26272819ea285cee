"""What assist takes (a conversation) and gives back (suggestions, an answer or a handoff)."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from retrieval.language import Language

Role = Literal["customer", "agent", "bot", "system"]
Strategy = Literal["llm", "extractive", "past_reply"]
Tone = Literal["siz", "sen"]
FeedbackAction = Literal["accepted", "edited", "rejected"]
HandoffReason = Literal[
    "no_knowledge",
    "low_confidence",
    "sensitive_topic",
    "customer_requested_human",
    "negative_sentiment",
    "provider_error",
    "unsupported_language",
]
HANDOFF_REASONS: tuple[str, ...] = get_args(HandoffReason)

MAX_MESSAGE_CHARS = 4_000
MAX_MESSAGES = 200


class ConversationTurn(BaseModel):
    """One message of the live conversation, oldest first."""

    model_config = ConfigDict(extra="ignore")

    role: Role
    text: str = Field(default="", max_length=MAX_MESSAGE_CHARS)

    @field_validator("role", mode="before")
    @classmethod
    def _lower_role(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("text", mode="before")
    @classmethod
    def _null_text(cls, value: object) -> object:
        return "" if value is None else value  # media messages arrive without text


class AssistRequest(BaseModel):
    """A conversation to suggest a reply for or to resolve; it must contain a customer message with text."""

    model_config = ConfigDict(extra="ignore")

    conversation_id: str = Field(min_length=1, max_length=200)
    messages: list[ConversationTurn] = Field(min_length=1, max_length=MAX_MESSAGES)
    channel: str | None = None

    @model_validator(mode="after")
    def _has_customer_text(self) -> AssistRequest:
        if not any(m.role == "customer" and m.text.strip() for m in self.messages):
            raise ValueError("The conversation has no customer message with text to answer")
        return self


class Citation(BaseModel):
    """The retrieved chunk a suggestion or answer rests on."""

    doc_id: str
    chunk_id: str
    title: str = ""
    section: str = ""
    snippet: str = ""
    source: str = "doc"
    # The source as the tenant names it: "faq:sss-012", "qr:hy-03", "doc:iade.pdf", "chat:c-1001".
    ref: str = ""


class Suggestion(BaseModel):
    """A reply the agent can send as is or edit; `id` is what feedback refers to."""

    id: str
    text: str
    citations: list[Citation]
    confidence: float = Field(ge=0.0, le=1.0)
    strategy: Strategy
    # Why the agent should check this one before sending it (missing words, flagged source, ...); None if strong.
    caution: str | None = None


class SuggestResponse(BaseModel):
    """Up to three suggestions, best first; `mode` names what produced the first one."""

    suggestions: list[Suggestion]
    # "extractive", "anthropic:<model>" or "openai-compatible:<model>"
    mode: str
    language: Language
    # The (PII-redacted) search query built from the conversation.
    query: str
    note: str | None = None


class ResolveResponse(BaseModel):
    """Either an answer for the customer or a handoff to a human with a reason and a summary."""

    decision: Literal["answer", "handoff"]
    # The answer, or for a handoff the message that tells the customer a human will take over.
    text: str | None = None
    citations: list[Citation] = Field(default_factory=list)
    confidence: float = Field(default=0.0, ge=0.0, le=1.0)
    reason: HandoffReason | None = None
    # Two or three Turkish lines for the human agent: what the customer wants, what was tried, why.
    summary: str | None = None
    mode: str
    language: Language = "tr"


class FeedbackResult(BaseModel):
    """The stored feedback and, for accepted or edited replies, the knowledge document it became."""

    id: str
    suggestion_id: str
    action: FeedbackAction
    learned_doc_id: str | None = None
