"""The catalogue of bad input, one table over every command and recipe (issue 15, point 7).

Each case builds its bad input in its own folder, runs `vlkd ...` in-process, and checks the house rule:
exit code 2, exactly one line on stderr (progress bars aside) naming the file (and line, record or key),
and nothing written: every file under the case folder and the shared inputs is as before. One row is the
opposite: a run directory where a model directory is expected is accepted (its final/ is used, and said).
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel

from tests.conftest import wiki_extracts
from tests.recipes.test_videoqa import write_dataset
from vlkd.cli import main
from vlkd.data.bundled import bundled_path
from vlkd.data.text.store import build_token_store

FINETUNE = Path(__file__).parent / "fixtures" / "finetune"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
NOBODY = 65534
PROGRESS = re.compile(r"^[^:]*: .*\[\d\d:\d\d")  # a tqdm bar: "desc: ... [00:01<...]"


@dataclass
class World:
    """Good inputs shared by every case (never written by a case: checked like the case's own folder)."""

    root: Path
    store: Path
    captions: Path
    features: Path
    qa: Path
    glove: Path
    prepared: Path
    hcrn: Path
    model: Path
    run: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("world")
    corpus = root / "wiki.txt"
    corpus.write_text("\n".join(wiki_extracts(40)) + "\n", encoding="utf-8")
    store = root / "store"
    build_token_store([corpus], "bundled:minilm", store, block_size=30, progress=False)
    feats = root / "features"
    (feats / "2d").mkdir(parents=True)
    (feats / "3d").mkdir()
    for vid in ("vidA", "vidB"):
        np.save(feats / "2d" / f"{vid}.npy", np.ones((10, 4), np.float32))
        np.save(feats / "3d" / f"{vid}.npy", np.ones((15, 3), np.float32))
    captions = root / "caption.json"
    captions.write_text(json.dumps({v: {"start": [0.0, 2.0], "end": [2.0, 4.0], "text": ["a man cuts", "the bread"]}
                                    for v in ("vidA", "vidB")}))
    prepared, hcrn = write_dataset(root / "videoqa")
    model = root / "tiny-bert"
    torch.manual_seed(0)
    BertModel(BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(model)
    for name in TOKENIZER_FILES:
        shutil.copy2(bundled_path("minilm") / name, model / name)
    run = root / "run"
    shutil.copytree(model, run / "final")
    (run / "config.yaml").write_text("task: mlm\n")
    return World(root, store, captions, feats, root / "videoqa" / "qa", root / "videoqa" / "glove.txt", prepared,
                 hcrn, model, run)


def copy(src: Path, dst: Path) -> Path:
    (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
    return dst


def edit_json(path: Path, change: Callable) -> None:
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


def write_h5(path: Path, dataset: str, data: np.ndarray, ids: np.ndarray) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset(dataset, data=data)
        f.create_dataset("ids", data=ids)


# ---------------------------------------------------------------- argument builders

def train(w: World, t: Path, *overrides: str, preset: str = "mlm-tiny") -> list[str]:
    return ["train", preset, f"data.train={w.store}", f"output_dir={t / 'run'}", "max_steps=2", "progress=false",
            *overrides]


def train_videoqa(w: World, t: Path, *overrides: str, data: Path | None = None, feats: Path | None = None) -> list[str]:
    return ["train", "videoqa-msvd-teacher", f"data.path={data or w.prepared}", f"data.features={feats or w.hcrn}",
            f"output_dir={t / 'run'}", "model.module_dim=8", "model.word_dim=4", "model.num_clips=4",
            "model.mfb_dim=8", "model.graph_layers=1", "batch_size=4", "max_steps=1", "progress=false", *overrides]


def howto(w: World, t: Path, *extra: str, captions: Path | None = None, feats: Path | None = None) -> list[str]:
    return ["prepare", "howto100m", "--captions", str(captions or w.captions), "--features", str(feats or w.features),
            "--out", str(t / "out"), *extra]


def videoqa(w: World, t: Path, *extra: str, qa: Path | None = None, glove: Path | None = None) -> list[str]:
    return ["prepare", "videoqa", "--dataset", "msrvtt-qa", "--qa-dir", str(qa or w.qa), "--glove",
            str(glove or w.glove), "--out", str(t / "out"), *extra]


def finetune(w: World, t: Path, *overrides: str, model: Path | None = None, task: str = "sst2",
             data: str = "SST-2") -> list[str]:
    return ["finetune", "--task", task, "--data-dir", str(FINETUNE / data), "--model", str(model or w.model),
            "--out", str(t / "out"), "max_steps=1", "batch_size=4", "progress=false", *overrides]


def a_file(t: Path) -> Path:
    path = t / "a-file"
    path.write_text("not a directory\n")
    return path


# ---------------------------------------------------------------- case setups (each returns argv)

def qa_copy(w: World, t: Path) -> Path:
    return copy(w.qa, t / "qa")


def empty_qa(w, t):
    qa = qa_copy(w, t)
    (qa / "train_qa.json").write_bytes(b"")
    return videoqa(w, t, qa=qa)


def latin1_qa(w, t):
    qa = qa_copy(w, t)
    (qa / "val_qa.json").write_bytes('[{"video_id": 1, "question": "what is caf\xe9?", "answer": "x"}]'.encode("latin-1"))
    return videoqa(w, t, qa=qa)


def duplicate_question_ids(w, t):
    qa = qa_copy(w, t)
    edit_json(qa / "train_qa.json", lambda recs: [{**r, "id": 7 if i in (2, 5) else i} for i, r in enumerate(recs)])
    return videoqa(w, t, qa=qa)


def glove_with(value: str):
    def setup(w, t):
        lines = w.glove.read_text().splitlines()
        word, *vec = lines[1].split(" ")
        lines[1] = " ".join([word, value, *vec[1:]])
        path = t / "glove.txt"
        path.write_text("\n".join(lines) + "\n")
        return videoqa(w, t, glove=path)
    return setup


def empty_glove(w, t):
    path = t / "glove.txt"
    path.write_bytes(b"")
    return videoqa(w, t, glove=path)


def hcrn_copy(w: World, t: Path) -> Path:
    return copy(w.hcrn, t / "features")


def hcrn_appearance(data: Callable[[np.ndarray], np.ndarray], ids: Callable[[np.ndarray], np.ndarray] = lambda i: i):
    def setup(w, t):
        feats = hcrn_copy(w, t)
        with h5py.File(w.hcrn / "appearance_feat.h5", "r") as f:
            app, video_ids = f["resnet_features"][()], f["ids"][()]
        write_h5(feats / "appearance_feat.h5", "resnet_features", data(app), ids(video_ids))
        return videoqa(w, t, "--features", str(feats))
    return setup


def mapping_file(data: bytes):
    def setup(w, t):
        path = t / "youtube_mapping.txt"
        path.write_bytes(data)
        return videoqa(w, t, "--mapping", str(path))
    return setup


def hcrn_file_bytes(data: bytes):
    def setup(w, t):
        feats = hcrn_copy(w, t)
        (feats / "motion_feat.h5").write_bytes(data)
        return videoqa(w, t, "--features", str(feats))
    return setup


def nan_appearance(app: np.ndarray) -> np.ndarray:
    app[3, 1, 2, 0] = np.nan
    return app


def hcrn_train(data: Callable[[np.ndarray], np.ndarray]):
    """The same broken motion file, met by `vlkd train` (not by prepare)."""
    def setup(w, t):
        feats = hcrn_copy(w, t)
        with h5py.File(w.hcrn / "motion_feat.h5", "r") as f:
            mot, ids = f["resnext_features"][()], f["ids"][()]
        write_h5(feats / "motion_feat.h5", "resnext_features", data(mot), ids)
        return train_videoqa(w, t, feats=feats)
    return setup


def prepared_copy(w: World, t: Path) -> Path:
    return copy(w.prepared, t / "prepared")


def prepared_with(change: Callable[[Path], None]):
    def setup(w, t):
        data = prepared_copy(w, t)
        change(data)
        return train_videoqa(w, t, data=data)
    return setup


def jsonl_edit(key: str, value):
    def change(data: Path) -> None:
        lines = (data / "train.jsonl").read_text().splitlines()
        row = json.loads(lines[2])
        row[key] = value
        lines[2] = json.dumps(row)
        (data / "train.jsonl").write_text("\n".join(lines) + "\n")
    return change


def glove_npy(content: Callable[[Path], None]):
    def change(data: Path) -> None:
        content(data / "glove.npy")
    return change


def nan_glove_npy(path: Path) -> None:
    matrix = np.load(path)
    matrix[2, 1] = np.inf
    np.save(path, matrix)


def caption_with(entries: dict):
    def setup(w, t):
        path = t / "caption.json"
        path.write_text(json.dumps(entries))
        return howto(w, t, captions=path)
    return setup


def caption_text(text: bytes):
    def setup(w, t):
        path = t / "caption.json"
        path.write_bytes(text)
        return howto(w, t, captions=path)
    return setup


def feature_npy(write: Callable[[Path], None]):
    def setup(w, t):
        feats = copy(w.features, t / "features")
        write(feats / "2d" / "vidB.npy")
        return howto(w, t, feats=feats)
    return setup


def text_input(data: bytes, name: str = "corpus.txt"):
    def setup(w, t):
        path = t / name
        path.write_bytes(data)
        return ["prepare", "text", "--input", str(path), "--out", str(t / "out")]
    return setup


def config_file(data: bytes):
    def setup(w, t):
        path = t / "config.yaml"
        path.write_bytes(data)
        return ["train", str(path), f"output_dir={t / 'run'}"]
    return setup


def tokenizer_bigger_than_model(w, t):
    small = copy(w.model, t / "small-bert")
    edit_json(small / "config.json", lambda c: {**c, "vocab_size": 1000})
    return finetune(w, t, model=small)


def truncated_model(where: str):
    def setup(w, t):
        model = copy(w.model, t / "bert")
        weights = model / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
        if where == "model":
            return finetune(w, t, model=model)
        return train(w, t, f"model.init_from={model}")
    return setup


def bundled_target_is_file(w, t):
    (t / "out").mkdir()
    (t / "out" / "wiki-topic").write_text("a file where a task folder goes\n")
    return ["prepare", "bundled", "--out", str(t / "out")]


def videoqa_run_with(config: bytes):
    def setup(w, t):
        run = t / "vqa-run"
        run.mkdir()
        (run / "config.yaml").write_bytes(config)
        return ["evaluate", "videoqa", "--run", str(run)]
    return setup


def video_list(data: bytes):
    def setup(w, t):
        path = t / "videos.txt"
        path.write_bytes(data)
        return ["extract-features", "--videos", str(path), "--layout", "hcrn", "--out", str(t / "out")]
    return setup






# ---------------------------------------------------------------- the table

@dataclass
class Case:
    id: str
    setup: Callable[[World, Path], list[str]]
    expect: tuple[str, ...]  # pieces of the one error line (file name, line/record/key, problem)


CASES = [
    # -- vlkd train: config keys of the wrong type or out of range, refused before config.yaml is written
    Case("train seed=-1", lambda w, t: train(w, t, "seed=-1"), ("'seed'", "at least 0")),
    Case("train seed too large", lambda w, t: train(w, t, f"seed={2**40}"), ("'seed'", "less than")),
    Case("train adam_betas=[0.9]", lambda w, t: train(w, t, "adam_betas=[0.9]"), ("'adam_betas'", "two numbers")),
    Case("train adam_betas beyond 1", lambda w, t: train(w, t, "adam_betas=[0.9,1.5]"), ("'adam_betas[1]'", "less than 1")),
    Case("train model.num_heads=0", lambda w, t: train(w, t, "model.num_heads=0"), ("'model.num_heads'", "at least 1")),
    Case("train model.dropout=1.5", lambda w, t: train(w, t, "model.dropout=1.5"), ("'model.dropout'", "less than 1")),
    Case("train hidden not divisible by heads", lambda w, t: train(w, t, "model.hidden_size=130", "model.num_heads=4"),
         ("'model.hidden_size'", "not divisible", "model.num_heads")),
    Case("train lr=0", lambda w, t: train(w, t, "lr=0"), ("'lr'", "greater than 0")),
    Case("train lr=-1e-4", lambda w, t: train(w, t, "lr=-1e-4"), ("'lr'", "greater than 0")),
    Case("train lr=.inf", lambda w, t: train(w, t, "lr=.inf"), ("'lr'", "finite")),
    Case("train max_steps<0", lambda w, t: train(w, t, "max_steps=-5"), ("'max_steps'", "at least 0")),
    Case("train epochs=nan", lambda w, t: train(w, t, "epochs=.nan"), ("'epochs'", "finite")),
    Case("train warmup<0", lambda w, t: train(w, t, "warmup=-1"), ("'warmup'", "at least 0")),
    Case("train warmup 2.5 steps", lambda w, t: train(w, t, "warmup=2.5"), ("'warmup'", "step count")),
    Case("train grad_accum=0", lambda w, t: train(w, t, "grad_accum=0"), ("'grad_accum'", "at least 1")),
    Case("train batch_size=0", lambda w, t: train(w, t, "batch_size=0"), ("'batch_size'", "at least 1")),
    Case("train batch_size wrong type", lambda w, t: train(w, t, "batch_size=abc"), ("'batch_size'", "integer")),
    Case("train log_every=0", lambda w, t: train(w, t, "log_every=0"), ("'log_every'", "at least 1")),
    Case("train weight_decay<0", lambda w, t: train(w, t, "weight_decay=-0.1"), ("'weight_decay'", "at least 0")),
    Case("train precision unknown", lambda w, t: train(w, t, "precision=fp64"), ("'precision'", "one of")),
    Case("train unknown key", lambda w, t: train(w, t, "learning_rate=1"), ("'learning_rate'", "unknown")),
    Case("train data.mlm_probability=1.5", lambda w, t: train(w, t, "data.mlm_probability=1.5"),
         ("'data.mlm_probability'", "less than 1")),
    Case("train teacher video.dropout=2",
         lambda w, t: ["train", "teacher-tiny", "data.path=x", f"output_dir={t / 'run'}", "video.dropout=2"],
         ("'video.dropout'", "less than 1")),
    Case("train distill kd weight<0",
         lambda w, t: train(w, t, "teacher=x", "kd.terms=[{loss: nst, student: tokens, teacher: tokens, weight: -1}]",
                            preset="distill-tiny"), ("'kd.terms[0].weight'", "at least 0")),
    Case("train videoqa data.eval_batch_size=0", lambda w, t: train_videoqa(w, t, "data.eval_batch_size=0"),
         ("'data.eval_batch_size'", "at least 1")),
    Case("train videoqa loss.alpha<0", lambda w, t: train_videoqa(w, t, "loss.alpha=-1"), ("'loss.alpha'", "at least 0")),
    Case("train model smaller than its tokenizer", lambda w, t: train(w, t, "model.vocab_size=100"),
         ("store", "mismatched vocab", "vocab_size 100")),
    Case("train output_dir is a file", lambda w, t: train(w, t, f"output_dir={a_file(t)}"),
         ("a-file", "output_dir", "not a directory")),
    Case("train output_dir under a file", lambda w, t: train(w, t, f"output_dir={a_file(t) / 'run'}"),
         ("a-file", "is a file, not a directory")),
    Case("train config file not UTF-8", config_file(b"task: mlm\nmodel: tiny # caf\xe9\n"), ("config.yaml", "not UTF-8")),
    Case("train config file empty", config_file(b""), ("config.yaml", "no `task:` key")),
    Case("train config file malformed", config_file(b"task: [mlm\n"), ("config.yaml", "malformed YAML")),
    # -- vlkd train (videoqa): prepared data and features
    Case("train videoqa glove.npy missing", prepared_with(lambda d: (d / "glove.npy").unlink()),
         ("glove.npy", "not found")),
    Case("train videoqa glove.npy 0 bytes", prepared_with(glove_npy(lambda p: p.write_bytes(b""))),
         ("glove.npy", "unreadable")),
    Case("train videoqa glove.npy inf", prepared_with(glove_npy(nan_glove_npy)), ("glove.npy", "row 2", "infinite")),
    Case("train videoqa token id beyond vocabulary", prepared_with(jsonl_edit("tokens", [1, 2, 99999])),
         ("train.jsonl", "line 3", "token id 99999")),
    Case("train videoqa label beyond answers", prepared_with(jsonl_edit("label", 5000)),
         ("train.jsonl", "line 3", "label 5000")),
    Case("train videoqa train.jsonl not UTF-8",
         prepared_with(lambda d: (d / "train.jsonl").write_bytes((d / "train.jsonl").read_bytes() + b"\xff\n")),
         ("train.jsonl", "not UTF-8")),
    Case("train videoqa train.jsonl empty", prepared_with(lambda d: (d / "train.jsonl").write_bytes(b"")),
         ("train.jsonl", "no questions")),
    Case("train videoqa motion features int dtype", hcrn_train(lambda m: (m * 10).astype(np.int32)),
         ("motion_feat.h5", "floating-point", "int32")),
    Case("train videoqa motion features inf", hcrn_train(lambda m: np.where(np.arange(m.size).reshape(m.shape) == 7,
                                                                            np.inf, m)),
         ("motion_feat.h5", "NaN or infinite", "video 0")),
    # -- vlkd prepare text
    Case("prepare text empty file", text_input(b""), ("corpus.txt", "0 tokens")),
    Case("prepare text not UTF-8", text_input(b"a good line of text\ncaf\xe9 au lait\n"), ("corpus.txt", "not UTF-8", "line 2")),
    Case("prepare text wiki-json duplicate title",
         text_input(b'{"A": {"extract": "x y"}, "A": {"extract": "z"}}', "wiki.json"), ("wiki.json", "'A'", "twice")),
    Case("prepare text --block-size 0", lambda w, t: text_input(b"text\n")(w, t) + ["--block-size", "0"],
         ("--block-size", "at least 1")),
    Case("prepare text --out is a file", lambda w, t: text_input(b"text\n")(w, t)[:-1] + [str(a_file(t))],
         ("a-file", "--out", "not a directory")),
    Case("prepare text --overwrite onto a file",
         lambda w, t: text_input(b"text\n")(w, t)[:-1] + [str(a_file(t)), "--overwrite"], ("a-file", "not a directory")),
    # -- vlkd prepare howto100m
    Case("prepare howto100m caption.json empty", caption_text(b""), ("caption.json", "malformed JSON", "line 1")),
    Case("prepare howto100m caption.json not UTF-8", caption_text(b'{"v\xe9": {"start": [], "end": [], "text": []}}'),
         ("caption.json", "not UTF-8")),
    Case("prepare howto100m duplicate video ids",
         caption_text(b'{"vidA": {"start": [0], "end": [1], "text": ["a"]}, "vidA": {"start": [0], "end": [2], "text": ["b"]}}'),
         ("caption.json", "'vidA'", "twice")),
    Case("prepare howto100m NaN caption time", caption_text(b'{"vidA": {"start": [NaN], "end": [1], "text": ["a"]}}'),
         ("caption.json", "'vidA'", "segment 0", "finite")),
    Case("prepare howto100m infinite caption time",
         caption_text(b'{"vidA": {"start": [0, 1], "end": [1, Infinity], "text": ["a", "b"]}}'),
         ("caption.json", "segment 1", "finite")),
    Case("prepare howto100m negative caption time", caption_with({"vidA": {"start": [-3], "end": [1], "text": ["a"]}}),
         ("caption.json", "segment 0", "not negative")),
    Case("prepare howto100m feature .npy 0 bytes", feature_npy(lambda p: p.write_bytes(b"")),
         ("vidB.npy", "unreadable .npy")),
    Case("prepare howto100m feature .npy of strings", feature_npy(lambda p: np.save(p, np.array([["a", "b"]]))),
         ("vidB.npy", "must hold numbers")),
    Case("prepare howto100m feature .npy of objects", feature_npy(lambda p: np.save(p, np.array([{"a": 1}]), allow_pickle=True)),
         ("vidB.npy", "unreadable .npy")),
    Case("prepare howto100m feature .npy with NaN",
         feature_npy(lambda p: np.save(p, np.where(np.arange(40).reshape(10, 4) == 9, np.nan, 1.0).astype(np.float32))),
         ("vidB.npy", "NaN", "step 2")),
    Case("prepare howto100m --max-steps 0", lambda w, t: howto(w, t, "--max-steps", "0"), ("--max-steps", "at least 1")),
    Case("prepare howto100m --valid-fraction 1.5", lambda w, t: howto(w, t, "--valid-fraction", "1.5"),
         ("--valid-fraction", "less than 1")),
    Case("prepare howto100m --out is a file", lambda w, t: howto(w, t)[:-1] + [str(a_file(t))], ("a-file", "not a directory")),
    # -- vlkd prepare videoqa
    Case("prepare videoqa empty train_qa.json", empty_qa, ("train_qa.json", "malformed JSON")),
    Case("prepare videoqa val_qa.json not UTF-8", latin1_qa, ("val_qa.json", "not UTF-8")),
    Case("prepare videoqa duplicate question ids", duplicate_question_ids, ("train_qa.json", "record 5", "7", "record 2")),
    Case("prepare videoqa GloVe NaN", glove_with("nan"), ("glove.txt", "line 2", "NaN")),
    Case("prepare videoqa GloVe inf", glove_with("-inf"), ("glove.txt", "line 2", "infinite")),
    Case("prepare videoqa GloVe beyond float32", glove_with("1e39"), ("glove.txt", "line 2", "float32")),
    Case("prepare videoqa GloVe empty", empty_glove, ("glove.txt", "empty GloVe")),
    Case("prepare videoqa HDF5 features of strings", hcrn_appearance(lambda a: a.astype("S8")),
         ("appearance_feat.h5", "floating-point")),
    Case("prepare videoqa HDF5 features of wrong rank", hcrn_appearance(lambda a: a[:, :, 0, :]),
         ("appearance_feat.h5", "expected 4 dimensions")),
    Case("prepare videoqa HDF5 features with NaN", hcrn_appearance(nan_appearance), ("appearance_feat.h5", "NaN", "row 3")),
    Case("prepare videoqa mapping not UTF-8", mapping_file(b"abc_1_2 vid1\n\xe9t\xe9 vid2\n"),
         ("youtube_mapping.txt", "not UTF-8")),
    Case("prepare videoqa mapping empty", mapping_file(b""), ("youtube_mapping.txt", "empty")),
    Case("prepare videoqa HDF5 file of 0 bytes", hcrn_file_bytes(b""), ("motion_feat.h5", "not a readable HDF5")),
    Case("prepare videoqa HDF5 ids named twice", hcrn_appearance(lambda a: a, ids=lambda i: np.where(i == 5, 4, i)),
         ("appearance_feat.h5", "video 4 twice", "rows 4 and 5")),
    Case("prepare videoqa --answer-top 0", lambda w, t: videoqa(w, t, "--answer-top", "0"), ("--answer-top", "at least 1")),
    # -- vlkd prepare world / bundled / teacher-targets
    Case("prepare world --videos 0", lambda w, t: ["prepare", "world", "--out", str(t / "out"), "--videos", "0"],
         ("--videos", "at least 1")),
    Case("prepare world --out under a file",
         lambda w, t: ["prepare", "world", "--out", str(a_file(t) / "w"), "--videos", "2"], ("a-file", "is a file")),
    Case("prepare bundled --out is a file", lambda w, t: ["prepare", "bundled", "--out", str(a_file(t))],
         ("a-file", "not a directory")),
    Case("prepare bundled task folder is a file", bundled_target_is_file, ("wiki-topic", "not a directory")),
    Case("prepare teacher-targets --batch-size 0",
         lambda w, t: ["prepare", "teacher-targets", "--teacher", str(w.run), "--store", str(w.store), "--out",
                       str(t / "out"), "--batch-size", "0"], ("--batch-size", "at least 1")),
    # -- vlkd finetune
    Case("finetune data.eval_batch_size=0", lambda w, t: finetune(w, t, "data.eval_batch_size=0"),
         ("'data.eval_batch_size'", "at least 1")),
    Case("finetune seeds=-1", lambda w, t: finetune(w, t, "seeds=[1,-1]"), ("'seeds[1]'", "at least 0")),
    Case("finetune squad doc_stride >= max_length",
         lambda w, t: finetune(w, t, "data.max_length=64", "data.doc_stride=64", task="squad1", data="SQuAD1"),
         ("'data.doc_stride'", "less than")),
    Case("finetune --model without config.json", lambda w, t: finetune(w, t, model=t),
         ("config.json", "save_pretrained")),
    Case("finetune tokenizer bigger than the model", tokenizer_bigger_than_model, ("small-bert", "mismatched vocab", "1000")),
    Case("finetune truncated model.safetensors", truncated_model("model"), ("model.safetensors", "truncated")),
    Case("train init_from truncated model.safetensors", truncated_model("init_from"),
         ("model.safetensors", "truncated")),
    Case("finetune --out is a file", lambda w, t: finetune(w, t)[:8] + [str(a_file(t))] + finetune(w, t)[9:],
         ("a-file", "not a directory")),
    # -- vlkd evaluate / extract-features / report
    Case("evaluate retrieval --top 0",
         lambda w, t: ["evaluate", "retrieval", "--run", str(w.run), "--data", str(t), "--top", "0"],
         ("--top", "at least 1")),
    Case("evaluate grounding --ridge -1",
         lambda w, t: ["evaluate", "grounding", "--model", str(w.run), "--teacher", str(w.run), "--data", str(t),
                       "--ridge", "-1"], ("--ridge", "at least 0")),
    Case("evaluate videoqa --out under a file",
         lambda w, t: ["evaluate", "videoqa", "--run", str(w.run), "--out", str(a_file(t) / "x")], ("a-file", "not a directory")),
    Case("evaluate videoqa run config.yaml not UTF-8", videoqa_run_with(b"task: videoqa # \xff\n"),
         ("config.yaml", "not UTF-8")),
    Case("evaluate videoqa run config.yaml malformed", videoqa_run_with(b"task: [videoqa\n"),
         ("config.yaml", "malformed YAML")),
    Case("extract-features video list not UTF-8", video_list(b"a.mp4\n\xff.mp4\n"), ("videos.txt", "not UTF-8")),
    Case("extract-features video list empty", video_list(b""), ("videos.txt", "empty")),
    Case("extract-features --num-clips 0", lambda w, t: video_list(b"a.mp4\n")(w, t) + ["--num-clips", "0"],
         ("--num-clips", "at least 1")),
    Case("extract-features --out is a file", lambda w, t: video_list(b"a.mp4\n")(w, t)[:-1] + [str(a_file(t))],
         ("a-file", "not a directory")),
    Case("report on a folder that is not a run", lambda w, t: ["report", str(t)], ("no metrics.jsonl",)),
]


def snapshot(*roots: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under `roots`: (size, mtime) of files, (-1, 0) of folders."""
    seen: dict[str, tuple[int, int]] = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames:
                seen[os.path.join(dirpath, name)] = (-1, 0)
            for name in filenames:
                st = os.stat(os.path.join(dirpath, name))
                seen[os.path.join(dirpath, name)] = (st.st_size, st.st_mtime_ns)
    return seen


def error_lines(stderr: str) -> list[str]:
    """What a person reads on stderr: the lines that are not progress bars."""
    lines = [line.rsplit("\r", 1)[-1].strip() for line in stderr.split("\n")]
    return [line for line in lines if line and not PROGRESS.match(line)]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, world: World, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = case.setup(world, tmp_path)
    before = snapshot(tmp_path, world.root)
    capsys.readouterr()
    code = main(argv)
    lines = error_lines(capsys.readouterr().err)
    assert code == 2, lines
    assert len(lines) == 1 and lines[0].startswith("vlkd: error: "), lines
    for piece in case.expect:
        assert piece in lines[0], lines[0]
    assert snapshot(tmp_path, world.root) == before, "something was written"


@pytest.mark.parametrize("command", ["prepare world --out", "train output_dir"])
def test_output_dir_without_write_permission(command: str, world: World, capsys: pytest.CaptureFixture) -> None:
    """A read-only folder. Root writes anywhere, so as root the command runs with the effective user id of
    `nobody` (in-process: os.access checks effective ids), in a folder outside root's private tmp, its
    modules imported beforehand (the interpreter's own files may be private to root)."""
    as_root = os.geteuid() == 0
    base = Path(tempfile.mkdtemp(prefix="vlkd-catalogue-"))
    locked = base / "locked"
    try:
        base.chmod(0o755)
        locked.mkdir(mode=0o555)
        if command.startswith("prepare"):
            args = ["prepare", "world", "--videos", "1", "--out", str(locked / "world")]
        else:
            importlib.import_module("vlkd.recipes.mlm")
            config = base / "mlm.yaml"
            config.write_text(f"task: mlm\nmodel: {{hidden_size: 16, num_heads: 2}}\ndata: {{train: {world.store}}}\n"
                              "max_steps: 2\n")
            config.chmod(0o644)
            args = ["train", str(config), f"output_dir={locked / 'run'}"]
        before = snapshot(base)
        if as_root:
            os.seteuid(NOBODY)
        try:
            code = main(args)
        finally:
            if as_root:
                os.seteuid(0)
        lines = error_lines(capsys.readouterr().err)
        assert code == 2 and len(lines) == 1, lines
        assert str(locked) in lines[0] and "no permission to write" in lines[0], lines[0]
        assert snapshot(base) == before
    finally:
        locked.chmod(0o755)
        shutil.rmtree(base)


def test_run_directory_where_a_model_is_expected(world: World, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`finetune --model RUN` takes RUN/final (RUN has no best/) and says so in one line."""
    assert main(finetune(world, tmp_path)[:6] + [str(world.run)] + finetune(world, tmp_path)[7:]) == 0
    notes = [line for line in error_lines(capsys.readouterr().err) if "run directory" in line]
    assert notes == [f"vlkd: model {world.run} is a run directory: using {world.run / 'final'} "
                     "(the model at the last step)"], notes
    saved = (tmp_path / "out" / "config.yaml").read_text()
    assert f"model: {world.run / 'final'}" in saved


def test_run_directory_then_bad_input_is_still_one_line(world: World, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    """The line saying which model is used comes only once the inputs are checked."""
    argv = finetune(world, tmp_path, "data.eval_batch_size=3")
    argv[argv.index("--model") + 1], argv[argv.index("--data-dir") + 1] = str(world.run), str(tmp_path / "missing")
    assert main(argv) == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "data directory not found" in lines[0], lines


def test_catalogue_covers_every_command() -> None:
    commands = {" ".join(c.id.split()[:2]) if c.id.split()[0] in ("prepare", "evaluate") else c.id.split()[0]
                for c in CASES}
    assert commands >= {"train", "finetune", "extract-features", "report", "prepare text", "prepare howto100m",
                        "prepare videoqa", "prepare world", "prepare bundled", "prepare teacher-targets",
                        "evaluate retrieval", "evaluate grounding", "evaluate videoqa"}
    assert len(CASES) >= 60  # plus the two rows of test_output_dir_without_write_permission
