"""`vlkd prepare videoqa` on a hand-written MSVD-QA fixture: vocabularies, labels, GloVe rows, features, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from vlkd.cli import main
from vlkd.data.videoqa.prepare import (
    load_glove,
    load_split,
    load_vocab,
    prepare_videoqa,
    question_type,
    tokenize,
)
from vlkd.errors import VlkdError

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "videoqa" / "msvd"

# Train questions, tokenized: is x6; dog, the, what x3; a, chasing, doing, man, who x2; the rest once.
QUESTION_VOCAB = ["<NULL>", "<UNK>", "is", "dog", "the", "what", "a", "chasing", "doing", "man", "who",
                  "'s", "are", "ball", "cooking", "dogs", "how", "many", "playing", "where"]
# Train answers: ball x2, man x2, then cooking, park, two once each; --answer-top 3 keeps ball, man, cooking.
ANSWER_VOCAB = ["<UNK0>", "<UNK1>", "ball", "man", "cooking"]
EXPECTED = {
    "train": [  # (id, video_id, tokens, answer, label, type)
        (0, 1, [5, 2, 6, 9, 8], "cooking", 4, "what"),
        (1, 1, [10, 2, 14], "man", 3, "who"),
        (2, 2, [5, 2, 4, 3, 7], "ball", 2, "what"),
        (3, 7, [16, 17, 15, 12, 18], "two", 0, "how"),  # video_name through youtube_mapping.txt
        (4, 2, [19, 2, 4, 9, 11, 3], "park", 0, "where"),  # " park " stripped; OOV in train -> 0
        (5, 3, [10, 2, 7, 6, 13], "man", 3, "who"),
        (6, 3, [5, 2, 4, 3, 8], "ball", 2, "what"),  # no "id": its index
    ],
    "val": [
        (7, 4, [5, 2, 4, 1, 8], "ball", 2, "what"),  # an eval answer that is in train
        (8, 4, [1, 1, 2, 1], "cat", 1, "which"),  # OOV in eval -> 1
        (9, 7, [1, 1, 4, 9, 1], "man", 3, "when"),  # string video_id that is a mapping name
    ],
    "test": [
        (10, 5, [10, 2, 1, 1, 1], "woman", 1, "who"),
        (11, 6, [5, 2, 4, 1, 1], "onion", 1, "what"),
        (12, 5, [2, 4, 1, 14], "cooking", 4, "other"),
        (13, "xyz_unmapped", [5, 2, 4, 3, 7], "ball", 2, "what"),  # string id with no mapping entry
    ],
}
GLOVE_ROWS = {"the": [0.1, 0.2, 0.3, 0.4], "is": [1, 2, 3, 4], "dog": [-0.5, 0.25, 0, 1.5], "'s": [0.5] * 4,
              "what": [0.01, -0.02, 0.03, -0.04]}


def prepare(out: Path, qa_dir: Path = FIXTURE, **kwargs) -> dict:
    kwargs.setdefault("glove", qa_dir / "glove.txt")
    kwargs.setdefault("mapping", qa_dir / "youtube_mapping.txt")
    return prepare_videoqa("msvd-qa", qa_dir, out=out, answer_top=3, progress=False, **kwargs)


def cli_args(qa_dir: Path, out: Path, *extra: str) -> list[str]:
    return ["prepare", "videoqa", "--dataset", "msvd-qa", "--qa-dir", str(qa_dir), "--mapping",
            str(qa_dir / "youtube_mapping.txt"), "--glove", str(qa_dir / "glove.txt"), "--answer-top", "3",
            "--out", str(out), *extra]


def write_features(folder: Path, appearance_ids: list, motion_ids: list) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, dataset, ids, shape in (("appearance_feat.h5", "resnet_features", appearance_ids, (2, 16, 3)),
                                      ("motion_feat.h5", "resnext_features", motion_ids, (2, 3))):
        with h5py.File(folder / name, "w") as f:
            f.create_dataset(dataset, data=np.zeros((len(ids), *shape), np.float32))
            if all(isinstance(v, int) for v in ids):
                f.create_dataset("ids", data=np.array(ids, dtype=np.int64))
            else:
                f.create_dataset("ids", data=np.array([str(v) for v in ids], dtype=h5py.string_dtype()))
    return folder


def test_tokenize_and_question_type() -> None:
    assert tokenize("  What is the Man's dog doing?? ") == ["what", "is", "the", "man", "'s", "dog", "doing", "?"]
    assert tokenize("Who isn't wearing a t-shirt, at 3.5 o\u2019clock?") == [
        "who", "is", "n't", "wearing", "a", "t-shirt", ",", "at", "3.5", "o", "'", "clock"]
    assert tokenize("what's 1,000 minus 2") == ["what", "'s", "1,000", "minus", "2"]
    assert tokenize("where?") == ["where"]
    assert [question_type(tokenize(q)) for q in ("What is it?", "which one", "How many?", "is it red?",
                                                 "whom is it", "when", "where now", "who")] == [
        "what", "which", "how", "other", "other", "when", "where", "who"]
    assert question_type([]) == "other"


def test_prepare_msvd_fixture(tmp_path: Path) -> None:
    out = tmp_path / "prepared"
    meta = prepare(out)
    vocab = json.loads((out / "vocab.json").read_text())
    assert list(vocab["question_token_to_idx"]) == QUESTION_VOCAB
    assert vocab["question_token_to_idx"] == {w: i for i, w in enumerate(QUESTION_VOCAB)}
    assert vocab["answer_token_to_idx"] == {w: i for i, w in enumerate(ANSWER_VOCAB)}
    assert vocab["question_types"] == ["what", "who", "how", "when", "where", "which", "other"]
    assert load_vocab(out) == vocab

    questions = {json.loads(line)["id"]: json.loads(line)["question"]
                 for split in ("train", "val", "test") for line in (out / f"{split}.jsonl").read_text().splitlines()}
    assert questions[0] == "What is a man doing?" and questions[4] == "Where is the man's dog?"  # original text
    for split, rows in EXPECTED.items():
        got = load_split(out, split)
        assert [(r["id"], r["video_id"], r["tokens"], r["answer"], r["label"], r["type"]) for r in got] == rows
        assert all(set(r) == {"id", "video_id", "question", "tokens", "answer", "label", "type"} for r in got)

    glove = np.load(out / "glove.npy", allow_pickle=False)
    assert glove.dtype == np.float32 and glove.shape == (20, 4)
    for i, word in enumerate(QUESTION_VOCAB):  # first occurrence wins: "the" is listed twice in glove.txt
        np.testing.assert_array_equal(glove[i], np.array(GLOVE_ROWS.get(word, [0] * 4), np.float32), err_msg=word)

    assert meta == json.loads((out / "meta.json").read_text())
    assert meta["dataset"] == "msvd-qa" and meta["answer_top"] == 3 and meta["features"] is None
    assert (meta["question_vocab_size"], meta["num_answers"], meta["word_dim"]) == (20, 5, 4)
    assert meta["unknown_labels"] == {"train": 0, "eval": 1}
    assert meta["glove"] == {"source": str(FIXTURE / "glove.txt"), "dim": 4, "found": 5, "vocab_size": 18,
                             "coverage": 5 / 18}
    assert meta["splits"] == {
        "train": {"questions": 7, "videos": 4, "oov_answers": 2, "dropped_missing_video": 0, "missing_videos": []},
        "val": {"questions": 3, "videos": 2, "oov_answers": 1, "dropped_missing_video": 0, "missing_videos": []},
        "test": {"questions": 4, "videos": 3, "oov_answers": 2, "dropped_missing_video": 0, "missing_videos": []},
    }
    assert sorted(p.name for p in out.iterdir()) == ["glove.npy", "meta.json", "test.jsonl", "train.jsonl",
                                                     "val.jsonl", "vocab.json"]


def test_without_mapping_names_stay_strings(tmp_path: Path) -> None:
    prepare(tmp_path / "out", mapping=None)
    assert load_split(tmp_path / "out", "train")[3]["video_id"] == "-4wsuPCjDBc_5_15"
    assert load_split(tmp_path / "out", "val")[2]["video_id"] == "-4wsuPCjDBc_5_15"


def test_features_drop_questions_of_missing_videos(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # video 6 (test) has appearance but no motion features; "xyz_unmapped" (test) has neither
    feats = write_features(tmp_path / "feats", [1, 2, 3, 4, 5, 6, 7], [1, 2, 3, 4, 5, 7])
    out = tmp_path / "out"
    assert main([*cli_args(FIXTURE, out, "--features", str(feats))]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == (f"{out}: train 7 questions (2 OOV answers), val 3 questions (1 OOV answers), "
                                    "test 2 questions (1 OOV answers); question vocabulary 20 words "
                                    "(GloVe coverage 27.8%), 5 answers")
    warning = captured.err.strip()
    assert warning.count("\n") == 0 and "dropped 2 questions of 2 videos" in warning and str(feats) in warning
    meta = json.loads((out / "meta.json").read_text())
    assert meta["features"] == str(feats)
    assert meta["splits"]["test"] == {"questions": 2, "videos": 1, "oov_answers": 1, "dropped_missing_video": 2,
                                      "missing_videos": [6, "xyz_unmapped"]}
    assert meta["splits"]["train"]["dropped_missing_video"] == 0 and meta["splits"]["val"]["missing_videos"] == []
    assert [r["id"] for r in load_split(out, "test")] == [10, 12]
    assert meta["num_answers"] == 5  # vocabularies do not depend on the features

    # string ids (extract-features' fallback): digit strings match integers, names match names
    feats = write_features(tmp_path / "named", ["1", "2", "3", "4", "5", "6", "7", "xyz_unmapped"],
                           ["1", "2", "3", "4", "5", "7", "xyz_unmapped"])
    meta = prepare(tmp_path / "out2", features=feats)
    assert meta["splits"]["test"]["missing_videos"] == [6] and meta["splits"]["test"]["questions"] == 3
    # a split that loses every question is an error (ids that cannot match), and leaves nothing
    feats = write_features(tmp_path / "other", ["video1", "video2"], ["video1", "video2"])
    with pytest.raises(VlkdError, match="none of the 7 train questions"):
        prepare(tmp_path / "out3", features=feats)
    assert not (tmp_path / "out3").exists()


def test_bundled_glove_rows_equal_the_bundled_matrix(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from vlkd.data.bundled import bundled_path

    index = pq.read_table(bundled_path("glove_50d_index")).column("index").to_pylist()
    matrix = np.load(bundled_path("glove_50d"), mmap_mode="r", allow_pickle=False)
    meta = prepare(tmp_path / "out", glove="bundled:glove-50d")
    glove = np.load(tmp_path / "out" / "glove.npy")
    assert glove.shape == (20, 50) and meta["word_dim"] == 50 and meta["glove"]["source"] == "bundled:glove-50d"
    for word in ("the", "dog", "'s", "playing"):
        np.testing.assert_array_equal(glove[QUESTION_VOCAB.index(word)], matrix[index.index(word)])
    assert not glove[:2].any()  # <NULL>, <UNK>
    assert meta["glove"]["found"] == 18  # every train word is in GloVe 6B

    vectors, found = load_glove("bundled:glove-50d", ["<NULL>", "dog", "qqxqzzv", "the"])
    assert found == 2 and vectors.shape == (4, 50) and not vectors[[0, 2]].any()
    np.testing.assert_array_equal(vectors[3], matrix[index.index("the")])
    with pytest.raises(VlkdError, match="unknown bundled GloVe"):
        load_glove("bundled:glove-999d", ["the"])


def test_glove_text_format_details(tmp_path: Path) -> None:
    vectors, found = load_glove(FIXTURE / "glove.txt", ["new york", "york", "cat", "<UNK>"])
    assert found == 2
    np.testing.assert_array_equal(vectors, [[9] * 4, [0] * 4, [7] * 4, [0] * 4])
    header = tmp_path / "vectors.vec"  # word2vec/fastText text header, trailing spaces, CRLF
    header.write_bytes(b"2 3\r\nfoo 1 2 3 \r\n\r\nbar 4 5 6\r\n")
    vectors, found = load_glove(header, ["bar", "foo"])
    assert found == 2 and vectors.tolist() == [[4, 5, 6], [1, 2, 3]]
    bad = tmp_path / "bad.txt"
    bad.write_text("a 1 2\nb 1 x\n")
    with pytest.raises(VlkdError, match=r"bad.txt: line 2: non-numeric"):
        load_glove(bad, ["b"])
    zipped = tmp_path / "glove.840B.300d.zip"
    zipped.write_bytes(b"PK\x03\x04rest")
    with pytest.raises(VlkdError, match="compressed archive"):
        load_glove(zipped, ["b"])


def test_deterministic_output(tmp_path: Path) -> None:
    feats = write_features(tmp_path / "feats", [1, 2, 3, 4, 5, 6, 7], [1, 2, 3, 4, 5, 7])
    prepare(tmp_path / "a", features=feats)
    prepare(tmp_path / "b", features=feats)
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir()) and len(names) == 6
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_existing_output_needs_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("x")
    with pytest.raises(VlkdError, match="--overwrite"):
        prepare(out)
    assert (out / "old.txt").exists()
    prepare(out, overwrite=True)
    assert not (out / "old.txt").exists() and (out / "meta.json").is_file()


def _copy_fixture(tmp_path: Path) -> Path:
    qa = tmp_path / "qa"
    shutil.copytree(FIXTURE, qa)
    return qa


def _edit_records(path: Path, index: int, drop: str) -> None:
    records = json.loads(path.read_text())
    del records[index][drop]
    path.write_text(json.dumps(records))


@pytest.mark.parametrize("case, expected", [
    ("missing answer", ['val_qa.json: record 1 has no "answer" field']),
    ("missing video", ['train_qa.json: record 3 has neither a "video_id" nor a "video_name" field']),
    ("glove width", ["glove.txt: line 3: wrong width"]),
    ("missing split", ["test_qa.json: file not found"]),
    ("malformed json", ["train_qa.json: malformed JSON"]),
    ("not a list", ["val_qa.json: expected a JSON list"]),
    ("unmapped name", ["train_qa.json: record 3", "-4wsuPCjDBc_5_15", "not in the mapping file"]),
    ("bad mapping", ["youtube_mapping.txt: line 2: expected `NAME vidN`"]),
    ("answer top", ["--answer-top: must be at least 1"]),
])
def test_bad_input_is_one_line_and_leaves_nothing(tmp_path: Path, capsys: pytest.CaptureFixture, case: str,
                                                  expected: list[str]) -> None:
    qa = _copy_fixture(tmp_path)
    extra: list[str] = []
    if case == "missing answer":
        _edit_records(qa / "val_qa.json", 1, "answer")
    elif case == "missing video":
        _edit_records(qa / "train_qa.json", 3, "video_name")
    elif case == "glove width":
        (qa / "glove.txt").write_text("the 0.1 0.2 0.3 0.4\nis 1 2 3 4\ndog 1 2 3\nwhat 1 2 3 4\n")
    elif case == "missing split":
        (qa / "test_qa.json").unlink()
    elif case == "malformed json":
        (qa / "train_qa.json").write_text('[{"video_id": 1, "question": "what?"')
    elif case == "not a list":
        (qa / "val_qa.json").write_text('{"video_id": 1}')
    elif case == "unmapped name":
        (qa / "youtube_mapping.txt").write_text("abc_1_2 vid8\n")
    elif case == "bad mapping":
        (qa / "youtube_mapping.txt").write_text("abc_1_2 vid8\nxyz oops extra\n")
    elif case == "answer top":
        extra = ["--answer-top", "0"]
    out = tmp_path / "out"
    assert main([*cli_args(qa, out), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vlkd: error: ") and err.count("\n") == 0, err
    for piece in expected:
        assert piece in err, err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]  # no temporary directory left


def test_glove_lines_of_another_width_are_skipped_and_counted(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    glove = tmp_path / "glove.txt"
    glove.write_text("the 1 2 3\ndog 1 2 3 4 5\nnew york 9 9 9\ncat 7 7 7 7\nis 4 5 6\nfox 0 0 0 0 0 0\n")
    vectors, found = load_glove(glove, ["the", "dog", "new york", "cat", "is", "fox"])
    assert found == 3 and vectors.tolist() == [[1, 2, 3], [0, 0, 0], [9, 9, 9], [0, 0, 0], [4, 5, 6], [0, 0, 0]]
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"vlkd: notice: {glove}: skipped 3 lines of another width (more than the first line's 3 values; "
                   "first at line 2) among the lines read"]
    load_glove(FIXTURE / "glove.txt", ["new york", "cat"])  # a word with spaces is not another width
    assert capsys.readouterr().err == ""
