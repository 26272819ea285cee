"""KVKK redaction: replace personal data with placeholders before anything is embedded or stored.

Built-in detectors, in the order they claim text:

- e-mail addresses -> ``[EPOSTA]``
- Turkish IBANs (TR + 24 digits, spaces allowed, mod-97 check) -> ``[IBAN]``
- T.C. Kimlik numbers (11 digits, official checksum) -> ``[TCKN]``
- payment card numbers (13-19 digits, spaces or dashes, Luhn check) -> ``[KART]``
- Turkish phone numbers (+90 / 0090 / 0 / bare 5xx mobile, common spellings) -> ``[TELEFON]``
- IBANs of other countries (country-specific length and format plus mod-97, ``python-stdnum``) -> ``[IBAN]``
- phone numbers of other countries written with their country code (+49 ..., 0044 ...), valid
  for that country's numbering plan (``phonenumbers``) -> ``[TELEFON]``
- labelled passport numbers ("pasaport no: U12345678") -> ``[PASAPORT]``
- labelled dates of birth ("doğum tarihi: 12.03.1985") -> ``[DOGUM_TARIHI]``
- Turkish licence plates ("34 ABC 123": province 01-81, 1-3 letters, 2-4 digits) -> ``[PLAKA]``
- a card's CVV: labelled ("CVV 123", "güvenlik kodu") or the 3-4 digits right after a card number
  (an expiry date may stand between them) -> ``[CVV]``

Names and postal addresses are not detected: no offline method measured on Turkish text is used.

A business's contact points are no one's personal data (KVKK protects natural persons) and are kept, so
a FAQ answer that gives them can still be sent: role mailboxes ("destek@…", "info@…", "kvkk@…") and the
Turkish non-geographic business numbers 0850 and 0800. A tenant lists its other public values (its IBAN,
a geographic call-centre number) in `pii_allowed`.

Numbers shaped like an IBAN, TCKN or card that fail the check digits are look-alikes
(order numbers, tracking codes): they are kept, and they also stop a later detector
from redacting a piece of them. Digit runs are matched whole, never in part.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import phonenumbers
from stdnum import iban as stdnum_iban

EMAIL = "EPOSTA"
IBAN = "IBAN"
TCKN = "TCKN"
CARD = "KART"
PHONE = "TELEFON"
PASSPORT = "PASAPORT"
BIRTH_DATE = "DOGUM_TARIHI"
PLATE = "PLAKA"
CVV = "CVV"

_EMAIL_RE = re.compile(r"[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)*\.[^\W\d_]{2,}")
# The two check digits follow "TR"; the rest is 22 digits that people group in fours.
_IBAN_RE = re.compile(r"(?<![\w])TR ?\d\d(?: ?\d){22}(?!\d)", re.IGNORECASE)
_TCKN_RE = re.compile(r"(?<!\d)[1-9]\d{10}(?!\d)")
# No issuer starts with 0, which also keeps "0090..." phone numbers out of here.
_CARD_RE = re.compile(
    r"(?<!\d)(?:"
    r"[1-9]\d{12,18}"  # written as one run
    r"|[1-9]\d{3}(?:[ \-]\d{4}){2,3}(?:[ \-]\d{1,3})?"  # 4-4-4-4(-3), 4-4-4-1..3
    r"|[1-9]\d{3}[ \-]\d{6}[ \-]\d{4,5}"  # Amex / Diners 4-6-5, 4-6-4
    r")(?!\d)"
)
_SEP = r"[ .\-]?"
_AREA = r"(?:[2-5]\d\d|8[05]0)"  # landline (2xx-4xx), mobile 5xx, 800 / 850 numbers
_SUBSCRIBER = rf"\d{{3}}{_SEP}\d\d{_SEP}\d\d"
_PHONE_RE = re.compile(
    r"(?<![\d+])(?:"
    # with a country code or trunk 0, any area code, optionally in parentheses
    rf"(?:(?:\+|00)?90|\+?\(\+?90\)){_SEP} ?(?:\(0?{_AREA}\)|0?{_AREA}){_SEP} ?{_SUBSCRIBER}"
    rf"|0 ?(?:\({_AREA}\)|{_AREA}){_SEP} ?{_SUBSCRIBER}"
    rf"|\(0?{_AREA}\){_SEP} ?{_SUBSCRIBER}"
    # bare: only mobile numbers, a bare landline is too easily some other number
    rf"|5\d\d{_SEP}{_SUBSCRIBER}"
    r")(?!\d)"
)
_PLACEHOLDER_NAME_RE = re.compile(r"\w+")
# Other countries: two letters, two check digits, then 11-30 letters and digits, in groups of four or not.
_FOREIGN_IBAN_RE = re.compile(
    r"(?<![\w])(?i:[a-z]{2})\d\d(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?)(?![\w])"
)
# Only what follows a label is taken: a bare "U12345678" is as likely a product code.
_PASSPORT_RE = re.compile(
    r"(?i:pasaport|passport)\s*(?i:numaras[ıi]|numaram|numara|no|nr|number|num)?\.?\s*[:#]?\s*"
    r"(?P<value>[A-Z]{0,3} ?\d{5,9})(?!\w)"
)
_MONTHS = (
    "ocak|şubat|subat|mart|nisan|mayıs|mayis|haziran|temmuz|ağustos|agustos|eylül|eylul|ekim|kasım|kasim|aralık|aralik"
    "|january|february|march|april|may|june|july|august|september|october|november|december"
)
_BIRTH_DATE_RE = re.compile(
    r"(?i:do[ğg]um\s*(?:tarihi[mn]?|tarihiniz|günüm|g[üu]n[üu])|d\.\s?t\.|date of birth|birth ?date|dob)"
    r"\s*(?:is|:)?\s*"
    r"(?P<value>\d{1,2}\s?[./\-]\s?\d{1,2}\s?[./\-]\s?(?:19|20)\d\d"
    r"|(?:19|20)\d\d-\d\d-\d\d"
    rf"|\d{{1,2}}\s+(?i:{_MONTHS})\s+(?:19|20)\d\d)(?!\d)"
)
# Turkish plates: province 01-81, then 1 letter + 4 digits, 2 letters + 3-4 digits or 3 letters + 2-3 digits.
_PLATE_RE = re.compile(
    r"(?<!\w)(?<!\d[.,/])(?:0[1-9]|[1-7]\d|8[01]) ?"
    r"(?P<letters>[A-Z] ?\d{4}|[A-Z]{2} ?\d{3,4}|[A-Z]{3} ?\d{2,3})(?!\w|[.,/]\d)"
)
# Units, currencies and product words that give "10 TL 250"-shaped text with no plate in it.
_NOT_PLATE_LETTERS = frozenset(
    [
        "TL",
        "TRY",
        "USD",
        "EUR",
        "GBP",
        "KG",
        "GR",
        "MG",
        "LT",
        "ML",
        "CM",
        "MM",
        "KM",
        "MB",
        "GB",
        "TB",
        "KB",
        "HZ",
        "MHZ",
        "GHZ",
        "KW",
        "KWH",
        "MT",
        "AD",
        "ADT",
        "PK",
        "NO",
        "TEL",
        "FAX",
        "PRO",
        "MAX",
        "SE",
        "TV",
        "HD",
        "FHD",
        "UHD",
        "LED",
        "USB",
        "SSD",
        "HDD",
        "RAM",
        "CPU",
        "GPU",
        "SIM",
        "LTE",
        "GSM",
        "MP",
        "XL",
        "XXL",
    ]
)
_CVV_LABEL = r"(?i:cvv2?|cvc2?|cvn|güvenlik kodu|guvenlik kodu|kart doğrulama kodu|kart dogrulama kodu)"
_CVV_RE = re.compile(rf"{_CVV_LABEL}\s*(?:no|numarası)?\s*[:=]?\s*(?P<value>\d{{3,4}})(?!\d)")
# What may follow a card number before its CVV: separators, an expiry date, a CVV label.
_AFTER_CARD_RE = re.compile(
    r"[\s,;/|]*(?:(?i:son kullanma(?: tarihi)?|skt|exp(?:iry)?)\s*[:=]?\s*)?"
    r"(?:(?:0[1-9]|1[0-2]) ?/ ?(?:\d\d){1,2}[\s,;|]*)?"
    rf"(?:{_CVV_LABEL}\s*[:=]?\s*)?(?P<value>\d{{3,4}})(?![\d/.,]\d|\d)"
)


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdecimal())


def is_valid_tckn(number: str) -> bool:
    """Return True when `number` is 11 digits, does not start with 0 and passes the T.C. Kimlik checksum."""
    if len(number) != 11 or not number.isdecimal() or number[0] == "0":
        return False
    d = [int(ch) for ch in number]
    d10 = ((d[0] + d[2] + d[4] + d[6] + d[8]) * 7 - (d[1] + d[3] + d[5] + d[7])) % 10
    d11 = sum(d[:10]) % 10
    return d[9] == d10 and d[10] == d11


def is_valid_iban(iban: str) -> bool:
    """Return True when `iban` (spaces allowed) passes the ISO 13616 mod-97 check."""
    compact = iban.replace(" ", "").upper()
    if len(compact) < 5 or not compact.isalnum():
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def _is_card_number(number: str) -> bool:
    return 13 <= len(_digits(number)) <= 19 and is_valid_luhn(number)


def is_valid_luhn(number: str) -> bool:
    """Return True when the digits of `number` pass the Luhn check used by payment cards."""
    digits = _digits(number)
    if not digits:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2 == 1:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


@dataclass(frozen=True)
class ExtraPattern:
    """A tenant-specific kind of personal data, e.g. ExtraPattern("MUSTERI_NO", r"MŞ-\\d{6}")."""

    name: str
    regex: str

    @property
    def placeholder(self) -> str:
        return f"[{self.name}]"


@dataclass
class RedactionResult:
    """Redacted text and how many of each placeholder (key without brackets, e.g. "TCKN") went in."""

    text: str
    counts: dict[str, int] = field(default_factory=dict)
    # (placeholder key, the original value) of each redaction, in order of position.
    found: list[tuple[str, str]] = field(default_factory=list)


def _is_foreign_iban(value: str) -> bool:
    return stdnum_iban.is_valid(value.upper())


def _foreign_phones(text: str) -> Iterator[tuple[int, int, str]]:
    if "+" not in text and "00" not in text:
        return
    for match in phonenumbers.PhoneNumberMatcher(text, "TR", leniency=phonenumbers.Leniency.VALID):
        # Only numbers written with their country code: a bare digit run is too often something else.
        if match.raw_string.lstrip("(").startswith(("+", "00")):
            yield match.start, match.end, match.raw_string


def _regex_finder(pattern: re.Pattern[str]) -> Callable[[str], Iterator[tuple[int, int, str]]]:
    def find(text: str) -> Iterator[tuple[int, int, str]]:
        for match in pattern.finditer(text):
            start, end = match.span("value") if "value" in pattern.groupindex else match.span()
            yield start, end, text[start:end]

    return find


_SHORT_TAIL_RE = re.compile(r"[ \-]\d{1,3}$")


def _cards(text: str) -> Iterator[tuple[int, int, str]]:
    for match in _CARD_RE.finditer(text):
        start, end = match.span()
        value = match.group()
        tail = _SHORT_TAIL_RE.search(value)
        # "4111 1111 1111 1111 12/27": the short group after a 16-digit card is its expiry or CVV.
        if not _is_card_number(value) and tail and _is_card_number(value[: tail.start()]):
            end = start + tail.start()
        yield start, end, text[start:end]


def _plates(text: str) -> Iterator[tuple[int, int, str]]:
    for match in _PLATE_RE.finditer(text):
        letters = "".join(ch for ch in match.group("letters") if ch.isalpha())
        if letters not in _NOT_PLATE_LETTERS:
            yield match.start(), match.end(), match.group()


@dataclass(frozen=True)
class _Detector:
    name: str
    pattern: re.Pattern[str] | None
    # None: every match is personal data. Otherwise matches failing the check are look-alikes.
    check: Callable[[str], bool] | None = None
    # Instead of `pattern`: yields (start, end, matched text).
    find: Callable[[str], Iterable[tuple[int, int, str]]] | None = None

    def spans(self, text: str) -> Iterable[tuple[int, int, str]]:
        if self.find is not None:
            return self.find(text)
        assert self.pattern is not None
        return _regex_finder(self.pattern)(text)


_BUILT_IN: tuple[_Detector, ...] = (
    _Detector(EMAIL, _EMAIL_RE),
    _Detector(IBAN, _IBAN_RE, is_valid_iban),
    _Detector(IBAN, _FOREIGN_IBAN_RE, _is_foreign_iban),
    _Detector(PASSPORT, _PASSPORT_RE),
    _Detector(BIRTH_DATE, _BIRTH_DATE_RE),
    _Detector(TCKN, _TCKN_RE, is_valid_tckn),
    _Detector(CARD, None, _is_card_number, find=_cards),
    _Detector(CVV, _CVV_RE),
    _Detector(PHONE, _PHONE_RE),
    _Detector(PHONE, None, find=_foreign_phones),
    _Detector(PLATE, None, find=_plates),
)


def _cvv_after_cards(text: str, redacted: list[tuple[int, int, str]], claimed: list[tuple[int, int]]):
    """Return the CVV spans written right after a redacted card number (an expiry may come between)."""
    found = []
    for _, end, name in redacted:
        if name != CARD:
            continue
        match = _AFTER_CARD_RE.match(text, end)
        if match and match.end() - end <= 40:
            start, stop = match.span("value")
            if not _overlaps(start, stop, claimed):
                found.append((start, stop, CVV))
    return found


# Mailboxes of a role, not of a person (the part before "@").
_ROLE_MAILBOXES = frozenset(
    "info bilgi destek support iletisim contact kvkk satis sales kurumsal corporate musteri "  # noqa: SIM905
    "musterihizmetleri hizmet yardim help noreply no-reply muhasebe fatura ik hr insankaynaklari basvuru "
    "siparis iade kargo pazarlama marketing webmaster hello teklif bayilik basin press".split()
)
# Non-geographic business numbers (0850, 0800): companies' lines, never a person's.
_BUSINESS_AREAS = ("850", "800")


def _is_business_contact(name: str, value: str) -> bool:
    """Return True for a role mailbox or a Turkish 0850/0800 number: kept, not personal data."""
    if name == EMAIL:
        return value.split("@", 1)[0].lower() in _ROLE_MAILBOXES
    if name == PHONE:
        digits = _digits(value)
        national = digits[2:] if digits.startswith("90") and len(digits) == 12 else digits.lstrip("0")
        return national.startswith(_BUSINESS_AREAS) and len(national) == 10
    return False


def _overlaps(start: int, end: int, spans: Iterable[tuple[int, int]]) -> bool:
    return any(start < s_end and s_start < end for s_start, s_end in spans)


def _allowed_keys(value: str) -> set[str]:
    # Spacing, case and the phone prefix (+90 / 0) differ between configuration and text.
    digits = _digits(value)
    keys = {value.strip().lower()}
    if len(digits) >= 10:
        keys |= {digits, digits[-10:]}
    return keys


def _match_key(name: str, value: str) -> str:
    if name == PHONE:
        return _digits(value)[-10:]
    if name in (IBAN, TCKN, CARD):
        return _digits(value)
    return value.strip().lower()


# The memo of Redactor.__call__: at most this many texts of at most this many characters (about 1 MB).
_MEMO_TEXTS = 256
_MEMO_CHARS = 1_000


class Redactor:
    """Redacts built-in personal data plus one tenant's extra patterns; build once, call per text."""

    def __init__(self, extra_patterns: Sequence[ExtraPattern] = (), allowed: Iterable[str] = ()) -> None:
        """`allowed` lists the tenant's own public values (company IBAN, call-centre number) to keep."""
        self._extra = tuple(_compile_extra(p) for p in extra_patterns)
        self._allowed = frozenset(key for value in allowed if value.strip() for key in _allowed_keys(value))
        # Short texts redacted before: the assistant redacts its replies again, and they are the tenant's
        # knowledge, the same few hundred texts over and over (4% of a suggest request's CPU otherwise).
        self._seen: dict[str, str] = {}

    def __call__(self, text: str) -> str:
        """Return `text` with personal data replaced by placeholders."""
        if len(text) > _MEMO_CHARS:
            return self.redact(text).text
        done = self._seen.get(text)
        if done is None:
            done = self.redact(text).text
            if len(self._seen) >= _MEMO_TEXTS:
                self._seen.clear()  # bounded; a plain dict's get/set/clear are safe across threads
            self._seen[text] = done
        return done

    def found(self, text: str) -> list[tuple[str, str]]:
        """Return (placeholder key, original value) for each piece of personal data in `text`."""
        return self.redact(text).found

    def redact(self, text: str) -> RedactionResult:
        """Return the redacted text and the count of each placeholder type."""
        redacted: list[tuple[int, int, str]] = []
        claimed: list[tuple[int, int]] = []
        for detector in _BUILT_IN:
            for start, end, value in detector.spans(text):
                if _overlaps(start, end, claimed):
                    continue
                claimed.append((start, end))
                if detector.check is not None and not detector.check(value):
                    continue  # a look-alike: keep it, and keep other detectors off it
                if _is_business_contact(detector.name, value):
                    continue
                if _match_key(detector.name, value) in self._allowed:
                    continue
                redacted.append((start, end, detector.name))
        redacted += _cvv_after_cards(text, redacted, claimed)
        # Extra patterns may match inside a kept look-alike (a tenant's 11-digit order number is
        # exactly what a look-alike is), but never inside text already redacted.
        for detector in self._extra:
            assert detector.pattern is not None  # extra patterns are plain regexes (_compile_extra)
            for match in detector.pattern.finditer(text):
                start, end = match.span()
                if start == end or _overlaps(start, end, [(s, e) for s, e, _ in redacted]):
                    continue
                if _match_key(detector.name, match.group()) in self._allowed:
                    continue
                redacted.append((start, end, detector.name))
        return _apply(text, redacted)


def _compile_extra(pattern: ExtraPattern) -> _Detector:
    if not _PLACEHOLDER_NAME_RE.fullmatch(pattern.name):
        raise ValueError(
            f"Extra pattern name {pattern.name!r} must be letters, digits or underscores (e.g. MUSTERI_NO)"
        )
    try:
        compiled = re.compile(pattern.regex)
    except re.error as err:
        raise ValueError(
            f"Extra pattern {pattern.name} has an invalid regex {pattern.regex!r}: {err}"
        ) from err
    if compiled.fullmatch(""):
        raise ValueError(
            f"Extra pattern {pattern.name} regex {pattern.regex!r} matches empty text; it must match something"
        )
    return _Detector(pattern.name, compiled)


def _apply(text: str, redacted: list[tuple[int, int, str]]) -> RedactionResult:
    parts: list[str] = []
    counts: dict[str, int] = {}
    found: list[tuple[str, str]] = []
    cursor = 0
    for start, end, name in sorted(redacted):
        parts.append(text[cursor:start])
        parts.append(f"[{name}]")
        counts[name] = counts.get(name, 0) + 1
        found.append((name, text[start:end]))
        cursor = end
    parts.append(text[cursor:])
    return RedactionResult("".join(parts), counts, found)


def redact(text: str, extra_patterns: Sequence[ExtraPattern] = ()) -> RedactionResult:
    """Return `text` with personal data replaced by placeholders, and the count of each type.

    Compiles `extra_patterns` on every call; build a `Redactor` once per tenant instead.
    """
    return Redactor(extra_patterns).redact(text)
