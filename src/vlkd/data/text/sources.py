"""Streaming readers that turn raw corpus files into text paragraphs (docs/formats.md).

Formats:

- ``wikitext``: WikiText-103 / WikiText-2 (``*.raw``, ``*.tokens``). Empty lines and heading lines
  (`` = Title = ``, `` = = Section = = ``) are skipped, and so are lines of fewer than
  ``min_words`` words (the reference used 5, the default here). The ``.tokens`` files write every
  out-of-vocabulary word as ``<unk>`` (``WIKITEXT_UNK``): the token store turns it into the tokenizer's
  unknown token, one id, instead of the word pieces of ``<``, ``unk``, ``>``.
- ``txt``: plain text, one paragraph per non-empty line.
- ``wiki-json``: the bundled Wikipedia file ``summaries_en-us.json``: ``{title: entry}`` where an entry
  is a dict (or a string holding a Python dict literal) with an ``extract``; each extract is one text.
- ``auto``: ``.raw``/``.tokens`` -> wikitext, ``.json`` -> wiki-json, anything else -> txt, except a file
  that is WikiText by content (a `` = Heading = `` line in its first 64 KiB): it is read as wikitext and
  ``sniffed`` is set, so the caller can say so (``--format txt`` reads it as plain text).

Line-based formats are read in binary chunks of about ``chunk_bytes`` so memory does not grow with
the file; the SHA-256 of the file bytes is computed on the way.
"""

from __future__ import annotations

import ast
import codecs
import hashlib
import json
import os
from pathlib import Path
from typing import BinaryIO, Iterator

from vlkd.errors import VlkdError
from vlkd.io import DuplicateKey, unique_json_object

FORMATS = ("auto", "wikitext", "txt", "wiki-json")
DEFAULT_MIN_WORDS = {"wikitext": 5, "txt": 0, "wiki-json": 0}
DEFAULT_CHUNK_BYTES = 1 << 20
WIKITEXT_UNK = "<unk>"
SNIFF_BYTES = 1 << 16


def resolve_format(path: str | os.PathLike, fmt: str = "auto") -> str:
    """Return the concrete format of `path` (`auto` decided by the file extension)."""
    if fmt not in FORMATS:
        raise VlkdError(f"unknown text format {fmt!r} (known: {', '.join(FORMATS)})", path)
    if fmt != "auto":
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix in (".raw", ".tokens"):
        return "wikitext"
    if suffix == ".json":
        return "wiki-json"
    return "txt"


def looks_like_wikitext(path: str | os.PathLike) -> bool:
    """True when the start of the file has a WikiText heading line: ` = Title = ` (spaces around, as written)."""
    try:
        with open(path, "rb") as f:
            head = f.read(SNIFF_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return False
    return any(line.startswith(" = ") and line.endswith(" = ") and is_wikitext_heading(line.strip())
               for line in head.splitlines())


def is_wikitext_heading(stripped: str) -> bool:
    """True for a stripped WikiText heading line such as `= Title =` or `= = Section = =`."""
    return stripped.startswith("= ") and stripped.endswith(" =")


def has_min_words(text: str, min_words: int) -> bool:
    """True when `text` has at least `min_words` whitespace-separated words (stops splitting early)."""
    return min_words <= 0 or len(text.split(None, min_words - 1)) >= min_words


class TextSource:
    """One input file, read as a stream of text paragraphs.

    Iterate it for single texts, or call :meth:`chunks` for lists of texts covering about
    ``chunk_bytes`` of input each (wiki-json is parsed whole, then handed out in such lists). After a full pass, ``sha256``, ``lines_read`` (lines, or entries
    for wiki-json), ``lines_kept`` and ``bytes_read`` describe the file.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fmt: str = "auto",
        min_words: int | None = None,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        span: tuple[int, int] | None = None,
    ) -> None:
        self.path = Path(path)
        self.span = span  # a shard's byte range of the file (see `chunks`); None: the whole file
        self.format = resolve_format(path, fmt)
        self.sniffed = fmt == "auto" and self.format == "txt" and self.path.is_file() and looks_like_wikitext(path)
        if self.sniffed:
            self.format = "wikitext"
        self.min_words = DEFAULT_MIN_WORDS[self.format] if min_words is None else int(min_words)
        if self.min_words < 0:
            raise VlkdError(f"min_words must be >= 0, got {self.min_words}", path)
        if chunk_bytes < 1:
            raise VlkdError(f"chunk_bytes must be >= 1, got {chunk_bytes}", path)
        self.chunk_bytes = chunk_bytes
        self.sha256 = ""
        self.lines_read = 0
        self.lines_kept = 0
        self.bytes_read = 0
        self._offset = 0

    def check_exists(self) -> None:
        """Raise a VlkdError unless the input is an existing regular file."""
        if not self.path.exists():
            raise VlkdError("input file not found", self.path)
        if not self.path.is_file():
            raise VlkdError("not a regular file", self.path)

    def __iter__(self) -> Iterator[str]:
        for chunk in self.chunks():
            yield from chunk

    def chunks(self) -> Iterator[list[str]]:
        """Yield lists of kept texts, each from about `chunk_bytes` of input, in file order.

        With `span` (lo, hi) only the texts a shard owns: the lines that start in [align(lo), align(hi)), where
        align(p) is the start of the first line beginning at or after p, so shards cover the file exactly once;
        for wiki-json, entry j of n sits at byte j * size // n. `sha256` is then left empty."""
        self.check_exists()
        self.lines_read = self.lines_kept = self.bytes_read = 0
        if self.format == "wiki-json":
            batch, size = [], 0
            for text in self._wiki_json():
                batch.append(text)
                size += len(text)
                if size >= self.chunk_bytes:
                    yield batch
                    batch, size = [], 0
            if batch:
                yield batch
        else:
            yield from self._line_chunks()

    # -- line-based formats -------------------------------------------------------------------

    def _line_chunks(self) -> Iterator[list[str]]:
        digest = hashlib.sha256()
        pending: list[bytes] = []  # bytes of a line not yet ended
        with open(self.path, "rb") as f:
            start, remaining = 0, None
            if self.span is not None:
                start = _line_start(f, self.span[0])
                remaining = _line_start(f, self.span[1]) - start
                f.seek(start)
            self._offset = start
            while True:
                block = f.read(self.chunk_bytes if remaining is None else min(self.chunk_bytes, remaining))
                if remaining is not None:
                    remaining -= len(block)
                if block:
                    digest.update(block)
                    cut = block.rfind(b"\n") + 1
                    if cut == 0:
                        pending.append(block)
                        continue
                    data = b"".join([*pending, block[:cut]])
                    pending = [block[cut:]]
                else:
                    data, pending = b"".join(pending), []
                if self.bytes_read == 0 and start == 0 and data.startswith(codecs.BOM_UTF8):
                    data = data[len(codecs.BOM_UTF8):]
                    self.bytes_read = len(codecs.BOM_UTF8)
                if data:
                    kept = self._filter(self._decode(data).split("\n"))
                    self.bytes_read += len(data)
                    yield kept
                if not block:
                    break
        self.sha256 = digest.hexdigest() if self.span is None else ""

    def _decode(self, data: bytes) -> str:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as e:
            line = self.lines_read + data.count(b"\n", 0, e.start) + 1
            raise VlkdError(
                f"not UTF-8 text: invalid byte at offset {self._offset + self.bytes_read + e.start} "
                f"(line {line}{' of this shard' if self._offset else ''})", self.path
            ) from None

    def _filter(self, lines: list[str]) -> list[str]:
        if lines and lines[-1] == "":
            lines.pop()  # the split after a final newline
        self.lines_read += len(lines)
        wikitext, min_words = self.format == "wikitext", self.min_words
        kept = []
        for line in lines:
            text = line.strip()
            if not text or (wikitext and is_wikitext_heading(text)) or not has_min_words(text, min_words):
                continue
            kept.append(text)
        self.lines_kept += len(kept)
        return kept

    # -- wiki-json -------------------------------------------------------------------------------

    def _wiki_json(self) -> list[str]:
        raw = self.path.read_bytes()
        self.sha256 = hashlib.sha256(raw).hexdigest()
        self.bytes_read = len(raw)
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            line = raw.count(b"\n", 0, e.start) + 1
            raise VlkdError(f"not UTF-8 text: invalid byte at offset {e.start} (line {line})", self.path) from None
        try:
            entries = json.loads(text, object_pairs_hook=unique_json_object)
        except json.JSONDecodeError as e:
            raise VlkdError(f"malformed JSON (line {e.lineno}, column {e.colno}: {e.msg})", self.path) from None
        except DuplicateKey as e:
            raise VlkdError(f"key {e.args[0]!r} appears twice in one JSON object", self.path) from None
        except RecursionError:
            raise VlkdError("malformed JSON (nested too deeply)", self.path) from None
        if not isinstance(entries, dict):
            raise VlkdError(f"expected a JSON object {{title: entry}}, got {type(entries).__name__}", self.path)
        items = list(entries.items())
        if self.span is not None:
            lo, hi = self.span
            items = [item for j, item in enumerate(items) if lo <= j * len(raw) // len(items) < hi]
            self.sha256 = ""
        kept = []
        for title, entry in items:
            extract = self._extract(title, entry)
            if extract and has_min_words(extract, self.min_words):
                kept.append(extract)
        self.lines_read, self.lines_kept = len(items), len(kept)
        return kept

    def _extract(self, title: str, entry: object) -> str:
        if isinstance(entry, str):
            try:
                entry = ast.literal_eval(entry)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                raise VlkdError(f"entry {title!r} is a string but not a Python dict literal", self.path) from None
        if not isinstance(entry, dict):
            raise VlkdError(f"entry {title!r} is {type(entry).__name__}, expected a dict with 'extract'", self.path)
        extract = entry.get("extract")
        if not isinstance(extract, str):
            raise VlkdError(f"entry {title!r} has no string 'extract'", self.path)
        return extract.strip()


def _line_start(f: BinaryIO, pos: int) -> int:
    """The offset of the first line that starts at or after `pos` in binary file `f` (its size if none)."""
    if pos <= 0:
        return 0
    f.seek(pos - 1)
    while True:
        block = f.read(1 << 16)
        if not block:
            return f.tell()
        i = block.find(b"\n")
        if i >= 0:
            return f.tell() - len(block) + i + 1
