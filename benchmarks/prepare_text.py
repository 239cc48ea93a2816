"""Benchmark `build_token_store` (`vlkd prepare text`): throughput and peak memory.

Builds a >= 50 MB plain-text corpus by repeating the bundled Wikipedia extracts (one per line) and a
10x smaller one, then measures:

- throughput: tokens/s of `build_token_store` on the 50 MB corpus ("ours") against the reference
  code's approach, one `tok(line, add_special_tokens=False)` call per line, on the first 2 MB;
- peak memory: max RSS of a build of the 50 MB corpus against a build of the 5 MB one, each in its own
  child process (streaming means 10x the input should cost about the same memory).

Each build runs in a fresh child process (`--child`); the parent reads its max RSS with os.wait4.
Prints one JSON line per figure (README.md, Benchmarks); progress notes go to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIG_BYTES = 50 * 2**20
SMALL_BYTES = BIG_BYTES // 10
REFERENCE_BYTES = 2 * 2**20
TOKENIZER = "bundled:minilm"
BLOCK_SIZE = 126


def log(msg: str) -> None:
    print(f"[prepare_text] {msg}", file=sys.stderr, flush=True)


def make_corpus(path: Path, min_bytes: int) -> None:
    """Write the bundled Wikipedia extracts, one per line, repeated; stop at the first line end past min_bytes."""
    from vlkd.data.bundled import bundled_path
    from vlkd.data.text.sources import TextSource

    text = "".join(" ".join(t.split()) + "\n" for t in TextSource(bundled_path("wikipedia"))).encode("utf-8")
    written = 0
    with open(path, "wb") as f:
        while written < min_bytes:
            piece = text[: text.index(b"\n", min(min_bytes - written, len(text) - 1)) + 1]
            f.write(piece)
            written += len(piece)


def child_build(corpus: str, out: str) -> None:
    """Run one build (in a child process) and print its token count and seconds as JSON."""
    from vlkd.data.text.store import build_token_store

    start = time.perf_counter()
    meta = build_token_store([corpus], TOKENIZER, out, block_size=BLOCK_SIZE, progress=False)
    seconds = time.perf_counter() - start
    print(json.dumps({"tokens": meta["num_tokens_total"], "seconds": seconds}))


def run_build(corpus: Path, out: Path) -> tuple[float, float]:
    """Build in a fresh child process; return (tokens/s, peak RSS in MiB)."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", str(corpus), str(out)], stdout=subprocess.PIPE, text=True
    )
    stdout = proc.stdout.read()
    proc.stdout.close()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"child build of {corpus} failed with exit code {proc.returncode}")
    result = json.loads(stdout.strip().splitlines()[-1])
    peak_mib = usage.ru_maxrss / 1024  # Linux reports KiB
    tokens_per_s = result["tokens"] / result["seconds"]
    log(f"{corpus.name}: {result['tokens']} tokens in {result['seconds']:.2f}s = {tokens_per_s:,.0f} tokens/s, "
        f"peak RSS {peak_mib:.0f} MiB")
    return tokens_per_s, peak_mib


def reference_throughput(corpus: Path, store_dir: Path) -> float:
    """The reference approach on the corpus's first REFERENCE_BYTES: one tokenizer call per line.

    Also checks that its ids are exactly the start of our store.
    """
    import numpy as np

    from vlkd.data.text.store import TokenStore
    from vlkd.data.tokenizer import load_tokenizer

    tok = load_tokenizer(TOKENIZER)
    with open(corpus, encoding="utf-8") as f:
        lines = f.read(REFERENCE_BYTES).split("\n")[:-1]  # whole lines only
    tok(lines[0], add_special_tokens=False)  # warm-up
    start = time.perf_counter()
    ids: list[int] = []
    for line in lines:
        line = line.strip()
        if line:
            ids.extend(tok(line, add_special_tokens=False)["input_ids"])
    seconds = time.perf_counter() - start
    log(f"reference: {len(ids)} tokens in {seconds:.2f}s = {len(ids) / seconds:,.0f} tokens/s")

    store = TokenStore(store_dir)
    n = len(ids) // BLOCK_SIZE
    ours = np.stack([store[i] for i in range(n)])
    if not np.array_equal(ours, np.array(ids[: n * BLOCK_SIZE]).reshape(n, BLOCK_SIZE)):
        raise SystemExit("token store differs from the reference tokenization")
    return len(ids) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", nargs=2, metavar=("CORPUS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_build(*args.child)
        return

    with tempfile.TemporaryDirectory(prefix="vlkd-bench-") as tmp:
        tmp = Path(tmp)
        big, small = tmp / "wiki_50mb.txt", tmp / "wiki_5mb.txt"
        make_corpus(big, BIG_BYTES)
        make_corpus(small, SMALL_BYTES)
        log(f"corpora: {big.stat().st_size / 2**20:.1f} MiB and {small.stat().st_size / 2**20:.1f} MiB")
        _, peak_small = run_build(small, tmp / "store_5mb")
        ours, peak_big = run_build(big, tmp / "store_50mb")
        reference = reference_throughput(big, tmp / "store_50mb")

    print(json.dumps({
        "benchmark": "prepare_text_throughput", "ours": round(ours), "reference": round(reference),
        "unit": "tokens/s", "ratio": round(ours / reference, 2), "target": 500000, "target_applies_to": "ours",
    }))
    print(json.dumps({
        "benchmark": "prepare_text_peak_memory", "ours": round(peak_big, 1), "reference": round(peak_small, 1),
        "unit": "MiB", "ratio": round(peak_big / peak_small, 3), "target": 1.2,
        "target_applies_to": "ratio <= target",
    }))


if __name__ == "__main__":
    main()
