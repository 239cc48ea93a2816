"""Metric functions against scikit-learn / scipy; SQuAD v1.1/v2.0 and TRACIE against independent
reimplementations of their official evaluators' published definitions; R3 by category against sklearn."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

import json
import re
import string
from collections import Counter
from pathlib import Path

from vlkd.data.tasks.glue import AX_CATEGORIES, read_diagnostic_full
from vlkd.data.tasks.tracie import LABELS as TRACIE_LABELS
from vlkd.data.tasks.tracie import read_tracie
from vlkd.eval.metrics import (accuracy, compute, exact_match, f1, mcc, normalize_answer, pearson, r3_by_category,
                               spearman, squad_scores, squad_v2_scores, token_f1, tracie_scores)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "finetune"


@pytest.mark.parametrize("seed", range(5))
def test_classification_metrics_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels, preds = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    assert accuracy(preds, labels) == pytest.approx(accuracy_score(labels, preds))
    assert f1(preds, labels) == pytest.approx(f1_score(labels, preds))
    assert mcc(preds, labels) == pytest.approx(matthews_corrcoef(labels, preds))
    three, three_pred = rng.integers(0, 3, 200), rng.integers(0, 3, 200)
    assert mcc(three_pred, three) == pytest.approx(matthews_corrcoef(three, three_pred))


@pytest.mark.parametrize("seed", range(5))
def test_correlations_match_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.uniform(0, 5, 100)
    preds = labels + rng.normal(0, 2, 100)
    assert pearson(preds, labels) == pytest.approx(pearsonr(preds, labels)[0])
    assert spearman(preds, labels) == pytest.approx(spearmanr(preds, labels)[0])
    assert compute(("pearson", "spearman"), preds, labels) == {"pearson": pearson(preds, labels),
                                                              "spearman": spearman(preds, labels)}


def test_degenerate_inputs_score_zero() -> None:
    assert pearson([1.0, 1.0, 1.0], [0.0, 1.0, 2.0]) == 0.0
    assert mcc([1, 1, 1], [0, 1, 0]) == 0.0
    assert f1([0, 0, 0], [0, 1, 0]) == 0.0


def test_squad_normalisation_follows_the_official_script() -> None:
    assert normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert normalize_answer("an apple, a pear; the end.") == "apple pear end"
    assert normalize_answer("Theatre") == "theatre"  # articles only as whole words
    assert normalize_answer("  U.S.  ") == "us"


def test_squad_exact_match_and_f1_hand_made() -> None:
    assert exact_match("the Eiffel tower", "Eiffel Tower.") == 1.0
    assert exact_match("Eiffel", "Eiffel Tower") == 0.0
    # pred {eiffel}, gold {eiffel, tower}: precision 1, recall 1/2 -> F1 2/3
    assert token_f1("Eiffel", "the Eiffel Tower") == pytest.approx(2 / 3)
    # tokens count with multiplicity: pred [paris, paris] vs gold [paris]: P 1/2, R 1
    assert token_f1("Paris Paris", "Paris") == pytest.approx(2 / 3)
    assert token_f1("London", "Paris") == 0.0
    assert token_f1("", "") == 1.0 and token_f1("Paris", "") == 0.0 and token_f1("", "Paris") == 0.0
    golds = {"q1": ["Paris", "in Paris"], "q2": ["1815"], "q3": []}  # q3 unanswerable (v2)
    preds = {"q1": "in Paris, France", "q2": "1815", "q3": ""}
    # q1: best gold "in Paris" -> pred {in, paris, france}: P 2/3, R 1 -> 0.8; EM 0. q2 1/1. q3 1/1.
    scores = squad_scores(preds, golds)
    assert scores["exact_match"] == pytest.approx(100 * 2 / 3)
    assert scores["f1"] == pytest.approx(100 * (0.8 + 1 + 1) / 3)
    assert squad_scores({}, golds) == {"exact_match": 0.0, "f1": 0.0}  # missing predictions score 0


# -- SQuAD v2.0: the official script's definitions, written out again independently -------------------

def _norm(text: str) -> list[str]:
    text = "".join(c for c in text.lower() if c not in set(string.punctuation))
    return re.sub(r"\b(a|an|the)\b", " ", text).split()


def _f1(gold: str, pred: str) -> float:
    g, p = _norm(gold), _norm(pred)
    if not g or not p:
        return float(g == p)
    same = sum((Counter(g) & Counter(p)).values())
    return 0.0 if same == 0 else 2 * same / (len(g) + len(p))


def reference_v2(golds: dict, preds: dict, na_probs: dict, thresh: float = 1.0) -> dict:
    """evaluate-v2.0.py as published: raw scores against the non-empty gold answers (or ""), no-answer
    threshold, HasAns/NoAns splits, and the best threshold over the sorted no-answer probabilities."""
    has = {q: len(answers) > 0 for q, answers in golds.items()}
    em = {q: max(float(_norm(a) == _norm(preds[q])) for a in ([a for a in golds[q] if _norm(a)] or [""]))
          for q in golds}
    f = {q: max(_f1(a, preds[q]) for a in ([a for a in golds[q] if _norm(a)] or [""])) for q in golds}
    em_t = {q: (0.0 if has[q] else 1.0) if na_probs[q] > thresh else em[q] for q in golds}
    f_t = {q: (0.0 if has[q] else 1.0) if na_probs[q] > thresh else f[q] for q in golds}
    out = {"exact": 100 * np.mean(list(em_t.values())), "f1": 100 * np.mean(list(f_t.values())), "total": len(golds)}
    for name, flag in (("HasAns", True), ("NoAns", False)):
        qs = [q for q in golds if has[q] == flag]
        if qs:
            out.update({f"{name}_exact": 100 * np.mean([em_t[q] for q in qs]),
                        f"{name}_f1": 100 * np.mean([f_t[q] for q in qs]), f"{name}_total": len(qs)})
    for name, raw in (("exact", em), ("f1", f)):
        order = sorted(na_probs, key=lambda q: na_probs[q])
        score = best = sum(not v for v in has.values())
        best_t = 0.0
        for q in order:
            score += raw[q] if has[q] else (-1 if preds[q] else 0)
            if score > best:
                best, best_t = score, na_probs[q]
        out[f"best_{name}"], out[f"best_{name}_thresh"] = 100 * best / len(golds), best_t
    return out


def squad2_golds() -> dict[str, list[str]]:
    data = json.loads((FIXTURES / "SQuAD2" / "dev-v2.0.json").read_text())
    return {qa["id"]: [a["text"] for a in qa["answers"]] for a in data["data"] for p in a["paragraphs"]
            for qa in p["qas"]}


@pytest.mark.parametrize("seed", range(6))
def test_squad_v2_equals_the_official_definitions(seed: int) -> None:
    rng = np.random.default_rng(seed)
    golds = squad2_golds()  # the fixture file: answerable and unanswerable questions
    for i in range(30):  # and more questions, about a third unanswerable
        # "The." normalises to nothing: answerable, but scored against "" (as the official script does)
        golds[f"x{i}"] = [] if rng.random() < 0.35 else rng.choice(["Paris", "the Nile river", "1815", "The."], 2).tolist()
    words = ["Paris", "the", "Nile", "river", "1815", "in", "London", ""]
    preds = {q: "" if rng.random() < 0.3 else " ".join(rng.choice(words, rng.integers(1, 4))) for q in golds}
    na = {q: float(np.round(rng.normal(), 1)) for q in golds}  # rounded: ties in the threshold sweep
    ours = squad_v2_scores(preds, golds, na)
    reference = reference_v2(golds, preds, na)
    assert set(ours) == set(reference) == {"exact", "f1", "total", "HasAns_exact", "HasAns_f1", "HasAns_total",
                                           "NoAns_exact", "NoAns_f1", "NoAns_total", "best_exact",
                                           "best_exact_thresh", "best_f1", "best_f1_thresh"}
    assert ours == pytest.approx(reference)
    # without a no-answer file: no best_* keys, every threshold off (probability 0 is never > 1)
    plain = squad_v2_scores(preds, golds)
    assert "best_exact" not in plain
    assert plain["exact"] == pytest.approx(reference_v2(golds, preds, {q: 0.0 for q in golds})["exact"])


def test_squad_v2_hand_made() -> None:
    golds = {"a": ["Paris"], "b": [], "c": ["1815"]}
    preds = {"a": "Paris", "b": "London", "c": ""}
    # raw: a 1, b 0 (an answer to an unanswerable question), c 0
    na = {"a": 0.1, "b": 0.9, "c": 0.5}
    scores = squad_v2_scores(preds, golds, na, na_prob_thresh=0.6)  # b's 0.9 > 0.6: b counts as "no answer"
    assert scores["exact"] == pytest.approx(200 / 3) and scores["NoAns_exact"] == 100.0
    assert scores["HasAns_total"] == 2 and scores["NoAns_total"] == 1
    # sweep: start 1 (b right); a +1 -> 2 at 0.1; c +0 ; b -1: best 2/3 at 0.1
    assert scores["best_exact"] == pytest.approx(200 / 3) and scores["best_exact_thresh"] == 0.1


# -- TRACIE: the AllenAI evaluator's definitions, written out again independently -------------------

def reference_tracie(gold: list[str], pred: list[str], queries: list[str], stories: list[str]) -> dict:
    stories_ok: dict[str, list[bool]] = {}
    start_ok, end_ok = [], []
    for g, p, q, s in zip(gold, pred, queries, stories):
        stories_ok.setdefault(s, []).append(g == p)
        (start_ok if ("starts before" in q or "starts after" in q) else end_ok).append(g == p)
    return {"total_acc": float(np.mean([g == p for g, p in zip(gold, pred)])), "start_acc": float(np.mean(start_ok)),
            "end_acc": float(np.mean(end_ok)), "story_em": float(np.mean([all(v) for v in stories_ok.values()]))}


@pytest.mark.parametrize("seed", range(4))
def test_tracie_equals_the_allenai_evaluator(seed: int) -> None:
    examples = read_tracie(FIXTURES / "TRACIE", "test")
    rng = np.random.default_rng(seed)
    labels = [e.label for e in examples]
    preds = [label if rng.random() < 0.7 else 1 - label for label in labels]
    queries, stories = [e.text_b for e in examples], [e.text_a for e in examples]
    ours = tracie_scores(preds, labels, queries, stories)
    reference = reference_tracie([TRACIE_LABELS[i] for i in labels], [TRACIE_LABELS[i] for i in preds], queries, stories)
    assert ours == pytest.approx(reference)
    assert tracie_scores(labels, labels, queries, stories) == {"total_acc": 1.0, "start_acc": 1.0, "end_acc": 1.0,
                                                               "story_em": 1.0}
    # one wrong answer spoils its whole story
    assert tracie_scores([1 - labels[0], *labels[1:]], labels, queries, stories)["story_em"] == pytest.approx(3 / 4)


# -- GLUE diagnostics: R3 by category against scikit-learn ----------------------------------------

@pytest.mark.parametrize("seed", range(4))
def test_r3_by_category_matches_sklearn(seed: int) -> None:
    examples = read_diagnostic_full(FIXTURES / "diagnostic" / "diagnostic-full.tsv")
    rng = np.random.default_rng(seed)
    cats = [e.categories for e in examples] * 5  # 60 examples, the fixture's categories repeated
    labels = [e.pair.label for e in examples] * 5
    preds = [int(x) for x in rng.integers(0, 3, len(labels))]
    result = r3_by_category(preds, labels, cats)
    assert result["overall"] == {"r3": pytest.approx(matthews_corrcoef(labels, preds)), "count": 60}
    assert set(result["coarse"]) == set(AX_CATEGORIES)
    for coarse in AX_CATEGORIES:
        index = [i for i, c in enumerate(cats) if c[coarse]]
        assert result["coarse"][coarse]["count"] == len(index)
        expected = matthews_corrcoef([labels[i] for i in index], [preds[i] for i in index])
        assert result["coarse"][coarse]["r3"] == pytest.approx(expected)
    fine = {f"{c}/{label}" for cat in cats for c, labels_ in cat.items() for label in labels_}
    assert set(result["fine"]) == fine
    for name, value in result["fine"].items():
        coarse, label = name.split("/", 1)
        index = [i for i, c in enumerate(cats) if label in c[coarse]]
        assert value["count"] == len(index)
        assert value["r3"] == pytest.approx(matthews_corrcoef([labels[i] for i in index], [preds[i] for i in index]))
    assert result["fine"]["Knowledge/World knowledge"]["count"] == 10
