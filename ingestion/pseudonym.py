"""Ids that may carry personal data, stored and logged without it.

File names, text-document ids and conversation ids are often personal data themselves
(``musteri-28609139020.txt``, ``chat:wa-905326345416``: WhatsApp conversation ids are the customer's
number). `IdGuard.id` keeps an id without personal data as it is, and turns one with personal data into
its redacted form plus a keyed hash of the raw value (HMAC-SHA256 with the deployment's secret, written
in letters only so the tag can never look like a number): ``musteri-[TCKN].txt~kqzvbmtrlpxahdse``. The
result is stable, distinct for distinct raw ids, free of the raw value, and a fixed point (guarding it
again returns it unchanged), so the API addresses a document by the id the tenant gave by guarding that
id the same way, and by the guarded id it returned.

`subject_key` is the keyed hash of one personal value (a phone number, an e-mail address, a TCKN),
normalised so its spellings meet: what erasure by phone or e-mail looks up.

The secret comes from `INVEKTO_ID_SECRET`, else from `<data dir>/id_secret`, created on first use.
Without the secret nobody can test a guessed TCKN or phone number against a stored tag.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from .redact import EMAIL, IBAN, PHONE, TCKN, Redactor

SECRET_FILE = "id_secret"
_TAG_LETTERS = 16
# A guarded id may grow to this length even when the raw id is shorter (placeholder and tag).
_MIN_GUARDED = 64
_ALPHABET = "abcdefghijklmnopqrstuvwxyz"
# The kinds of personal value a customer's erasure request can name.
SUBJECT_KINDS = (PHONE, EMAIL, TCKN, IBAN)

_BUILT_IN = Redactor()


def _letters(digest: bytes, count: int) -> str:
    number = int.from_bytes(digest, "big")
    out = []
    for _ in range(count):
        number, rest = divmod(number, len(_ALPHABET))
        out.append(_ALPHABET[rest])
    return "".join(out)


def normalise_subject(kind: str, value: str) -> str:
    """Return the form of a personal value its spellings share: a phone's last 10 digits, a lower-case
    e-mail, the digits of a TCKN, the compact upper-case IBAN."""
    if kind == PHONE:
        return "".join(ch for ch in value if ch.isdecimal())[-10:]
    if kind == IBAN:
        return "".join(value.split()).upper()
    if kind == TCKN:
        return "".join(ch for ch in value if ch.isdecimal())
    return value.strip().lower()


class IdGuard:
    """Guards ids and titles with one deployment secret; build once and share."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("The id secret must be at least 16 bytes")
        self._secret = secret

    def tag(self, value: str) -> str:
        digest = hmac.new(self._secret, value.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()
        return _letters(digest, _TAG_LETTERS)

    def id(self, raw: str) -> str:
        """Return `raw` unchanged if it carries no personal data, else its redacted form and keyed tag, no
        longer than `raw` (or _MIN_GUARDED characters): an id the API accepts fits its registry column
        after guarding too (PostgreSQL enforces the length). The tag alone keeps distinct ids distinct."""
        redacted = _BUILT_IN(raw)
        if redacted == raw:
            return raw
        tag = self.tag(raw)
        room = max(len(raw), _MIN_GUARDED) - len(tag) - 1
        if len(redacted) > room:
            cut = redacted[:room]
            redacted = cut if _BUILT_IN(cut) == cut else ""
        return f"{redacted}~{tag}"

    def maybe_id(self, raw: str | None) -> str | None:
        return None if raw is None else self.id(raw)

    @staticmethod
    def text(raw: str | None) -> str | None:
        """Return a title, file name or error message with its personal data redacted (no tag)."""
        return None if raw is None else _BUILT_IN(raw)

    @staticmethod
    def found(text: str) -> list[tuple[str, str]]:
        """Return (kind, value) of each piece of personal data the built-in detectors find in `text`."""
        return _BUILT_IN.found(text) if text else []

    def subject_key(self, kind: str, value: str) -> str:
        """Return the keyed hash of one personal value (see `normalise_subject`), hex."""
        normal = f"{kind}:{normalise_subject(kind, value)}"
        return hmac.new(self._secret, normal.encode(), hashlib.sha256).hexdigest()

    def subject_keys(self, texts: Iterable[str]) -> set[str]:
        """Return the keys of every phone, e-mail, TCKN and IBAN found in `texts`."""
        return {self.subject_key(kind, value) for kind, value in personal_values(texts)}


def personal_values(texts: Iterable[str]) -> Iterator[tuple[str, str]]:
    """Yield (kind, value) for each phone number, e-mail, TCKN and IBAN in `texts`."""
    for text in texts:
        if text:
            for kind, value in _BUILT_IN.found(text):
                if kind in SUBJECT_KINDS:
                    yield kind, value


def load_id_secret(data_dir: Path, configured: str | None = None) -> bytes:
    """Return the deployment's id secret: `configured` (INVEKTO_ID_SECRET), else `<data_dir>/id_secret`,
    which is created with a random secret (mode 0600) the first time."""
    if configured:
        return configured.encode()
    path = Path(data_dir) / SECRET_FILE
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process wrote it first
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(secrets.token_hex(32))
        out.flush()
        os.fsync(out.fileno())
    return bytes.fromhex(path.read_text(encoding="ascii").strip())


def guard_for(settings: Any) -> IdGuard:
    """Return the IdGuard of the deployment `settings` (a retrieval.settings.Settings) describe."""
    configured = settings.id_secret.get_secret_value() if settings.id_secret else None
    return IdGuard(load_id_secret(settings.data_dir, configured))


# --- Log lines ---


def _redact_arg(value: Any) -> Any:
    if value is None or isinstance(value, int | float):
        return value
    if not isinstance(value, str):  # a URL object, a path: redacted only if its text carries something
        text = str(value)
        redacted = _redact_arg(text)
        return value if redacted == text else redacted
    if "%" in value:  # an access log's path: "%40" is an "@"
        decoded = unquote(value)
        redacted = _BUILT_IN(decoded)
        return redacted if redacted != decoded else value
    return _BUILT_IN(value)


_installed = False


def install_log_redaction() -> None:
    """Redact personal data in every log record's message, arguments (access log paths, file names and
    conversation ids in error lines; their shape is kept) and traceback. Idempotent."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            if isinstance(record.msg, str):
                record.msg = _BUILT_IN(record.msg)
            if isinstance(record.args, tuple):
                record.args = tuple(_redact_arg(a) for a in record.args)
            elif isinstance(record.args, dict):
                record.args = {k: _redact_arg(v) for k, v in record.args.items()}
            if record.exc_info and not record.exc_text:  # formatters reuse exc_text: the traceback too
                record.exc_text = _BUILT_IN(logging.Formatter().formatException(record.exc_info))
        except Exception:  # a log line must never fail because of redaction
            pass
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
