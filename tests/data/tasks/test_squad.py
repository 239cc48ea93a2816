"""SQuAD windows (doc stride), answer-token targets, and answer extraction with and without no-answer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vlkd.data.tasks.squad import QAExample, encode_windows, extract_answers, read_squad
from vlkd.data.tokenizer import load_tokenizer

CONTEXT = ("Ada Lovelace was born in London in 1815. She wrote the first program for the Analytical Engine, "
           "a machine designed by Charles Babbage, and she died in 1852.")


def example(answer: str, qid: str = "q") -> QAExample:
    return QAExample(qid, "Who designed the engine?", CONTEXT, [answer], CONTEXT.index(answer))


def test_windows_overlap_and_targets_decode_to_the_answer() -> None:
    tok = load_tokenizer("bundled:minilm")
    windows = encode_windows([example("Charles Babbage")], tok, max_length=24, doc_stride=8, train=True)
    assert len(windows.items) > 2 and set(windows.example) == {0}
    inside = 0
    for item, offs in zip(windows.items, windows.offsets):
        s, e = item["start_positions"], item["end_positions"]
        if (s, e) == (0, 0):
            continue
        inside += 1
        assert tok.decode(item["input_ids"][s:e + 1]) == "charles babbage"
        assert CONTEXT[offs[s, 0]:offs[e, 1]] == "Charles Babbage"
    assert inside >= 1  # the answer lies wholly inside at least one window; the others point at [CLS]


def test_extract_answers_best_span_and_null() -> None:
    tok = load_tokenizer("bundled:minilm")
    ex = example("Charles Babbage")
    windows = encode_windows([ex], tok, max_length=64, doc_stride=16, train=True)
    assert len(windows.items) == 1
    s, e = windows.items[0]["start_positions"], windows.items[0]["end_positions"]
    logits = np.zeros((1, 64, 2), dtype=np.float32)
    logits[0, s, 0] = logits[0, e, 1] = 5.0
    assert extract_answers([ex], windows, logits, allow_null=True) == {"q": "Charles Babbage"}
    logits[0, 0, :] = 6.0  # [CLS] beats the span: no answer in v2, still the best span in v1
    assert extract_answers([ex], windows, logits, allow_null=True) == {"q": ""}
    assert extract_answers([ex], windows, logits, allow_null=False) == {"q": "Charles Babbage"}
    # spans longer than max_answer_length are never chosen
    assert extract_answers([ex], windows, logits, allow_null=False, max_answer_length=1) != {"q": "Charles Babbage"}


def test_a_question_id_used_twice_is_named_in_a_notice(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    def qa(qid: str, answer: str) -> dict:
        return {"id": qid, "question": "Who?", "answers": [{"text": answer, "answer_start": CONTEXT.index(answer)}]}

    qas = [qa("a1", "Charles Babbage"), qa("a2", "London"), qa("a1", "Ada Lovelace"), qa("a3", "1815"),
           qa("a3", "1852")]
    (tmp_path / "dev-v1.1.json").write_text(json.dumps({"data": [{"paragraphs": [{"context": CONTEXT, "qas": qas}]}]}))
    examples = read_squad("squad1", tmp_path, "dev")
    assert [e.qid for e in examples] == ["a1", "a2", "a1", "a3", "a3"]  # nothing dropped
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vlkd: notice:") and "'a1', 'a3';" in err[0], err
    qas[2]["id"] = "a4"
    qas[4]["id"] = "a5"
    (tmp_path / "dev-v1.1.json").write_text(json.dumps({"data": [{"paragraphs": [{"context": CONTEXT, "qas": qas}]}]}))
    read_squad("squad1", tmp_path, "dev")
    assert capsys.readouterr().err == ""
