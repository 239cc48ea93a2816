"""Cached teacher targets (DESIGN section 11): a frozen teacher run once over a token store's blocks.

Layout of a cache directory OUT::

    targets.f16     float16, C-order: (num_blocks, L, H_t) normalised token targets (form "full"), or
                    (num_blocks, L(L+1)/2) the packed upper triangle of NST's Gram matrix (form "nst-gram")
    vokens.i32      int32 (num_blocks, L) voken ids (only with vokens=True)
    progress.json   while building: the planned meta and how many blocks are done (resume point)
    meta.json       written last: its presence means the cache is complete

with L = block_size + 2: the teacher sees the clean `[CLS] block [SEP]` (no masking, no attention mask).
A distillation run reads the rows of its blocks by index (`TeacherTargets.gather`) and never runs the
teacher; `TeacherTargets.check` refuses a cache built for another store, block size or teacher.

A resumable preparation (`vlkd.preparation.Resumable`): one build at a time per OUT (a lock file); SIGTERM or
SIGUSR1 finishes the batch in hand, records it in progress.json and stops (exit code 75); a re-run continues.
The arrays are allocated up front, so a disk too small for them is a one-line error before any work, not a
crash halfway.
"""

from __future__ import annotations

import errno
import hashlib
import os
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from vlkd.data.mapped import MappedArrays, read_meta
from vlkd.data.teacher.collate import TeacherCollator
from vlkd.data.teacher.howto100m import TeacherSamples
from vlkd.data.text.store import META_FILE as STORE_META, TokenStore
from vlkd.data.tokenizer import load_tokenizer, vocab_fingerprint
from vlkd.errors import VlkdError
from vlkd.hub import quiet_transformers
from vlkd.inference import infer
from vlkd.io import disk_full_error, write_json_atomic
from vlkd.losses.kd import pack_upper, teacher_gram, unpack_upper
from vlkd.losses.voken import assign_vokens
from vlkd.models.teacher import NO_VIDEO_TOWER, VideoTextTeacher, has_video_tower, load_teacher
from vlkd.preparation import Resumable
from vlkd.rundir import RunDir, load_run_config
from vlkd.shards import Shard, ShardSet, concat_files

FORMAT_VERSION = 1
FORMS = ("full", "nst-gram")
TARGETS_FILE = "targets.f16"
VOKENS_FILE = "vokens.i32"
META_FILE = "meta.json"
PROGRESS_FILE = "progress.json"
COMMAND = "prepare teacher-targets"
CHUNK_BLOCKS = 1024  # blocks between two progress records (rounded to whole batches)
BANK_BATCH = 32
# what must agree for an unfinished (or finished) output to be continued (or reused) by a re-run
_IDENTITY = (("form",), ("vokens",), ("seq_len",), ("width",), ("teacher", "weights_sha"), ("store", "checksum"),
             ("store", "num_blocks"), ("store", "block_size"), ("store", "vocab_sha"))


def _sha256_file(path: Path, h: Any) -> None:
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)


def teacher_weights_sha(final_dir: str | os.PathLike) -> str:
    """sha256 (hex, first 16) of final/text/model.safetensors followed by final/video/model.safetensors
    (text/ only for a teacher without a video tower)."""
    h = hashlib.sha256()
    for part in ("text", "video") if has_video_tower(final_dir) else ("text",):
        path = Path(final_dir) / part / "model.safetensors"
        if not path.is_file():
            raise VlkdError("not a teacher run's final/ directory (missing file)", path)
        _sha256_file(path, h)
    return h.hexdigest()[:16]


def store_checksum(store: TokenStore) -> str:
    """sha256 (hex, first 16) of the store's meta.json content: sources, counts, tokenizer and block size."""
    return hashlib.sha256((store.path / STORE_META).read_bytes()).hexdigest()[:16]


def load_frozen_teacher(run: str | Path, store: TokenStore) -> tuple[VideoTextTeacher, dict]:
    """RUN/final as a frozen teacher (eval mode, no grad) for `store`, whose vocabulary it must share.

    Returns the teacher and {"run", "weights_sha", "width"}.
    """
    run = Path(run)
    if not run.is_dir():
        raise VlkdError("teacher run directory not found", run)
    final = RunDir(run).final
    if not final.is_dir():
        raise VlkdError("teacher run has no final/ directory (unfinished run?)", run)
    tok_dir = final / "text"
    if tok_dir.is_dir():  # the cheap check first (a missing text/ is named by load_teacher)
        teacher_vocab = vocab_fingerprint(load_tokenizer(os.fspath(tok_dir)))
        if teacher_vocab != store.vocab_sha:
            raise VlkdError(f"mismatched vocab: the teacher's tokenizer (vocab_sha {teacher_vocab}) differs from "
                            f"the token store's {store.path} (vocab_sha {store.vocab_sha}); build the store with "
                            f"the teacher's tokenizer", tok_dir)
    with quiet_transformers():
        teacher = load_teacher(final, video=False)  # distillation reads the text tower only
    teacher.eval()
    teacher.requires_grad_(False)
    info = {"run": os.fspath(run), "weights_sha": teacher_weights_sha(final),
            "width": int(teacher.text.config.hidden_size)}
    return teacher, info


@torch.no_grad()
def teacher_token_targets(teacher: VideoTextTeacher, input_ids: torch.Tensor,
                          attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The teacher's distillation targets: norm(last hidden) per token, (B, L, H_t)."""
    return F.normalize(teacher.encode_text(input_ids, attention_mask), dim=-1)


def _teacher_samples(run: str | Path, teacher: VideoTextTeacher) -> TeacherSamples:
    """The teacher's training samples, checked against its video tower: the voken set is their embeddings."""
    if not has_video_tower(RunDir(run).final):
        raise VlkdError(NO_VIDEO_TOWER + "; vokens need one", RunDir(run).final)
    config = load_run_config(Path(run))
    path = (config.get("data") or {}).get("path")
    if not path or not Path(path).is_dir():
        raise VlkdError("the teacher's training data directory (config.yaml data.path) is gone; vokens need the "
                        "teacher's training videos", path or RunDir(run).config)
    samples = TeacherSamples(path, "train")
    width = teacher.video.cfg.feature_dim
    if samples.feature_dim != width:
        raise VlkdError(f"has {samples.feature_dim}-d video features but the teacher's video tower takes {width}-d "
                        "ones; vokens need the teacher's own training data", samples.root / "meta.json")
    return samples


def voken_bank(teacher: VideoTextTeacher, run: str | Path, device: str | torch.device) -> torch.Tensor:
    """(V, H_t): the teacher's L2-normalised video embeddings of its training samples, one row per sample
    (`TeacherSamples(config data.path, "train")` order). The teacher must already be on `device`."""
    samples = _teacher_samples(run, teacher)
    collate = TeacherCollator(samples.meta["special_ids"], samples.meta["vocab_size"], 0.0)
    rows = infer(lambda batch: teacher.encode_video(batch["video"], batch["video_mask"]).float(), samples, collate,
                 BANK_BATCH, device)
    return F.normalize(torch.cat(rows), dim=-1)


def _identity(meta: dict) -> list:
    out = []
    for key in _IDENTITY:
        value: Any = meta
        for k in key:
            value = value.get(k) if isinstance(value, dict) else None
        out.append(value)
    return out


def _human(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


def _open_array(path: Path, dtype: str, shape: tuple[int, ...], fresh: bool) -> np.ndarray:
    """A writable memory map of `shape`: preallocated (sparse) when fresh, else the existing file."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if shape[0] == 0:  # a shard with no blocks (more shards than batches): an empty file, nothing to map
        path.write_bytes(b"")
        return np.zeros(shape, dtype=dtype)
    if fresh:
        with open(path, "wb") as f:
            f.truncate(nbytes)
            try:  # reserve the blocks now: a full disk later would kill the process (SIGBUS) mid-write
                os.posix_fallocate(f.fileno(), 0, nbytes)
            except OSError as e:
                if e.errno in (errno.ENOSPC, errno.EDQUOT):
                    f.truncate(0)
                    raise disk_full_error(path) from None
                # a file system without fallocate: stay sparse
    elif not path.is_file() or path.stat().st_size != nbytes:
        raise VlkdError(f"missing or wrong-sized file (expected {nbytes} bytes); pass --overwrite to rebuild", path)
    return np.memmap(path, dtype=dtype, mode="r+", shape=shape)


def _save_progress(out: Path, plan: dict, done: int) -> None:
    write_json_atomic(out / PROGRESS_FILE, {"meta": plan, "blocks_done": done})


def prepare_teacher_targets(
    teacher_run: str | os.PathLike,
    store_dir: str | os.PathLike,
    out: str | os.PathLike,
    form: str = "full",
    vokens: bool = False,
    batch_size: int = 32,
    overwrite: bool = False,
    progress: bool = True,
    shard: Shard | None = None,
) -> dict[str, Any]:
    """Run the frozen teacher of `teacher_run` over every block of the token store and cache its targets in
    `out` (see the module docstring); returns the meta. Resumable: a re-run with the same arguments continues
    an interrupted build, and returns a finished one at once.

    With `shard` K/N: only the K-th of N ranges of whole batches of blocks (so every batch is the one an
    unsharded run computes), into OUT.shards/K-of-N/ (the same files, rows of that range only), resumable
    the same way; `merge_teacher_target_shards` concatenates them into OUT."""
    if form not in FORMS:
        raise VlkdError(f"unknown targets form {form!r} (expected one of: {', '.join(FORMS)})")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise VlkdError(f"batch_size must be a positive integer, got {batch_size!r}")
    out = Path(out)
    store = TokenStore(store_dir)
    teacher, info = load_frozen_teacher(teacher_run, store)
    seq_len = store.block_size + 2
    max_positions = teacher.text.config.max_position_embeddings
    if seq_len > max_positions:
        raise VlkdError(f"blocks of {store.block_size} + [CLS] + [SEP] = {seq_len} tokens exceed the teacher's "
                        f"{max_positions} positions", store.path)
    cls_id, sep_id = store.special_ids.get("cls"), store.special_ids.get("sep")
    if cls_id is None or sep_id is None:
        raise VlkdError("token store has no [CLS]/[SEP] ids in its meta.json special_ids", store.path / STORE_META)
    if vokens:
        _teacher_samples(teacher_run, teacher)  # the training data must still fit: fail before writing anything
    width = info["width"]
    n = store.num_blocks
    row_shape = (seq_len, width) if form == "full" else (seq_len * (seq_len + 1) // 2,)
    target_bytes = n * int(np.prod(row_shape)) * 2
    voken_bytes = n * seq_len * 4 if vokens else 0
    plan: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "form": form,
        "teacher": {"run": os.fspath(Path(teacher_run).resolve()), "weights_sha": info["weights_sha"]},
        "store": {"path": os.fspath(store.path.resolve()), "checksum": store_checksum(store), "num_blocks": n,
                  "block_size": store.block_size, "vocab_sha": store.vocab_sha},
        "seq_len": seq_len,
        "width": width,
        "dtype": "float16",
        "vokens": bool(vokens),
        "num_vokens": None,
        "bytes": target_bytes + voken_bytes,
    }

    run = Resumable(COMMAND, out, overwrite=overwrite, shard=shard, identity={**plan, "batch_size": batch_size})
    if run.finished is not None:
        return run.finished["meta"]
    with run:
        return _build(run, plan, store, teacher, teacher_run, row_shape, target_bytes, voken_bytes, batch_size,
                      progress)


def _plan_of(record: Any) -> dict:
    """The plan a record holds: meta.json is the plan, progress.json holds it under "meta"."""
    if not isinstance(record, dict):
        return {}
    return (record.get("meta") or {}) if "blocks_done" in record else record


def _build(run: Resumable, plan: dict[str, Any], store: TokenStore, teacher: VideoTextTeacher,
           teacher_run: str | os.PathLike, row_shape: tuple[int, ...], target_bytes: int, voken_bytes: int,
           batch_size: int, progress: bool) -> dict[str, Any]:
    """The build proper, under OUT's (or the shard directory's) lock and with stop signals caught (see
    prepare_teacher_targets)."""
    out, shard = run.dir, run.shard
    n, seq_len, form, vokens = store.num_blocks, plan["seq_len"], plan["form"], plan["vokens"]
    cls_id, sep_id = store.special_ids["cls"], store.special_ids["sep"]
    found = run.claim((META_FILE, PROGRESS_FILE), lambda record: _identity(_plan_of(record)) == _identity(plan),
                      " (built with other arguments: teacher, store, form or vokens)",
                      " and is not a teacher-targets directory")
    if found is not None and found[0] == META_FILE:
        return found[1]
    done = 0 if found is None else int(found[1]["blocks_done"])
    fresh = done == 0  # nothing computed yet: (re)allocate the arrays
    lo, hi = (0, n) if shard is None else shard.span(n, batch_size)

    shape_text = (f"{n} blocks" if shard is None else f"shard {shard}: blocks {lo}-{hi - 1} of {n}") + " x " + " x ".join(str(d) for d in row_shape)
    extra = f" + vokens int32 {_human(voken_bytes)}" if vokens else ""
    print(f"teacher-targets: {shape_text} float16 = {_human(target_bytes)}{extra} -> {out}"
          + (f" (resuming at block {done:,})" if done else ""), file=sys.stderr, flush=True)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    teacher.to(device)
    bank = voken_bank(teacher, teacher_run, device) if vokens else None
    plan["num_vokens"] = None if bank is None else int(bank.shape[0])
    if fresh:  # the plan first: an output interrupted from here on is recognised and continued
        _save_progress(out, plan, 0)
    rows = hi - lo  # row r of this output is block lo + r
    targets = _open_array(out / TARGETS_FILE, "<f2", (rows, *row_shape), fresh)
    voken_ids = _open_array(out / VOKENS_FILE, "<i4", (rows, seq_len), fresh) if vokens else None

    def save(blocks_done: int) -> None:
        targets.flush()
        if voken_ids is not None:
            voken_ids.flush()
        _save_progress(out, plan, blocks_done)

    for start in run.each(range(done, rows, batch_size), total=rows, done=done, unit="block",
                          size=lambda start: min(batch_size, rows - start), save=save,
                          every=max(1, CHUNK_BLOCKS // batch_size), progress=progress,
                          stopped="stopped after {done:,} of {total:,} blocks (progress saved)"):
        stop = min(start + batch_size, rows)
        ids = torch.from_numpy(np.asarray(store.blocks[lo + start:lo + stop], dtype=np.int64))
        ids = torch.cat([ids.new_full((len(ids), 1), cls_id), ids, ids.new_full((len(ids), 1), sep_id)], 1)
        t = teacher_token_targets(teacher, ids.to(device), None).half()
        if form == "full":
            targets[start:stop] = t.cpu().numpy()
        else:
            targets[start:stop] = pack_upper(teacher_gram(t.float(), None)).half().cpu().numpy()
        if voken_ids is not None:
            voken_ids[start:stop] = assign_vokens(t.float(), bank).cpu().numpy().astype(np.int32)

    del targets, voken_ids
    if shard is None:
        write_json_atomic(out / META_FILE, plan)
    run.complete({"meta": plan, "rows": [lo, hi]})
    (out / PROGRESS_FILE).unlink()
    return plan


def merge_teacher_target_shards(shards: ShardSet, directory: Path) -> dict[str, Any]:
    """Concatenate the shards' rows into `directory`: the cache an unsharded `prepare_teacher_targets` writes."""
    results = shards.results
    meta = results[0]["meta"]
    if [r["rows"] for r in results] != [[lo, hi] for lo, hi in (Shard(k, shards.count).span(
            meta["store"]["num_blocks"], shards.inputs["batch_size"]) for k in range(shards.count))]:
        raise VlkdError("the shards' block ranges do not cover the store once, in order", shards.dirs[0].parent)
    if any(r["meta"] != meta for r in results):
        raise VlkdError("the shards disagree on the cache's metadata (voken bank?)", shards.dirs[0].parent)
    for name in (TARGETS_FILE, VOKENS_FILE) if meta["vokens"] else (TARGETS_FILE,):
        concat_files([d / name for d in shards.dirs], directory / name)
    write_json_atomic(directory / META_FILE, meta)
    TeacherTargets(directory)  # every file of the expected size
    return meta


class TeacherTargets:
    """Read side of a teacher-targets cache: rows by block index. Picklable (memory maps opened lazily)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise VlkdError("teacher targets directory not found", self.path)
        if not (self.path / META_FILE).is_file():
            why = "unfinished (re-run `vlkd prepare teacher-targets` to finish it)" \
                if (self.path / PROGRESS_FILE).is_file() else "not a teacher-targets directory (no meta.json)"
            raise VlkdError(f"teacher targets {why}", self.path)
        self.meta: dict[str, Any] = read_meta(self.path / META_FILE, "teacher targets", FORMAT_VERSION)
        if self.meta.get("form") not in FORMS:
            raise VlkdError(f"unsupported teacher targets form {self.meta.get('form')!r} (expected one of "
                            f"{', '.join(FORMS)})", self.path / META_FILE)
        self.form: str = self.meta["form"]
        self.width: int = self.meta["width"]
        self.seq_len: int = self.meta["seq_len"]
        self.num_blocks: int = self.meta["store"]["num_blocks"]
        self.has_vokens: bool = bool(self.meta.get("vokens"))
        self.num_vokens: int | None = self.meta.get("num_vokens")
        L = self.seq_len
        specs = {TARGETS_FILE: ("<f2", (self.num_blocks, *((L, self.width) if self.form == "full" else
                                                            (L * (L + 1) // 2,))))}
        if self.has_vokens:
            specs[VOKENS_FILE] = ("<i4", (self.num_blocks, L))
        self._arrays = MappedArrays(self.path, specs, "the cache is corrupt")

    def __len__(self) -> int:
        return self.num_blocks

    def check(self, store: TokenStore, teacher_info: dict | None = None) -> None:
        """Refuse (VlkdError naming this cache) a cache built for another block size, store or teacher."""
        built = self.meta["store"]
        if built["block_size"] != store.block_size:
            raise VlkdError(f"teacher targets were built for block size {built['block_size']}, but the token store "
                            f"{store.path} has block size {store.block_size}", self.path)
        if built["checksum"] != store_checksum(store) or built["num_blocks"] != store.num_blocks:
            raise VlkdError(f"teacher targets were built for another token store ({built['path']}, "
                            f"{built['num_blocks']} blocks, checksum {built['checksum']}), not {store.path} "
                            f"({store.num_blocks} blocks, checksum {store_checksum(store)})", self.path)
        if teacher_info is not None:
            if teacher_info.get("weights_sha") != self.meta["teacher"]["weights_sha"]:
                built_by = self.meta["teacher"]
                raise VlkdError(f"teacher targets were built with another teacher (weights {built_by['weights_sha']} "
                                f"from {built_by['run']}), not this one (weights {teacher_info.get('weights_sha')})",
                                self.path)
            if teacher_info.get("width") not in (None, self.width):
                raise VlkdError(f"teacher targets have width {self.width}, the teacher {teacher_info['width']}",
                                self.path)

    def gather(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        """Rows of blocks `indices`: {"targets": float32 (B, L, H_t)} or {"gram": float32 (B, L, L)}, plus
        {"vokens": int64 (B, L)} when the cache has them."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.ndim != 1:
            raise ValueError(f"indices must be one-dimensional, got shape {idx.shape}")
        if len(idx) and (idx.min() < -self.num_blocks or idx.max() >= self.num_blocks):
            raise IndexError(f"block index out of range for {self.num_blocks} blocks")
        a = self._arrays
        rows = torch.from_numpy(np.asarray(a[TARGETS_FILE][idx], dtype=np.float32))
        out = {"targets": rows} if self.form == "full" else {"gram": unpack_upper(rows, self.seq_len)}
        if self.has_vokens:
            out["vokens"] = torch.from_numpy(np.asarray(a[VOKENS_FILE][idx], dtype=np.int64))
        return out

    def __repr__(self) -> str:
        return f"TeacherTargets({os.fspath(self.path)!r}, form={self.form}, blocks={self.num_blocks})"
