"""What the benchmarks share: paired timing (the two sides alternate step by step, A B B A ...; these VMs
drift by up to 50% within minutes, so only per-pair ratios compare), the JSON line of each figure, and a
token store of real text. Run a benchmark as `python benchmarks/NAME.py`: this directory is on its path."""

from __future__ import annotations

import ast
import json
import statistics
import time
from pathlib import Path
from typing import Callable

from vlkd.data.bundled import bundled_path
from vlkd.data.text.store import TokenStore, build_token_store
from vlkd.data.tokenizer import BUNDLED_TOKENIZER


def paired(a: Callable[[int], None], b: Callable[[int], None], pairs: int) -> tuple[float, float, list[float]]:
    """Alternate a and b (A B, then B A, ...); returns (median time of a, of b, per-pair ratios t_b / t_a)."""
    ta, tb = [], []
    for i in range(pairs):
        order = (a, b) if i % 2 == 0 else (b, a)
        times = {}
        for fn in order:
            start = time.perf_counter()
            fn(i)
            times[fn] = time.perf_counter() - start
        ta.append(times[a])
        tb.append(times[b])
    return statistics.median(ta), statistics.median(tb), [y / x for x, y in zip(ta, tb)]


def line(name: str, ours: float, reference: float, unit: str, ratios: list[float], target: float, **extra) -> None:
    q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    print(json.dumps({"benchmark": name, "ours": round(ours, 2), "reference": round(reference, 2), "unit": unit,
                      "ratio": round(statistics.median(ratios), 3), "ratio_q1": round(q[0], 3),
                      "ratio_q3": round(q[2], 3), "pairs": len(ratios), "target": target, **extra}), flush=True)


def make_store(root: Path) -> TokenStore:
    """A token store of real text (bundled Wikipedia lead sections), enough blocks for every timed step."""
    raw = json.loads(bundled_path("wikipedia").read_text(encoding="utf-8"))
    # the bundled file stores each record as a Python literal
    texts = [(ast.literal_eval(v) if isinstance(v, str) else v)["extract"] for v in list(raw.values())[:400]]
    (root / "wiki.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    build_token_store([root / "wiki.txt"], BUNDLED_TOKENIZER, root / "store", progress=False)
    return TokenStore(root / "store")
