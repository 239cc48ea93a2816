"""A pretrained encoder with a task head (transformers' AutoModelFor* classes), as an engine module.

The head matches the task's kind: sequence classification (or a 1-output regression for STS-B),
multiple choice, or span extraction. Any local `from_pretrained` BERT-style directory works: an MLM
checkpoint, a bare encoder (MiniLM), or a student; a missing head (or pooler) is freshly initialised.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from torch import nn
from transformers import (AutoModelForMultipleChoice, AutoModelForQuestionAnswering,
                          AutoModelForSequenceClassification, PreTrainedModel)

from vlkd.data.tasks.spec import CHOICE, CLASSIFY, REGRESS, SPAN, TaskSpec
from vlkd.errors import VlkdError
from vlkd.hub import quiet_transformers
from vlkd.io import check_safetensors_dir

INPUTS = ("input_ids", "token_type_ids", "attention_mask")


def load_pretrained(path: str | Path, spec: TaskSpec | None = None) -> PreTrainedModel:
    """The model at `path` with `spec`'s head; spec=None loads a fine-tuned classifier as saved."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise VlkdError("model: not a directory with config.json (a save_pretrained output)", path)
    check_safetensors_dir(path)
    kwargs: dict = {}
    cls = AutoModelForSequenceClassification
    if spec is not None and spec.kind in (CLASSIFY, REGRESS):
        labels = spec.labels if spec.kind == CLASSIFY else ("score",)
        kwargs = {"num_labels": len(labels), "id2label": dict(enumerate(labels)),
                  "label2id": {name: i for i, name in enumerate(labels)},
                  "problem_type": "regression" if spec.kind == REGRESS else "single_label_classification"}
    elif spec is not None:
        cls = {CHOICE: AutoModelForMultipleChoice, SPAN: AutoModelForQuestionAnswering}[spec.kind]
    try:
        with quiet_transformers():
            return cls.from_pretrained(path, **kwargs)
    except (OSError, ValueError, KeyError, SafetensorError) as e:  # a truncated model.safetensors too
        where = path / "model.safetensors" if isinstance(e, SafetensorError) else path
        raise VlkdError(f"model: cannot load ({type(e).__name__}: {str(e).splitlines()[0]})", where) from None


def load_classifier(path: str | Path, spec: TaskSpec) -> PreTrainedModel:
    """A classifier fine-tuned on `spec` (its labels are the task's, in order), or a one-line error."""
    classifier = load_pretrained(path)
    names = tuple(classifier.config.id2label[i] for i in range(classifier.config.num_labels))
    if names != spec.labels:
        raise VlkdError(f"model: not a classifier fine-tuned on {spec.name} (its labels are "
                        f"{', '.join(map(str, names))}; expected {', '.join(spec.labels)})", path)
    return classifier


class TaskModel(nn.Module):
    """Engine module: `forward(batch)` -> {"loss"}; `logits(batch)` -> what predictions are made from."""

    def __init__(self, model: PreTrainedModel, kind: str) -> None:
        super().__init__()
        self.model, self.kind = model, kind

    def _run(self, batch: dict[str, torch.Tensor], with_targets: bool):
        keys = INPUTS + (("labels", "start_positions", "end_positions") if with_targets else ())
        return self.model(**{k: batch[k] for k in keys if k in batch})

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        loss = self._run(batch, with_targets=True).loss
        return {"loss": loss}

    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, classes), (B, 1) scores, (B, choices), or (B, L, 2) start/end logits."""
        out = self._run(batch, with_targets=False)
        if self.kind == SPAN:
            return torch.stack([out.start_logits, out.end_logits], dim=-1)
        return out.logits
