"""Property tests of the VideoQA readers (question JSON, GloVe text, prepared JSONL): random, malformed input
either parses into valid records or raises VlkdError, never another exception (issue 15, point 8)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from tests.data.json_strategies import JSON, SCALARS, SETTINGS, json_bytes
from vlkd.data.videoqa.prepare import load_glove, load_split, read_split
from vlkd.errors import VlkdError

WELL_FORMED = st.fixed_dictionaries(
    {"question": st.one_of(st.sampled_from(["what is it?", "who runs", "How many?"]), st.text(max_size=10)),
     "answer": st.one_of(st.sampled_from(["dog", " Cat "]), st.text(max_size=5)),
     "video_id": st.one_of(st.integers(0, 3), st.sampled_from(["vid1", "2", "abc_1_2"])),
     "id": st.integers(0, 2)},
    optional={"video_name": st.one_of(st.sampled_from(["abc_1_2", "x"]), SCALARS)})
ODD = st.fixed_dictionaries(
    {"question": st.one_of(st.sampled_from(["?", " ", "what"]), SCALARS),
     "answer": st.one_of(st.sampled_from(["", "a"]), SCALARS)},
    optional={"id": st.one_of(st.sampled_from(["1", "a", True, 1.5]), SCALARS),
              "video_id": st.one_of(st.sampled_from(["vid1", None, False]), SCALARS),
              "video_name": st.one_of(st.sampled_from(["abc_1_2", "x"]), SCALARS)})
RECORD = st.one_of(
    WELL_FORMED, WELL_FORMED, ODD,
    st.dictionaries(st.sampled_from(["video_id", "video_name", "question", "answer", "id", "extra"]),
                    st.one_of(st.text(max_size=10), st.integers(-3, 3), SCALARS), max_size=6),
    JSON,
)
MAPPING = st.one_of(st.none(), st.dictionaries(st.text(max_size=5), st.integers(0, 9), max_size=3))


def check_one_line(error: VlkdError, path: Path) -> None:
    assert str(path) in str(error) and "\n" not in str(error)


@SETTINGS
@given(raw=json_bytes(st.one_of(st.lists(WELL_FORMED, min_size=2, max_size=4), st.lists(RECORD, max_size=5), JSON)),
       mapping=MAPPING)
def test_question_json_parses_to_valid_records_or_vlkd_error(raw: bytes, mapping: dict | None, tmp_path: Path) -> None:
    path = tmp_path / "train_qa.json"
    path.write_bytes(raw)
    try:
        records = read_split(path, mapping)
    except VlkdError as e:
        check_one_line(e, path)
        return
    ids = [str(r["id"]) for r in records]
    assert len(ids) == len(set(ids))
    for r in records:
        assert isinstance(r["id"], (int, str)) and not isinstance(r["id"], bool)
        assert isinstance(r["video_id"], (int, str)) and not isinstance(r["video_id"], bool)
        assert r["words"] and all(isinstance(w, str) and w for w in r["words"])
        assert isinstance(r["answer"], str) and r["answer"] == r["answer"].strip().lower() and r["answer"]


FIELD = st.one_of(st.sampled_from(["0.5", "-1", "nan", "inf", "-inf", "1e39", "1e-50", "x", "", "1,5", "0x10"]),
                  st.floats(allow_nan=True, allow_infinity=True).map(repr), st.text(max_size=4))
LINE = st.one_of(
    st.tuples(st.sampled_from(["the", "dog", "what", "a b"]), st.lists(FIELD, min_size=0, max_size=4)).map(
        lambda t: " ".join([t[0], *t[1]])),
    st.text(max_size=12),
    st.sampled_from(["3 2", "0 0", "10 -1"]),
)
GLOVE = st.one_of(st.lists(LINE, max_size=6).map(lambda lines: "\n".join(lines).encode("utf-8", "surrogatepass")),
                  st.binary(max_size=40))


@SETTINGS
@given(raw=GLOVE)
def test_glove_text_gives_finite_vectors_or_vlkd_error(raw: bytes, tmp_path: Path) -> None:
    path = tmp_path / "glove.txt"
    path.write_bytes(raw)
    words = ["<NULL>", "<UNK>", "the", "dog", "what", "a b"]
    try:
        matrix, found = load_glove(path, words)
    except VlkdError as e:
        check_one_line(e, path)
        return
    assert matrix.dtype == np.float32 and matrix.shape[0] == len(words) and matrix.shape[1] >= 1
    assert np.isfinite(matrix).all() and 0 <= found <= len(words) - 2
    assert not matrix[:2].any()  # the specials stay zero


ROW = st.one_of(
    st.fixed_dictionaries({"video_id": st.one_of(st.integers(0, 5), st.text(max_size=3)),
                           "tokens": st.one_of(st.lists(st.one_of(st.integers(-2, 12), SCALARS), max_size=4), JSON),
                           "label": st.one_of(st.integers(-2, 12), SCALARS), "type": st.just("what")}),
    JSON,
)


@SETTINGS
@given(rows=st.lists(ROW, max_size=4), tail=st.sampled_from([b"", b"\n{", b"\xff\n", b"\n\n"]))
def test_prepared_split_rows_lie_in_the_vocabularies_or_vlkd_error(rows: list, tail: bytes, tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_bytes("".join(json.dumps(r) + "\n" for r in rows).encode() + tail)
    try:
        loaded = load_split(tmp_path, "train", num_words=10, num_answers=5)
    except VlkdError as e:
        check_one_line(e, path)
        return
    for row in loaded:
        assert all(isinstance(t, int) and 0 <= t < 10 for t in row["tokens"])
        assert isinstance(row["label"], int) and 0 <= row["label"] < 5
