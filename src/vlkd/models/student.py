"""The VidLanKD student's KD head (docs/losses.md): dense -> GELU -> LayerNorm -> Linear to the teacher's
width -> L2-normalise, applied per token to the student's last hidden states. It lets a student of any size
be compared with a teacher of any width.

The student itself is an ordinary BertForMaskedLM (`vlkd.models.bert`): a run's `final/` is its
`save_pretrained` output, loadable by `AutoModel.from_pretrained`, and the KD head is stored beside it in
`final/kd_head/` (config.json + model.safetensors), not inside it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from vlkd.errors import VlkdError
from vlkd.io import check_safetensors

KD_HEAD_DIR = "kd_head"


@dataclass
class KDHeadConfig:
    student_width: int
    teacher_width: int
    layer_norm_eps: float = 1e-12


class KDHead(nn.Module):
    """(B, L, H_s) student hidden states -> (B, L, H_t) unit vectors comparable with the teacher's."""

    def __init__(self, cfg: KDHeadConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.dense = nn.Linear(cfg.student_width, cfg.student_width)
        self.norm = nn.LayerNorm(cfg.student_width, eps=cfg.layer_norm_eps)
        self.out = nn.Linear(cfg.student_width, cfg.teacher_width)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.out(self.norm(F.gelu(self.dense(hidden)))), dim=-1)


class VokenHead(nn.Module):
    """The vokenization baseline's classifier: dense -> GELU -> LayerNorm -> Linear to the number of vokens."""

    def __init__(self, student_width: int, num_vokens: int, layer_norm_eps: float = 1e-12) -> None:
        super().__init__()
        self.dense = nn.Linear(student_width, student_width)
        self.norm = nn.LayerNorm(student_width, eps=layer_norm_eps)
        self.out = nn.Linear(student_width, num_vokens)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.out(self.norm(F.gelu(self.dense(hidden))))


def save_kd_head(head: KDHead, final_dir: Path) -> None:
    path = Path(final_dir) / KD_HEAD_DIR
    path.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(path / "model.safetensors"))
    (path / "config.json").write_text(json.dumps(asdict(head.cfg), indent=2) + "\n", encoding="utf-8")


def has_kd_head(final_dir: Path) -> bool:
    return (Path(final_dir) / KD_HEAD_DIR / "model.safetensors").is_file()


def load_kd_head(final_dir: Path) -> KDHead:
    """The KD head saved beside a student's weights (eval mode)."""
    path = Path(final_dir) / KD_HEAD_DIR
    if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
        raise VlkdError("no KD head here (a distilled student's final/ has kd_head/config.json and "
                        "kd_head/model.safetensors)", path)
    cfg = KDHeadConfig(**json.loads((path / "config.json").read_text(encoding="utf-8")))
    head = KDHead(cfg)
    check_safetensors(path / "model.safetensors")
    head.load_state_dict(load_file(str(path / "model.safetensors")))
    return head.eval()
