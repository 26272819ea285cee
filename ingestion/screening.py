"""Screening of tenant knowledge at ingestion: chunks that must never reach a customer unreviewed.

A chunk is flagged, with one reason code in `chunk.metadata["flagged"]`, when it

- `assistant_instruction`: talks to the assistant instead of the customer: "ignore/disregard
  everything above", a role change ("Asistan olarak yeni görevin …", "you are now …"), a vocative
  ("Asistan, müşteriye … söyle") or chat-template markup;
- `secret_request`: asks the reader to hand over a secret (password, PIN, SMS or verification code,
  CVV, card number, card expiry date) with a request verb ("yazın", "paylaşın", "gönderin", "share",
  "send"). Warnings are not requests: the verb is negative ("paylaşmayın"), a negation sits between
  the secret and the verb ("asla … istemez"), or the secret belongs to another clause ("Şifrenizi
  unuttuysanız bize yazın"). "Yazın" and "girin" alone are how a customer logs in or pays on the
  tenant's own site, so they count only when the secret goes to the chat, to "us" or to a foreign link;
- `foreign_link`: links to a domain that is neither the tenant's (TenantSettings.own_domains, or
  named by links or e-mail addresses in at least `COMMON_LINK_CHUNKS` clean chunks of the same
  document) nor a public one everybody knows (e-Devlet and other gov.tr sites, the app stores).
  A tenant whose site is named in one document only lists it in own_domains.

The most serious reason wins when several apply, in the order above. Flagged chunks are indexed like
any other (an agent may still see them as suggestions, with a warning); whatever sends replies to
customers on its own must skip every chunk whose metadata carries `FLAG_KEY`. The registry keeps the
count per reason on the document so the tenant admin sees what was flagged.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal, get_args

from retrieval.models import Chunk
from retrieval.text import fold_turkish, normalise_for_match

FlagReason = Literal["assistant_instruction", "secret_request", "foreign_link"]
# Most serious first: a chunk carries the first reason it trips.
FLAG_REASONS: tuple[FlagReason, ...] = get_args(FlagReason)
# The chunk metadata key; its value is one FlagReason.
FLAG_KEY = "flagged"
# Bump when the rules change: documents are screened again on their next ingest (see pipeline.content_hash).
SCREENING_VERSION = "1"
# A domain linked from this many otherwise clean chunks of one document is the tenant's own.
COMMON_LINK_CHUNKS = 3

# Public sites a tenant may send customers to without owning them.
PUBLIC_DOMAINS = frozenset(
    {"gov.tr", "edu.tr", "k12.tr", "bel.tr", "pol.tr", "tsk.tr", "apps.apple.com", "play.google.com"}
)


def _fold(pattern: str) -> re.Pattern[str]:
    # Patterns are written with Turkish letters and lower-case escapes only, so folding them is safe.
    return re.compile(fold_turkish(pattern))


# --- Links ---

_TLDS = (
    "com|net|org|info|biz|xyz|top|site|online|club|shop|store|app|io|co|me|tr|link|click|live|ru|cn|tk"
    "|ml|ga|cf|gq|pw|cc|ws|icu|vip|buzz|today|support|help|pro|tv|eu|de|uk|us|ly|gl|to|sh"
)
_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"'()\[\]]+", re.IGNORECASE)
# A bare host ("evim-odeme.xyz/kart"); an e-mail address's domain is not a link.
_BARE_HOST = re.compile(
    rf"(?<![@\w.-])(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+(?:{_TLDS})\b(?![@\w-])(?:/[^\s<>\"'()]*)?",
    re.IGNORECASE,
)
_EMAIL_DOMAIN = re.compile(r"[\w.+-]+@((?:[a-z0-9-]+\.)+[a-z]{2,})\b", re.IGNORECASE)
_HOST = re.compile(r"^(?:https?://)?([^/:?#\s]+)", re.IGNORECASE)
_FOREIGN_LINK = " xlinkx "
_KNOWN_LINK = " xsitex "


def _host(link: str) -> str:
    found = _HOST.match(link)
    host = (found.group(1) if found else link).lower().rstrip(".,;:!?")
    return host.removeprefix("www.")


def link_hosts(text: str) -> list[str]:
    """Return the host of every link in `text` (lower case, without "www."), in order of appearance."""
    return [_host(m.group()) for m in _links(text)]


def _links(text: str) -> list[re.Match[str]]:
    urls = list(_URL.finditer(text))
    taken = [(m.start(), m.end()) for m in urls]
    bare = [m for m in _BARE_HOST.finditer(text) if not any(s <= m.start() < e for s, e in taken)]
    return sorted(urls + bare, key=lambda m: m.start())


def normalise_domain(domain: str) -> str:
    """Return a domain as the screening compares it: the host of a URL, lower case, without "www."."""
    return _host(domain.strip())


def _is_under(host: str, domains: Iterable[str]) -> bool:
    return any(host == d or host.endswith("." + d) for d in domains)


def is_known_host(host: str, own_domains: Collection[str]) -> bool:
    """Return True when `host` is one of the tenant's domains (or under one) or a public one."""
    return _is_under(host, own_domains) or _is_under(host, PUBLIC_DOMAINS)


# --- Text that addresses the assistant ---

_OVERRIDE = _fold(
    # "disregard everything above", "ignore all previous instructions"; not "ignore the previous e-mail"
    r"\b(?:ignore|disregard|forget|override)\b(?: (?:all|any|the|your|of|my|these|those|every|previous|prior"
    r"|above|earlier|preceding|system))* (?:instructions?|rules|guidelines|prompts?|everything|anything)\b"
    r"|(?:önceki|bundan önceki|sana verilen|verilen|tüm|bütün) (?:talimat|komut|kural|yönerge|mesaj)\w*"
    r"(?: \w+)? (?:yok say(?:ın)?|görmezden gel(?:in)?|unut(?:un)?|dikkate alma(?:yın)?)\b"
    r"|(?:yukarıdaki|yukarıdakileri|yukarıda yazan\w*)(?: \w+){0,2} (?:yok say(?:ın)?|görmezden gel(?:in)?"
    r"|unut(?:un)?|dikkate alma(?:yın)?)\b"
    r"|talimat\w* (?:yok say|görmezden gel|unut|dikkate alma|uyma)\b"
    r"|\bsystem prompt|sistem istem\w*|gizli (?:talimat|kural)\w*"
)
_ROLE_CHANGE = _fold(
    r"\b(?:asistan|yapay zeka|bot|chatbot|dil modeli) olarak(?: \w+){0,2} (?:görev|rol|talimat|sen\b|senin)"
    r"|\b(?:asistan|yapay zeka|bot|chatbot|dil modeli) olarak(?: \w+){0,8} \w+(?:malısın|melisin|acaksın|eceksin)\b"
    r"|\byapay zeka(?:ysan|san|ysanız| isen)\b|\byou are an? (?:ai|language model|assistant|chatbot|bot)\b"
    r"|\byeni (?:görev|rol|talimat)(?:in|ün|ların)\b|\brolünü (?:unut|bırak|değiştir)"
    r"|\b(?:sen artık|artık sen)(?: \w+){0,3} (?:değilsin|olarak|rolünde)\b|\w+ gibi davran\b"
    r"|\byou are now\b|\bfrom now on,? you\b|\bact as (?:an?|the|my)\b|\bpretend (?:to be|you are)\b"
    r"|\byour (?:new|real|actual) (?:task|role|job|instructions?)\b|\bas an? (?:ai|language model)\b"
    r"|\bdeveloper mode\b|\bjailbreak"
)
# Someone talking to the model by name ("Asistan: …", "Not: …"); run on text that keeps punctuation.
_ADDRESS = _fold(
    r"(?:^|[.!?\n]\s*)(?:sevgili |değerli |ey |dear |hey )?(?:ai |sanal |virtual )?"
    r"(?:asistan|yapay zeka|bot|chatbot|assistant|ai|llm)"
    r"\s*[,:]"
    r"|(?:asistan|yapay zeka|bot|model|assistant|ai|llm)(?:a|e|ya|ye|ın|in)? (?:için )?(?:not|talimat|mesaj)\w*"
    r"\s*:|\b(?:note|message|instructions?) (?:to|for) (?:the )?(?:assistant|ai|bot|model|llm)\b"
    r"|(?:^|\n)\s*(?:system|sistem|asistan|assistant)\s*:"
)
# Chat-template markup and the tags our prompts wrap knowledge in: nothing a customer is meant to read.
_MARKUP = _fold(
    r"<\|?(?:im_start|im_end|system|assistant)\|?>|\[/?inst\]|<<sys>>|###\s*(?:instruction|system)"
    r"|</?(?:system|instructions?|belge|bilgi|sohbet)\b[^>]*>"
)
# What the assistant (not a customer, who is "siz") is told to do: a singular imperative, "sen", "you".
_INSTRUCTION = _fold(
    r"\b(?:sen|sana|seni|senin|görevin|rolün|talimatın|cevabın|yanıtın)\b"
    r"|\b(?:söyle|yaz|yanıtla|cevapla|iste|sor|gönder|ilet|yönlendir|uygula|ekle|öner|unut|davran"
    r"|paylaş|bildir|kullan|göster|listele)\b"
    r"|\byou(?:r)?\b|\b(?:always|never|must|should)\b"
)
# The customer named in the third person as the object of an order: "müşteriye şunu söyle".
_ABOUT_CUSTOMER = _fold(
    r"\b(?:müşteri|kullanıcı)(?:ye|ya|den|dan|yi|yı)\b(?: \w+){0,6} (?:söyle|yaz|iste|sor|ilet|gönder"
    r"|yönlendir|öner|ver|paylaş|bildir|yanıtla|cevapla)\b"
    r"|\b(?:tell|ask) the (?:customer|user)\b"
)


def addresses_assistant(text: str) -> bool:
    """Return True when `text` gives the assistant orders rather than telling a customer something."""
    form = _form(text)
    if _OVERRIDE.search(form) or _ROLE_CHANGE.search(form) or _ABOUT_CUSTOMER.search(form):
        return True
    raw = fold_turkish(text)
    return bool(_MARKUP.search(raw)) or (bool(_ADDRESS.search(raw)) and bool(_INSTRUCTION.search(form)))


# --- Requests for secrets ---

# Secrets in the form a request names them; "şifrele-" is encrypting, "şifrem" the customer's own
# ("Şifremi unuttum" is a button), "son kullanma tarihi" counts only next to a card (coupons expire too).
_SECRET = _fold(
    r"\bşifre(?!le|m)\w*|\bparola(?!m)\w*|\bpin\b|\bsms (?:ile )?(?:gelen )?(?:doğrulama )?kod\w*"
    r"|\bdoğrulama kod\w*|\btek kullanımlık (?:şifre|parola|kod)\w*|\botp\b|\b3d (?:secure )?(?:şifre|kod)\w*"
    r"|\bcvv2?\b|\bcvc2?\b|\bcv2\b|\bgüvenlik kod\w*|\b(?:üç|3) haneli (?:güvenlik )?kod\w*"
    r"|\bkart\w* (?:numara|bilgi)\w*|\bson kullanma tarih\w*"
    r"|\bpasswords?\b|\bpasscode\b|\bverification code\b|\bsecurity code\b|\bone time (?:code|password)\b"
    r"|\bsms code\b|\bcard (?:s )?(?:number|details)\b|\bexpir(?:y|ation) date\b"
)
_CARD = _fold(r"\bkart|\bcard\b")
_EXPIRY = _fold(r"son kullanma|expir")
_LAST_DIGITS = _fold(r"son (?:4|dört) (?:hane|rakam)|last (?:4|four) digits")

# Turkish request verbs; the positive forms only, so "paylaşmayın" / "göndermeyin" never match.
_TR_SUFFIX = (
    r"(?:y?(?:in|ın|un|ün)(?:iz|ız|uz|üz)?|y?[ae]bilir(?:siniz|sin)?|y?[ae]bilir mi(?:siniz|sin)"
    r"|[aeıiuü]?r mı(?:sınız|sın)|[aeıiuü]?r mi(?:siniz|sin)|m[ae]n(?:ız|iz)? (?:gerek(?!me|mi)\w*|yeterli)"
    r"|m[ae]l[ıi]s[ıi]n(?:[ıi]z)?)?"
)
_TR_STRONG = _fold(rf"\b(?:paylaş|gönder|ilet|söyle|bildir|ver|yolla){_TR_SUFFIX}\b|\bisteyin(?:iz)?\b")
_TR_WEAK = _fold(rf"\b(?:yaz|gir|tuşla){_TR_SUFFIX}\b")
_EN_STRONG = re.compile(r"\b(?:share|send|tell|give|provide|submit|forward|text|reply with)\b")
_EN_WEAK = re.compile(r"\b(?:enter|type|write|input|paste)\b")
_EN_NEGATION = frozenset({"never", "not", "don", "dont", "t", "no", "nobody"})
# Where a typed secret ends up somewhere other than the tenant's own site.
_DESTINATION = _fold(
    rf"\b(?:{_FOREIGN_LINK.strip()}|bu sohbet\w*|sohbet(?:e|imize|te)|(?:bu |bir )?mesaj(?:a|la|ımıza)"
    r"|mesaj olarak|(?:yanıt|cevap) olarak|chat\w*|buraya|aşağıya|bize|bana|temsilci\w*|whatsapp\w*"
    r"|here|below|us|me|reply)\b"
)
# A word between the secret and the verb that closes the secret's clause or negates the request.
_BARRIER = _fold(
    # conditionals ("unuttuysanız", "olursa"), participles ("istediğiniz"), "-ınca", "-ken", infinitives
    r"\w+(?:[aeıiouü]r|[dt][ıiuü]y|m[ae]z)s[ae](?:n[ıi]z|n)?|\w+[dt][ıiuü]ğ\w*|\w+[ıiuü]nc[ae]|\w+ken"
    r"|\w+m[ae]k|için|ama|ancak|fakat|yoksa|asla|hiç|hiçbir|kimse\w*|istemez\w*|istemey\w*|sormaz\w*"
    r"|never|not|if|when|unless|but"
)
# Genitive secrets ("şifrenizin güvenliği") are not the object of the verb after them.
_GENITIVE = re.compile(r"\w{3,}(?:n[iu]n|[iu]n)$")
_CLAUSE_BREAK = re.compile(r"[.!?;:,\n]+")
_WINDOW = 6


@dataclass(frozen=True)
class _Hit:
    start: int  # token index of the first word
    end: int  # token index of the last word
    text: str


def _hits(pattern: re.Pattern[str], form: str) -> list[_Hit]:
    return [
        _Hit(form.count(" ", 0, m.start()), form.count(" ", 0, m.end() - 1), m.group())
        for m in pattern.finditer(form)
    ]


def _form(text: str) -> str:
    return fold_turkish(normalise_for_match(text))


def _is_secret(hit: _Hit, clause: str) -> bool:
    if _EXPIRY.search(hit.text) and not _CARD.search(clause):
        return False
    return not (_CARD.search(hit.text) and _LAST_DIGITS.search(clause))


def _clear_between(tokens: list[str], start: int, end: int) -> bool:
    return not any(_BARRIER.fullmatch(t) for t in tokens[start:end])


def _requests_secret_in_clause(clause: str) -> bool:
    tokens = clause.split()
    secrets = [h for h in _hits(_SECRET, clause) if _is_secret(h, clause)]
    if not secrets:
        return False
    has_destination = _DESTINATION.search(clause) is not None
    # Turkish puts the object before the verb ("şifrenizi bize yazın"), English after ("send us your PIN").
    for verb in _hits(_TR_STRONG, clause) + (_hits(_TR_WEAK, clause) if has_destination else []):
        for secret in secrets:
            gap = verb.start - secret.end
            if (
                0 < gap <= _WINDOW
                and not _GENITIVE.fullmatch(tokens[secret.end])
                and _clear_between(tokens, secret.end + 1, verb.start)
            ):
                return True
    for verb in _hits(_EN_STRONG, clause) + (_hits(_EN_WEAK, clause) if has_destination else []):
        if _EN_NEGATION.intersection(tokens[max(0, verb.start - 3) : verb.start]):
            continue
        for secret in secrets:
            gap = secret.start - verb.end
            if 0 < gap <= _WINDOW and _clear_between(tokens, verb.end + 1, secret.start):
                return True
    return False


def requests_secret(text: str) -> bool:
    """Return True when `text` asks the reader to write, share or send a password, code or card detail."""
    return any(_requests_secret_in_clause(_form(c)) for c in _CLAUSE_BREAK.split(text) if c.strip())


# --- The screening step ---


def _mark_links(text: str, own_domains: Collection[str]) -> tuple[str, list[str]]:
    """Return `text` with each link replaced by a token saying whether it is known, and the foreign hosts."""
    parts: list[str] = []
    foreign: list[str] = []
    last = 0
    for match in _links(text):
        host = _host(match.group())
        known = is_known_host(host, own_domains)
        if not known:
            foreign.append(host)
        parts += [text[last : match.start()], _KNOWN_LINK if known else _FOREIGN_LINK]
        last = match.end()
    parts.append(text[last:])
    return "".join(parts), foreign


def screen_text(text: str, own_domains: Collection[str] = ()) -> tuple[FlagReason, ...]:
    """Return every reason `text` must not be sent automatically, most serious first (empty when clean)."""
    own = {normalise_domain(d) for d in own_domains}
    marked, foreign = _mark_links(text, own)
    found: set[FlagReason] = set()
    if addresses_assistant(marked):
        found.add("assistant_instruction")
    if requests_secret(marked):
        found.add("secret_request")
    if foreign:
        found.add("foreign_link")
    return tuple(r for r in FLAG_REASONS if r in found)


def _chunk_text(chunk: Chunk) -> str:
    # The title and section are shown with the text (and a FAQ question is its title), so they count too.
    return "\n".join(part for part in (chunk.title, chunk.section, chunk.text) if part)


def common_domains(texts: Sequence[str], own_domains: Collection[str] = ()) -> set[str]:
    """Return `own_domains` plus the hosts named (linked, or in an e-mail address) by at least
    COMMON_LINK_CHUNKS of `texts` that ask for no secret and give no orders.

    A tenant names its own site and addresses all over its knowledge; a poisoned row links elsewhere once.
    """
    counts: Counter[str] = Counter()
    for text in texts:
        hosts = set(link_hosts(text)) | {m.group(1).lower() for m in _EMAIL_DOMAIN.finditer(text)}
        # Screened with the hosts still foreign, so a row that sends secrets to one never vouches for it.
        if hosts and not {"assistant_instruction", "secret_request"} & set(screen_text(text, own_domains)):
            counts.update(hosts)
    return {host for host, n in counts.items() if n >= COMMON_LINK_CHUNKS} | set(own_domains)


def screen_chunks(chunks: Sequence[Chunk], own_domains: Collection[str] = ()) -> list[Chunk]:
    """Return the chunks of one document, those that trip a rule with `FLAG_KEY` set to their reason."""
    texts = [_chunk_text(c) for c in chunks]
    own = common_domains(texts, {normalise_domain(d) for d in own_domains})
    screened: list[Chunk] = []
    for chunk, text in zip(chunks, texts, strict=True):
        reasons = screen_text(text, own)
        screened.append(
            replace(chunk, metadata={**chunk.metadata, FLAG_KEY: reasons[0]}) if reasons else chunk
        )
    return screened


def flag_counts(chunks: Iterable[Chunk]) -> dict[str, int]:
    """Return how many of `chunks` are flagged, per reason code."""
    return dict(Counter(str(c.metadata[FLAG_KEY]) for c in chunks if c.metadata.get(FLAG_KEY)))
