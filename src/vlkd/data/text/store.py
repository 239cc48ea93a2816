"""The token store: a tokenized student corpus cut into fixed-size blocks (docs/formats.md).

Layout of a store directory::

    blocks.bin      raw little-endian ids, C-order (num_blocks, block_size), uint16 or uint32
    meta.json       counts, tokenizer, vocabulary checksum, special ids, sources with checksums
    tokenizer/      the tokenizer used, saved with save_pretrained (the store is self-contained)

Building streams: input is read in chunks, each chunk tokenized in one batched call, full blocks
appended to ``blocks.bin`` and only the remainder (fewer than ``block_size`` ids) kept in memory.
The same inputs give byte-identical ``blocks.bin`` and ``meta.json``.
"""

from __future__ import annotations

import itertools
import json
import operator
import os
import re
import sys
from pathlib import Path
from typing import Any, BinaryIO, Callable, Sequence

import numpy as np
from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerFast

from vlkd.data.mapped import MappedArrays, read_meta
from vlkd.data.text.sources import DEFAULT_CHUNK_BYTES, WIKITEXT_UNK, TextSource
from vlkd.data.tokenizer import load_tokenizer, vocab_fingerprint
from vlkd.errors import VlkdError
from vlkd.preparation import WriteOnce, progress_bar

FORMAT_VERSION = 1
BLOCKS_FILE = "blocks.bin"
META_FILE = "meta.json"
TOKENIZER_DIR = "tokenizer"
DTYPES = {"uint16": np.dtype("<u2"), "uint32": np.dtype("<u4")}


# Printable ASCII only: no tab, newline or other control character.
_NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e]")


def fast_encoder(tok: PreTrainedTokenizerFast) -> Callable[[list[str]], list[list[int]]]:
    """Return a batched encoder giving exactly `tok(texts, add_special_tokens=False)["input_ids"]`.

    It calls the Rust tokenizer directly (private copies with truncation and padding off, so the
    caller's tokenizer is not touched), skipping offsets and the Python wrapper. The Rust side runs
    batches on all cores unless TOKENIZERS_PARALLELISM forbids it.

    With BERT's normalizer (about half the encoding time) a text of printable ASCII normalizes to
    exactly its lowercased self (or itself when not lowercasing): cleaning, CJK padding and accent
    stripping change no such character. Those texts go through a copy whose normalizer is just that,
    which yields the identical normalized string and so identical ids; other texts take the full path.
    """
    spec = json.loads(tok.backend_tokenizer.to_str())
    spec["truncation"] = spec["padding"] = None
    full = _batch_encoder(spec)
    normalizer = spec.get("normalizer") or {}
    if normalizer.get("type") != "BertNormalizer":
        return full
    ascii_only = _batch_encoder({**spec, "normalizer": {"type": "Lowercase"} if normalizer.get("lowercase") else None})

    def encode(texts: list[str]) -> list[list[int]]:
        plain: list[int] = []
        other: list[int] = []
        for i, text in enumerate(texts):
            (other if _NOT_PRINTABLE_ASCII.search(text) else plain).append(i)
        if not other:
            return ascii_only(texts)
        if not plain:
            return full(texts)
        ids: list[list[int]] = [[]] * len(texts)
        for index, encoder in ((plain, ascii_only), (other, full)):
            for i, row in zip(index, encoder([texts[i] for i in index])):
                ids[i] = row
        return ids

    return encode


def _batch_encoder(spec: dict[str, Any]) -> Callable[[list[str]], list[list[int]]]:
    backend = Tokenizer.from_str(json.dumps(spec))
    encode_batch = getattr(backend, "encode_batch_fast", backend.encode_batch)

    def encode(texts: list[str]) -> list[list[int]]:
        return [e.ids for e in encode_batch(texts, add_special_tokens=False)]

    return encode


def encode_with_unk(encode: Callable[[list[str]], list[list[int]]], texts: list[str], marker: str,
                    unk_id: int) -> tuple[list[list[int]], int]:
    """Encode texts whose `marker` (WikiText's `<unk>`) stands for an unknown word: each marker becomes the one
    id `unk_id`, the text between markers is encoded as usual; returns the ids and the number of markers.
    BERT's pre-tokenizer splits at `<` and `>` anyway, so the pieces encode as they would inside the text."""
    if not any(marker in t for t in texts):
        return encode(texts), 0
    pieces = [t.split(marker) for t in texts]
    flat = encode([p for parts in pieces for p in parts])
    out, k, count = [], 0, 0
    for parts in pieces:
        row: list[int] = []
        for j in range(len(parts)):
            if j:
                row.append(unk_id)
            row.extend(flat[k])
            k += 1
        count += len(parts) - 1
        out.append(row)
    return out, count


def encode_texts(encode: Callable[[list[str]], list[list[int]]], texts: list[str], fmt: str,
                 unk_id: int | None) -> tuple[list[list[int]], int]:
    """Encode one chunk of a source in format `fmt` (WikiText: `<unk>` -> `unk_id`); returns ids and `<unk>` count."""
    if fmt == "wikitext" and unk_id is not None:
        return encode_with_unk(encode, texts, WIKITEXT_UNK, unk_id)
    return encode(texts), 0


def source_record(path: str | os.PathLike, fmt: str, min_words: int | None, sha256: str, lines_read: int,
                  lines_kept: int, sniffed: bool, unk_id: int | None, unks: int) -> dict[str, Any]:
    """One input's entry in meta.json `sources`, the same for a whole build and a merge of shards."""
    record: dict[str, Any] = {"path": os.fspath(path), "format": fmt, "min_words": min_words, "sha256": sha256,
                              "lines_read": lines_read, "lines_kept": lines_kept}
    if fmt == "wikitext":
        record.update(unk_marker=WIKITEXT_UNK, unk_id=unk_id, unk_replaced=unks)
    if sniffed:
        record["format_detected"] = "wikitext (' = Heading = ' lines in a .txt file)"
    return record


class _BlockWriter:
    """Appends ids to a file as full blocks, keeping only the partial remainder in memory."""

    def __init__(self, f: BinaryIO, block_size: int, dtype: np.dtype) -> None:
        self.f, self.block_size, self.dtype = f, block_size, dtype
        self.rest = np.empty(0, dtype=dtype)
        self.num_blocks = 0
        self.num_tokens_total = 0

    def add(self, id_lists: list[list[int]]) -> None:
        n = sum(map(len, id_lists))
        if n == 0:
            return
        ids = np.empty(len(self.rest) + n, dtype=self.dtype)
        ids[: len(self.rest)] = self.rest
        ids[len(self.rest):] = np.fromiter(itertools.chain.from_iterable(id_lists), dtype=self.dtype, count=n)
        full = len(ids) // self.block_size * self.block_size
        self.f.write(memoryview(ids[:full]))
        self.rest = ids[full:].copy()
        self.num_blocks += full // self.block_size
        self.num_tokens_total += n


def write_blocks(path: Path, sources: list[TextSource], encode: Callable[[list[str]], list[list[int]]],
                 unk_id: int | None, block_size: int, dtype: np.dtype, bar: Any) -> tuple[_BlockWriter, list[int]]:
    """Tokenize `sources` in order into `path` as blocks of `block_size` ids (1: a shard's flat id stream),
    skipping a source whose shard span is empty; returns the writer (its counts) and each source's `<unk>`s."""
    with open(path, "wb") as f:
        writer = _BlockWriter(f, block_size, dtype)
        unk_counts = []
        for src in sources:
            seen, unks = 0, 0
            for texts in src.chunks() if src.span is None or src.span[0] != src.span[1] else ():
                ids, n = encode_texts(encode, texts, src.format, unk_id)
                unks += n
                writer.add(ids)
                bar.update(src.bytes_read - seen)
                bar.set_postfix_str(f"{writer.num_tokens_total:,} tokens", refresh=False)
                seen = src.bytes_read
            unk_counts.append(unks)
        f.flush()
        os.fsync(f.fileno())
    return writer, unk_counts


def open_sources(inputs: Sequence[str | os.PathLike], block_size: int, fmt: str, min_words: int | None,
                 chunk_bytes: int) -> list[TextSource]:
    """The inputs as sources, checked: at least one, each present, and a positive integer block size."""
    if not inputs:
        raise VlkdError("no input files given")
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise VlkdError(f"block_size must be a positive integer, got {block_size!r}")
    sources = [TextSource(p, fmt, min_words, chunk_bytes) for p in inputs]
    for src in sources:
        src.check_exists()
    return sources


def build_token_store(
    inputs: Sequence[str | os.PathLike],
    tokenizer: str,
    out_dir: str | os.PathLike,
    block_size: int = 126,
    fmt: str = "auto",
    min_words: int | None = None,
    progress: bool = True,
    *,
    overwrite: bool = False,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> dict[str, Any]:
    """Tokenize `inputs` (in order) into a token store at `out_dir` and return its metadata.

    `tokenizer` is a directory, `bundled:minilm` or a hub name; `fmt` is auto|wikitext|txt|wiki-json;
    `min_words` overrides the format's default minimum words per line. The final partial block is
    dropped (counted in `num_tokens_dropped`). Output is written atomically; an existing non-empty
    `out_dir` is refused unless `overwrite`. `chunk_bytes` is how much input is tokenized per batch.
    Write-once (`preparation.WriteOnce`), without resume: tokenizing is fast, and `--shard` splits a big corpus
    (`build_token_store_shard`).
    """
    sources = open_sources(inputs, block_size, fmt, min_words, chunk_bytes)
    for src in sources:
        if src.sniffed:
            print(f"vlkd: {src.path}: read as WikiText (it has ' = Heading = ' lines): headings skipped, lines under "
                  f"{src.min_words} words skipped, {WIKITEXT_UNK} -> the unknown token; --format txt reads it as plain "
                  "text", file=sys.stderr)
    output = WriteOnce("prepare text", out_dir, overwrite=overwrite)
    tok = load_tokenizer(tokenizer)
    encode = fast_encoder(tok)
    vocab_size = max(tok.get_vocab().values()) + 1
    dtype_name = "uint16" if vocab_size <= 1 << 16 else "uint32"

    def build(tmp: Path) -> dict[str, Any]:
        total_bytes = sum(src.path.stat().st_size for src in sources)
        with progress_bar(total_bytes, "tokenizing", "B", progress, unit_scale=True, unit_divisor=1024) as bar:
            writer, unk_counts = write_blocks(tmp / BLOCKS_FILE, sources, encode, tok.unk_token_id, block_size,
                                              DTYPES[dtype_name], bar)
        if writer.num_blocks == 0:
            raise VlkdError(
                f"corpus too small: {writer.num_tokens_total} tokens after filtering, fewer than one block "
                f"of {block_size}", ", ".join(os.fspath(p) for p in inputs),
            )
        meta = store_meta(
            tokenizer, tok, block_size, writer.num_blocks, writer.num_tokens_total, dtype_name, vocab_size, min_words,
            [source_record(p, src.format, src.min_words, src.sha256, src.lines_read, src.lines_kept, src.sniffed,
                           tok.unk_token_id, n) for p, src, n in zip(inputs, sources, unk_counts)],
        )
        write_meta(tmp / META_FILE, meta)
        tok.save_pretrained(tmp / TOKENIZER_DIR)
        return meta

    return output.write(build)


def tokenizer_facts(tok: PreTrainedTokenizerFast) -> dict[str, Any]:
    """What meta.json records about the tokenizer: vocabulary size and checksum, special ids."""
    return {"vocab_size": max(tok.get_vocab().values()) + 1, "vocab_sha": vocab_fingerprint(tok),
            "special_ids": {name: getattr(tok, f"{name}_token_id") for name in ("cls", "sep", "mask", "pad", "unk")}}


def store_meta(tokenizer: str, tok: PreTrainedTokenizerFast | dict[str, Any], block_size: int, num_blocks: int,
               num_tokens_total: int, dtype_name: str, vocab_size: int, min_words: int | None,
               sources: list[dict[str, Any]]) -> dict[str, Any]:
    """The store's meta.json content (`tok`: the tokenizer or its `tokenizer_facts`); one definition for
    a whole build and a merge of shards, so both give the same bytes."""
    facts = tok if isinstance(tok, dict) else tokenizer_facts(tok)
    return {
        "format_version": FORMAT_VERSION,
        "num_blocks": num_blocks,
        "block_size": block_size,
        "num_tokens": num_blocks * block_size,
        "num_tokens_total": num_tokens_total,
        "num_tokens_dropped": num_tokens_total - num_blocks * block_size,
        "dtype": dtype_name,
        "vocab_size": vocab_size,
        "tokenizer": tokenizer,
        "vocab_sha": facts["vocab_sha"],
        "special_ids": facts["special_ids"],
        "min_words": min_words,
        "sources": sources,
    }


def write_meta(path: Path, meta: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


class TokenStore:
    """Read side of a token store: random access to blocks through a read-only memory map.

    ``store[i]`` is block ``i`` as an int64 array of shape ``(block_size,)``. Picklable (for
    DataLoader workers): the memory map is opened lazily in each process (`MappedArrays`).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise VlkdError("token store directory not found", self.path)
        self.meta: dict[str, Any] = read_meta(self.path / META_FILE, "token store", FORMAT_VERSION)
        self._validate_meta()
        self.block_size: int = self.meta["block_size"]
        self.num_blocks: int = self.meta["num_blocks"]
        self.vocab_size: int = self.meta["vocab_size"]
        self.vocab_sha: str = self.meta["vocab_sha"]
        self.special_ids: dict[str, int | None] = self.meta["special_ids"]
        self.dtype = DTYPES[self.meta["dtype"]]
        self.tokenizer_dir = self.path / TOKENIZER_DIR
        self._arrays = MappedArrays(self.path, {BLOCKS_FILE: (self.dtype.str, (self.num_blocks, self.block_size))},
                                    "the store is corrupt")

    def _validate_meta(self) -> None:
        meta, where = self.meta, self.path / META_FILE
        for key in ("num_blocks", "block_size", "vocab_size"):
            value = meta.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise VlkdError(f"malformed token store metadata: {key!r} must be a positive integer", where)
        if meta.get("dtype") not in DTYPES:
            raise VlkdError(f"malformed token store metadata: dtype must be one of {sorted(DTYPES)}", where)
        if not isinstance(meta.get("vocab_sha"), str) or not isinstance(meta.get("special_ids"), dict):
            raise VlkdError("malformed token store metadata: missing vocab_sha or special_ids", where)

    @property
    def blocks(self) -> np.ndarray:
        """The (num_blocks, block_size) read-only memory map, opened on first use."""
        return self._arrays[BLOCKS_FILE]

    def __len__(self) -> int:
        return self.num_blocks

    def __getitem__(self, index: int) -> np.ndarray:
        i = operator.index(index)
        if not -self.num_blocks <= i < self.num_blocks:
            raise IndexError(f"block index {i} out of range for {self.num_blocks} blocks")
        return self.blocks[i].astype(np.int64)

    def __repr__(self) -> str:
        return f"TokenStore({os.fspath(self.path)!r}, blocks={self.num_blocks}, block_size={self.block_size})"
