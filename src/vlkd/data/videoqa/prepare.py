"""MSVD-QA / MSRVTT-QA question preprocessing (docs/formats.md), following HCRN/DualVGR.

Input: QA_DIR/{train,val,test}_qa.json, each a JSON list of records
``{"video_id": int|str  or  "video_name": str, "question": str, "answer": str, "id": int (optional)}``.
MSVD-QA names videos by YouTube clip (``-4wsuPCjDBc_5_15``); ``youtube_mapping.txt`` (lines ``NAME vidN``)
maps them to the integer N. With a mapping, a ``video_name`` must be in it and a string ``video_id`` that
is one of its names is mapped too; other string ids stay strings. When a record has both keys,
``video_id`` wins.

Processing:

- question tokens: see `tokenize`; question vocabulary from train only: ``<NULL>``=0, ``<UNK>``=1, then
  every train token by frequency (descending), ties alphabetical. Unknown val/test tokens -> 1.
- answers lower-cased and stripped; answer vocabulary ``<UNK0>``=0, ``<UNK1>``=1, then the ``answer_top``
  most frequent train answers (ties alphabetical). An answer outside it is labelled 0 in train and 1 in
  val/test, so it can never count as correct at evaluation; such questions stay in the splits and counts.
- question type: the first token if it is one of what/who/how/when/where/which, else ``other``.
- GloVe rows for the question vocabulary (see `load_glove`); zeros for words not found and the specials.
- with ``features``: questions whose video is absent from appearance_feat.h5 or motion_feat.h5 (HCRN
  layout, read with `HCRNFeatures`) are dropped and counted per split (ids compare as in training: "12"
  matches 12, see `hcrn_features.video_key`).

Output directory (JSON, JSONL and .npy only; written atomically, so a failure leaves nothing)::

    vocab.json    {"question_token_to_idx", "answer_token_to_idx", "question_types"}
    glove.npy     float32 (question vocabulary size, D)
    train.jsonl   one question per line, in input order (also val.jsonl, test.jsonl):
                  {"id", "video_id", "question", "tokens", "answer", "label", "type"}
    meta.json     dataset, sizes, GloVe source and coverage, features folder, per-split counts

The same inputs give byte-identical files.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections import Counter
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np

from vlkd.data.bundled import bundled_path
from vlkd.data.videoqa.features import HCRNFeatures
from vlkd.errors import VlkdError
from vlkd.io import read_json
from vlkd.preparation import WriteOnce, progress_bar

FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")
DATASETS = ("msvd-qa", "msrvtt-qa")
QUESTION_TYPES = ("what", "who", "how", "when", "where", "which", "other")
NULL, UNK = "<NULL>", "<UNK>"
UNK_TRAIN, UNK_EVAL = "<UNK0>", "<UNK1>"
BUNDLED_GLOVE = {"glove-50d": ("glove_50d", "glove_50d_index")}

_TOKEN = re.compile(r"""
      \w+(?=n't\b)             # "do" of "don't", "is" of "isn't"
    | n't\b                    # the negation clitic
    | '(?:s|m|d|ll|re|ve)\b    # clitics: 's 'm 'd 'll 're 've
    | \d+(?:[.,]\d+)+          # numbers with a decimal point or thousands separator: 3.5, 1,000
    | \w+(?:-\w+)*             # words, numbers, hyphenated words
    | [^\w\s]                  # any other character (punctuation) on its own
""", re.VERBOSE)
_MAPPED_ID = re.compile(r"(?:vid|video)?(\d+)")

VideoId = int | str


def tokenize(question: str) -> list[str]:
    """Question -> word tokens, a small regex stand-in for nltk's Treebank ``word_tokenize``.

    The question is lower-cased and stripped, one final "?" is dropped (as HCRN's ``[:-1]``, but only when
    it is a "?"), and a typographic apostrophe becomes "'". Tokens are: words of letters, digits and
    underscores, hyphenated words kept whole ("t-shirt"); numbers with a decimal point or thousands
    separator kept whole ("3.5", "1,000"); English clitics split off the way the Penn Treebank (and so
    nltk and GloVe) does it: "man's" -> "man", "'s"; "don't" -> "do", "n't"; "they're" -> "they", "'re";
    every other non-space character (punctuation) is a token of its own.

    >>> tokenize("What's the man's dog doing, isn't it?")
    ['what', "'s", 'the', 'man', "'s", 'dog', 'doing', ',', 'is', "n't", 'it']
    """
    text = question.lower().strip().replace("\u2019", "'")
    text = text.removesuffix("?")
    return _TOKEN.findall(text)


def question_type(tokens: list[str]) -> str:
    """The question type: its first token when that is what/who/how/when/where/which, else "other"."""
    return tokens[0] if tokens and tokens[0] in QUESTION_TYPES[:-1] else "other"


# ---------------------------------------------------------------- GloVe


def load_glove(path_or_bundled: str | os.PathLike, words: list[str], *, skip: Collection[str] = (NULL, UNK),
               progress: bool = False) -> tuple[np.ndarray, int]:
    """GloVe vectors of `words`: a float32 (len(words), D) matrix and how many words were found.

    Rows of words not in GloVe, and of the words in `skip` (the vocabulary's specials), are zeros; a
    word is matched exactly (GloVe 840B is cased, questions are lower-cased). `path_or_bundled` is
    ``bundled:glove-50d`` (the bundled 400000 x 50 GloVe 6B matrix) or a text file in the standard
    ``glove.*.txt`` format, streamed line by line (it is never loaded whole) and read only until every
    word is found: each line is a word and D numbers separated by single spaces, D taken from the first
    line. Some GloVe 840B words contain spaces, so the last D fields are the vector and the rest the
    word. A first line of two integers (word2vec/fastText ``.vec`` header "COUNT D") is read as a header.
    Where a word occurs twice, the first occurrence counts. A line with fewer than D + 1 fields, or a
    non-numeric value in a needed vector, is an error naming the line; a line with more than D values (the
    field before its last D is a number too) is skipped, and the skipped lines are counted in a notice.
    """
    source = os.fspath(path_or_bundled)
    wanted: dict[str, list[int]] = {}
    for row, word in enumerate(words):
        if word not in skip:
            wanted.setdefault(word, []).append(row)
    if source.startswith("bundled:"):
        vectors, dim = _bundled_glove(source[len("bundled:"):], wanted)
    else:
        vectors, dim = _text_glove(Path(source), wanted, progress)
    matrix = np.zeros((len(words), dim), dtype=np.float32)
    for word, vector in vectors.items():
        matrix[wanted[word]] = vector
    return matrix, len(vectors)


def _bundled_glove(name: str, wanted: dict[str, list[int]]) -> tuple[dict[str, np.ndarray], int]:
    if name not in BUNDLED_GLOVE:
        raise VlkdError(f"unknown bundled GloVe {name!r} (known: "
                        f"{', '.join('bundled:' + k for k in sorted(BUNDLED_GLOVE))})")
    import pyarrow.parquet as pq

    matrix_name, index_name = BUNDLED_GLOVE[name]
    matrix = np.load(bundled_path(matrix_name), mmap_mode="r", allow_pickle=False)
    index = pq.read_table(bundled_path(index_name), columns=["index"]).column("index").to_pylist()
    if matrix.ndim != 2 or matrix.shape[0] != len(index):
        raise VlkdError(f"bundled GloVe matrix {matrix.shape} does not match its index of {len(index)} words",
                        bundled_path(matrix_name))
    rows: dict[str, int] = {}
    for i, word in enumerate(index):
        if word in wanted and word not in rows:
            rows[word] = i
    found = sorted(rows, key=rows.__getitem__)
    block = np.asarray(matrix[[rows[w] for w in found]], dtype=np.float32)
    if not np.isfinite(block).all():
        raise VlkdError("bundled GloVe matrix holds NaN or infinite values", bundled_path(matrix_name))
    return dict(zip(found, block)), int(matrix.shape[1])


def _parse_vector(fields: list[bytes], path: Path, lineno: int) -> np.ndarray:
    try:
        with np.errstate(over="ignore"):  # beyond float32 becomes inf, refused below
            vector = np.array([float(x) for x in fields], dtype=np.float32)
    except ValueError:
        bad = next(x for x in fields if not _is_number(x))
        raise VlkdError(f"line {lineno}: non-numeric vector value {bad.decode('utf-8', 'replace')[:40]!r}",
                        path) from None
    if not np.isfinite(vector).all():
        bad = fields[int(np.argmin(np.isfinite(vector)))]
        raise VlkdError(f"line {lineno}: vector value {bad.decode('utf-8', 'replace')[:40]!r} is NaN, infinite "
                        "or beyond float32", path)
    return vector


def _is_number(field: bytes) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _text_glove(path: Path, wanted: dict[str, list[int]], progress: bool) -> tuple[dict[str, np.ndarray], int]:
    if not path.is_file():
        raise VlkdError("GloVe file not found (give a glove.*.txt file or bundled:glove-50d)", path)
    vectors: dict[str, np.ndarray] = {}
    dim = 0
    wider: list[int] = []  # lines with more values than `dim`, skipped
    with open(path, "rb") as f, progress_bar(path.stat().st_size, "glove", "B", progress, unit_scale=True,
                                             delay=1.0, leave=False) as bar:
        magic = f.read(4)
        if magic[:2] == b"\x1f\x8b" or magic == b"PK\x03\x04":
            raise VlkdError("is a compressed archive: unpack the glove.*.txt file inside it first", path)
        f.seek(0)
        done = 0
        for lineno, raw in enumerate(f, start=1):
            done += len(raw)
            if done >= 1 << 22:
                bar.update(done)
                done = 0
            line = raw.rstrip()
            if not line:
                continue
            if not dim:
                fields = line.split(b" ")
                if len(fields) == 2 and fields[0].isdigit() and fields[1].isdigit():
                    dim = int(fields[1])  # word2vec / fastText header "COUNT D"
                    if dim < 1:
                        raise VlkdError(f"line {lineno}: header gives vector width {dim}", path)
                    continue
                dim = next((k for k, x in enumerate(reversed(fields[1:])) if not _is_number(x)), len(fields) - 1)
                if dim < 1:
                    raise VlkdError(f"line {lineno}: no vector values (not a GloVe text file?)", path)
                if not wanted:
                    break
            spaces = line.count(b" ")
            if spaces < dim:
                raise VlkdError(f"line {lineno}: wrong width: {spaces} values where a word and {dim} values "
                                "were expected (the width is set by the first line)", path)
            if spaces == dim:
                cut = line.index(b" ")
                word_bytes, rest = line[:cut], line[cut + 1:]
            else:  # a word containing spaces: the vector is the last `dim` fields
                parts = line.rsplit(b" ", dim)
                word_bytes, rest = parts[0], b" ".join(parts[1:])
                if _is_number(word_bytes.rsplit(b" ", 1)[-1]):  # more than `dim` values: another width
                    wider.append(lineno)
                    continue
            word = word_bytes.decode("utf-8", "replace")
            if word in wanted and word not in vectors:
                vectors[word] = _parse_vector(rest.split(b" "), path, lineno)
                if len(vectors) == len(wanted):
                    break
        bar.update(done)
    if not dim:
        raise VlkdError("empty GloVe file", path)
    if wider:
        print(f"vlkd: notice: {path}: skipped {len(wider):,} line{'s' if len(wider) > 1 else ''} of another width "
              f"(more than the first line's {dim} values; first at line {wider[0]}) among the lines read",
              file=sys.stderr)
    return vectors, dim


# ---------------------------------------------------------------- question files


def read_mapping(path: str | os.PathLike) -> dict[str, int]:
    """youtube_mapping.txt: lines ``NAME vidN`` (also ``NAME videoN`` or ``NAME N``) -> {NAME: N}."""
    path = Path(path)
    if not path.is_file():
        raise VlkdError("mapping file not found", path)
    mapping: dict[str, int] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise VlkdError("not UTF-8 text", path) from None
    for lineno, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        match = _MAPPED_ID.fullmatch(fields[1]) if len(fields) == 2 else None
        if match is None:
            raise VlkdError(f"line {lineno}: expected `NAME vidN`, got {line.strip()[:80]!r}", path)
        name, vid = fields[0], int(match.group(1))
        if mapping.get(name, vid) != vid:
            raise VlkdError(f"line {lineno}: {name!r} is mapped twice (vid{mapping[name]} and vid{vid})", path)
        mapping[name] = vid
    if not mapping:
        raise VlkdError("mapping file is empty", path)
    return mapping


def _video_of(record: dict, mapping: dict[str, int] | None, where: str, path: Path) -> VideoId:
    if "video_id" in record:
        vid = record["video_id"]
        if isinstance(vid, bool) or not isinstance(vid, (int, str)):
            raise VlkdError(f'{where} has a "video_id" that is neither an integer nor a string: {vid!r}', path)
        return mapping.get(vid, vid) if mapping is not None and isinstance(vid, str) else vid
    name = record["video_name"]
    if not isinstance(name, str):
        raise VlkdError(f'{where} has a "video_name" that is not a string: {name!r}', path)
    if mapping is None:
        return name
    if name not in mapping:
        raise VlkdError(f'{where} has "video_name" {name!r}, which is not in the mapping file', path)
    return mapping[name]


def read_split(path: Path, mapping: dict[str, int] | None) -> list[dict[str, Any]]:
    """Parse and validate one ``*_qa.json``; every problem names the file and the record index."""
    raw = read_json(path)
    if not isinstance(raw, list):
        raise VlkdError(f"expected a JSON list of question records, got a JSON {type(raw).__name__}", path)
    records = []
    seen_ids: dict[str, int] = {}
    for i, rec in enumerate(raw):
        where = f"record {i}"
        if not isinstance(rec, dict):
            raise VlkdError(f"{where} is not a JSON object", path)
        for key in ("question", "answer"):
            if key not in rec:
                raise VlkdError(f'{where} has no "{key}" field', path)
            if not isinstance(rec[key], str):
                raise VlkdError(f'{where} has a "{key}" that is not a string: {rec[key]!r}', path)
        if "video_id" not in rec and "video_name" not in rec:
            raise VlkdError(f'{where} has neither a "video_id" nor a "video_name" field', path)
        qid = rec.get("id", i)
        if isinstance(qid, bool) or not isinstance(qid, (int, str)):
            raise VlkdError(f'{where} has an "id" that is neither an integer nor a string: {qid!r}', path)
        if str(qid) in seen_ids:
            raise VlkdError(f'{where} has "id" {qid!r}, already used by record {seen_ids[str(qid)]}', path)
        seen_ids[str(qid)] = i
        tokens = tokenize(rec["question"])
        if not tokens:
            raise VlkdError(f"{where} has an empty question", path)
        answer = rec["answer"].lower().strip()
        if not answer:
            raise VlkdError(f"{where} has an empty answer", path)
        records.append({"id": qid, "video_id": _video_of(rec, mapping, where, path), "question": rec["question"],
                        "words": tokens, "answer": answer})
    return records


def _sorted_by_count(counts: Counter[str], top: int | None = None) -> list[str]:
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [word for word, _ in ranked[:top]]


def _sorted_ids(ids: Collection[VideoId]) -> list[VideoId]:
    """Integers first (numerically), then strings."""
    return sorted(ids, key=lambda v: (isinstance(v, str), v))


# ---------------------------------------------------------------- the whole preparation


def prepare_videoqa(
    dataset: str,
    qa_dir: str | os.PathLike,
    glove: str | os.PathLike,
    out: str | os.PathLike,
    mapping: str | os.PathLike | None = None,
    answer_top: int = 4000,
    features: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Preprocess QA_DIR/{train,val,test}_qa.json into `out` (see the module docstring); returns meta.

    `glove` is a glove.*.txt file or ``bundled:glove-50d``; `mapping` a youtube_mapping.txt (MSVD-QA);
    `features` an HCRN-layout feature folder whose videos the questions must have (others are dropped
    and counted). An existing non-empty `out` is refused unless `overwrite`. A write-once preparation
    without `--shard` or resume: the vocabularies are counted over the whole train split, in seconds.
    """
    if dataset not in DATASETS:
        raise VlkdError(f"unknown dataset {dataset!r} (known: {', '.join(DATASETS)})")
    if isinstance(answer_top, bool) or not isinstance(answer_top, int) or answer_top < 1:
        raise VlkdError(f"answer_top must be a positive integer, got {answer_top!r}")
    qa_dir = Path(qa_dir)
    if not qa_dir.is_dir():
        raise VlkdError("QA folder not found", qa_dir)
    output = WriteOnce("prepare videoqa", out, overwrite=overwrite)
    names = read_mapping(mapping) if mapping is not None else None
    splits = {split: read_split(qa_dir / f"{split}_qa.json", names) for split in SPLITS}
    if not splits["train"]:
        raise VlkdError("has no questions: the vocabularies are built from train", qa_dir / "train_qa.json")

    question_words = [NULL, UNK] + _sorted_by_count(Counter(w for r in splits["train"] for w in r["words"]))
    question_vocab = {w: i for i, w in enumerate(question_words)}
    answer_words = [UNK_TRAIN, UNK_EVAL] + _sorted_by_count(Counter(r["answer"] for r in splits["train"]),
                                                            answer_top)
    answer_vocab = {w: i for i, w in enumerate(answer_words)}
    matrix, found = load_glove(glove, question_words, progress=progress)
    store = HCRNFeatures(features) if features is not None else None

    split_meta: dict[str, dict[str, Any]] = {}
    lines: dict[str, list[str]] = {}
    for split, records in splits.items():
        unknown = answer_vocab[UNK_TRAIN if split == "train" else UNK_EVAL]
        missing = set() if store is None else set(store.missing(r["video_id"] for r in records))
        kept = [r for r in records if r["video_id"] not in missing]
        if records and not kept:
            raise VlkdError(f"none of the {len(records)} {split} questions' videos are in the feature files "
                            f"(question video ids: {_sorted_ids(missing)[:3]}; feature ids: "
                            f"{_sorted_ids(store.rows[0] if store else ())[:3]})", features)
        rows = []
        for r in kept:
            rows.append({"id": r["id"], "video_id": r["video_id"], "question": r["question"],
                         "tokens": [question_vocab.get(w, 1) for w in r["words"]], "answer": r["answer"],
                         "label": answer_vocab.get(r["answer"], unknown), "type": question_type(r["words"])})
        lines[split] = [json.dumps(row) + "\n" for row in rows]
        split_meta[split] = {
            "questions": len(rows),
            "videos": len({r["video_id"] for r in rows}),
            "oov_answers": sum(r["answer"] not in answer_vocab for r in kept),
            "dropped_missing_video": len(records) - len(kept),
            "missing_videos": _sorted_ids(missing),
        }
    looked_up = len(question_words) - 2
    meta = {
        "format_version": FORMAT_VERSION,
        "dataset": dataset,
        "answer_top": answer_top,
        "question_vocab_size": len(question_words),
        "num_answers": len(answer_words),
        "word_dim": int(matrix.shape[1]),
        "unknown_labels": {"train": answer_vocab[UNK_TRAIN], "eval": answer_vocab[UNK_EVAL]},
        "glove": {"source": os.fspath(glove), "dim": int(matrix.shape[1]), "found": found,
                  "vocab_size": looked_up, "coverage": found / looked_up if looked_up else 0.0},
        "features": None if features is None else os.fspath(features),
        "splits": split_meta,
    }
    vocab = {"question_token_to_idx": question_vocab, "answer_token_to_idx": answer_vocab,
             "question_types": list(QUESTION_TYPES)}

    def build(tmp: Path) -> dict[str, Any]:
        _write(tmp / "vocab.json", json.dumps(vocab, indent=2) + "\n")
        with open(tmp / "glove.npy", "wb") as f:
            np.save(f, matrix, allow_pickle=False)
        for split in SPLITS:
            _write(tmp / f"{split}.jsonl", "".join(lines[split]))
        _write(tmp / "meta.json", json.dumps(meta, indent=2) + "\n")
        return meta

    return output.write(build)


def _write(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


# ---------------------------------------------------------------- readers for training


def load_vocab(out_dir: str | os.PathLike) -> dict[str, Any]:
    """vocab.json of a prepared directory: question_token_to_idx, answer_token_to_idx, question_types."""
    path = Path(out_dir) / "vocab.json"
    vocab = read_json(path)
    keys = ("question_token_to_idx", "answer_token_to_idx", "question_types")
    if not isinstance(vocab, dict) or not all(k in vocab for k in keys):
        raise VlkdError(f"not a `vlkd prepare videoqa` vocabulary (expected keys {', '.join(keys)})", path)
    return vocab


def load_glove_matrix(out_dir: str | os.PathLike) -> np.ndarray:
    """glove.npy of a prepared directory: a finite float (question vocabulary size, D) matrix, checked
    (a FIFO or device there would block np.load, so only a regular file is opened)."""
    path = Path(out_dir) / "glove.npy"
    if not path.is_file():
        raise VlkdError("file not found or not a regular file (run `vlkd prepare videoqa` first)", path)
    try:
        matrix = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise VlkdError(f"unreadable .npy file ({(str(e).splitlines() or [type(e).__name__])[0][:120]})",
                        path) from None
    if not isinstance(matrix, np.ndarray) or matrix.ndim != 2 or matrix.dtype.kind != "f":
        raise VlkdError(f"expected a 2-D float array (vocabulary x D), got "
                        f"{getattr(matrix, 'dtype', type(matrix).__name__)} {getattr(matrix, 'shape', '')}", path)
    if not np.isfinite(matrix).all():
        raise VlkdError(f"holds NaN or infinite values (first in row {int(np.argwhere(~np.isfinite(matrix))[0][0])})",
                        path)
    return matrix


def _check_row(row: Any, lineno: int, path: Path, num_words: int | None, num_answers: int | None) -> None:
    if not isinstance(row, dict) or not {"video_id", "tokens", "label", "type"} <= row.keys():
        raise VlkdError(f"line {lineno}: not a prepared question record", path)
    tokens, label = row["tokens"], row["label"]
    if not isinstance(tokens, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in tokens):
        raise VlkdError(f"line {lineno}: 'tokens' must be a list of integers", path)
    if isinstance(label, bool) or not isinstance(label, int):
        raise VlkdError(f"line {lineno}: 'label' must be an integer, got {label!r}", path)
    bad = next((t for t in tokens if t < 0 or (num_words is not None and t >= num_words)), None)
    if bad is not None:
        raise VlkdError(f"line {lineno}: token id {bad} is outside the question vocabulary "
                        f"(0..{num_words - 1 if num_words else '?'})", path)
    if label < 0 or (num_answers is not None and label >= num_answers):
        raise VlkdError(f"line {lineno}: label {label} is outside the answer vocabulary "
                        f"(0..{num_answers - 1 if num_answers else '?'})", path)


def load_split(out_dir: str | os.PathLike, split: str, num_words: int | None = None,
               num_answers: int | None = None) -> list[dict[str, Any]]:
    """The questions of one prepared split, in order: dicts with id, video_id, question, tokens, answer,
    label, type. With the vocabulary sizes, every token id and label must lie inside them."""
    if split not in SPLITS:
        raise VlkdError(f"unknown split {split!r} (known: {', '.join(SPLITS)})")
    path = Path(out_dir) / f"{split}.jsonl"
    if not path.is_file():
        raise VlkdError("file not found (run `vlkd prepare videoqa` first)", path)
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise VlkdError(f"not UTF-8 text (invalid byte at offset {e.start})", path) from None
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise VlkdError(f"line {lineno}: malformed JSON ({e.msg})", path) from None
        _check_row(row, lineno, path, num_words, num_answers)
        rows.append(row)
    return rows
