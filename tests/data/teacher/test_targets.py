"""Cached teacher targets (DESIGN section 11): a tiny trained teacher over small token stores."""

from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

import vlkd.data.teacher.targets as tt
from tests.conftest import wiki_extracts
from tests.test_shards import tree_bytes
from vlkd.cli import main
from vlkd.data.teacher.howto100m import prepare_howto100m
from vlkd.data.text.store import TokenStore, build_token_store
from vlkd.data.tokenizer import load_tokenizer
from vlkd.errors import Preempted, VlkdError
from vlkd.data.teacher.targets import (
    TeacherTargets,
    load_frozen_teacher,
    prepare_teacher_targets,
    teacher_token_targets,
    voken_bank,
)
from vlkd.lock import LOCK_FILE, DirLock
from vlkd.losses.kd import nst, nst_gram
from vlkd.losses.voken import assign_vokens
from vlkd.recipes import load_config, run_training

TINY = ["model.num_layers=1", "model.hidden_size=32", "model.num_heads=2", "model.intermediate_size=64",
        "video.feature_dim=32", "video.hidden_size=32", "video.num_layers=1", "video.num_heads=2",
        "video.intermediate_size=64", "progress=false"]


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A teacher trained for two steps on a 24-video HowTo100M-format dataset (bundled MiniLM vocabulary)."""
    root = tmp_path_factory.mktemp("howto")
    rng = np.random.default_rng(0)
    (root / "feats" / "2d").mkdir(parents=True)
    (root / "feats" / "3d").mkdir()
    captions = {}
    for v in range(24):
        captions[f"v{v:03d}"] = {"start": [0.0, 2.0], "end": [2.0, 4.0],
                                 "text": [f"now we cut the item {v}", "it is ready"]}
        np.save(root / "feats" / "2d" / f"v{v:03d}.npy", rng.normal(size=(5, 24)).astype(np.float32))
        np.save(root / "feats" / "3d" / f"v{v:03d}.npy", rng.normal(size=(7, 8)).astype(np.float32))
    (root / "caption.json").write_text(json.dumps(captions))
    prepare_howto100m(root / "caption.json", root / "feats", root / "data", valid_fraction=0.2, progress=False)
    out = root / "teacher"
    config = load_config("teacher-tiny", [f"data.path={root / 'data'}", f"output_dir={out}", "max_steps=2",
                                          "batch_size=8", "warmup=1", "log_every=1", "save_every=100", *TINY])
    run_training(config)
    return out


def small_store(root: Path, texts: list[str], block_size: int) -> TokenStore:
    (root / "in.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    build_token_store([root / "in.txt"], "bundled:minilm", root / "store", block_size=block_size, progress=False)
    return TokenStore(root / "store")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> TokenStore:
    """A few dozen blocks of 14 ids (L = 16)."""
    s = small_store(tmp_path_factory.mktemp("s1"), wiki_extracts(4), 14)
    assert 20 <= s.num_blocks <= 120
    return s


@pytest.fixture(scope="module")
def full(teacher_run: Path, store: TokenStore, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("c") / "full"
    prepare_teacher_targets(teacher_run, store.path, out, vokens=True, batch_size=8, progress=False)
    return out


def model_input(store: TokenStore, idx: list[int]) -> torch.Tensor:
    sp = store.special_ids
    return torch.tensor(np.stack([np.concatenate([[sp["cls"]], store[i], [sp["sep"]]]) for i in idx]))


def test_the_teacher_and_the_fixture_store_share_the_vocabulary(teacher_run: Path, token_store: Path) -> None:
    teacher, info = load_frozen_teacher(teacher_run, TokenStore(token_store))
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    assert info["width"] == 32 and len(info["weights_sha"]) == 16 and info["run"] == str(teacher_run)


def test_full_targets_are_the_teachers_normalised_hidden_states(full: Path, teacher_run: Path,
                                                                 store: TokenStore) -> None:
    cache = TeacherTargets(full)
    meta = json.loads((full / "meta.json").read_text())
    teacher, info = load_frozen_teacher(teacher_run, store)
    assert (cache.form, cache.width, cache.seq_len) == ("full", 32, 16)
    assert meta["teacher"]["weights_sha"] == info["weights_sha"] and meta["store"]["num_blocks"] == store.num_blocks
    assert meta["dtype"] == "float16" and meta["vokens"] and not (full / "progress.json").exists()
    assert (full / "targets.f16").stat().st_size == store.num_blocks * 16 * 32 * 2
    idx = [0, 5, store.num_blocks - 1, 5]
    got = cache.gather(idx)
    expected = teacher_token_targets(teacher, model_input(store, idx))
    assert got["targets"].dtype == torch.float32 and got["targets"].shape == (4, 16, 32)
    torch.testing.assert_close(got["targets"], expected, rtol=0, atol=2e-3)
    # vokens: the nearest training video of each (cached) token target
    bank = voken_bank(teacher, teacher_run, "cpu")
    assert bank.shape == (meta["num_vokens"], 32) and meta["num_vokens"] >= 10
    torch.testing.assert_close(bank.norm(dim=-1), torch.ones(len(bank)))
    assert got["vokens"].dtype == torch.int64
    assert torch.equal(got["vokens"], assign_vokens(got["targets"], bank))
    assert got["vokens"].unique().numel() > 1
    clone = pickle.loads(pickle.dumps(cache))
    assert torch.equal(clone.gather([3])["targets"], cache.gather([3])["targets"])


def test_nst_from_the_gram_form_equals_nst_from_the_full_targets(full: Path, teacher_run: Path,
                                                                 store: TokenStore, tmp_path: Path) -> None:
    prepare_teacher_targets(teacher_run, store.path, tmp_path / "gram", form="nst-gram", batch_size=8, progress=False)
    gram = TeacherTargets(tmp_path / "gram")
    assert gram.form == "nst-gram" and (tmp_path / "gram" / "targets.f16").stat().st_size == \
        store.num_blocks * 16 * 17 // 2 * 2
    assert not (tmp_path / "gram" / "vokens.i32").exists()
    idx = list(range(0, store.num_blocks, 3))
    g = gram.gather(idx)
    assert set(g) == {"gram"} and g["gram"].shape == (len(idx), 16, 16)
    student = torch.nn.functional.normalize(torch.randn(len(idx), 16, 24, generator=torch.Generator().manual_seed(0)),
                                            dim=-1)
    expected = nst(student, TeacherTargets(full).gather(idx)["targets"])
    torch.testing.assert_close(nst_gram(student, g["gram"], None, gram.width), expected, rtol=1e-3, atol=1e-5)


def test_an_interrupted_build_resumes_to_identical_bytes(full: Path, teacher_run: Path, store: TokenStore,
                                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tt, "CHUNK_BLOCKS", 16)
    real = tt._save_progress

    def crash_after_first_chunk(out: Path, plan: dict, done: int) -> None:
        real(out, plan, done)
        if done > 0:
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(tt, "_save_progress", crash_after_first_chunk)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        prepare_teacher_targets(teacher_run, store.path, out, vokens=True, batch_size=8, progress=False)
    assert json.loads((out / "progress.json").read_text())["blocks_done"] == 16 and not (out / "meta.json").exists()
    with pytest.raises(VlkdError, match="unfinished"):
        TeacherTargets(out)
    with pytest.raises(VlkdError, match="--overwrite"):  # other arguments on an unfinished output
        prepare_teacher_targets(teacher_run, store.path, out, form="nst-gram", vokens=True, batch_size=8,
                                progress=False)
    monkeypatch.setattr(tt, "_save_progress", real)
    meta = prepare_teacher_targets(teacher_run, store.path, out, vokens=True, batch_size=8, progress=False)
    for name in ("targets.f16", "vokens.i32"):
        assert (out / name).read_bytes() == (full / name).read_bytes(), name
    # finished: returned at once (nothing rewritten)
    mtime = (out / "targets.f16").stat().st_mtime_ns
    assert prepare_teacher_targets(teacher_run, store.path, out, vokens=True, progress=False) == meta
    assert (out / "targets.f16").stat().st_mtime_ns == mtime
    with pytest.raises(VlkdError, match="other arguments.*--overwrite"):
        prepare_teacher_targets(teacher_run, store.path, out, vokens=False, progress=False)


def test_check_refuses_another_store_block_size_or_teacher(full: Path, store: TokenStore, token_store: Path,
                                                           teacher_run: Path, tmp_path: Path) -> None:
    cache = TeacherTargets(full)
    _, info = load_frozen_teacher(teacher_run, store)
    cache.check(store, info)  # its own store and teacher: fine
    other = small_store(tmp_path, wiki_extracts(8)[4:], 14)
    messages = []
    for args in ((other,), (TokenStore(token_store),), (store, {**info, "weights_sha": "0" * 16})):
        with pytest.raises(VlkdError) as e:
            cache.check(*args)
        assert str(full) in str(e.value)
        messages.append(e.value.problem)
    assert "another token store" in messages[0] and "block size 14" in messages[1] and \
        "another teacher" in messages[2]
    assert len(set(messages)) == 3


def test_bad_input_is_one_line_exit_2_and_writes_nothing(teacher_run: Path, store: TokenStore, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    other_vocab = tmp_path / "other-teacher"
    shutil.copytree(teacher_run / "final", other_vocab / "final")
    tok = load_tokenizer(str(other_vocab / "final" / "text"))
    tok.add_tokens(["zzzvideotoken"])
    tok.save_pretrained(other_vocab / "final" / "text")
    cases = [(tmp_path / "no-such-run", "not found"), (other_vocab, "mismatched vocab")]
    for run, expected in cases:
        out = tmp_path / "out"
        capsys.readouterr()
        code = main(["prepare", "teacher-targets", "--teacher", str(run), "--store", str(store.path), "--out",
                     str(out)])
        lines = capsys.readouterr().err.strip().splitlines()
        assert code == 2, lines
        assert len(lines) == 1 and lines[0].startswith("vlkd: error: ") and expected in lines[0], lines
        assert not out.exists()
    gone = tmp_path / "data-gone"
    shutil.copytree(teacher_run / "final", gone / "final")
    (gone / "config.yaml").write_text(f"data:\n  path: {tmp_path / 'nowhere'}\n")
    with pytest.raises(VlkdError, match="training data directory"):
        prepare_teacher_targets(gone, store.path, tmp_path / "out", vokens=True)
    other_width = tmp_path / "other-width"  # the teacher beside training data of 16 + 8 = 24-d features
    shutil.copytree(teacher_run / "final", other_width / "final")
    for kind, dim in (("2d", 16), ("3d", 8)):
        (other_width / "feats" / kind).mkdir(parents=True)
        for v in range(6):
            np.save(other_width / "feats" / kind / f"v{v}.npy", np.ones((3, dim), np.float32))
    (other_width / "caption.json").write_text(json.dumps(
        {f"v{v}": {"start": [0.0], "end": [2.0], "text": ["now we cut it"]} for v in range(6)}))
    prepare_howto100m(other_width / "caption.json", other_width / "feats", other_width / "data", progress=False)
    (other_width / "config.yaml").write_text(f"data:\n  path: {other_width / 'data'}\n")
    capsys.readouterr()
    assert main(["prepare", "teacher-targets", "--teacher", str(other_width), "--store", str(store.path), "--out",
                 str(tmp_path / "out"), "--vokens"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "24-d video features but the teacher's video tower takes 32-d" in lines[0], lines
    with pytest.raises(VlkdError, match="unknown targets form"):
        prepare_teacher_targets(teacher_run, store.path, tmp_path / "out", form="half")
    with pytest.raises(VlkdError, match="token store directory not found"):
        prepare_teacher_targets(teacher_run, tmp_path / "nostore", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_prints_a_summary(teacher_run: Path, store: TokenStore, tmp_path: Path,
                              capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "cli"
    capsys.readouterr()
    code = main(["prepare", "teacher-targets", "--teacher", str(teacher_run), "--store", str(store.path),
                 "--out", str(out), "--form", "nst-gram", "--batch-size", "16"])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-2000:]
    assert f"teacher-targets: {store.num_blocks} blocks x 136 float16" in captured.err
    assert captured.out.strip().splitlines()[-1].startswith(f"{out}: teacher targets (nst-gram)")
    assert TeacherTargets(out).form == "nst-gram"


def test_three_shards_then_merge_give_the_bytes_of_one_run(full: Path, teacher_run: Path, store: TokenStore,
                                                           tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "sharded"
    args = ["prepare", "teacher-targets", "--teacher", str(teacher_run), "--store", str(store.path), "--out", str(out),
            "--vokens", "--batch-size", "8"]
    for k in (2, 0):
        assert main([*args, "--shard", f"{k}/3"]) == 0
    capsys.readouterr()
    assert main(["merge-shards", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "shard 1/3 is missing" in err and not out.exists()
    assert main([*args, "--shard", "1/3"]) == 0
    lo = int(capsys.readouterr().err.split("shard 1/3: blocks ")[1].split("-")[0])
    assert lo > 0 and lo % 8 == 0  # whole batches of 8 per shard
    assert main(["merge-shards", str(out)]) == 0
    assert tree_bytes(out) == tree_bytes(full)
    assert not (tmp_path / "sharded.shards").exists()


def test_sigterm_finishes_the_batch_in_hand_and_a_rerun_continues(full: Path, teacher_run: Path, store: TokenStore,
                                                                   tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    real = tt.teacher_token_targets
    calls = []

    def signal_on_second_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # what a scheduler sends before it kills the job
        return real(*args, **kwargs)

    monkeypatch.setattr(tt, "teacher_token_targets", signal_on_second_batch)
    out = tmp_path / "stopped"
    with pytest.raises(Preempted, match=r"SIGTERM: stopped after 16 of .* blocks .*run the same command again"):
        prepare_teacher_targets(teacher_run, store.path, out, vokens=True, batch_size=8, progress=False)
    assert json.loads((out / "progress.json").read_text())["blocks_done"] == 16
    assert not (out / LOCK_FILE).exists()
    monkeypatch.setattr(tt, "teacher_token_targets", real)
    prepare_teacher_targets(teacher_run, store.path, out, vokens=True, batch_size=8, progress=False)
    for name in ("targets.f16", "vokens.i32"):
        assert (out / name).read_bytes() == (full / name).read_bytes(), name


def test_one_build_per_output_directory(teacher_run: Path, store: TokenStore, tmp_path: Path) -> None:
    out = tmp_path / "locked"
    with DirLock(out):
        with pytest.raises(VlkdError, match=rf"{out}: in use by another vlkd process \(pid {os.getpid()}"):
            prepare_teacher_targets(teacher_run, store.path, out, batch_size=8, progress=False)


def test_a_disk_too_small_for_the_arrays_is_one_line_before_any_work(teacher_run: Path, store: TokenStore,
                                                                     tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def full_disk(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tt.os, "posix_fallocate", full_disk)
    out = tmp_path / "small-disk"
    with pytest.raises(VlkdError, match=r"targets.f16: no space left on device"):
        prepare_teacher_targets(teacher_run, store.path, out, batch_size=8, progress=False)
    assert (out / "targets.f16").stat().st_size == 0  # nothing reserved, nothing computed
