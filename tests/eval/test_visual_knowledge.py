"""`vlkd evaluate visual-knowledge` on the hand-made fixtures of every format (tests/fixtures/visual/): counts,
chance and every metric against a computation written out here, straight from the definitions (a tiny
random BERT stands in for a trained model: the numbers are arbitrary, the computation is what is checked)."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM, BertModel

from vlkd.cli import main
from vlkd.data.bundled import bundled_path
from vlkd.errors import VlkdError
from vlkd.eval.visual_knowledge import evaluate_visual_knowledge, resolve_model

FIXTURES = Path(__file__).parents[1] / "fixtures" / "visual"
COLOURS = ["pink", "green", "yellow", "black", "purple", "orange", "brown", "blue", "gray", "white", "red"]
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")


def tiny_config() -> BertConfig:
    return BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=64)


@pytest.fixture(scope="module")
def mlm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "mlm"
    BertForMaskedLM(tiny_config()).save_pretrained(path)
    for name in TOKENIZER_FILES:
        shutil.copy(bundled_path("minilm") / name, path / name)
    return path


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("models") / "encoder"
    BertModel(tiny_config()).save_pretrained(path)
    for name in TOKENIZER_FILES:
        shutil.copy(bundled_path("minilm") / name, path / name)
    return path


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@torch.no_grad()
def hand_cloze(model_dir: Path, texts: list[str], candidates: list[str]) -> np.ndarray:
    """Per text (one [MASK] slot) and candidate: the mean log-probability of its pieces at as many masks."""
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = BertForMaskedLM.from_pretrained(model_dir).eval()
    out = np.zeros((len(texts), len(candidates)))
    for i, text in enumerate(texts):
        for c, word in enumerate(candidates):
            ids = tok(word, add_special_tokens=False)["input_ids"]
            enc = tok(text.replace("[MASK]", " ".join(["[MASK]"] * len(ids))), return_tensors="pt")
            logp = torch.log_softmax(model(**enc).logits[0], -1)
            where = (enc["input_ids"][0] == tok.mask_token_id).nonzero().flatten().tolist()
            out[i, c] = np.mean([logp[w, t].item() for w, t in zip(where, ids)])
    return out


@torch.no_grad()
def hand_vectors(model_dir: Path, objects: list[str]) -> np.ndarray:
    """Last-layer states of "the OBJECT." averaged over the object's pieces (positions 2.. after [CLS] the)."""
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = BertModel.from_pretrained(model_dir).eval()
    out = []
    for obj in objects:
        n = len(tok(obj, add_special_tokens=False)["input_ids"])
        hidden = model(**tok(f"the {obj}.", return_tensors="pt")).last_hidden_state[0]
        out.append(hidden[2:2 + n].mean(0).numpy())
    return np.stack(out)


def probe() -> object:
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=0))


def fill(template: str, values: dict) -> str:
    return " ".join(template.format(**values).split())


def test_memory_colors_cloze(mlm_dir: Path) -> None:
    data = rows(FIXTURES / "memory-colors.jsonl")
    templates = ["Q: What is the color of {descriptor} {item}? A: It is [MASK].",
                 "What is the color of {descriptor} {item}? [MASK].", "The color of {descriptor} {item} is [MASK].",
                 "{descriptor} {item} is [MASK]."]
    accuracies = []
    for t in templates:
        scores = hand_cloze(mlm_dir, [fill(t, r) for r in data], COLOURS)
        accuracies.append(np.mean([COLOURS[int(np.argmax(s))] == r["label"] for s, r in zip(scores, data)]))
    result = evaluate_visual_knowledge(str(mlm_dir), "memory-colors", FIXTURES / "memory-colors.jsonl", "cloze")
    assert (result["items"], result["classes"]) == (12, 11)
    assert result["chance"] == max(Counter(r["label"] for r in data).values()) / 12 == 2 / 12
    assert [t["accuracy"] for t in result["templates"]] == pytest.approx(accuracies)
    assert result["accuracy"] == pytest.approx(np.mean(accuracies))
    assert result["accuracy_best"] == pytest.approx(max(accuracies))


def test_memory_colors_probe(mlm_dir: Path) -> None:
    data = rows(FIXTURES / "memory-colors.jsonl")
    x = hand_vectors(mlm_dir, [r["item"] for r in data])
    y = np.array([COLOURS.index(r["label"]) for r in data])
    cv = KFold(5, shuffle=True, random_state=0)
    accuracy = np.mean(cross_val_predict(probe(), x, y, cv=cv) == y)
    shuffled = np.mean(cross_val_predict(probe(), x, np.random.default_rng(0).permutation(y), cv=cv) == y)
    result = evaluate_visual_knowledge(str(mlm_dir), "memory-colors", FIXTURES / "memory-colors.jsonl")
    assert (result["items"], result["classes"], result["chance"]) == (12, 11, pytest.approx(2 / 12))
    assert result["accuracy"] == pytest.approx(accuracy)
    assert result["shuffled"] == pytest.approx(shuffled)


def coda_truth() -> tuple[list[str], list[np.ndarray]]:
    objects = rows(FIXTURES / "coda" / "objects.jsonl")
    answers: dict[str, list[np.ndarray]] = {}
    for a in rows(FIXTURES / "coda" / "annotations.jsonl"):
        counts = np.array([a.get(c, 0) for c in COLOURS], float)
        if a["included"] and counts.sum() > 0:
            answers.setdefault(a["class_id"], []).append(counts / counts.sum())
    return [o["object_pl"] + " " + o["areis_pl"] for o in objects], [np.mean(answers[o["class_id"]], 0) for o in objects]


def test_coda_cloze(mlm_dir: Path) -> None:
    phrases, targets = coda_truth()
    tops = [set(np.flatnonzero(t == t.max())) for t in targets]
    result = evaluate_visual_knowledge(str(mlm_dir), "coda", FIXTURES / "coda", "cloze")
    assert (result["items"], result["classes"]) == (5, 11)
    assert result["chance"] == pytest.approx(0.6)  # green is among the top colours of broccoli, butterfly, apple
    top1, rhos = [], []
    for t in ("Most {p} [MASK].", "All {p} [MASK]."):
        scores = hand_cloze(mlm_dir, [t.format(p=p) for p in phrases], COLOURS)
        top1.append(np.mean([int(np.argmax(s)) in top for s, top in zip(scores, tops)]))
        rhos.append(np.mean([spearmanr(s, t).statistic for s, t in zip(scores, targets) if np.ptp(t) > 0]))
    assert [r["accuracy"] for r in result["templates"][:2]] == pytest.approx(top1)
    assert [r["spearman"] for r in result["templates"][:2]] == pytest.approx(rhos)
    assert result["spearman_best"] == max(r["spearman"] for r in result["templates"])


def test_vicomte_probe_and_cloze(mlm_dir: Path) -> None:
    train, test = rows(FIXTURES / "vicomte/color/train.jsonl"), rows(FIXTURES / "vicomte/color/test.jsonl")
    fitted = probe().fit(hand_vectors(mlm_dir, [r["sub"] for r in train]), [r["obj"] for r in train])
    proba = fitted.predict_proba(hand_vectors(mlm_dir, [r["sub"] for r in test]))
    p = [dict(zip(fitted.classes_, row)) for row in proba]
    accuracy = np.mean([pi.get(r["obj"], 0.0) > pi.get(r["alt"], 0.0) for pi, r in zip(p, test)])
    result = evaluate_visual_knowledge(str(mlm_dir), "vicomte", FIXTURES / "vicomte" / "color")
    assert (result["items"], result["classes"]) == (5, 6)
    assert result["chance"] == pytest.approx(0.4)  # train frequencies: sun and crow ranked right
    assert result["accuracy"] == pytest.approx(accuracy)
    scores = hand_cloze(mlm_dir, [f"{r['sub']} can be of color [MASK]." for r in test], ["yellow", "blue", "green",
                                                                                          "white", "black", "red"])
    words = ["yellow", "blue", "green", "white", "black", "red"]
    first = np.mean([s[words.index(r["obj"])] > s[words.index(r["alt"])] for s, r in zip(scores, test)])
    cloze = evaluate_visual_knowledge(str(mlm_dir), "vicomte", FIXTURES / "vicomte" / "color", "cloze")
    assert cloze["templates"][0]["accuracy"] == pytest.approx(first)


def test_size_cloze(mlm_dir: Path) -> None:
    data = rows(FIXTURES / "size.jsonl")
    scores = hand_cloze(mlm_dir, [f"{r['question']} [MASK]." for r in data], ["no", "yes"])
    result = evaluate_visual_knowledge(str(mlm_dir), "size", FIXTURES / "size.jsonl", "cloze")
    assert (result["items"], result["classes"], result["chance"]) == (7, 2, pytest.approx(4 / 7))
    assert result["templates"][0]["accuracy"] == pytest.approx(np.mean(np.argmax(scores, 1) == [r["label"] for r in data]))


def test_world_probe_per_property(mlm_dir: Path) -> None:
    kinds = rows(FIXTURES / "world" / "kinds.jsonl")
    train, held = [k for k in kinds if k["split"] == "train"], [k for k in kinds if k["split"] == "probe"]
    x, x_held = hand_vectors(mlm_dir, [k["kind"] for k in train]), hand_vectors(mlm_dir, [k["kind"] for k in held])
    result = evaluate_visual_knowledge(str(mlm_dir), "world", FIXTURES / "world")
    for prop in ("colour", "shape", "size", "motion"):
        y, truth = np.array([k[prop] for k in train]), np.array([k[prop] for k in held])
        part = result["parts"][prop]
        assert part["items"] == 4 and part["classes"] == len({k[prop] for k in kinds})
        assert part["chance"] == max(Counter(truth).values()) / 4
        assert part["accuracy"] == pytest.approx(np.mean(probe().fit(x, y).predict(x_held) == truth))
        shuffled = np.random.default_rng(0).permutation(y)
        assert part["shuffled"] == pytest.approx(np.mean(probe().fit(x, shuffled).predict(x_held) == truth))
    assert result["accuracy"] == pytest.approx(np.mean([p["accuracy"] for p in result["parts"].values()]))


def test_world_cloze_multi_piece_candidates(mlm_dir: Path) -> None:
    kinds = [k for k in rows(FIXTURES / "world" / "kinds.jsonl") if k["split"] == "probe"]
    words = sorted({k["motion"] for k in rows(FIXTURES / "world" / "kinds.jsonl")})
    tok = AutoTokenizer.from_pretrained(mlm_dir)
    assert max(len(tok(w, add_special_tokens=False)["input_ids"]) for w in words) > 1  # zigzag: several pieces
    scores = hand_cloze(mlm_dir, [f"the {k['kind']} can [MASK]." for k in kinds], words)
    result = evaluate_visual_knowledge(str(mlm_dir), "world", FIXTURES / "world", "cloze")
    expected = np.mean([words[int(np.argmax(s))] == k["motion"] for s, k in zip(scores, kinds)])
    assert result["parts"]["motion"]["templates"][0]["accuracy"] == pytest.approx(expected)


def test_cli_bundled_minilm_probe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mc"
    assert main(["evaluate", "visual-knowledge", "--model", "bundled:minilm", "--benchmark", "memory-colors",
                 "--data", str(FIXTURES / "memory-colors.jsonl"), "--out", str(out)]) == 0
    line = capsys.readouterr().out.strip()
    result = json.loads(out.with_suffix(".json").read_text())
    assert f"accuracy {result['accuracy']:.3f}, majority-class chance {result['chance']:.3f}, shuffled-label probe " \
           f"{result['shuffled']:.3f}" in line
    assert (result["items"], result["classes"]) == (12, 11)


def bad_coda(tmp_path: Path) -> Path:
    data = tmp_path / "coda"
    shutil.copytree(FIXTURES / "coda", data)
    text = (data / "annotations.jsonl").read_text().splitlines()
    (data / "annotations.jsonl").write_text("\n".join(t for t in text if "/m/01sy7" not in t) + "\n")
    return data


def bad_memory_colors(tmp_path: Path, edit) -> Path:
    data = rows(FIXTURES / "memory-colors.jsonl")
    edit(data[3])
    path = tmp_path / "mc.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in data))
    return path


@pytest.mark.parametrize("case, message", [
    ("missing", "line 4: missing field 'label'"),
    ("colour", "line 4: unknown colour 'teal'"),
    ("coda", "object '/m/01sy7' (Coal) has no included annotation"),
    ("no-mlm", "the model has no MLM head"),
])
def test_cli_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str], encoder_dir: Path, mlm_dir: Path,
                       case: str, message: str) -> None:
    model, benchmark, protocol = mlm_dir, "memory-colors", "probe"
    data = FIXTURES / "memory-colors.jsonl"
    if case == "missing":
        data = bad_memory_colors(tmp_path, lambda r: r.pop("label"))
    elif case == "colour":
        data = bad_memory_colors(tmp_path, lambda r: r.update(label="teal"))
    elif case == "coda":
        benchmark, data = "coda", bad_coda(tmp_path)
    else:
        model, protocol = encoder_dir, "cloze"
    out = tmp_path / "out" / "result"
    code = main(["evaluate", "visual-knowledge", "--model", str(model), "--benchmark", benchmark, "--data", str(data),
                 "--protocol", protocol, "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_model_resolution(tmp_path: Path) -> None:
    for folder in ("run/final", "run/best", "teacher/final/text", "teacher/final/video", "bert"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "config.json").write_text("{}")
    assert resolve_model(tmp_path / "run") == tmp_path / "run" / "best"
    assert resolve_model(tmp_path / "teacher") == tmp_path / "teacher" / "final" / "text"
    assert resolve_model(tmp_path / "bert") == tmp_path / "bert"
    assert resolve_model("bundled:minilm") == bundled_path("minilm")
    with pytest.raises(VlkdError, match="no BERT model"):
        resolve_model(tmp_path)
