"""Strict reading of tab-separated task files: every problem names the file and the line."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from vlkd.errors import VlkdError


@dataclass(frozen=True)
class Row:
    """The selected fields of one data line, by column name, with its 1-based line number."""

    line: int
    fields: dict[str, str]


def text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """The non-blank lines of a UTF-8 task file with their 1-based numbers; errors name the file."""
    if not path.is_file():
        raise VlkdError("file not found", path)
    try:
        with open(path, encoding="utf-8-sig") as f:
            for line, text in enumerate(f, 1):
                if text.strip():
                    yield line, text
    except UnicodeDecodeError as e:
        raise VlkdError(f"not UTF-8 text (byte offset {e.start})", path) from None


def _open_lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    if not path.is_file():
        raise VlkdError("file not found", path)
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            # GLUE files are unquoted: a quote character is text (QUOTE_NONE, as the GLUE processors)
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            try:
                for fields in reader:
                    if fields and any(fields):
                        yield reader.line_num, fields
            except csv.Error as e:
                raise VlkdError(f"line {reader.line_num + 1}: {csv_problem(e)}", path) from None
    except UnicodeDecodeError as e:
        raise VlkdError(f"not UTF-8 text (byte offset {e.start})", path) from None


def csv_problem(error: csv.Error) -> str:
    """csv's own message, with its field-size limit spelled out (a field longer than it is refused)."""
    message = str(error)
    if "field limit" in message:
        return f"a field is longer than {csv.field_size_limit():,} characters (csv's limit; is the file tab-separated?)"
    return message


def read_tsv(path: Path, columns: Sequence[str], positions: Sequence[int] | None = None) -> list[Row]:
    """Rows of `path` with the named `columns`.

    With a header (positions=None) the columns are looked up by name in the first line; without one
    (CoLA's train/dev) `positions` gives their indices and every line must have the same field count.
    A line with fewer fields than its header is an error, as is a missing column.
    """
    lines = _open_lines(path)
    if positions is None:
        try:
            header_line, header = next(lines)
        except StopIteration:
            raise VlkdError("empty file: expected a header line", path) from None
        missing = [c for c in columns if c not in header]
        if missing:
            raise VlkdError(f"line {header_line}: missing column {missing[0]!r} (the header has: "
                            f"{', '.join(header)})", path)
        index = [header.index(c) for c in columns]
        width = len(header)
    else:
        index, width = list(positions), None
    rows = []
    for line, fields in lines:
        if width is None:
            width = len(fields)
            if width <= max(index):
                raise VlkdError(f"line {line}: expected at least {max(index) + 1} tab-separated fields, found "
                                f"{width} (wrong columns for this task?)", path)
        if len(fields) < width or (positions is not None and len(fields) != width):
            raise VlkdError(f"line {line}: expected {width} tab-separated fields, found {len(fields)}", path)
        rows.append(Row(line, {c: fields[i] for c, i in zip(columns, index)}))
    if not rows:
        raise VlkdError("no data lines", path)
    return rows
