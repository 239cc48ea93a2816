"""Checkpoints hold the trained tensors only: no frozen submodule (a teacher), tied weights once; loading
copies them back in place, accepts a frozen module's tensors written by earlier versions, and refuses a
checkpoint of another model in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from vlkd.engine.checkpoint import _load_trained, trained_state
from vlkd.errors import VlkdError


class Student(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.out = nn.Linear(4, 10, bias=False)
        self.out.weight = self.embed.weight  # tied, as BERT's decoder and word embeddings
        self.teacher = nn.Linear(4, 4)  # frozen


def test_trained_state_leaves_out_the_frozen_module_and_saves_tied_weights_once() -> None:
    model = Student()
    names = set(trained_state(model, [model.teacher]))
    assert names == {"embed.weight"}
    assert set(trained_state(model)) == {"embed.weight", "teacher.weight", "teacher.bias"}


def test_load_restores_in_place_and_accepts_frozen_tensors_of_older_checkpoints(tmp_path: Path) -> None:
    source, target = Student(), Student()
    path = tmp_path / "model.safetensors"
    legacy = {k: v.detach().clone() for k, v in source.state_dict().items() if k != "out.weight"}  # teacher included
    save_file(legacy, str(path))
    before_teacher = target.teacher.weight.detach().clone()
    _load_trained(target, [target.teacher], path)
    assert torch.equal(target.embed.weight, source.embed.weight) and target.out.weight is target.embed.weight
    assert torch.equal(target.teacher.weight, before_teacher)  # the frozen module keeps its own weights
    save_file({"out.weight": source.embed.weight.detach().clone()}, str(path))  # the tied alias also counts
    other = Student()
    _load_trained(other, [other.teacher], path)
    assert torch.equal(other.embed.weight, source.embed.weight)


def test_a_checkpoint_of_another_model_is_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_file({"embed.weight": torch.zeros(10, 4), "head.weight": torch.zeros(2, 2)}, str(path))
    with pytest.raises(VlkdError, match="1 unexpected, e.g. \\['head.weight'\\]"):
        model = Student()
        _load_trained(model, [model.teacher], path)
    save_file({"embed.weight": torch.zeros(9, 4)}, str(path))
    with pytest.raises(VlkdError, match="has shape \\(9, 4\\)"):
        model = Student()
        _load_trained(model, [model.teacher], path)
    assert load_file(str(path))
