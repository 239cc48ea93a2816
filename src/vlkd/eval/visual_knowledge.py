"""`vlkd evaluate visual-knowledge`: what a text model knows of how things look, on a visual-knowledge
benchmark (`vlkd.data.visual`), by one of two protocols:

- *cloze* (models with an MLM head): per template, each candidate word is scored at [MASK] by its mean
  log-probability over its word pieces, with as many [MASK]s as it has pieces; the prediction is the best
  candidate. Accuracy (and Spearman) per template, their mean and best.
- *probe*: the frozen model's last hidden states averaged over the object's word pieces in the neutral
  sentence `the {object}.` (several objects: their vectors concatenated); a logistic regression on the
  standardised vectors, trained on the benchmark's train split or cross-validated over objects
  (shuffled 5-fold, fixed seed); beside it the same probe trained on shuffled labels.

Scoring, the same for both protocols, from a score per (item, candidate): an item is right when its best
candidate is its label; a pairwise item (ViComTe) when its label scores above its alternative; a graded item
(CoDa) when its best candidate is one of the humans' most chosen colours, with the Spearman correlation
between the scores and the humans' distribution (items where either is constant are left out of the mean).
`chance` is the majority class: the accuracy of always answering the most frequent gold class (CoDa: the
colour most often among the humans' top choices; pairwise: ranking by how often each value is the right one
in train).
"""

from __future__ import annotations

from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from scipy.stats import spearmanr
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from transformers import BertForMaskedLM, BertModel, PreTrainedTokenizerFast

from vlkd.data.bundled import bundled_path
from vlkd.data.tokenizer import BUNDLED_TOKENIZER, load_tokenizer
from vlkd.data.visual.registry import read_benchmark
from vlkd.data.visual.spec import VisualItem, VisualPart, fill_template
from vlkd.errors import VlkdError
from vlkd.hub import quiet_transformers
from vlkd.inference import infer
from vlkd.io import check_safetensors_dir, read_json
from vlkd.rundir import model_dir

PROTOCOLS = ("probe", "cloze")
NEUTRAL = "the {object}."
FOLDS = 5
BATCH = 32
MLM_HEAD_KEY = "cls.predictions.transform.dense.weight"


def resolve_model(model: str | Path) -> Path:
    """The BERT directory M names: `bundled:minilm`; a model directory; a vlkd run's best/ (else final/);
    a teacher run's text tower (best/text, else final/text)."""
    if str(model) == BUNDLED_TOKENIZER:
        return bundled_path("minilm")
    path = Path(model)
    if not path.exists():
        raise VlkdError("model not found", path)
    if (path / "config.json").is_file():
        return path
    try:
        return model_dir(path, "text/config.json", "video/config.json", what="teacher") / "text"
    except VlkdError:
        return model_dir(path, "config.json", what="BERT model (config.json)")


def has_mlm_head(path: Path) -> bool:
    """Whether the directory's weights include a masked-LM head (BertForMaskedLM's cls.predictions)."""
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise VlkdError("no model.safetensors in the model directory", path)
    for file in files:
        with safe_open(str(file), "pt") as f:
            if MLM_HEAD_KEY in f.keys():
                return True
    return False


def load_model(path: Path, protocol: str) -> tuple[PreTrainedTokenizerFast, torch.nn.Module]:
    """The tokenizer and the frozen model (BertForMaskedLM for cloze, BertModel for probe), in eval mode."""
    config = read_json(path / "config.json")
    if not isinstance(config, dict) or config.get("model_type") != "bert":
        raise VlkdError("not a BERT model (config.json model_type is not 'bert')", path / "config.json")
    check_safetensors_dir(path)
    if protocol == "cloze" and not has_mlm_head(path):
        raise VlkdError("the model has no MLM head (cls.predictions weights), so it cannot fill [MASK]: "
                        "use --protocol probe", path)
    tokenizer = load_tokenizer(str(path))
    try:
        with quiet_transformers():  # an MLM checkpoint has no pooler, and we use none
            if protocol == "cloze":
                module: torch.nn.Module = BertForMaskedLM.from_pretrained(path)
            else:
                module = BertModel.from_pretrained(path, add_pooling_layer=False)
    except (OSError, ValueError, RuntimeError) as e:
        raise VlkdError(f"cannot load the BERT ({type(e).__name__}: {str(e).splitlines()[0]})", path) from None
    return tokenizer, module.eval()


def object_vectors(module: torch.nn.Module, tokenizer: PreTrainedTokenizerFast, objects: list[str]) -> np.ndarray:
    """(n, H): per object, its last-layer hidden states averaged over its word pieces in NEUTRAL."""
    encoder = module.bert if isinstance(module, BertForMaskedLM) else module
    start = NEUTRAL.index("{object}")

    def collate(chunk: list[str], _: None) -> dict[str, Any]:
        encoded = tokenizer([NEUTRAL.format(object=o) for o in chunk], padding=True, return_tensors="pt",
                            return_offsets_mapping=True)
        return {**encoded, "objects": chunk}

    def vectors(batch: dict[str, Any]) -> list[np.ndarray]:
        offsets, chunk = batch.pop("offset_mapping"), batch.pop("objects")
        hidden = encoder(**batch).last_hidden_state
        out = []
        for i, obj in enumerate(chunk):
            lo, hi = offsets[i, :, 0], offsets[i, :, 1]
            pieces = (batch["attention_mask"][i] == 1) & (hi > lo) & (lo >= start) & (hi <= start + len(obj))
            if not pieces.any():
                raise VlkdError(f"object {obj!r} has no word pieces")
            out.append(hidden[i, pieces].mean(0).float().numpy())
        return out

    return np.stack([v for batch in infer(vectors, objects, collate, BATCH) for v in batch])


def features(module: torch.nn.Module, tokenizer: PreTrainedTokenizerFast, items: list[VisualItem]) -> np.ndarray:
    """(n, H x objects per item): each item's object vectors side by side."""
    flat = [obj for item in items for obj in item.objects]
    return object_vectors(module, tokenizer, flat).reshape(len(items), -1)


def cloze_scores(module: BertForMaskedLM, tokenizer: PreTrainedTokenizerFast, part: VisualPart,
                 template: str) -> np.ndarray:
    """(items, candidates): each candidate's mean log-probability over its word pieces, with the template's
    [MASK] replaced by as many [MASK]s as the candidate has pieces."""
    pieces = [tokenizer(c, add_special_tokens=False)["input_ids"] for c in part.candidates]
    scores = np.zeros((len(part.test), len(part.candidates)))
    for n in sorted({len(p) for p in pieces}):
        masks = " ".join([tokenizer.mask_token] * n)
        texts = [fill_template(template, item.fill, part.source).replace("[MASK]", masks) for item in part.test]
        rows = np.concatenate(infer(partial(_masked_rows, module, tokenizer, pieces, n, template, part.source),
                                    texts, partial(_encode_texts, tokenizer), BATCH))
        for c, ids in enumerate(pieces):
            if len(ids) == n:
                scores[:, c] = rows[:, c]
    return scores


def _encode_texts(tokenizer: PreTrainedTokenizerFast, chunk: list[str], _: None) -> dict[str, Any]:
    return {**tokenizer(chunk, padding=True, return_tensors="pt"), "texts": chunk}


def _masked_rows(module: BertForMaskedLM, tokenizer: PreTrainedTokenizerFast, pieces: list[list[int]], n: int,
                 template: str, source: str, batch: dict[str, Any]) -> np.ndarray:
    """(texts, candidates): the mean log-probability of each n-piece candidate at the n [MASK]s of each text."""
    texts = batch.pop("texts")
    logp = torch.log_softmax(module(**batch).logits.float(), dim=-1)
    rows = np.zeros((len(texts), len(pieces)))
    for i in range(logp.shape[0]):
        where = (batch["input_ids"][i] == tokenizer.mask_token_id).nonzero().flatten()
        if len(where) != n:
            raise VlkdError(f"template {template!r} must hold one [MASK] (after filling: {texts[i]!r})", source)
        for c, ids in enumerate(pieces):
            if len(ids) == n:
                rows[i, c] = float(logp[i, where, ids].mean())
    return rows


def top_set(target: tuple[float, ...]) -> np.ndarray:
    """The candidates the humans chose most (all of them on a tie)."""
    values = np.asarray(target)
    return np.flatnonzero(np.isclose(values, values.max()))


def correct(part: VisualPart, scores: np.ndarray) -> np.ndarray:
    """Per item, whether the scores answer it right (see the module docstring)."""
    out = []
    for item, row in zip(part.test, scores):
        if item.alt is not None:
            out.append(row[item.label] > row[item.alt])
        elif item.target is not None:
            out.append(int(np.argmax(row)) in top_set(item.target))
        else:
            out.append(int(np.argmax(row)) == item.label)
    return np.asarray(out, dtype=bool)


def mean_spearman(part: VisualPart, scores: np.ndarray) -> float | None:
    """The mean over items of the Spearman correlation between the scores and the humans' distribution."""
    values = [spearmanr(row, item.target).statistic for item, row in zip(part.test, scores)
              if np.ptp(row) > 0 and np.ptp(item.target) > 0]
    return float(np.mean(values)) if values else None


def chance(part: VisualPart) -> float:
    """The majority-class accuracy (see the module docstring)."""
    if part.pairwise:
        counts = Counter(item.label for item in (part.train or part.test))
        return float(np.mean([counts[item.label] > counts[item.alt] for item in part.test]))
    if part.graded:
        tops = [set(top_set(item.target).tolist()) for item in part.test]
        return max(sum(c in top for top in tops) for c in range(len(part.candidates))) / len(part.test)
    return Counter(item.label for item in part.test).most_common(1)[0][1] / len(part.test)


def fit_probe(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, classes: int, seed: int) -> np.ndarray:
    """(test items, classes): the class probabilities of a logistic regression on standardised features;
    classes absent from training get probability 0 (a single training class: probability 1)."""
    proba = np.zeros((len(x_test), classes))
    present = np.unique(y)
    if len(present) == 1:
        proba[:, present[0]] = 1.0
        return proba
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    probe.fit(x, y)
    proba[:, probe.classes_] = probe.predict_proba(x_test)
    return proba


def probe_scores(x: np.ndarray, y: np.ndarray, x_test: np.ndarray | None, classes: int, seed: int) -> np.ndarray:
    """Class probabilities of the test items: trained on (x, y) when there is a test split (x_test), else
    cross-validated over x's items (shuffled K-fold, K = min(5, items))."""
    if x_test is not None:
        return fit_probe(x, y, x_test, classes, seed)
    proba = np.zeros((len(x), classes))
    for train, test in KFold(min(FOLDS, len(x)), shuffle=True, random_state=seed).split(x):
        proba[test] = fit_probe(x[train], y[train], x[test], classes, seed)
    return proba


def score_part(part: VisualPart, protocol: str, module: torch.nn.Module, tokenizer: PreTrainedTokenizerFast,
               seed: int) -> dict[str, Any]:
    """One part's counts, chance and metrics under the protocol."""
    if len(part.test) < 2:
        raise VlkdError(f"{part.name}: {len(part.test)} item(s) to score; need at least 2", part.source)
    result: dict[str, Any] = {"items": len(part.test), "classes": len(part.candidates), "chance": chance(part)}
    if protocol == "cloze":
        rows = []
        for template in part.templates:
            scores = cloze_scores(module, tokenizer, part, template)
            row = {"template": template, "accuracy": float(correct(part, scores).mean())}
            if part.graded:
                row["spearman"] = mean_spearman(part, scores)
            rows.append(row)
        result["accuracy"] = float(np.mean([r["accuracy"] for r in rows]))
        result["accuracy_best"] = max(r["accuracy"] for r in rows)
        if part.graded:
            defined = [r["spearman"] for r in rows if r["spearman"] is not None]
            result["spearman"] = float(np.mean(defined)) if defined else None
            result["spearman_best"] = max(defined) if defined else None
        result["templates"] = rows
        return result
    train = part.train
    if train is not None and len(train) < 2:
        raise VlkdError(f"{part.name}: {len(train)} training item(s) for the probe; need at least 2", part.source)
    x_test = features(module, tokenizer, part.test)
    x, y = (features(module, tokenizer, train), np.array([i.label for i in train])) if train is not None else \
        (x_test, np.array([i.label for i in part.test]))
    held_out = x_test if train is not None else None
    scores = probe_scores(x, y, held_out, len(part.candidates), seed)
    shuffled = probe_scores(x, np.random.default_rng(seed).permutation(y), held_out, len(part.candidates), seed)
    result["accuracy"] = float(correct(part, scores).mean())
    result["shuffled"] = float(correct(part, shuffled).mean())
    if part.graded:
        result["spearman"] = mean_spearman(part, scores)
    result["probe"] = {"train_items": len(train)} if train is not None else {"folds": min(FOLDS, len(part.test))}
    return result


def evaluate_visual_knowledge(model: str, benchmark: str, data: Path, protocol: str = "probe",
                              seed: int = 0) -> dict:
    """Score a text model on a visual-knowledge benchmark; returns the result (written by the CLI as OUT.json):
    a single part's fields at the top level; several parts (the world's properties) under `parts`, with the
    mean over parts of accuracy, chance (and shuffled) at the top level."""
    if protocol not in PROTOCOLS:
        raise VlkdError(f"unknown protocol {protocol!r} (known: {', '.join(PROTOCOLS)})")
    parts = read_benchmark(benchmark, Path(data))
    path = resolve_model(model)
    tokenizer, module = load_model(path, protocol)
    torch.manual_seed(seed)
    scored = {part.name: score_part(part, protocol, module, tokenizer, seed) for part in parts}
    meta = {"benchmark": benchmark, "protocol": protocol, "model": str(model), "model_dir": str(path),
            "data": str(data), "seed": seed}
    if len(scored) == 1:
        return {**meta, **next(iter(scored.values()))}
    summary: dict[str, Any] = {"items": max(r["items"] for r in scored.values()),
                               "classes": {name: r["classes"] for name, r in scored.items()}}
    for key in ("chance", "accuracy", "shuffled", "accuracy_best"):
        if all(key in r for r in scored.values()):
            summary[key] = float(np.mean([r[key] for r in scored.values()]))
    return {**meta, **summary, "parts": scored}


def default_out(model: str, benchmark: str, protocol: str) -> Path:
    """OUT without suffix: MODEL/visual-knowledge-B-P, or ./visual-knowledge-B-P for `bundled:minilm`."""
    name = f"visual-knowledge-{benchmark}-{protocol}"
    return Path(name) if model == BUNDLED_TOKENIZER else Path(model) / name


def summary(result: dict[str, Any]) -> str:
    """One line per part: accuracy beside its baselines, Spearman where defined, counts."""
    parts = result.get("parts") or {result["benchmark"]: result}
    lines = []
    for name, r in parts.items():
        if result["protocol"] == "cloze":
            text = f"accuracy {r['accuracy']:.3f} (mean over {len(r['templates'])} templates; best " \
                   f"{r['accuracy_best']:.3f}), majority-class chance {r['chance']:.3f}"
        else:
            text = f"accuracy {r['accuracy']:.3f}, majority-class chance {r['chance']:.3f}, " \
                   f"shuffled-label probe {r['shuffled']:.3f}"
        if r.get("spearman") is not None:
            text += f", Spearman {r['spearman']:.3f}"
        lines.append(f"{name} ({result['protocol']}): {text} [{r['items']} items, {r['classes']} classes]")
    if "parts" in result:
        lines.append(f"mean over parts: accuracy {result['accuracy']:.3f}, chance {result['chance']:.3f}")
    return "\n".join(lines)
