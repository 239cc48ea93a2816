"""SQuAD v1.1 / v2.0 in the official JSON: reading, windowed features, and answer extraction.

Files: `train-v1.1.json` / `dev-v1.1.json` (squad1), `train-v2.0.json` / `dev-v2.0.json` (squad2).
Contexts longer than the window are split into overlapping windows (`doc_stride` tokens apart);
a training window that does not contain the whole answer, and every window of an unanswerable
question, points at [CLS]. Prediction takes the best-scoring valid span over all windows of a
question; for v2 it answers "" when the [CLS] (null) score beats the best span.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from transformers import PreTrainedTokenizerFast

from vlkd.data.tasks.spec import SPAN, SQUAD, TaskSpec
from vlkd.errors import VlkdError
from vlkd.io import read_json

FILES = {"squad1": {"train": "train-v1.1.json", "dev": "dev-v1.1.json"},
         "squad2": {"train": "train-v2.0.json", "dev": "dev-v2.0.json"}}


@dataclass
class QAExample:
    qid: str
    question: str
    context: str
    answers: list[str]  # gold texts (several in dev); empty for an unanswerable question
    answer_start: int  # character offset of the first answer (training target); -1 if none


def _line_of(raw: str, qid: str) -> int:
    """The line of a question id in the file (the official files are one line; pretty-printed ones are not)."""
    at = raw.find(f'"{qid}"')
    return raw.count("\n", 0, at) + 1 if at >= 0 else 0


def read_squad(version: str, data_dir: Path, split: str) -> list[QAExample]:
    path = data_dir / FILES[version][split]
    try:
        data = read_json(path)
    except RecursionError:
        raise VlkdError("malformed JSON (nested too deeply)", path) from None
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise VlkdError("not a SQuAD file: expected {\"data\": [articles]}", path)
    raw = path.read_text(encoding="utf-8")
    examples = []
    try:
        for article in data["data"]:
            for paragraph in article["paragraphs"]:
                context = paragraph["context"]
                for qa in paragraph["qas"]:
                    where = f"line {_line_of(raw, str(qa['id']))}" if isinstance(qa, dict) and "id" in qa else ""
                    examples.append(qa_example(qa, context, version, split, path, where))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        where = f"after question {examples[-1].qid!r} (line {_line_of(raw, examples[-1].qid)})" if examples else "in the first question"
        raise VlkdError(f"malformed SQuAD structure {where}: missing or wrong field {e}", path) from None
    if not examples:
        raise VlkdError("no questions", path)
    repeated = [qid for qid, n in Counter(e.qid for e in examples).items() if n > 1]
    if repeated:  # predictions and scores are keyed by id, as in the official evaluator: one answer per id
        shown = ", ".join(repr(q) for q in repeated[:5]) + (f", ... ({len(repeated)} ids)" if len(repeated) > 5 else "")
        print(f"vlkd: notice: {path}: question id used more than once: {shown}; predictions and scores keep one "
              f"answer per id (the last question's), as the official evaluator does", file=sys.stderr)
    return examples


def _text(value: Any, what: str) -> str:
    """A field that must be a string (a number or a list there is malformed input, not a crash)."""
    if not isinstance(value, str):
        raise TypeError(f"{what} is {type(value).__name__}, expected a string")
    return value


def qa_example(qa: dict[str, Any], context: Any, version: str, split: str, path: Path, where: str) -> QAExample:
    """One question in the official JSON form (`id`, `question`, `answers`: [{text, answer_start}],
    `is_impossible`); `where` locates it in error messages ("line N", "row N")."""
    context = _text(context, "context")
    qid = qa["id"]
    if isinstance(qid, (dict, list)):
        raise TypeError(f"id is {type(qid).__name__}")
    qid = str(qid)
    impossible = bool(qa.get("is_impossible", False))
    if impossible and version == "squad1":
        raise VlkdError(f"{where}: question {qid!r} is unanswerable, which SQuAD v1.1 has not (use --task squad2)",
                        path)
    answers = [] if impossible else qa["answers"]
    if not isinstance(answers, list):
        raise TypeError(f"answers of {qid!r} is {type(answers).__name__}, expected a list")
    texts = [_text(a["text"], "answer text") for a in answers]
    start = -1
    if split == "train":
        if not answers and not impossible:
            raise VlkdError(f"{where}: question {qid!r} has no answer", path)
        if answers:
            start = answers[0]["answer_start"]
            if isinstance(start, bool) or not isinstance(start, int):
                raise VlkdError(f"{where}: question {qid!r}: answer_start {start!r} is not an integer", path)
            if start < 0 or context[start:start + len(texts[0])] != texts[0]:
                raise VlkdError(f"{where}: question {qid!r}: answer {texts[0]!r} at character "
                                f"{start} is not at that position in its context (span outside the context)", path)
    return QAExample(qid, _text(qa["question"], "question").lstrip(), context, texts, start)


@dataclass
class Windows:
    """Model inputs for every window, and what maps them back to their question's context."""

    items: list[dict[str, Any]]
    example: np.ndarray  # (F,) index of each window's question
    offsets: np.ndarray  # (F, L, 2) character span of each context token; -1 elsewhere


def encode_windows(examples: list[QAExample], tokenizer: PreTrainedTokenizerFast, max_length: int, doc_stride: int,
                   train: bool, batch: int = 256) -> Windows:
    items, owner, offsets = [], [], []
    for first in range(0, len(examples), batch):
        chunk = examples[first:first + batch]
        enc = tokenizer([e.question for e in chunk], [e.context for e in chunk], truncation="only_second",
                        max_length=max_length, stride=doc_stride, return_overflowing_tokens=True,
                        return_offsets_mapping=True, padding="max_length", return_token_type_ids=True)
        for f, k in enumerate(enc["overflow_to_sample_mapping"]):
            example = chunk[k]
            seq = enc.sequence_ids(f)
            offs = np.array([o if s == 1 else (-1, -1) for o, s in zip(enc["offset_mapping"][f], seq)], dtype=np.int32)
            item: dict[str, Any] = {"input_ids": np.asarray(enc["input_ids"][f], dtype=np.int32),
                                    "token_type_ids": np.asarray(enc["token_type_ids"][f], dtype=np.int8)}
            if train:
                item["start_positions"], item["end_positions"] = _span_tokens(example, offs)
            items.append(item)
            owner.append(first + k)
            offsets.append(offs)
    return Windows(items, np.array(owner), np.stack(offsets) if offsets else np.zeros((0, max_length, 2), np.int32))


def _span_tokens(example: QAExample, offs: np.ndarray) -> tuple[int, int]:
    """Token indices of the answer in this window, or (0, 0) ([CLS]) if it is not wholly inside."""
    if example.answer_start < 0:
        return 0, 0
    start_char, end_char = example.answer_start, example.answer_start + len(example.answers[0])
    inside = np.nonzero(offs[:, 0] >= 0)[0]
    if offs[inside[0], 0] > start_char or offs[inside[-1], 1] < end_char:
        return 0, 0
    start = inside[offs[inside, 0] <= start_char][-1]
    end = inside[offs[inside, 1] >= end_char][0]
    return int(start), int(end)


def extract_answers(examples: list[QAExample], windows: Windows, logits: np.ndarray, allow_null: bool,
                    n_best: int = 20, max_answer_length: int = 30) -> dict[str, str]:
    """Best answer text per question id from start/end logits (F, L, 2)."""
    return best_answers(examples, windows, logits, allow_null, n_best, max_answer_length)[0]


NO_SPAN_ODDS = 1e9  # null odds written for a question with no valid span at all (it is answered "")


def best_answers(examples: list[QAExample], windows: Windows, logits: np.ndarray, allow_null: bool,
                 n_best: int = 20, max_answer_length: int = 30) -> tuple[dict[str, str], dict[str, float]]:
    """Best answer text per question id, and its null odds: the [CLS] (no-answer) score minus the best span's
    score (start + end logits; the lowest [CLS] score over the question's windows), which the official v2.0
    script takes as `--na-prob-file` (higher: more likely unanswerable). With `allow_null` a question whose
    null odds are positive is answered ""."""
    by_example: dict[int, list[int]] = {}
    for f, e in enumerate(windows.example):
        by_example.setdefault(int(e), []).append(f)
    answers, odds = {}, {}
    for e, example in enumerate(examples):
        best_score, best_text, null_score = -np.inf, "", np.inf
        for f in by_example.get(e, []):
            start_logits, end_logits, offs = logits[f, :, 0], logits[f, :, 1], windows.offsets[f]
            null_score = min(null_score, float(start_logits[0] + end_logits[0]))
            for s in np.argsort(start_logits)[::-1][:n_best]:
                if offs[s, 0] < 0:
                    continue
                for t in np.argsort(end_logits)[::-1][:n_best]:
                    if offs[t, 0] < 0 or t < s or t - s + 1 > max_answer_length:
                        continue
                    score = float(start_logits[s] + end_logits[t])
                    if score > best_score:
                        best_score, best_text = score, example.context[offs[s, 0]:offs[t, 1]]
        found = np.isfinite(best_score) and np.isfinite(null_score)
        odds[example.qid] = float(null_score - best_score) if found else NO_SPAN_ODDS
        answers[example.qid] = "" if allow_null and odds[example.qid] > 0 else best_text
    return answers, odds


# the official scripts' keys: evaluate-v1.1.py prints exact_match and f1; evaluate-v2.0.py (with a
# --na-prob-file) exact, f1, total, HasAns_*, NoAns_* and the best-threshold scores
V1_METRICS = ("exact_match", "f1")
V2_METRICS = ("exact", "f1", "total", "HasAns_exact", "HasAns_f1", "HasAns_total", "NoAns_exact", "NoAns_f1",
              "NoAns_total", "best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh")


def _spec(version: str) -> TaskSpec:
    return TaskSpec(name=version, kind=SPAN, metrics=V1_METRICS if version == "squad1" else V2_METRICS,
                    read=lambda d, s: read_squad(version, d, s), train="train", dev=(("dev", ""),), max_length=384,
                    path=lambda d, s: d / FILES[version][s], scorer=SQUAD, allow_null=version == "squad2")


SQUAD1, SQUAD2 = _spec("squad1"), _spec("squad2")
