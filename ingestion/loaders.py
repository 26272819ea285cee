"""Load one tenant file (PDF, DOCX, PPTX, XLSX, HTML, Markdown, TXT, CSV, JSON) into titled, sectioned text."""

from __future__ import annotations

import functools
import io
import json
import os
import re
import unicodedata
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import filetype

if TYPE_CHECKING:
    from unstructured.documents.elements import Element

# unstructured pings packages.unstructured.io when imported and after every partition call, and
# prints a sales banner; we run offline and must not phone home. Set before unstructured is imported.
for _opt_out in ("DO_NOT_TRACK", "SCARF_NO_ANALYTICS", "UNSTRUCTURED_DISABLE_NOTICE"):
    if not os.environ.get(_opt_out, "").strip():
        os.environ[_opt_out] = "1"

MiB = 1024 * 1024
DEFAULT_MAX_BYTES = 50 * MiB
# Zip bomb limits, checked on the ZIP directory before anything is decompressed.
MAX_UNPACKED_BYTES = 200 * MiB
MAX_COMPRESSION_RATIO = 100
MAX_ZIP_MEMBERS = 10_000

DocumentKind = Literal["pdf", "docx", "pptx", "xlsx", "html", "markdown", "text", "csv", "json"]

MIME_TYPES: dict[DocumentKind, str] = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "html": "text/html",
    "markdown": "text/markdown",
    "text": "text/plain",
    "csv": "text/csv",
    "json": "application/json",
}
_LABELS: dict[DocumentKind, str] = {
    "pdf": "PDF",
    "docx": "DOCX (Word)",
    "pptx": "PPTX (PowerPoint)",
    "xlsx": "XLSX (Excel)",
    "html": "HTML",
    "markdown": "Markdown",
    "text": "plain text",
    "csv": "CSV",
    "json": "JSON",
}
_EXTENSIONS: dict[str, DocumentKind] = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".pptx": "pptx",
    ".xlsx": "xlsx",
    ".html": "html",
    ".htm": "html",
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
    ".csv": "csv",
    ".json": "json",
}
_PACKAGE_KINDS: dict[str, DocumentKind] = {
    "word/document.xml": "docx",
    "ppt/presentation.xml": "pptx",
    "xl/workbook.xml": "xlsx",
}
_BINARY_KINDS: frozenset[DocumentKind] = frozenset({"pdf", "docx", "pptx", "xlsx"})


class DocumentError(ValueError):
    """A file that cannot be ingested; the message names the file and says what is wrong with it."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path.name}: {problem}")
        self.path = path
        self.problem = problem


@dataclass(frozen=True)
class Section:
    """Text under one heading path (outermost heading first), on one page or slide when known."""

    path: tuple[str, ...]
    text: str
    page: int | None = None


@dataclass(frozen=True)
class LoadedDocument:
    """The text of one file in reading order, split by heading path."""

    name: str
    kind: DocumentKind
    title: str
    sections: list[Section] = field(default_factory=list)

    @property
    def mime(self) -> str:
        return MIME_TYPES[self.kind]

    @property
    def char_count(self) -> int:
        return sum(len(section.text) for section in self.sections)


def load_document(
    path: Path | str, *, max_bytes: int = DEFAULT_MAX_BYTES, name: str | None = None
) -> LoadedDocument:
    """Return the document's title and sections; raise `DocumentError` for an empty, oversized,
    mislabelled, corrupt, unsupported or textless file.

    The type comes from the content (magic bytes, ZIP members, tags, JSON syntax); the extension
    only has to agree with it. `name`: the file's own name when it is stored under another (same
    extension); errors, the document name and the default title use it.
    """
    path = Path(path)
    if name is None or name == path.name:
        return _load(path, max_bytes)
    try:
        loaded = _load(path, max_bytes)
    except DocumentError as exc:
        raise DocumentError(path.with_name(name), exc.problem) from exc
    title = loaded.title if loaded.title != path.stem else Path(name).stem
    return replace(loaded, name=name, title=title)


def _load(path: Path, max_bytes: int) -> LoadedDocument:
    data = _read_bounded(path, max_bytes)
    kind = _detect_kind(path, data)
    title, sections = _PARSERS[kind](path, data)
    if not any(section.text.strip() for section in sections):
        hint = " (a scanned PDF? OCR is not supported)" if kind == "pdf" else ""
        raise DocumentError(path, f"no text could be extracted from this {_LABELS[kind]} file{hint}")
    return LoadedDocument(name=path.name, kind=kind, title=title or path.stem, sections=sections)


# ---------------------------------------------------------------------------------------------
# Reading and type detection
# ---------------------------------------------------------------------------------------------


def _read_bounded(path: Path, max_bytes: int) -> bytes:
    """Return the file's bytes, refusing missing, empty and oversized files before reading them."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise DocumentError(path, "file not found") from None
    if not path.is_file():
        raise DocumentError(path, "is not a regular file")
    if size == 0:
        raise DocumentError(path, "the file is empty (0 bytes)")
    if size > max_bytes:
        raise DocumentError(path, f"the file is {_human(size)}, over the {_human(max_bytes)} size limit")
    with path.open("rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:  # the file grew after stat()
        raise DocumentError(path, f"the file is over the {_human(max_bytes)} size limit")
    return data


def _detect_kind(path: Path, data: bytes) -> DocumentKind:
    """Return the document kind found in the content, checked against the file extension."""
    declared = _EXTENSIONS.get(path.suffix.lower())
    found = _sniff(path, data)
    if found in _BINARY_KINDS or declared in _BINARY_KINDS:
        if declared is None or declared == found:
            return found
        raise DocumentError(
            path,
            f"the extension says {_LABELS[declared]} but the content is {_LABELS[found]}; "
            "rename the file or export it again",
        )
    if declared == "html" and found != "html":
        raise DocumentError(path, "the extension says HTML but the content has no HTML tags")
    if declared == "json" and found != "json":
        raise DocumentError(path, "the extension says JSON but the content is not valid JSON")
    return declared or found


def _sniff(path: Path, data: bytes) -> DocumentKind:
    """Return the kind the bytes themselves show, or raise for content we cannot ingest."""
    if b"%PDF-" in data[:1024]:
        return "pdf"
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _package_kind(path, data)
    problem = unsupported_content(data[:SNIFF_BYTES])
    text = None if problem else _decode_text(data)
    if text is None:
        raise DocumentError(path, f"unsupported type: {problem or _NOT_A_DOCUMENT}")
    stripped = text.lstrip()
    if stripped[:1] in ("{", "[") and _is_json(stripped):
        return "json"
    if re.search(r"<(!doctype html|html|head|body|h[1-6]|p|div|table|ul|ol)\b", text[:8192], re.IGNORECASE):
        return "html"
    return "text"


def _package_kind(path: Path, data: bytes) -> DocumentKind:
    """Return DOCX/PPTX/XLSX for an Office ZIP package, after zip bomb checks on its directory."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            members = package.infolist()
    except (zipfile.BadZipFile, EOFError, ValueError) as exc:
        raise DocumentError(path, f"corrupt ZIP/Office file: {exc}") from exc
    if len(members) > MAX_ZIP_MEMBERS:
        raise DocumentError(path, f"the ZIP holds {len(members)} files, over the {MAX_ZIP_MEMBERS} limit")
    # Python's zipfile never inflates a member past its declared size, so the directory is trustworthy.
    unpacked = sum(member.file_size for member in members)
    if unpacked > MAX_UNPACKED_BYTES:
        raise DocumentError(
            path,
            f"possible zip bomb: unpacks to {_human(unpacked)}, over the {_human(MAX_UNPACKED_BYTES)} limit",
        )
    for member in members:
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > MiB and ratio > MAX_COMPRESSION_RATIO:
            raise DocumentError(
                path,
                f"possible zip bomb: {member.filename} is compressed {ratio:.0f}:1, "
                f"over the {MAX_COMPRESSION_RATIO}:1 limit",
            )
    names = {member.filename for member in members}
    if "[Content_Types].xml" in names:
        for part, kind in _PACKAGE_KINDS.items():
            if part in names:
                return kind
    raise DocumentError(path, "unsupported type: a ZIP archive that is not a DOCX, PPTX or XLSX file")


# Windows-1254's Turkish letters (ç ğ ı ö ş ü and capitals): most high bytes of a cp1254 Turkish text.
_CP1254_TURKISH = b"\xc7\xd0\xd6\xdc\xdd\xde\xe7\xf0\xf6\xfc\xfd\xfe"
_NOT_CP1254_TURKISH = bytes(b for b in range(256) if b not in _CP1254_TURKISH)
_ASCII = bytes(range(128))


def _decode_text(data: bytes) -> str | None:
    """Return the bytes as text, or None if binary.

    UTF-16 with a BOM, else UTF-8; UTF-8 with a few broken bytes stays UTF-8 (each broken byte becomes
    U+FFFD). Windows-1254 only when the text really is that: no valid UTF-8 multibyte sequence, and
    mostly Turkish letters among the high bytes. Anything else with many high bytes is binary.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    sample = data[:8192]
    if b"\x00" in sample:
        return None
    controls = sum(1 for byte in sample if byte < 32 and byte not in (9, 10, 12, 13))
    if controls > len(sample) * 0.01:
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8-sig", errors="replace")
    broken = text.count("\ufffd")
    multibyte = len(text) - len(text.encode("ascii", "ignore")) - broken
    if multibyte >= broken:
        return text  # UTF-8 with a few broken bytes: keep it, the bad bytes replaced
    high = len(data.translate(None, _ASCII))
    turkish = len(data.translate(None, _NOT_CP1254_TURKISH))
    if multibyte == 0 and turkish and turkish * 2 >= high and high <= len(data) * 0.3:
        # Turkish exports from Excel and older systems are Windows-1254, a superset of ISO-8859-9.
        return data.decode("cp1254", errors="replace")
    if broken <= len(text) * 0.01:
        return text  # ASCII text with a stray byte or two
    return None


SNIFF_BYTES = 8192  # how much of a file's start the type checks read
_OLE_MAGIC = bytes.fromhex("D0CF11E0A1B11AE1")
_NOT_A_DOCUMENT = "binary content that is not PDF, DOCX, PPTX or XLSX"
_KIND_LABELS = {"image": "image", "video": "video", "audio": "audio file", "font": "font"}


def unsupported_content(head: bytes) -> str | None:
    """Return what a file's first bytes show it is when that can never become a document ("a PNG image",
    "a Windows program", "a legacy Office file …"), or None when the loader may try it.

    Binary formats are named by their magic bytes (the `filetype` package), and only when the bytes are
    binary: a text that happens to start with "MZ" or "GIF8" is text.
    """
    if head.startswith(_OLE_MAGIC):
        return "a legacy Office file (.doc, .xls or .ppt); save it as DOCX, XLSX or PPTX"
    if b"%PDF-" in head[:1024] or head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"\xff\xfe", b"\xfe\xff")):
        return None  # PDF, Office package or UTF-16 text: the loader decides
    if not is_binary(head) and b"\x00" not in head:
        return None  # text in some encoding
    kind = filetype.guess(head)
    if kind is None:
        return _NOT_A_DOCUMENT
    if kind.extension == "exe":
        return "a Windows program"
    major = kind.mime.split("/", 1)[0]
    if major in _KIND_LABELS:
        return f"a {kind.extension.upper()} {_KIND_LABELS[major]}"
    return f"a .{kind.extension} file ({kind.mime})"


def is_binary(data: bytes) -> bool:
    """True when `data` (a whole file or its first bytes) is neither text nor a supported document."""
    if b"%PDF-" in data[:1024] or data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return False
    return _decode_text(data) is None


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


# ---------------------------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------------------------


def _clean(text: str) -> str:
    """Return NFKC-normalised text (ligatures like 'ﬁ' → 'fi', NBSP → space) with blank lines dropped."""
    lines = (re.sub(r"\s+", " ", line).strip() for line in unicodedata.normalize("NFKC", text).splitlines())
    return "\n".join(line for line in lines if line)


class _SectionBuilder:
    """Collects text under the current heading path, one `Section` per run of (path, page)."""

    def __init__(self) -> None:
        self.sections: list[Section] = []
        self.first_heading = ""
        self._headings: list[tuple[int, str]] = []
        self._lines: list[str] = []
        self._page: int | None = None

    def heading(self, level: int, text: str) -> None:
        text = _clean(text).replace("\n", " ")
        if not text:
            return
        self._flush()
        while self._headings and self._headings[-1][0] >= level:
            self._headings.pop()
        self._headings.append((level, text))
        self.first_heading = self.first_heading or text

    def clear_headings(self) -> None:
        self._flush()
        self._headings.clear()

    def text(self, text: str, page: int | None = None) -> None:
        text = _clean(text)
        if not text:
            return
        if page != self._page:
            self._flush()
            self._page = page
        self._lines.append(text)

    def finish(self) -> tuple[str, list[Section]]:
        self._flush()
        return self.first_heading, self.sections

    def _flush(self) -> None:
        if self._lines:
            path = tuple(text for _, text in self._headings)
            self.sections.append(Section(path=path, text="\n".join(self._lines), page=self._page))
        self._lines = []


# ---------------------------------------------------------------------------------------------
# unstructured partitioners (everything but PDF and JSON)
# ---------------------------------------------------------------------------------------------


@functools.cache
def _use_offline_nlp() -> None:
    """Give unstructured a blank spaCy pipeline so it never downloads en_core_web_sm.

    unstructured 0.27 classifies every paragraph (narrative vs title) with spaCy's en_core_web_sm,
    which it downloads from GitHub and installs into site-packages on first use. A blank Turkish
    pipeline with a rule-based sentencizer needs no data; its POS tags are empty, which only
    affects the NarrativeText/Text label that we do not use.
    """
    import spacy
    from unstructured.nlp import tokenize

    if not hasattr(tokenize, "_get_nlp"):
        raise RuntimeError("unstructured.nlp.tokenize._get_nlp is gone; re-check the offline NLP patch")

    def blank_pipeline() -> Any:
        nlp = spacy.blank("tr")
        nlp.add_pipe("sentencizer")
        return nlp

    tokenize._get_nlp = functools.cache(blank_pipeline)


def _partition(path: Path, kind: DocumentKind, run: Callable[[], list[Element]]) -> list[Element]:
    """Return unstructured's elements, turning a library failure into a `DocumentError`."""
    _use_offline_nlp()
    try:
        return run()
    except MemoryError:
        raise  # a parse worker's memory limit: reported as such, not as an unreadable file
    except Exception as exc:  # python-docx, python-pptx, openpyxl and lxml raise many types
        raise DocumentError(path, f"could not be read as {_LABELS[kind]}: {exc}") from exc


def _element_text(element: Element) -> str:
    """Return an element's text; tables become one 'cell | cell' line per row."""
    html = getattr(element.metadata, "text_as_html", None)
    if element.category != "Table" or not html:
        return element.text
    import lxml.html

    rows = []
    for row in lxml.html.fromstring(html).iter("tr"):
        cells = [" ".join(cell.text_content().split()) for cell in row if cell.tag in ("td", "th")]
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)


_SKIPPED_CATEGORIES = frozenset({"Image", "PageBreak", "Header", "Footer", "PageNumber"})


def _build_sections(
    elements: Iterable[Element], heading_level: Callable[[Element], int | None]
) -> tuple[str, list[Section]]:
    """Return (first heading, sections), treating elements that `heading_level` ranks as headings."""
    builder = _SectionBuilder()
    for element in elements:
        level = heading_level(element)
        if level is not None:
            builder.heading(level, element.text)
        elif element.category not in _SKIPPED_CATEGORIES:
            builder.text(_element_text(element), element.metadata.page_number)
    return builder.finish()


def _markup_heading(element: Element) -> int | None:
    """Headings from markup: HTML h1..h6 / Markdown # (depth 0 = h1) and Word heading styles."""
    if element.category != "Title":
        return None
    return element.metadata.category_depth or 0


def _parse_html(path: Path, data: bytes) -> tuple[str, list[Section]]:
    from unstructured.partition.html import partition_html

    # An <img> inside a heading makes unstructured demote the heading to plain text; images carry no text.
    html = re.sub(r"<img\b[^>]*>", "", _decode_text(data) or "", flags=re.IGNORECASE)
    return _build_sections(_partition(path, "html", lambda: partition_html(text=html)), _markup_heading)


def _parse_markdown(path: Path, data: bytes) -> tuple[str, list[Section]]:
    from unstructured.partition.md import partition_md

    text = _decode_text(data) or ""
    return _build_sections(_partition(path, "markdown", lambda: partition_md(text=text)), _markup_heading)


def _parse_docx(path: Path, data: bytes) -> tuple[str, list[Section]]:
    from unstructured.partition.docx import partition_docx

    elements = _partition(path, "docx", lambda: partition_docx(file=io.BytesIO(data)))
    return _build_sections(elements, _markup_heading)


def _parse_pptx(path: Path, data: bytes) -> tuple[str, list[Section]]:
    from unstructured.partition.pptx import partition_pptx

    elements = _partition(path, "pptx", lambda: partition_pptx(file=io.BytesIO(data)))
    builder = _SectionBuilder()
    slide: int | None = None
    for element in elements:
        if element.metadata.page_number != slide:
            slide = element.metadata.page_number
            builder.clear_headings()  # an untitled slide must not inherit the previous slide's title
        # Only the slide's title shape is depth 0; deeper "titles" are guesses about short body lines.
        if element.category == "Title" and not element.metadata.category_depth:
            builder.heading(0, element.text)
        elif element.category not in _SKIPPED_CATEGORIES:
            builder.text(_element_text(element), slide)
    return builder.finish()


def _parse_xlsx(path: Path, data: bytes) -> tuple[str, list[Section]]:
    from unstructured.partition.xlsx import partition_xlsx

    run = lambda: partition_xlsx(file=io.BytesIO(data), find_subtable=False, include_header=True)  # noqa: E731
    sections = [
        Section(path=_sheet_path(element), text=text, page=element.metadata.page_number)
        for element in _partition(path, "xlsx", run)
        if (text := _clean(_element_text(element)))
    ]
    return "", sections


def _sheet_path(element: Element) -> tuple[str, ...]:
    name = element.metadata.page_name
    return (name,) if name else ()


def _parse_text(path: Path, data: bytes) -> tuple[str, list[Section]]:
    from unstructured.partition.text import partition_text

    text = _decode_text(data) or ""
    # Plain text has no markup; unstructured's "title" guesses (any short line) would invent sections.
    return _build_sections(_partition(path, "text", lambda: partition_text(text=text)), lambda _: None)


def _parse_csv(path: Path, data: bytes) -> tuple[str, list[Section]]:
    from unstructured.partition.csv import partition_csv

    utf8 = (_decode_text(data) or "").encode("utf-8")
    run = lambda: partition_csv(file=io.BytesIO(utf8), encoding="utf-8", include_header=True)  # noqa: E731
    return _build_sections(_partition(path, "csv", run), lambda _: None)


# ---------------------------------------------------------------------------------------------
# JSON: unstructured's partition_json only reads its own element JSON and dumps anything else as
# one ASCII-escaped blob ("g\u00fcn"), so generic JSON is flattened here.
# ---------------------------------------------------------------------------------------------


def _parse_json(path: Path, data: bytes) -> tuple[str, list[Section]]:
    try:
        return _json_sections(json.loads(_decode_text(data) or "null"))
    except RecursionError:
        raise DocumentError(path, "the JSON is nested too deeply to read") from None


def _json_sections(value: Any) -> tuple[str, list[Section]]:
    builder = _SectionBuilder()
    entries = value.items() if isinstance(value, dict) else [("", value)]
    for key, item in entries:
        builder.clear_headings()
        if key and isinstance(item, dict | list):
            builder.heading(0, str(key))  # a top-level key holding records reads like a chapter
            builder.text("\n".join(_json_records(item)))
        else:
            builder.text("\n".join(_json_records({key: item} if key else item)))
    _, sections = builder.finish()
    return "", sections  # JSON keys name records, not the document


def _json_records(value: Any) -> list[str]:
    """Return one line per record (list item or object entry), so a question stays with its answer."""
    if isinstance(value, list):
        return [_json_record(item) for item in value]
    if isinstance(value, dict):
        return [_json_record({key: item}) for key, item in value.items()]
    return [_json_record(value)]


def _json_record(value: Any) -> str:
    return "; ".join(_json_fields(value))


def _json_fields(value: Any, key: str = "") -> Iterator[str]:
    """Yield 'key.sub: value' for every scalar in a JSON value."""
    if isinstance(value, dict):
        for name, item in value.items():
            yield from _json_fields(item, f"{key}.{name}" if key else str(name))
    elif isinstance(value, list):
        for item in value:
            yield from _json_fields(item, key)
    elif value is not None and str(value).strip():
        text = ("evet" if value else "hayır") if isinstance(value, bool) else str(value)
        yield f"{key}: {text}" if key else text


# ---------------------------------------------------------------------------------------------
# PDF: unstructured's partition_pdf imports unstructured_inference, OpenCV and pdf2image even for
# strategy="fast", so text comes straight from pdfminer.six (what "fast" uses underneath), and
# headings from font size.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PdfLine:
    page: int
    text: str
    size: float
    top: float
    bottom: float


_PAGE_NUMBER = re.compile(r"^\W*(sayfa|page|s\.)?\s*\d+\s*((/|of|\\)\s*\d+)?\W*$", re.IGNORECASE)
_LIST_MARKER = re.compile(r"^(\d{1,3}[.)]|[-•▪●◦*])\s")


def _parse_pdf(path: Path, data: bytes) -> tuple[str, list[Section]]:
    lines = _drop_page_furniture(_pdf_lines(path, data))
    levels = _heading_levels(lines)
    builder = _SectionBuilder()
    block: list[_PdfLine] = []  # lines of one paragraph, or of one heading wrapped over lines
    for line in lines:
        level = _line_level(line, levels)
        previous = block[-1] if block else None
        if (
            previous is None
            or previous.page != line.page
            or _line_level(previous, levels) != level
            or (level is None and _starts_paragraph(previous, line))
        ):
            _emit_pdf_block(builder, block, levels)
            block = []
        block.append(line)
    _emit_pdf_block(builder, block, levels)
    return builder.finish()


def _heading_levels(lines: list[_PdfLine]) -> dict[float, int]:
    """Return heading level by font size: sizes clearly above the body size, biggest first."""
    weights: Counter[float] = Counter()
    for line in lines:
        weights[line.size] += len(line.text)
    body = weights.most_common(1)[0][0] if weights else 0.0
    sizes = sorted({line.size for line in lines if line.size >= body + 1.5}, reverse=True)[:6]
    return {size: level for level, size in enumerate(sizes)}


def _line_level(line: _PdfLine, levels: dict[float, int]) -> int | None:
    # A long line in a big font is a call-out, not a heading.
    return levels.get(line.size) if len(line.text.split()) <= 20 else None


def _emit_pdf_block(builder: _SectionBuilder, block: list[_PdfLine], levels: dict[float, int]) -> None:
    if not block:
        return
    text = block[0].text
    for line in block[1:]:
        if text.endswith("-") and line.text[:1].islower():
            text = text[:-1] + line.text  # a word hyphenated across lines
        else:
            text = f"{text} {line.text}"
    level = _line_level(block[0], levels)
    if level is None:
        builder.text(text, block[0].page)
    else:
        builder.heading(level, text)


def _pdf_lines(path: Path, data: bytes) -> list[_PdfLine]:
    """Return every text line of the PDF in reading order, with its dominant font size."""
    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LAParams, LTChar, LTTextBox, LTTextLine

    lines: list[_PdfLine] = []
    try:
        for page_number, page in enumerate(extract_pages(io.BytesIO(data), laparams=LAParams()), start=1):
            for item in page:
                candidates = list(item) if isinstance(item, LTTextBox) else [item]
                for candidate in candidates:
                    if not isinstance(candidate, LTTextLine):
                        continue
                    text = _clean(candidate.get_text()).replace("\n", " ")
                    sizes = Counter(
                        round(char.size * 2) / 2 for char in candidate if isinstance(char, LTChar)
                    )
                    if text and sizes:
                        size = sizes.most_common(1)[0][0]
                        lines.append(_PdfLine(page_number, text, size, candidate.y1, candidate.y0))
    except Exception as exc:  # pdfminer raises PSEOF, PDFSyntaxError, PDFPasswordIncorrect, struct.error...
        name = type(exc).__name__
        if "Password" in name or "Encryption" in name:
            raise DocumentError(path, "the PDF is password-protected or encrypted") from exc
        raise DocumentError(path, f"corrupt or truncated PDF ({name}: {exc})") from exc
    return lines


def _drop_page_furniture(lines: list[_PdfLine]) -> list[_PdfLine]:
    """Return the lines without page numbers and headers/footers repeated at the edge of most pages."""
    pages: dict[int, list[_PdfLine]] = {}
    for line in lines:
        pages.setdefault(line.page, []).append(line)
    edges: dict[int, set[_PdfLine]] = {}
    for number, page_lines in pages.items():
        by_height = sorted(page_lines, key=lambda line: -line.top)
        edges[number] = set(by_height[:2] + by_height[-2:])
    key = functools.partial(re.sub, r"\d+", "#")
    seen_on = Counter(k for page_edges in edges.values() for k in {key(line.text) for line in page_edges})
    repeated = {k for k, count in seen_on.items() if len(pages) >= 2 and count >= max(2, 0.6 * len(pages))}
    return [
        line
        for line in lines
        if line not in edges[line.page]
        or (key(line.text) not in repeated and not _PAGE_NUMBER.match(line.text))
    ]


def _starts_paragraph(previous: _PdfLine, line: _PdfLine) -> bool:
    """True when `line` begins a new paragraph or list item rather than continuing `previous`."""
    gap = previous.bottom - line.top
    return (
        gap > 0.8 * line.size
        or bool(_LIST_MARKER.match(line.text))
        or previous.text.endswith((".", "?", "!", ":"))
    )


def _human(size: int) -> str:
    return f"{size / MiB:.1f} MiB" if size >= MiB else f"{size} bytes"


_PARSERS: dict[DocumentKind, Callable[[Path, bytes], tuple[str, list[Section]]]] = {
    "pdf": _parse_pdf,
    "docx": _parse_docx,
    "pptx": _parse_pptx,
    "xlsx": _parse_xlsx,
    "html": _parse_html,
    "markdown": _parse_markdown,
    "text": _parse_text,
    "csv": _parse_csv,
    "json": _parse_json,
}
