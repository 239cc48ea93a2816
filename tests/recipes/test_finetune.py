"""`vlkd finetune` on tiny official-format fixtures (tests/fixtures/finetune), through the CLI entry point,
with a tiny BERT (1 layer, hidden 32) and the bundled bert-base-uncased tokenizer."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertModel

from vlkd.cli import main
from vlkd.data.bundled import bundled_path
from vlkd.data.tasks.glue import NLI3
from vlkd.data.tasks.tracie import read_tracie
from vlkd.eval.metrics import squad_v2_scores, tracie_scores

FIXTURES = Path(__file__).parents[1] / "fixtures" / "finetune"
SHORT = ["max_steps=2", "batch_size=4", "log_every=1", "progress=false", "data.eval_batch_size=3"]
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "tiny-bert"
    torch.manual_seed(0)
    config = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    BertModel(config).save_pretrained(path)
    for name in TOKENIZER_FILES:
        shutil.copy2(bundled_path("minilm") / name, path / name)
    return path


def finetune(task: str, data: Path, model: Path, out: Path, *overrides: str) -> int:
    return main(["finetune", "--task", task, "--data-dir", str(data), "--model", str(model), "--out", str(out),
                 *SHORT, *overrides])


def read_tsv(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]


def check_predictions(path: Path, test_file: Path, labels: set[str], index_column: str = "index") -> None:
    """Leaderboard format: header `index\\tprediction`, one row per test example, ids and label names."""
    rows = read_tsv(path)
    test = read_tsv(test_file)
    assert rows[0] == ["index", "prediction"]
    assert len(rows) - 1 == len(test) - 1
    column = test[0].index(index_column)
    assert [r[0] for r in rows[1:]] == [t[column] for t in test[1:]]
    assert {r[1] for r in rows[1:]} <= labels


# task, folder, metric keys, {prediction file: (test file, label names, index column)}
GLUE = [
    ("cola", "CoLA", {"mcc"}, {"CoLA.tsv": ("test.tsv", {"0", "1"}, "index")}),
    ("sst2", "SST-2", {"accuracy"}, {"SST-2.tsv": ("test.tsv", {"0", "1"}, "index")}),
    ("mrpc", "MRPC", {"accuracy", "f1"}, {"MRPC.tsv": ("test.tsv", {"0", "1"}, "index")}),
    ("qqp", "QQP", {"accuracy", "f1"}, {"QQP.tsv": ("test.tsv", {"0", "1"}, "id")}),
    ("mnli", "MNLI", {"accuracy", "accuracy_mm"}, {"MNLI-m.tsv": ("test_matched.tsv", set(NLI3), "index"),
                                                   "MNLI-mm.tsv": ("test_mismatched.tsv", set(NLI3), "index"),
                                                   "AX.tsv": ("../diagnostic/diagnostic.tsv", set(NLI3), "index")}),
    ("qnli", "QNLI", {"accuracy"}, {"QNLI.tsv": ("test.tsv", {"entailment", "not_entailment"}, "index")}),
    ("rte", "RTE", {"accuracy"}, {"RTE.tsv": ("test.tsv", {"entailment", "not_entailment"}, "index")}),
    ("wnli", "WNLI", {"accuracy"}, {"WNLI.tsv": ("test.tsv", {"0", "1"}, "index")}),
]


@pytest.mark.parametrize("task,folder,keys,files", GLUE, ids=[g[0] for g in GLUE])
def test_glue_task(task: str, folder: str, keys: set[str], files: dict, tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / task
    assert finetune(task, FIXTURES / folder, tiny_model, out) == 0
    results = json.loads((out / "eval_results.json").read_text())
    assert set(results) == keys and all(isinstance(v, float) for v in results.values())
    for name, (test_file, labels, index_column) in files.items():
        check_predictions(out / name, FIXTURES / folder / test_file, labels, index_column)
    assert (out / "final" / "config.json").is_file() and (out / "final" / "tokenizer.json").is_file()


def test_stsb_scores_are_floats_in_range(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "stsb"
    assert finetune("stsb", FIXTURES / "STS-B", tiny_model, out) == 0
    assert set(json.loads((out / "eval_results.json").read_text())) == {"pearson", "spearman"}
    rows = read_tsv(out / "STS-B.tsv")
    assert rows[0] == ["index", "prediction"] and len(rows) == 4
    assert all(0.0 <= float(r[1]) <= 5.0 and len(r[1].split(".")[1]) == 3 for r in rows[1:])


def test_ax_is_predicted_with_the_mnli_model(tiny_model: Path, tmp_path: Path) -> None:
    mnli = tmp_path / "mnli"
    assert finetune("mnli", FIXTURES / "MNLI", tiny_model, mnli) == 0
    assert main(["finetune", "--task", "ax", "--data-dir", str(FIXTURES / "diagnostic"), "--model",
                 str(mnli / "final"), "--out", str(tmp_path / "ax")]) == 0
    assert (tmp_path / "ax" / "AX.tsv").read_text() == (mnli / "AX.tsv").read_text()
    # a model that is not an MNLI classifier is refused
    assert main(["finetune", "--task", "ax", "--data-dir", str(FIXTURES / "diagnostic"), "--model",
                 str(tiny_model), "--out", str(tmp_path / "ax2")]) == 2
    assert not (tmp_path / "ax2").exists()


@pytest.mark.parametrize("task", ["squad1", "squad2"])
def test_squad(task: str, tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / task
    folder = FIXTURES / {"squad1": "SQuAD1", "squad2": "SQuAD2"}[task]
    # short windows: each context is split into several overlapping windows
    assert finetune(task, folder, tiny_model, out, "data.max_length=24", "data.doc_stride=8") == 0
    results = json.loads((out / "eval_results.json").read_text())
    predictions = json.loads((out / "predictions.json").read_text())
    dev = json.loads(next(folder.glob("dev-*.json")).read_text())
    ids = [qa["id"] for a in dev["data"] for p in a["paragraphs"] for qa in p["qas"]]
    assert sorted(predictions) == sorted(ids)
    contexts = [p["context"] for a in dev["data"] for p in a["paragraphs"]]
    assert all(text == "" or any(text in c for c in contexts) for text in predictions.values())
    golds = {qa["id"]: [x["text"] for x in qa["answers"]] for a in dev["data"] for p in a["paragraphs"]
             for qa in p["qas"]}
    if task == "squad1":  # evaluate-v1.1.py's keys
        assert set(results) == {"exact_match", "f1"} and not (out / "null_odds.json").exists()
        return
    # evaluate-v2.0.py's keys, and its numbers on the files written (predictions.json, --na-prob-file null_odds.json)
    odds = json.loads((out / "null_odds.json").read_text())
    assert sorted(odds) == sorted(ids) and all(isinstance(v, float) for v in odds.values())
    assert all((predictions[q] == "") == (odds[q] > 0) for q in ids)  # "" exactly when [CLS] beats every span
    assert set(results) == {"exact", "f1", "total", "HasAns_exact", "HasAns_f1", "HasAns_total", "NoAns_exact",
                            "NoAns_f1", "NoAns_total", "best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh"}
    assert results["total"] == 6 and results["NoAns_total"] == 2 and results["HasAns_total"] == 4
    assert results == pytest.approx(squad_v2_scores(predictions, golds, odds))


@pytest.mark.parametrize("task,folder,file,n", [("swag", "SWAG", "SWAG.tsv", 3), ("piqa", "PIQA", "PIQA.lst", 3)])
def test_multiple_choice(task: str, folder: str, file: str, n: int, tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / task
    assert finetune(task, FIXTURES / folder, tiny_model, out) == 0
    assert set(json.loads((out / "eval_results.json").read_text())) == {"accuracy"}
    lines = (out / file).read_text().splitlines()
    if file.endswith(".lst"):  # PIQA's leaderboard: one predicted solution (0/1) per line
        assert len(lines) == n and set(lines) <= {"0", "1"}
    else:
        assert lines[0] == "index\tprediction" and len(lines) == n + 1
        assert [r.split("\t")[0] for r in lines[1:]] == ["0", "1", "2"]
        assert {r.split("\t")[1] for r in lines[1:]} <= {"0", "1", "2", "3"}


def test_tracie(tiny_model: Path, tmp_path: Path) -> None:
    """The AllenAI evaluator's metrics, and its input: one entailment/contradiction per test line."""
    out = tmp_path / "tracie"
    assert finetune("tracie", FIXTURES / "TRACIE", tiny_model, out) == 0
    results = json.loads((out / "eval_results.json").read_text())
    assert set(results) == {"total_acc", "start_acc", "end_acc", "story_em"}
    predicted = (out / "tracie_predictions.txt").read_text().splitlines()
    gold = [line.rsplit("answer: ", 1)[1].strip() for line in (FIXTURES / "TRACIE" / "tracie_test.txt").read_text().splitlines()]
    assert len(predicted) == len(gold) == 10 and set(predicted) <= {"entailment", "contradiction"}
    names = {"positive": "entailment", "negative": "contradiction"}
    examples = read_tracie(FIXTURES / "TRACIE", "test")
    expected = tracie_scores(predicted, [names[g] for g in gold], [e.text_b for e in examples],
                             [e.text_a for e in examples])
    assert results == pytest.approx(expected)


def test_seeds_report_mean_and_std(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "seeds"
    assert finetune("sst2", FIXTURES / "SST-2", tiny_model, out, "seeds=1,2") == 0
    summary = json.loads((out / "eval_results.json").read_text())
    per_seed = [summary["per_seed"][s]["accuracy"] for s in ("1", "2")]
    assert summary["seeds"] == [1, 2]
    assert summary["accuracy"] == pytest.approx(sum(per_seed) / 2)
    assert summary["accuracy_std"] == pytest.approx(abs(per_seed[0] - per_seed[1]) / 2 ** 0.5)
    assert (out / "seed-1" / "SST-2.tsv").is_file() and (out / "seed-2" / "eval_results.json").is_file()


def copy_task(tmp_path: Path, folder: str) -> Path:
    target = tmp_path / "data" / folder
    shutil.copytree(FIXTURES / folder, target)
    return target


def expect_error(capsys: pytest.CaptureFixture, code: int, out: Path, *fragments: str) -> None:
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and err.startswith("vlkd: error: "), err
    assert all(f in err for f in fragments), err
    assert not out.exists()


def test_bad_input_is_one_line_naming_file_and_line(tiny_model: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    sst2 = copy_task(tmp_path, "SST-2")
    (sst2 / "train.tsv").write_text("text\tlabel\nA fine film.\t1\n")
    expect_error(capsys, finetune("sst2", sst2, tiny_model, out), out, "train.tsv", "line 1",
                 "missing column 'sentence'")

    rte = copy_task(tmp_path, "RTE")
    lines = (rte / "dev.tsv").read_text().splitlines()
    lines[2] = lines[2].rsplit("\t", 1)[0] + "\tmaybe"
    (rte / "dev.tsv").write_text("\n".join(lines) + "\n")
    expect_error(capsys, finetune("rte", rte, tiny_model, out), out, "dev.tsv", "line 3", "unknown label 'maybe'")

    cola = copy_task(tmp_path, "CoLA")
    with open(cola / "train.tsv", "a") as f:
        f.write("gj04\t1\tA sentence with a missing column.\n")
    expect_error(capsys, finetune("cola", cola, tiny_model, out), out, "train.tsv", "line 9", "fields")

    squad = copy_task(tmp_path, "SQuAD1")
    data = json.loads((squad / "train-v1.1.json").read_text())
    data["data"][0]["paragraphs"][0]["qas"][1]["answers"][0]["answer_start"] = 500
    (squad / "train-v1.1.json").write_text(json.dumps(data, indent=1))
    expect_error(capsys, finetune("squad1", squad, tiny_model, out), out, "train-v1.1.json", "line ",
                 "outside the context")

    (cola / "train.tsv").write_text((FIXTURES / "CoLA" / "train.tsv").read_text())
    (cola / "dev.tsv").unlink()
    expect_error(capsys, finetune("cola", cola, tiny_model, out), out, "dev.tsv", "file not found")
    expect_error(capsys, finetune("nope", cola, tiny_model, out), out, "unknown task 'nope'")


def test_two_processes_evaluate_every_dev_example_once(tiny_model: Path, tmp_path: Path) -> None:
    """torchrun, 2 CPU processes: each runs half of the batch of 4, and the gathered dev metrics equal
    the single-process run's (the same effective batch gives the same weights)."""
    one = tmp_path / "one"
    assert finetune("mrpc", FIXTURES / "MRPC", tiny_model, one) == 0
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29541"]
    done = subprocess.run([*torchrun, "-m", "vlkd", "finetune", "--task", "mrpc", "--data-dir", str(FIXTURES / "MRPC"),
                           "--model", str(tiny_model), "--out", str(tmp_path / "two"), *SHORT],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "batch 4 = 2 x 2 x 1" in done.stderr
    two = json.loads((tmp_path / "two" / "eval_results.json").read_text())
    assert two == pytest.approx(json.loads((one / "eval_results.json").read_text()), abs=1e-6)
    assert (tmp_path / "two" / "MRPC.tsv").read_text() == (one / "MRPC.tsv").read_text()


def test_bundled_offline_tasks(tiny_model: Path, tmp_path: Path) -> None:
    """`vlkd prepare bundled` output runs like a GLUE task (rt-polarity is also run by the quickstart test)."""
    from vlkd.data.tasks.bundled import WIKI_TOPICS

    assert main(["prepare", "bundled", "--out", str(tmp_path / "bundled")]) == 0
    out = tmp_path / "wiki"
    assert finetune("wiki-topic", tmp_path / "bundled" / "wiki-topic", tiny_model, out, "data.eval_batch_size=128") == 0
    assert set(json.loads((out / "eval_results.json").read_text())) == {"accuracy"}
    check_predictions(out / "wiki-topic.tsv", tmp_path / "bundled" / "wiki-topic" / "test.tsv", set(WIKI_TOPICS))


def test_dev_only_task_trains_scores_dev_and_says_test_was_skipped(tiny_model: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    rte = FIXTURES / "RTE-train-dev"  # train.tsv and dev.tsv only, as most mirrors ship GLUE
    out = tmp_path / "rte"
    assert finetune("rte", rte, tiny_model, out) == 0
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if "test predictions skipped" in line]
    assert len(notes) == 1 and str(rte / "test.tsv") in notes[0]
    assert set(json.loads((out / "eval_results.json").read_text())) == {"accuracy"}
    assert not (out / "RTE.tsv").exists()


def test_mnli_run_scores_the_labelled_diagnostics_and_evaluate_diagnostic_agrees(
        tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """glue_data/diagnostic/diagnostic-full.tsv beside MNLI: R3 by category in diagnostic.json; the
    `vlkd evaluate diagnostic` command gives the same numbers and prints the table."""
    mnli = tmp_path / "mnli"
    assert finetune("mnli", FIXTURES / "MNLI", tiny_model, mnli) == 0
    in_run = json.loads((mnli / "diagnostic.json").read_text())
    assert set(in_run["coarse"]) == {"Lexical Semantics", "Predicate-Argument Structure", "Logic", "Knowledge"}
    assert in_run["overall"]["count"] == 12 and in_run["fine"]["Knowledge/World knowledge"]["count"] == 2
    capsys.readouterr()
    data = FIXTURES / "diagnostic" / "diagnostic-full.tsv"
    assert main(["evaluate", "diagnostic", "--model", str(mnli / "final"), "--data", str(data),
                 "--out", str(tmp_path / "diag")]) == 0
    table = capsys.readouterr().out
    assert "World knowledge" in table and table.splitlines()[1].startswith("overall")
    alone = json.loads((tmp_path / "diag.json").read_text())
    assert {k: alone[k] for k in ("overall", "coarse", "fine")} == {k: in_run[k] for k in ("overall", "coarse", "fine")}
    # the unlabelled file keeps giving AX.tsv; a model that is not an MNLI classifier is refused
    assert (mnli / "AX.tsv").is_file()
    assert main(["evaluate", "diagnostic", "--model", str(tiny_model), "--data", str(data),
                 "--out", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad.json").exists()


def test_training_set_smaller_than_a_batch(tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "small"
    assert finetune("tracie", FIXTURES / "TRACIE", tiny_model, out, "batch_size=32") == 0  # 8 training lines
    notes = [line for line in capsys.readouterr().err.splitlines() if "fewer than batch_size" in line]
    assert len(notes) == 1 and "tracie_train.txt" in notes[0] and "training with batch_size 8" in notes[0]
    assert "batch_size: 8" in (out / "config.yaml").read_text()


def test_finished_run_drops_optimizer_state_unless_kept(tiny_model: Path, tmp_path: Path) -> None:
    dropped, kept = tmp_path / "dropped", tmp_path / "kept"
    assert finetune("wnli", FIXTURES / "WNLI", tiny_model, dropped) == 0
    assert finetune("wnli", FIXTURES / "WNLI", tiny_model, kept, "keep_optimizer=true") == 0
    assert not list(dropped.glob("checkpoints/step-*/optimizer.pt"))
    assert list(kept.glob("checkpoints/step-*/optimizer.pt"))
    # the finished run still resumes as complete (its outputs rewritten, nothing trained) ...
    before = (dropped / "eval_results.json").read_text()
    (dropped / "eval_results.json").unlink()
    assert finetune("wnli", FIXTURES / "WNLI", tiny_model, dropped, "resume=true") == 0
    assert (dropped / "eval_results.json").read_text() == before
    # ... but cannot be trained further without its optimizer state
    assert finetune("wnli", FIXTURES / "WNLI", tiny_model, dropped, "resume=true", "max_steps=4") == 2


def test_version(capsys: pytest.CaptureFixture) -> None:
    import vlkd

    try:
        code = main(["--version"])
    except SystemExit as e:  # argparse's own exit, where the parser does not turn it into a return code
        code = e.code
    assert code == 0 and capsys.readouterr().out.strip() == f"vlkd {vlkd.__version__}"


def test_glue_task_saved_with_datasets_save_to_disk(tiny_model: Path, tmp_path: Path) -> None:
    """A DatasetDict (train/validation/test, ClassLabel names) trains and predicts like the TSV folder."""
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"sentence1": datasets.Value("string"), "sentence2": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["entailment", "not_entailment"]),
                                  "idx": datasets.Value("int32")})
    splits = {}
    for split, file in (("train", "train.tsv"), ("validation", "dev.tsv"), ("test", "test.tsv")):
        rows = read_tsv(FIXTURES / "RTE" / file)
        head, body = rows[0], rows[1:]
        column = {name: [r[head.index(name)] for r in body] for name in head}
        labels = [["entailment", "not_entailment"].index(x) for x in column["label"]] if "label" in column else [-1] * len(body)
        splits[split] = datasets.Dataset.from_dict({"sentence1": column["sentence1"], "sentence2": column["sentence2"],
                                                    "label": labels, "idx": [int(i) for i in column["index"]]},
                                                   features=features)
    datasets.DatasetDict(splits).save_to_disk(str(tmp_path / "rte-hf"))
    assert finetune("rte", tmp_path / "rte-hf", tiny_model, tmp_path / "hf") == 0
    assert finetune("rte", FIXTURES / "RTE", tiny_model, tmp_path / "tsv") == 0
    assert (tmp_path / "hf" / "eval_results.json").read_text() == (tmp_path / "tsv" / "eval_results.json").read_text()
    assert (tmp_path / "hf" / "RTE.tsv").read_text() == (tmp_path / "tsv" / "RTE.tsv").read_text()
