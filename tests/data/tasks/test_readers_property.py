"""Property tests of the task readers (GLUE TSV, SQuAD JSON, SWAG CSV, PIQA, TRACIE): any input, however
malformed, either parses into valid records or raises vlkd's one error type, never another exception.

Inputs are built from the official layouts and then broken: fields dropped, doubled, swapped for random
text, numbers or JSON of the wrong type, lines of random bytes (not UTF-8), a BOM, CR line ends, and a field
longer than csv's limit.
"""

from __future__ import annotations

import csv
import json
import math
import tempfile
from pathlib import Path
from typing import Any, Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vlkd.data.tasks.registry import get_task
from vlkd.data.tasks.spec import ChoiceExample, PairExample
from vlkd.data.tasks.squad import QAExample
from vlkd.errors import VlkdError

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

words = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
cells = st.one_of(words, st.sampled_from(["", "0", "1", "2", "3", "-1", "nan", "inf", "4.5", "entailment",
                                          "neutral", "not_entailment", "positive", "\t", '"', "\r", ";"]))


def breakage(line: str) -> st.SearchStrategy[str]:
    """A line kept, dropped, doubled, cut, or replaced by random text."""
    return st.one_of(st.just(line), st.just(""), st.just(line + line), st.builds(lambda k: line[:k], st.integers(0, 40)),
                     st.lists(cells, max_size=6).map("\t".join), st.lists(cells, max_size=6).map(",".join))


def file_bytes(lines: list[str]) -> st.SearchStrategy[bytes]:
    """A file from (broken) official lines, with optional BOM, CRLF ends, bad bytes or an over-long field."""
    body = st.tuples(*[breakage(line) for line in lines]).map(lambda ls: "\n".join(ls) + "\n")
    return st.builds(_finish, body, st.booleans(), st.booleans(), st.sampled_from([b"", b"\xff\xfe", b"\x00"]),
                     st.booleans())


def _finish(text: str, bom: bool, crlf: bool, junk: bytes, long_field: bool) -> bytes:
    if long_field:
        text += "x" * (csv.field_size_limit() + 10) + "\t1\n"
    if crlf:
        text = text.replace("\n", "\r\n")
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8", "surrogatepass") + junk


def check(task: str, split: str, files: dict[str, bytes], valid: Callable[[Any], bool]) -> None:
    spec = get_task(task)
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data)
        try:
            examples = spec.read(Path(tmp), split)
        except VlkdError as e:
            assert "\n" not in str(e)
            return
    assert examples and all(valid(e) for e in examples)


def pair_valid(labels: tuple[str, ...], regress: bool = False) -> Callable[[Any], bool]:
    def valid(e: Any) -> bool:
        label_ok = (e.label is None or (isinstance(e.label, float) and math.isfinite(e.label)) if regress
                    else e.label is None or e.label in range(len(labels)))
        return (isinstance(e, PairExample) and isinstance(e.text_a, str) and isinstance(e.index, str)
                and (e.text_b is None or isinstance(e.text_b, str)) and label_ok)
    return valid


def choice_valid(n: int) -> Callable[[Any], bool]:
    return lambda e: (isinstance(e, ChoiceExample) and isinstance(e.context, str) and len(e.endings) == n
                      and all(isinstance(x, str) for x in e.endings) and (e.label is None or e.label in range(n)))


RTE = ["index\tsentence1\tsentence2\tlabel", "0\tA man sleeps.\tA person sleeps.\tentailment",
       "1\tA cat.\tA dog.\tnot_entailment"]
STSB = ["index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore",
        "0\tmain\tf\t2012\t1\tnone\tnone\tA plane.\tAn airplane.\t5.000"]
COLA = ["gj04\t1\t\tThe sailors rode the breeze clear of the rocks.", "gj04\t0\t*\tThe more we study."]


@SETTINGS
@given(file_bytes(RTE))
def test_glue_tsv(data: bytes) -> None:
    check("rte", "train", {"train.tsv": data}, pair_valid(get_task("rte").labels))


@SETTINGS
@given(file_bytes(STSB), file_bytes(COLA))
def test_glue_stsb_scores_and_headerless_cola(stsb: bytes, cola: bytes) -> None:
    check("stsb", "dev", {"dev.tsv": stsb}, pair_valid((), regress=True))
    check("cola", "train", {"train.tsv": cola}, pair_valid(("0", "1")))


SWAG = [",video-id,fold-ind,startphrase,sent1,sent2,gold-source,ending0,ending1,ending2,ending3,label",
        '0,lsmdc0,1000,The cat. Then,The cat.,Then,gold,"smiles, ""happy"".",leaves.,falls.,waits.,0']


@SETTINGS
@given(file_bytes(SWAG))
def test_swag_csv(data: bytes) -> None:
    check("swag", "dev", {"val.csv": data}, choice_valid(4))


json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-5, 600), st.floats(allow_nan=False),
                                     words),
                           lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(words, inner, max_size=3)), max_leaves=6)
PIQA_RECORD = {"id": "v-0", "goal": "To open a jar", "sol1": "twist the lid", "sol2": "freeze it"}


piqa_records = st.one_of(st.just(PIQA_RECORD),
                         st.fixed_dictionaries({"goal": json_values, "sol1": st.just("a"), "sol2": words}),
                         st.dictionaries(st.sampled_from(["id", "goal", "sol1", "sol2"]), json_values, max_size=4),
                         json_values)


@SETTINGS
@given(st.lists(piqa_records, min_size=0, max_size=4),
       st.one_of(st.none(), st.lists(st.sampled_from(["0", "1", "2", "x", ""]), max_size=5)), st.booleans())
def test_piqa_jsonl_and_labels(records: list[Any], labels: list[str] | None, bad_bytes: bool) -> None:
    jsonl = "".join(json.dumps(r) + "\n" for r in records).encode() + (b"\xff\n" if bad_bytes else b"")
    labels = ["1"] * len(records) if labels is None else labels  # often exactly one valid label per record
    check("piqa", "train", {"train.jsonl": jsonl, "train-labels.lst": ("\n".join(labels) + "\n").encode()},
          choice_valid(2))


TRACIE = ["event: Tom ate starts after he cooked story: Tom cooked. He ate.\tanswer: positive",
          "event: Tom ate ends before he cooked story: Tom cooked. He ate.\tanswer: negative"]


@SETTINGS
@given(file_bytes(TRACIE))
def test_tracie_lines(data: bytes) -> None:
    check("tracie", "train", {"tracie_train.txt": data}, pair_valid(get_task("tracie").labels))


CONTEXT = "Ada was born in Paris in 1815."
QA = {"id": "q1", "question": "Where?", "answers": [{"text": "Paris", "answer_start": 16}], "is_impossible": False}


def squad_file(qas: list[Any], context: Any, paragraphs: Any, top: Any) -> bytes:
    data = {"version": "v2.0", "data": [{"title": "t", "paragraphs": [{"context": context, "qas": qas}]}]}
    if paragraphs is not None:
        data["data"][0]["paragraphs"] = paragraphs
    if top is not None:
        data = top
    return json.dumps(data).encode()


@SETTINGS
@given(st.lists(st.one_of(st.just(QA), st.dictionaries(st.sampled_from(list(QA)), json_values, max_size=4),
                          st.fixed_dictionaries({**{k: st.just(v) for k, v in QA.items()},
                                                 "answers": st.lists(st.dictionaries(
                                                     st.sampled_from(["text", "answer_start"]), json_values),
                                                     max_size=2)}),
                          json_values), max_size=3),
       st.one_of(st.just(CONTEXT), json_values), st.one_of(st.none(), json_values), st.one_of(st.none(), json_values),
       st.sampled_from(["squad1", "squad2"]), st.sampled_from(["train", "dev"]))
def test_squad_json(qas: list[Any], context: Any, paragraphs: Any, top: Any, task: str, split: str) -> None:
    name = {"squad1": "train-v1.1.json", "squad2": "train-v2.0.json"}[task].replace("train", split)
    check(task, split, {name: squad_file(qas, context, paragraphs, top)},
          lambda e: (isinstance(e, QAExample) and isinstance(e.qid, str) and isinstance(e.question, str)
                     and isinstance(e.context, str) and all(isinstance(a, str) for a in e.answers)
                     and isinstance(e.answer_start, int)))


def test_squad_json_nested_too_deeply_is_one_line() -> None:
    check("squad2", "dev", {"dev-v2.0.json": b"[" * 100_000}, lambda e: False)
