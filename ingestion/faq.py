"""FAQ sheets and quick replies (Invekto canned responses) from CSV, XLSX or JSON into `Chunk`s.

Headers are matched case-insensitively by Turkish rules and without diacritics, so "SORU",
"Yanıt", "yanit" and "Başlık" all work. CSV may be comma, semicolon (Turkish Excel) or tab
separated, in UTF-8 or Windows-1254. XLSX is read from its first sheet with the standard
library, so no spreadsheet package is needed. JSON is a list of objects or {"items": [...]}.

A row with an empty question or answer is reported in `SheetImport.problems` with its row
number; the other rows are still imported. A sheet's own id column ("id", "kod", ...) is kept as
metadata "entry_id" (citations read `faq:sss-012`); without one the row number stands in.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import posixpath
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from xml.etree import ElementTree

from retrieval.models import Chunk, Source
from retrieval.text import fold_turkish

QUESTION_HEADERS = ("soru", "sorular", "question", "questions", "q")
ANSWER_HEADERS = ("cevap", "cevaplar", "yanıt", "yanıtlar", "yanit", "answer", "answers", "a")
CATEGORY_HEADERS = ("kategori", "category", "bölüm", "section", "konu", "topic")
FAQ_TITLE_HEADERS = ("başlık", "title")
QUICK_REPLY_TITLE_HEADERS = ("başlık", "title", "name", "ad", "kısayol", "shortcut")
QUICK_REPLY_TEXT_HEADERS = ("metin", "text", "content", "içerik", "mesaj", "message", "yanıt", "cevap")
# The sheet's own id for an entry: kept as metadata "entry_id" so citations name "sss-012", not a hash.
ID_HEADERS = ("id", "kimlik", "kod", "code", "key", "anahtar")

# A worksheet is a few MB even for thousands of rows; a bigger one is a zip bomb or not an FAQ.
_MAX_XLSX_PART_BYTES = 64 * 1024 * 1024
_SPACES = re.compile(r"\s+")


class SheetFormatError(ValueError):
    """The file cannot be read as a question/answer (or quick reply) table."""


@dataclass
class SheetImport:
    """Chunks made from a file and, per skipped row, a line saying where and why."""

    chunks: list[Chunk] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Row:
    where: str  # "row 5" for CSV/XLSX (header is row 1), "item 3" for JSON
    cells: dict[str, str]  # normalised header -> cell text
    problem: str = ""  # set when the entry could not be read as a row at all


@dataclass(frozen=True)
class _Table:
    headers: list[str]  # as written in the file, for error messages
    rows: list[_Row]


def _header_key(header: str) -> str:
    # Turkish lower-casing first so "BAŞLIK" and "IBAN" fold the way a Turkish user means them.
    return fold_turkish(header).strip(" \t:*_-.")


def _squash(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _read_csv(data: bytes) -> _Table:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Excel on Turkish Windows saves CSV in Windows-1254.
        text = data.decode("cp1254", errors="replace")
    first_line = text.split("\n", 1)[0]
    delimiter = max((";", ",", "\t"), key=first_line.count)
    try:
        records = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as err:
        raise SheetFormatError(f"not a readable CSV file: {err}") from err
    if not records:
        return _Table([], [])
    headers = [h.strip() for h in records[0]]
    rows = []
    for n, record in enumerate(records[1:], start=2):
        if any(v.strip() for v in record[len(headers) :]):
            # An unquoted separator inside a cell shifts every later cell: report it, never guess.
            problem = (
                f"{len(record)} fields but the header has {len(headers)} columns "
                f"(is there an unquoted {delimiter!r} in a cell? put that cell in double quotes)"
            )
            rows.append(_Row(f"row {n}", {}, problem))
            continue
        rows.append(_make_row(f"row {n}", headers, record))
    return _Table(headers, rows)


def _make_row(where: str, headers: list[str], values: list[Any]) -> _Row:
    cells: dict[str, str] = {}
    for header, value in zip(headers, values, strict=False):
        key = _header_key(header)
        # The first of two same-named columns wins; a later blank one must not erase it.
        if key and key not in cells:
            cells[key] = _cell_text(value)
    return _Row(where, cells)


def _read_json(data: bytes) -> _Table:
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SheetFormatError(f"not valid JSON: {err}") from err
    if isinstance(document, dict) and isinstance(document.get("items"), list):
        document = document["items"]
    if not isinstance(document, list):
        raise SheetFormatError('JSON must be a list of objects or {"items": [...]}')
    table = _Table([], [])
    for n, item in enumerate(document, start=1):
        if not isinstance(item, dict):
            problem = f"expected an object with named fields, got {type(item).__name__}"
            table.rows.append(_Row(f"item {n}", {}, problem))
            continue
        table.headers.extend(k for k in item if k not in table.headers)
        table.rows.append(_make_row(f"item {n}", list(item), list(item.values())))
    return table


def _local(tag: str) -> str:
    # Namespace-free tag name: transitional and strict OOXML use different namespaces.
    return tag.rsplit("}", 1)[-1]


def _xlsx_part(archive: zipfile.ZipFile, name: str) -> ElementTree.Element:
    if archive.getinfo(name).file_size > _MAX_XLSX_PART_BYTES:
        raise SheetFormatError(f"{name} is larger than {_MAX_XLSX_PART_BYTES // 2**20} MB")
    return ElementTree.fromstring(archive.read(name))


def _first_sheet_path(archive: zipfile.ZipFile) -> str:
    workbook = _xlsx_part(archive, "xl/workbook.xml")
    sheet = next((el for el in workbook.iter() if _local(el.tag) == "sheet"), None)
    if sheet is None:
        raise SheetFormatError("the workbook has no sheets")
    rel_id = next((v for k, v in sheet.attrib.items() if _local(k) == "id"), None)
    rels = _xlsx_part(archive, "xl/_rels/workbook.xml.rels")
    target = next((el.get("Target", "") for el in rels if el.get("Id") == rel_id), "")
    if not target:
        raise SheetFormatError("cannot find the first sheet of the workbook")
    if target.startswith("/"):
        return target.lstrip("/")
    return posixpath.normpath(posixpath.join("xl", target))


def _shared_strings(archive: zipfile.ZipFile) -> list[str]:
    if "xl/sharedStrings.xml" not in archive.namelist():
        return []
    root = _xlsx_part(archive, "xl/sharedStrings.xml")
    # Rich text splits a string into runs; phonetic hints (rPh) are not part of the text.
    return [
        "".join(t.text or "" for t in _texts_outside_phonetic(si)) for si in root if _local(si.tag) == "si"
    ]


def _texts_outside_phonetic(element: ElementTree.Element) -> list[ElementTree.Element]:
    found: list[ElementTree.Element] = []
    for child in element:
        tag = _local(child.tag)
        if tag == "t":
            found.append(child)
        elif tag != "rPh":
            found.extend(_texts_outside_phonetic(child))
    return found


def _column_index(cell_ref: str) -> int:
    index = 0
    for ch in cell_ref:
        if not ch.isalpha():
            break
        index = index * 26 + (ord(ch.upper()) - ord("A") + 1)
    return index - 1


def _read_xlsx(data: bytes) -> _Table:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as err:
        raise SheetFormatError("not a valid .xlsx file (save it again as .xlsx or as CSV)") from err
    with archive:
        try:
            strings = _shared_strings(archive)
            sheet = _xlsx_part(archive, _first_sheet_path(archive))
        except (KeyError, ElementTree.ParseError) as err:
            raise SheetFormatError(f"not a readable .xlsx workbook: {err}") from err
    grid: list[tuple[int, dict[int, str]]] = []
    for number, row in enumerate((el for el in sheet.iter() if _local(el.tag) == "row"), start=1):
        values: dict[int, str] = {}
        for position, cell in enumerate(c for c in row if _local(c.tag) == "c"):
            ref = cell.get("r")
            values[_column_index(ref) if ref else position] = _xlsx_cell_text(cell, strings)
        # Formatted but empty rows are common above and below the data; they are not the header.
        if any(values.values()):
            grid.append((int(row.get("r", number)), values))
    if not grid:
        return _Table([], [])
    _, header_cells = grid[0]
    width = max(header_cells, default=-1) + 1
    headers = [header_cells.get(i, "").strip() for i in range(width)]
    rows = [
        _make_row(f"row {number}", headers, [cells.get(i, "") for i in range(width)])
        for number, cells in grid[1:]
    ]
    return _Table(headers, rows)


def _xlsx_cell_text(cell: ElementTree.Element, strings: list[str]) -> str:
    kind = cell.get("t", "n")
    if kind == "inlineStr":
        return "".join(t.text or "" for t in _texts_outside_phonetic(cell)).strip()
    value = next((el.text or "" for el in cell if _local(el.tag) == "v"), "")
    if kind == "s":
        return strings[int(value)].strip() if value.isdigit() and int(value) < len(strings) else ""
    if kind == "b":
        return "TRUE" if value == "1" else "FALSE"
    if kind == "n" and value.replace(".", "", 1).isdigit():
        return value.removesuffix(".0")  # whole numbers are written "12.0" by some tools
    return value.strip()


_READERS: dict[str, Callable[[bytes], _Table]] = {
    ".csv": _read_csv,
    ".tsv": _read_csv,
    ".xlsx": _read_xlsx,
    ".xlsm": _read_xlsx,
    ".json": _read_json,
}


def _read_table(source: Path | str | bytes, filename: str | None) -> tuple[_Table, str]:
    if isinstance(source, bytes):
        if not filename:
            raise ValueError(
                "filename is required when the file is given as bytes (its extension picks the reader)"
            )
        data = source
    else:
        data = Path(source).read_bytes()
        filename = filename or Path(source).name
    suffix = PurePosixPath(filename.lower()).suffix
    reader = _READERS.get(suffix)
    if reader is None:
        hint = " (save .xls files as .xlsx or CSV)" if suffix == ".xls" else ""
        raise SheetFormatError(
            f"{filename}: unsupported file type {suffix or '(none)'}{hint}; expected {', '.join(_READERS)}"
        )
    try:
        return reader(data), filename
    except SheetFormatError as err:
        raise SheetFormatError(f"{filename}: {err}") from err


def _find_column(table: _Table, aliases: tuple[str, ...]) -> str | None:
    present = {_header_key(h) for h in table.headers}
    return next((k for k in map(_header_key, aliases) if k in present), None)


def _missing_columns_error(
    filename: str, table: _Table, wanted: dict[str, tuple[str, ...]]
) -> SheetFormatError:
    found = ", ".join(repr(h) for h in table.headers if h) or "none"
    expected = "; ".join(f"{role}: one of {', '.join(aliases)}" for role, aliases in wanted.items())
    return SheetFormatError(
        f"{filename}: no recognisable columns. Columns found: {found}. Expected {expected}"
    )


def _stable_id(prefix: str, text: str) -> str:
    # From the normalised text, not the row number, so re-importing a re-sorted sheet overwrites.
    key = _header_key(_squash(text))
    return f"{prefix}-{hashlib.sha1(key.encode('utf-8')).hexdigest()[:16]}"


def _identity(text: str) -> str:
    return text


@dataclass(frozen=True)
class _SheetKind:
    source: Source
    key_label: str  # the column that identifies an entry: "question" or "title"
    value_label: str  # "answer" or "text"
    render: Callable[[str, str], str]


_FAQ = _SheetKind("faq", "question", "answer", lambda q, a: f"Soru: {q}\nCevap: {a}")
_QUICK_REPLY = _SheetKind("quick_reply", "title", "text", lambda t, body: f"{t}\n{body}")


@dataclass(frozen=True)
class _Columns:
    key: str
    value: str
    title: str | None
    category: str | None
    entry_id: str | None = None


def _row_number(where: str) -> str:
    # "row 5" / "item 3" -> "5" / "3": the fallback id of a sheet without an id column.
    return where.rsplit(" ", 1)[-1]


def _rows_to_chunks(
    tenant_id: str,
    doc_id: str,
    table: _Table,
    kind: _SheetKind,
    columns: _Columns,
    clean: Callable[[str], str],
) -> SheetImport:
    result = SheetImport()
    first_row_of: dict[str, str] = {}
    row_of_entry: dict[str, str] = {}
    for row in table.rows:
        if row.problem:
            result.problems.append(f"{row.where}: {row.problem}")
            continue
        key = _squash(row.cells.get(columns.key, ""))
        value = row.cells.get(columns.value, "").strip()
        if not key and not value:
            continue  # blank spreadsheet rows carry nothing to report
        if not key:
            result.problems.append(
                f"{row.where}: {kind.key_label} is empty ({kind.value_label}: {_preview(value)})"
            )
            continue
        if not value:
            result.problems.append(
                f"{row.where}: {kind.value_label} is empty ({kind.key_label}: {_preview(key)})"
            )
            continue
        chunk_id = _stable_id(kind.source.replace("_", "-"), key)
        if chunk_id in first_row_of:
            result.problems.append(
                f"{row.where}: same {kind.key_label} as {first_row_of[chunk_id]}; kept that one"
            )
            continue
        first_row_of[chunk_id] = row.where
        entry_id = _squash(row.cells.get(columns.entry_id, "")) if columns.entry_id else ""
        if entry_id in row_of_entry:
            result.problems.append(
                f"{row.where}: id {entry_id!r} is also on {row_of_entry[entry_id]}; "
                "this row is cited by its row number"
            )
            entry_id = ""
        entry_id = entry_id or _row_number(row.where)
        row_of_entry.setdefault(entry_id, row.where)
        key, value = clean(key), clean(value)
        title = _squash(clean(row.cells.get(columns.title, ""))) if columns.title else ""
        category = _squash(row.cells.get(columns.category, "")) if columns.category else ""
        metadata: dict[str, Any] = {
            kind.key_label: key,
            kind.value_label: value,
            "row": row.where,
            "entry_id": clean(entry_id),
        }
        if category:
            metadata["category"] = category
        result.chunks.append(
            Chunk(
                tenant_id=tenant_id,
                doc_id=doc_id,
                chunk_id=chunk_id,
                text=kind.render(key, value),
                source=kind.source,
                title=title or key,
                section=category,
                metadata=metadata,
            )
        )
    return result


def load_faq(
    tenant_id: str,
    doc_id: str,
    source: Path | str | bytes,
    filename: str | None = None,
    redact: Callable[[str], str] | None = None,
) -> SheetImport:
    """Return one "faq" chunk per question/answer row of a CSV, XLSX or JSON file, and the rows skipped.

    `source` is a path, or the file's bytes with `filename` naming it. `redact` (e.g. a
    `Redactor`) is applied to the question and answer before they go into text or metadata.
    """
    table, filename = _read_table(source, filename)
    question = _find_column(table, QUESTION_HEADERS)
    title = _find_column(table, FAQ_TITLE_HEADERS)
    if question is None:
        question, title = title, None  # a sheet with only "Başlık" and "Cevap" uses it as the question
    answer = _find_column(table, ANSWER_HEADERS)
    if question is None or answer is None:
        wanted = {"question": QUESTION_HEADERS + FAQ_TITLE_HEADERS, "answer": ANSWER_HEADERS}
        raise _missing_columns_error(filename, table, wanted)
    columns = _Columns(
        question, answer, title, _find_column(table, CATEGORY_HEADERS), _find_column(table, ID_HEADERS)
    )
    return _rows_to_chunks(tenant_id, doc_id, table, _FAQ, columns, redact or _identity)


def load_quick_replies(
    tenant_id: str,
    doc_id: str,
    source: Path | str | bytes,
    filename: str | None = None,
    redact: Callable[[str], str] | None = None,
) -> SheetImport:
    """Return one "quick_reply" chunk per title/text row of a CSV, XLSX or JSON file, and the rows skipped.

    `source` and `redact` work as in `load_faq`.
    """
    table, filename = _read_table(source, filename)
    title = _find_column(table, QUICK_REPLY_TITLE_HEADERS)
    text = _find_column(table, QUICK_REPLY_TEXT_HEADERS)
    if title is None or text is None:
        wanted = {"title": QUICK_REPLY_TITLE_HEADERS, "text": QUICK_REPLY_TEXT_HEADERS}
        raise _missing_columns_error(filename, table, wanted)
    columns = _Columns(
        title, text, None, _find_column(table, CATEGORY_HEADERS), _find_column(table, ID_HEADERS)
    )
    return _rows_to_chunks(tenant_id, doc_id, table, _QUICK_REPLY, columns, redact or _identity)


def _preview(text: str, limit: int = 60) -> str:
    text = _squash(text)
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")
