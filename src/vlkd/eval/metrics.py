"""Official downstream metrics: GLUE's per-task scores, SQuAD v1.1 / v2.0 and TRACIE as their official
evaluation scripts report them, and the GLUE diagnostics' R3 by category.

Classification metrics come from scikit-learn, correlations from scipy; the SQuAD answer
normalisation follows the official evaluation script (v1.1 and v2.0 define it identically).
"""

from __future__ import annotations

import collections
import re
import string
import warnings
from typing import Iterable, Mapping, Sequence

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef


def accuracy(predictions: Sequence[int], labels: Sequence[int]) -> float:
    return float(accuracy_score(labels, predictions))


def f1(predictions: Sequence[int], labels: Sequence[int]) -> float:
    """Binary F1 of the positive class (label index 1), as GLUE reports for MRPC and QQP."""
    return float(f1_score(labels, predictions, pos_label=1, average="binary", zero_division=0.0))


def mcc(predictions: Sequence[int], labels: Sequence[int]) -> float:
    """Matthews correlation (CoLA); 0 when a side is constant."""
    return float(matthews_corrcoef(labels, predictions))


def pearson(predictions: Sequence[float], labels: Sequence[float]) -> float:
    """Pearson correlation (STS-B); 0 when a side is constant (undefined otherwise)."""
    if np.std(predictions) == 0 or np.std(labels) == 0:
        return 0.0
    return float(pearsonr(predictions, labels)[0])


def spearman(predictions: Sequence[float], labels: Sequence[float]) -> float:
    if np.std(predictions) == 0 or np.std(labels) == 0:
        return 0.0
    return float(spearmanr(predictions, labels)[0])


METRICS = {"accuracy": accuracy, "f1": f1, "mcc": mcc, "pearson": pearson, "spearman": spearman}


def compute(names: Iterable[str], predictions: Sequence, labels: Sequence) -> dict[str, float]:
    """The named metrics of `predictions` against `labels`."""
    return {name: METRICS[name](predictions, labels) for name in names}


# -- SQuAD (official evaluate-v2.0.py definitions) ---------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation, drop the articles a/an/the, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    """Bag-of-tokens F1 after normalisation; if either side is empty (a no-answer), 1 iff both are."""
    pred_tokens, gold_tokens = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = collections.Counter(pred_tokens) & collections.Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions: dict[str, str], golds: dict[str, list[str]]) -> dict[str, float]:
    """Corpus exact_match and f1 in percent, each question scored against its best gold answer.

    A question without gold answers (SQuAD 2.0 unanswerable) has the single gold answer "".
    Every gold question counts; a missing prediction scores 0 (as the official v1.1 script).
    """
    em_total = f1_total = 0.0
    for qid, answers in golds.items():
        answers = [a for a in answers if normalize_answer(a)] or [""]
        pred = predictions.get(qid)
        if pred is None:
            continue
        em_total += max(exact_match(pred, a) for a in answers)
        f1_total += max(token_f1(pred, a) for a in answers)
    n = max(len(golds), 1)
    return {"exact_match": 100.0 * em_total / n, "f1": 100.0 * f1_total / n}


def squad_v2_scores(predictions: Mapping[str, str], golds: Mapping[str, list[str]],
                    na_probs: Mapping[str, float] | None = None, na_prob_thresh: float = 1.0) -> dict[str, float]:
    """What the official `evaluate-v2.0.py` prints for these predictions (and `--na-prob-file`, when given).

    `exact`, `f1` and `total` over the predicted questions, `HasAns_*` / `NoAns_*` over the questions with /
    without gold answers (present when there are some; an empty list = unanswerable), and with `na_probs` (question id -> no-answer
    probability or score) the questions whose score exceeds `na_prob_thresh` count as answered "no answer",
    plus `best_exact`, `best_exact_thresh`, `best_f1`, `best_f1_thresh`: the best score over all thresholds.
    A question without a prediction is left out (as the official script does, after a warning).
    """
    has_ans = {qid: bool(answers) for qid, answers in golds.items()}  # as the script: a non-empty answer list
    exact_raw, f1_raw = {}, {}
    for qid, answers in golds.items():
        if qid not in predictions:
            continue
        texts = [a for a in answers if normalize_answer(a)] or [""]
        exact_raw[qid] = max(exact_match(predictions[qid], a) for a in texts)
        f1_raw[qid] = max(token_f1(predictions[qid], a) for a in texts)
    probs = dict(na_probs) if na_probs is not None else {qid: 0.0 for qid in predictions}
    exact = _apply_threshold(exact_raw, probs, has_ans, na_prob_thresh)
    f1_ = _apply_threshold(f1_raw, probs, has_ans, na_prob_thresh)
    out = _mean_scores(exact, f1_, list(exact))
    for prefix, wanted in (("HasAns", True), ("NoAns", False)):
        qids = [qid for qid in exact if has_ans[qid] == wanted]
        if qids:
            out.update({f"{prefix}_{k}": v for k, v in _mean_scores(exact, f1_, qids).items()})
    if na_probs is not None:
        for name, raw in (("exact", exact_raw), ("f1", f1_raw)):
            best, thresh = _best_threshold(predictions, raw, probs, has_ans)
            out[f"best_{name}"], out[f"best_{name}_thresh"] = best, thresh
    return out


def _apply_threshold(scores: dict[str, float], probs: Mapping[str, float], has_ans: Mapping[str, bool],
                     thresh: float) -> dict[str, float]:
    """A question whose no-answer score exceeds `thresh` scores 1 if it has no gold answer, else 0."""
    return {qid: float(not has_ans[qid]) if probs[qid] > thresh else s for qid, s in scores.items()}


def _mean_scores(exact: Mapping[str, float], f1_: Mapping[str, float], qids: list[str]) -> dict[str, float]:
    n = len(qids)
    return {"exact": 100.0 * sum(exact[q] for q in qids) / n if n else 0.0,
            "f1": 100.0 * sum(f1_[q] for q in qids) / n if n else 0.0, "total": n}


def _best_threshold(predictions: Mapping[str, str], scores: Mapping[str, float], probs: Mapping[str, float],
                    has_ans: Mapping[str, bool]) -> tuple[float, float]:
    """Sweep the threshold up through the questions by no-answer score: start from answering nothing (every
    unanswerable question right), then let each question's prediction stand in turn."""
    current = best = float(sum(1 for v in has_ans.values() if not v))
    best_thresh = 0.0
    for qid in sorted(probs, key=lambda q: probs[q]):
        if qid not in scores:
            continue
        current += scores[qid] if has_ans[qid] else (-1.0 if predictions[qid] else 0.0)
        if current > best:
            best, best_thresh = current, probs[qid]
    return 100.0 * best / len(scores) if scores else 0.0, best_thresh


# -- TRACIE (the AllenAI leaderboard evaluator's definitions) -----------------------------------------

def tracie_scores(predictions: Sequence[str], labels: Sequence[str], queries: Sequence[str],
                  stories: Sequence[str]) -> dict[str, float]:
    """`total_acc`, `start_acc` (queries about a start point: they contain "starts before"/"starts after"),
    `end_acc` (the others) and `story_em` (stories whose every query is right), as fractions in [0, 1].
    A subset with no question scores 0 (the official script would divide by zero)."""
    right = [p == g for p, g in zip(predictions, labels, strict=True)]
    start = ["starts before" in q or "starts after" in q for q in queries]
    by_story: dict[str, bool] = {}
    for story, ok in zip(stories, right, strict=True):
        by_story[story] = by_story.get(story, True) and ok

    def share(flags: list[bool]) -> float:
        return sum(flags) / len(flags) if flags else 0.0

    return {"total_acc": share(right), "start_acc": share([r for r, s in zip(right, start) if s]),
            "end_acc": share([r for r, s in zip(right, start) if not s]), "story_em": share(list(by_story.values()))}


# -- GLUE diagnostics (R3 by category) ---------------------------------------------------------------

def r3_by_category(predictions: Sequence[int], labels: Sequence[int],
                   categories: Sequence[Mapping[str, Sequence[str]]]) -> dict[str, dict]:
    """R3 (GLUE's three-class Matthews correlation) with counts: `overall`, per coarse category (`coarse`:
    the examples with any fine-grained label in it) and per fine-grained label (`fine`: "Coarse/Label")."""
    groups: dict[str, dict[str, list[int]]] = {"coarse": {}, "fine": {}}
    for i, cats in enumerate(categories):
        for coarse, fine in cats.items():
            if fine:
                groups["coarse"].setdefault(coarse, []).append(i)
            for label in fine:
                groups["fine"].setdefault(f"{coarse}/{label}", []).append(i)

    def r3(index: list[int]) -> dict[str, float]:
        with warnings.catch_warnings():  # a small category often holds one label only: its R3 is 0, no warning
            warnings.simplefilter("ignore", UserWarning)
            value = mcc([predictions[i] for i in index], [labels[i] for i in index])
        return {"r3": value, "count": len(index)}

    return {"overall": r3(list(range(len(labels)))),
            "coarse": {k: r3(v) for k, v in groups["coarse"].items()},
            "fine": {k: r3(sorted(set(v))) for k, v in sorted(groups["fine"].items())}}
