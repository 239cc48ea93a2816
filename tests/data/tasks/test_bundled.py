"""`vlkd prepare bundled`: GLUE-layout offline tasks with fixed, deterministic, disjoint splits."""

from __future__ import annotations

import json
from pathlib import Path

from vlkd.cli import main
from vlkd.data.tasks.bundled import RT_LABELS, WIKI_TOPICS, split_of


def rows(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]


def test_writes_both_tasks_deterministically(tmp_path: Path, capsys) -> None:
    assert main(["prepare", "bundled", "--out", str(tmp_path / "a")]) == 0
    assert "rt-polarity: 10,451 train, 981 dev, 1,320 test" in capsys.readouterr().out
    assert main(["prepare", "bundled", "--out", str(tmp_path / "b")]) == 0
    for task, labels in (("rt-polarity", RT_LABELS), ("wiki-topic", WIKI_TOPICS)):
        folder = tmp_path / "a" / task
        for name in ("train.tsv", "dev.tsv", "test.tsv", "meta.json"):
            assert (folder / name).read_bytes() == (tmp_path / "b" / task / name).read_bytes()
        train, dev, test = (rows(folder / f"{s}.tsv") for s in ("train", "dev", "test"))
        assert train[0] == dev[0] == ["sentence", "label"] and test[0] == ["index", "sentence"]
        assert all(len(r) == 2 and r[1] in labels for r in train[1:] + dev[1:])
        assert [r[0] for r in test[1:]] == [str(i) for i in range(len(test) - 1)]
        texts = [{r[0] for r in train[1:]}, {r[0] for r in dev[1:]}, {r[1] for r in test[1:]}]
        assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])
        meta = json.loads((folder / "meta.json").read_text())
        assert meta["counts"] == {"train": len(train) - 1, "dev": len(dev) - 1, "test": len(test) - 1}
        assert len({r[1] for r in train[1:]}) == len(labels)  # every class is represented


def test_split_rule_is_a_fixed_hash() -> None:
    # sha256 mod 10: 0 -> test, 1 -> dev, else train (documented; must never change)
    assert [split_of(k) for k in ("aankhen", "abandon", "about_a_boy")] == [split_of(k) for k in
                                                                            ("aankhen", "abandon", "about_a_boy")]
    shares = [split_of(str(i)) for i in range(10000)]
    assert 0.08 < shares.count("test") / 1e4 < 0.12 and 0.08 < shares.count("dev") / 1e4 < 0.12
