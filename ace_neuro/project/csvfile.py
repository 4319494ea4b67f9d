"""A CSV scanner that remembers where every field is, so a file can be edited in place.

The lab's CSV files are edited by hand in Excel and LibreOffice. When the platform
writes one value back (interactive crop coordinates) every other byte must stay as
it was: quoting, line endings, a byte-order mark, trailing empty rows. Python's
``csv`` module re-serialises whole rows, so we scan the text ourselves and keep
the raw span of every field.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..storage import remove_stale_temporaries, temporary_sibling


from ..errors import ProjectError  # noqa: E402  (the category; raised by every project-file check)


class CsvFormatError(ProjectError):
    """The file is not CSV we can read (e.g. an unterminated quote, or bytes that are not text)."""


@dataclass(frozen=True)
class Record:
    """One CSV record (a logical row; may span several physical lines if a cell is quoted)."""

    line: int  # 1-based physical line where the record starts (the header is line 1)
    start: int  # offset of the record's first character in the text
    end: int  # offset just past the record's content (before its line terminator)
    terminator: str  # "\r\n", "\n", "\r" or "" (last record without newline)
    spans: tuple[tuple[int, int], ...]  # raw [start, end) of every field
    values: tuple[str, ...]  # unquoted field values


@dataclass(frozen=True)
class CsvText:
    """A CSV file's text and its scanned records."""

    path: Path
    text: str
    bom: bool
    records: tuple[Record, ...]
    encoding: str = "utf-8"  # "utf-8", or "cp1252" for files Excel saved on Windows

    @property
    def header(self) -> tuple[str, ...]:
        return tuple(v.strip() for v in self.records[0].values) if self.records else ()

    def rows(self) -> list[Record]:
        return list(self.records[1:])


def read_csv_text(path: str | os.PathLike) -> CsvText:
    """Read and scan a CSV file, keeping its exact text."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ProjectError(f"{path}: file not found. Check the project path: it must hold experiments.csv "
                           f"and analysis_parameters.csv.", file=path) from None
    except IsADirectoryError:
        raise ProjectError(f"{path}: is a folder, not a CSV file. Put the lab's CSV file there.", file=path) from None
    except PermissionError:
        raise ProjectError(f"{path}: cannot be read (permission denied). Make the file readable.", file=path) from None
    bom = raw.startswith(b"\xef\xbb\xbf")
    encoding = "utf-8"
    try:
        text = raw[3:].decode("utf-8") if bom else raw.decode("utf-8")
    except UnicodeDecodeError as utf8_error:
        encoding = "cp1252"  # files saved by Excel on Windows
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            at = utf8_error.start + (3 if bom else 0)
            line = raw[:at].count(b"\n") + 1
            raise CsvFormatError(f"{path}: line {line}: byte 0x{raw[at]:02x} is neither UTF-8 nor Windows-1252 "
                                 f"text. Open the file in a spreadsheet program and save it as 'CSV UTF-8'.", file=path) from None
    return CsvText(path=path, text=text, bom=bom, records=tuple(scan_records(text, path)), encoding=encoding)


def scan_records(text: str, path: Path | str = "<csv>") -> list[Record]:
    """Split CSV text into records with the raw span of every field (RFC 4180 quoting)."""
    records: list[Record] = []
    i, n, line = 0, len(text), 1
    while i < n:
        rec_start, rec_line = i, line
        spans: list[tuple[int, int]] = []
        values: list[str] = []
        while True:
            f_start = i
            if i < n and text[i] == '"':
                i += 1
                buf = []
                while True:
                    if i >= n:
                        raise CsvFormatError(f"{path}: line {rec_line}: a quoted cell is never closed. "
                                             f"Open the file in a spreadsheet program and save it again.", file=path)
                    c = text[i]
                    if c == '"':
                        if i + 1 < n and text[i + 1] == '"':
                            buf.append('"')
                            i += 2
                            continue
                        i += 1
                        break
                    if c == "\n":
                        line += 1
                    buf.append(c)
                    i += 1
                # anything after the closing quote up to the delimiter is kept verbatim
                while i < n and text[i] not in ",\r\n":
                    buf.append(text[i])
                    i += 1
                value = "".join(buf)
            else:
                while i < n and text[i] not in ",\r\n":
                    i += 1
                value = text[f_start:i]
            spans.append((f_start, i))
            values.append(value)
            if i < n and text[i] == ",":
                i += 1
                continue
            break
        rec_end = i
        if text.startswith("\r\n", i):
            term = "\r\n"
        elif i < n:
            term = text[i]
        else:
            term = ""
        i += len(term)
        if term:
            line += 1
        records.append(Record(rec_line, rec_start, rec_end, term, tuple(spans), tuple(values)))
    return records


def quote_field(value: str) -> str:
    """Quote a value the way spreadsheet programs do: only when it needs it."""
    if any(c in value for c in ',"\r\n') or value != value.strip():
        return '"' + value.replace('"', '""') + '"'
    return value


def set_cell(csv: CsvText, record_index: int, column: str, value: str) -> str:
    """Return the file's new text with one cell set; every other byte unchanged.

    If ``column`` is missing it is appended: the header gains the name and every
    other record gains one empty field (the only change to those records).
    """
    header = csv.header
    pieces: list[str] = []
    pos = 0
    new_field = quote_field(value)
    if column in header:
        col = header.index(column)
        rec = csv.records[record_index]
        if col < len(rec.spans):
            s, e = rec.spans[col]
            return csv.text[:s] + new_field + csv.text[e:]
        # the record is shorter than the header: pad it with empty fields
        pad = "," * (col - len(rec.spans) + 1)
        return csv.text[:rec.end] + pad + new_field + csv.text[rec.end:]
    ncols = len(header)
    for idx, rec in enumerate(csv.records):
        pieces.append(csv.text[pos:rec.end])
        pad = "," * max(0, ncols - len(rec.spans))
        if idx == 0:
            pieces.append(pad + "," + quote_field(column))
        elif idx == record_index:
            pieces.append(pad + "," + new_field)
        elif any(v.strip() for v in rec.values):
            pieces.append(pad + ",")
        pos = rec.end
    pieces.append(csv.text[pos:])
    return "".join(pieces)


class ReadOnlyFileError(ProjectError, PermissionError):
    """The file to update may not be written (its permissions say so)."""


def write_text_atomic(path: str | os.PathLike, text: str, *, bom: bool = False, encoding: str = "utf-8") -> Path:
    """Write text beside the target and rename it into place (never a half-written file).

    A symbolic link is written through (its target is replaced, the link stays); a read-only
    target is refused (:class:`ReadOnlyFileError`), not replaced; ``encoding`` is the file's own
    (see :attr:`CsvText.encoding`). What an earlier, killed write left beside the file is removed.
    Returns the path written.
    """
    path = Path(path)
    target = path.resolve() if path.is_symlink() else path
    # the permission bits, not only os.access: a file marked read-only stays unchanged even for root
    if target.exists() and (not os.access(target, os.W_OK) or not target.stat().st_mode & 0o222):
        raise ReadOnlyFileError(f"{path}: the file is read-only, so it was not changed. Make it writable "
                                f"(e.g. chmod u+w) and save again.")
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode(encoding)
    remove_stale_temporaries(target)
    tmp = temporary_sibling(target)
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if target.exists():
            os.chmod(tmp, target.stat().st_mode & 0o777)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target
