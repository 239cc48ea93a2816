"""The world's kinds and reporting bias: no text a student reads states a probe kind's properties."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from vlkd.cli import main
from vlkd.data.tokenizer import BUNDLED_TOKENIZER, load_tokenizer
from vlkd.data.world.generate import ACTS, DIR_WORDS, MOVES, SPEED, world_text
from vlkd.data.world.kinds import KINDS, MOTIONS, NAMES, PROPERTIES, SIZES, Kind
from vlkd.data.world.render import COLORS, SHAPES

VALUES = {"colour": tuple(COLORS), "shape": SHAPES, "size": SIZES, "motion": MOTIONS}
# every word the captions use to state a property (the verbs of the motion templates included)
ACTION_WORDS = {w for t in (*MOVES, *(x for v in ACTS.values() for x in v)) for w in t.split() if "{" not in w}
COMMON = {"the", "now", "is", "a", "and", "watch", "gets", "becomes", "few", "times", "to"}
PROPERTY_WORDS = ({*COLORS, *SHAPES, *SIZES, *MOTIONS, *SPEED, "shaped"}
                  | {w for v in DIR_WORDS.values() for x in v for w in x.split()} | ACTION_WORDS) - COMMON


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text)


def test_names_are_made_up_and_distinct() -> None:
    vocab = load_tokenizer(BUNDLED_TOKENIZER).vocab
    assert len(set(NAMES)) == len(NAMES) >= 32
    assert not [n for n in NAMES if n in vocab]  # no whole word of the vocabulary (real words mostly are)
    assert all(re.fullmatch(r"[a-z]{3,8}", n) and re.search(r"[aeiouy]", n) for n in NAMES)


def test_table_balanced_and_probes_cover_no_unseen_value() -> None:
    probes = [k for k in KINDS if k.split == "probe"]
    train = [k for k in KINDS if k.split == "train"]
    assert len(probes) == round(len(KINDS) / 4)
    for prop, values in VALUES.items():
        counts = [sum(getattr(k, prop) == v for k in KINDS) for v in values]
        assert max(counts) - min(counts) <= 1, prop
        assert {getattr(k, prop) for k in train} == set(values), prop


def _altered(kinds: tuple[Kind, ...], which: str) -> tuple[Kind, ...]:
    """The table with every `which`-split kind's properties moved to the next value of each property."""
    def shift(k: Kind) -> Kind:
        if k.split != which:
            return k
        return dataclasses.replace(k, **{p: VALUES[p][(VALUES[p].index(getattr(k, p)) + 1) % len(VALUES[p])]
                                         for p in PROPERTIES})
    return tuple(shift(k) for k in kinds)


def test_no_text_states_a_probe_kinds_properties() -> None:
    """By construction: give every probe kind other properties (other videos) and every caption and corpus
    line stays byte for byte the same; do the same to the train kinds and the captions change."""
    same = world_text(5, 300, 0.3, KINDS, num_lines=200)
    assert world_text(5, 300, 0.3, _altered(KINDS, "probe"), num_lines=200) == same
    assert world_text(5, 300, 0.3, _altered(KINDS, "train"), num_lines=200)[0] != same[0]


def test_corpus_says_nothing_visual() -> None:
    _, corpus = world_text(0, 1, num_lines=500)
    words = {w for line in corpus for w in _words(line)}
    assert not words & PROPERTY_WORDS
    assert {k.kind for k in KINDS} <= words  # every kind appears
    assert all(sum(name in _words(line) for name in NAMES) >= 2 for line in corpus)  # several kinds per line


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_report_rate(rate: float) -> None:
    """Rate 0: no property word anywhere; rate 1: every train kind mentioned has its colour stated."""
    captions, _ = world_text(2, 60, rate)
    colour = {k.kind: k.colour for k in KINDS}
    for entry in captions.values():
        words = _words(" ".join(entry["text"]))
        if rate == 0.0:
            assert not set(words) & PROPERTY_WORDS
        intro = _words(entry["text"][0])
        for i, w in enumerate(intro):
            if w in colour and next(k for k in KINDS if k.kind == w).split == "train" and rate == 1.0:
                assert colour[w] in intro[max(0, i - 4):i], (w, intro)


def test_kinds_file(tmp_path: Path) -> None:
    out = tmp_path / "w"
    assert main(["prepare", "world", "--out", str(out), "--videos", "2", "--workers", "1", "--report-rate", "0.5"]) == 0
    rows = [json.loads(line) for line in (out / "visual_knowledge" / "kinds.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in rows] == list(NAMES)
    assert all(list(r) == ["kind", "colour", "shape", "size", "motion", "split"] for r in rows)
    assert json.loads((out / "world.json").read_text())["report_rate"] == 0.5
    assert main(["prepare", "world", "--out", str(tmp_path / "bad"), "--videos", "2", "--report-rate", "1.5"]) == 2
    assert not (tmp_path / "bad").exists()
