"""VideoQA scoring: overall and per-question-type accuracy, and `vlkd evaluate videoqa` on a finished run.

An answer outside the answer vocabulary has an unknown label (0 in train, 1 in val/test) that never
counts as correct: those questions stay in the denominator, as in the reference's reported numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vlkd.data.videoqa.features import HCRNFeatures
from vlkd.data.videoqa.batches import VideoQACollator, load_questions
from vlkd.errors import VlkdError
from vlkd.inference import infer
from vlkd.io import atomic_path, read_json, write_json_atomic
from vlkd.models.dualvgr import DualVGR, load_dualvgr
from vlkd.rundir import SELECTION, RunDir, load_run_config

UNKNOWN_LABELS = (0, 1)


def predict(model: DualVGR, items: list[dict[str, Any]], collate: VideoQACollator, device: torch.device,
            batch_size: int = 256) -> np.ndarray:
    """Predicted answer index for every item, in order (model in eval mode)."""
    def answers(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        out = model(batch["appearance"], batch["motion"], batch["question"], batch["question_len"])
        return out.logits.argmax(-1).cpu()

    preds = infer(answers, items, collate, batch_size, device)
    return torch.cat(preds).numpy() if preds else np.zeros(0, dtype=np.int64)


def accuracy(preds: np.ndarray, items: list[dict[str, Any]], prefix: str) -> dict[str, float]:
    """`{prefix}accuracy` and `{prefix}acc_<type>` for each question type present."""
    labels = np.array([it["label"] for it in items])
    correct = (preds == labels) & ~np.isin(labels, UNKNOWN_LABELS)
    result = {f"{prefix}accuracy": float(correct.mean()) if len(items) else 0.0}
    types = np.array([it["type"] for it in items])
    for t in sorted(set(types.tolist())):
        result[f"{prefix}acc_{t}"] = float(correct[types == t].mean())
    return result


def evaluate_videoqa(run: str | Path, split: str = "test", data: str | None = None, features: str | None = None,
                     out: str | Path | None = None, device: str | None = None) -> dict[str, Any]:
    """Score a finished run (its best/ model) on a split; writes OUT.json (scores) and
    OUT.predictions.jsonl (one line per question). Defaults: the run's data and features, OUT=RUN/eval-SPLIT."""
    run = Path(run)
    config = load_run_config(run)
    data_dir = Path(data or config["data"]["path"])
    store = HCRNFeatures(features or config["data"]["features"], config["data"]["appearance_file"],
                         config["data"]["motion_file"])
    model, path = load_dualvgr(run, data_dir)
    if store.num_clips != model.config.num_clips:
        raise VlkdError(f"features have {store.num_clips} clips per video, the model was trained on "
                        f"{model.config.num_clips}", store.paths[0])
    items = load_questions(data_dir, split, store)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    preds = predict(model.to(device), items, VideoQACollator(store, config["data"].get("drop_motion", False)), device)
    answers = {i: a for a, i in read_json(data_dir / "vocab.json")["answer_token_to_idx"].items()}
    selection = read_json(path / SELECTION) if (path / SELECTION).is_file() else None
    result: dict[str, Any] = {"split": split, "questions": len(items), "model": str(path), "selected_on": selection,
                              **accuracy(preds, items, "")}
    out = Path(out) if out else RunDir(run).evaluation(split)
    with atomic_path(out.with_suffix(".predictions.jsonl")) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            for it, p in zip(items, preds.tolist()):
                f.write(json.dumps({"id": it["id"], "video_id": it["video_id"], "question": it["question"],
                                    "answer": it["answer"], "prediction": answers[p], "type": it["type"],
                                    "correct": bool(p == it["label"] and it["label"] not in UNKNOWN_LABELS)}) + "\n")
    write_json_atomic(out.with_suffix(".json"), result)
    return result
