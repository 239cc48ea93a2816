"""Benchmark `build_token_store` (`vlkd prepare text`): throughput and peak memory.

Builds a >= 50 MB plain-text corpus by repeating the bundled Wikipedia extracts (one per line) and a
10x smaller one, then measures:

- throughput: tokens/s of `build_token_store` on the 5 MB corpus ("ours", in this process) against the
  reference code's approach, one `tok(line, add_special_tokens=False)` call per line, on the same corpus.
  Timing is paired (benchmarks/paired_timing.py): each round runs both once, the order reversed every
  other round; the ratio is the median of the per-round ratios of the two rates, with quartiles and
  extremes;
- peak memory: max RSS of a build of the 50 MB corpus against a build of the 5 MB one, each in its own
  child process (`--child`; the parent reads its max RSS with os.wait4; streaming means 10x the input
  should cost about the same memory). Not timed.

`--quick`: one round. Prints one JSON line per figure (README.md, Benchmarks);
progress notes go to stderr. Full run ~1-2 min on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from paired_timing import line, parse_args, rounds  # noqa: E402  (this directory is on the path)

BIG_BYTES = 50 * 2**20
SMALL_BYTES = BIG_BYTES // 10
ROUNDS, QUICK_ROUNDS = 4, 1
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


def reference_lines(corpus: Path) -> list[str]:
    with open(corpus, encoding="utf-8") as f:
        return f.read().split("\n")[:-1]


def reference_ids(tok, lines: list[str]) -> list[int]:
    """The reference approach: one tokenizer call per line."""
    ids: list[int] = []
    for text in lines:
        text = text.strip()
        if text:
            ids.extend(tok(text, add_special_tokens=False)["input_ids"])
    return ids


def check_same_ids(ids: list[int], store_dir: Path) -> None:
    """The reference's ids must be exactly the start of our store."""
    import numpy as np

    from vlkd.data.text.store import TokenStore

    store = TokenStore(store_dir)
    n = len(ids) // BLOCK_SIZE
    ours = np.stack([store[i] for i in range(n)])
    if not np.array_equal(ours, np.array(ids[: n * BLOCK_SIZE]).reshape(n, BLOCK_SIZE)):
        raise SystemExit("token store differs from the reference tokenization")


def main() -> None:
    if "--child" in sys.argv:
        parser = argparse.ArgumentParser()
        parser.add_argument("--child", nargs=2, metavar=("CORPUS", "OUT"))
        child_build(*parser.parse_args().child)
        return
    args = parse_args(__doc__, ROUNDS, QUICK_ROUNDS)
    from vlkd.data.text.store import build_token_store
    from vlkd.data.tokenizer import load_tokenizer

    big_bytes = BIG_BYTES
    with tempfile.TemporaryDirectory(prefix="vlkd-bench-") as tmp:
        tmp = Path(tmp)
        big, small = tmp / "wiki_big.txt", tmp / "wiki_small.txt"
        make_corpus(big, big_bytes)
        make_corpus(small, big_bytes // 10)
        log(f"corpora: {big.stat().st_size / 2**20:.1f} MiB and {small.stat().st_size / 2**20:.1f} MiB")
        _, peak_small = run_build(small, tmp / "store_small")
        _, peak_big = run_build(big, tmp / "store_big")

        tok = load_tokenizer(TOKENIZER)
        lines = reference_lines(small)
        tok(lines[0], add_special_tokens=False)  # warm-up
        counts: dict[str, int] = {}

        def ours(i: int) -> None:
            meta = build_token_store([small], TOKENIZER, tmp / f"round{i}", block_size=BLOCK_SIZE, progress=False)
            counts["ours"] = meta["num_tokens_total"]

        def reference(i: int) -> None:
            ids = reference_ids(tok, lines)
            counts["reference"] = len(ids)
            if i == 0:
                check_same_ids(ids, tmp / "store_small")

        times = rounds({"ours": ours, "reference": reference}, args.rounds)
    rate_ours = [counts["ours"] / t for t in times["ours"]]
    rate_ref = [counts["reference"] / t for t in times["reference"]]
    log(f"tokens/s per round: ours {[round(r) for r in rate_ours]}, reference {[round(r) for r in rate_ref]}")
    line("prepare_text_throughput", statistics.median(rate_ours), statistics.median(rate_ref), "tokens/s",
         [o / r for o, r in zip(rate_ours, rate_ref)], 500000, target_applies_to="ours")
    line("prepare_text_peak_memory", peak_big, peak_small, "MiB", [peak_big / peak_small], 1.2,
         target_applies_to="ratio <= target", timing="not timed: one child process per corpus size")


if __name__ == "__main__":
    main()
