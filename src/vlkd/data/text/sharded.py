"""`vlkd prepare text --shard K/N` and its merge (vlkd.shards describes the scheme).

The inputs, taken in order, are one byte stream; shard K owns the K-th of N equal byte ranges, moved to
line starts (wiki-json: entry j of n counts as at byte j * size // n), so the shards cover every line once
and in order. Each shard tokenizes its lines into a flat id stream (`ids.bin`, no blocks). Since a store
is the concatenated ids of all kept lines cut into blocks, the merge concatenates the shards' streams and
keeps whole blocks: the same `blocks.bin`, and `meta.json` (per-file sha256 computed at merge) and
`tokenizer/`, as one `vlkd prepare text` run.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Sequence

from vlkd.data.text.sources import DEFAULT_CHUNK_BYTES
from vlkd.data.text.store import (
    BLOCKS_FILE,
    DTYPES,
    META_FILE,
    TOKENIZER_DIR,
    fast_encoder,
    open_sources,
    source_record,
    store_meta,
    tokenizer_facts,
    write_blocks,
    write_meta,
)
from vlkd.data.tokenizer import load_tokenizer
from vlkd.errors import VlkdError
from vlkd.io import file_sha256
from vlkd.preparation import SHARD_DATA, WriteOnce, progress_bar
from vlkd.shards import Shard, ShardSet, concat_files, file_identity

COMMAND = "prepare text"
IDS_FILE = "ids.bin"


def build_token_store_shard(
    inputs: Sequence[str | os.PathLike], tokenizer: str, out_dir: str | os.PathLike, shard: Shard,
    block_size: int = 126, fmt: str = "auto", min_words: int | None = None, progress: bool = True, *,
    overwrite: bool = False, chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> dict[str, Any]:
    """Tokenize shard `shard`'s part of `inputs` into OUT.shards/K-of-N/data; returns its shard result."""
    sources = open_sources(inputs, block_size, fmt, min_words, chunk_bytes)
    tok = load_tokenizer(tokenizer)
    facts = tokenizer_facts(tok)
    dtype_name = "uint16" if facts["vocab_size"] <= 1 << 16 else "uint32"
    identity = {"files": file_identity(inputs), "paths": [os.fspath(p) for p in inputs], "tokenizer": tokenizer,
                "vocab_sha": facts["vocab_sha"], "block_size": block_size, "format": fmt, "min_words": min_words}
    output = WriteOnce(COMMAND, out_dir, shard=shard, identity=identity, overwrite=overwrite)
    if output.finished is not None:
        return output.finished
    sizes = [src.path.stat().st_size for src in sources]
    lo, hi = shard.span(sum(sizes))
    offset = 0
    for src, size in zip(sources, sizes):
        src.span = (min(max(lo - offset, 0), size), min(max(hi - offset, 0), size))
        offset += size
    encode = fast_encoder(tok)

    def build(tmp: Path) -> dict[str, Any]:
        with progress_bar(hi - lo, f"tokenizing (shard {shard})", "B", progress, unit_scale=True,
                          unit_divisor=1024) as bar:
            writer, unk_counts = write_blocks(tmp / IDS_FILE, sources, encode, tok.unk_token_id, 1,
                                              DTYPES[dtype_name], bar)
        tok.save_pretrained(tmp / TOKENIZER_DIR)
        return {"num_tokens": writer.num_tokens_total, "dtype": dtype_name, "tokenizer_facts": facts,
                "sources": [{"format": s.format, "min_words": s.min_words, "lines_read": s.lines_read,
                             "lines_kept": s.lines_kept, "sniffed": s.sniffed, "unks": n}
                            for s, n in zip(sources, unk_counts)]}

    return output.write(build)


def merge_token_store_shards(shards: ShardSet, directory: Path) -> dict[str, Any]:
    """Write the token store of all `shards` into `directory` (`vlkd merge-shards` renames it onto OUT), as one
    unsharded run would; returns its meta."""
    inputs, results = shards.inputs, shards.results
    paths = inputs["paths"]
    if file_identity(resolved for resolved, _ in inputs["files"]) != inputs["files"]:
        raise VlkdError("an input file changed (path or size) since the shards were made; re-run the shards",
                        ", ".join(paths))
    block_size, dtype_name = inputs["block_size"], results[0]["dtype"]
    total = sum(r["num_tokens"] for r in results)
    num_blocks = total // block_size
    if num_blocks == 0:
        raise VlkdError(f"corpus too small: {total} tokens after filtering, fewer than one block of {block_size}",
                        ", ".join(paths))
    facts = results[0]["tokenizer_facts"]
    sources = []
    for i, (p, (resolved, _)) in enumerate(zip(paths, inputs["files"])):
        parts = [r["sources"][i] for r in results]
        sources.append(source_record(
            p, parts[0]["format"], parts[0]["min_words"], file_sha256(Path(resolved)),
            sum(s["lines_read"] for s in parts), sum(s["lines_kept"] for s in parts), parts[0]["sniffed"],
            facts["special_ids"]["unk"], sum(s["unks"] for s in parts)))
    meta = store_meta(inputs["tokenizer"], facts, block_size, num_blocks, total, dtype_name, facts["vocab_size"],
                      inputs["min_words"], sources)
    concat_files([d / SHARD_DATA / IDS_FILE for d in shards.dirs], directory / BLOCKS_FILE,
                 limit=num_blocks * block_size * DTYPES[dtype_name].itemsize)
    write_meta(directory / META_FILE, meta)
    shutil.copytree(shards.dirs[0] / SHARD_DATA / TOKENIZER_DIR, directory / TOKENIZER_DIR)
    return meta
