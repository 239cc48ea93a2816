"""The VidLanKD teacher: a BERT text tower and a transformer video tower, trained jointly (issue 5).

The video tower maps per-step features ([2D || 3D], 4096-d for HowTo100M) to one L2-normalised embedding
in the text tower's width, so caption tokens and videos are compared by cosine (`paired_hinge`,
`infonce`). Unlike the reference, every video-tower parameter is trained, the pooling is a temporal
mean over valid steps by default (or a learned first step), and its size is independent of the text
tower's.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import BertForMaskedLM

from vlkd.config import bounded
from vlkd.errors import VlkdError
from vlkd.io import check_safetensors_dir
from vlkd.models.bert import checkpoint_depth, encode


@dataclass
class VideoTowerConfig:
    feature_dim: int = bounded(4096, ge=1)
    hidden_size: int = bounded(512, ge=1)
    num_layers: int = bounded(2, ge=1)
    num_heads: int = bounded(8, ge=1)
    intermediate_size: int = bounded(2048, ge=1)
    max_steps: int = bounded(384, ge=1)
    dropout: float = bounded(0.1, ge=0, lt=1)
    pooling: Literal["mean", "first"] = "mean"  # mean over valid steps, or a learned step prepended to the sequence

    def check(self, prefix: str = "") -> None:
        if self.hidden_size % self.num_heads:
            raise VlkdError(f"config key '{prefix}hidden_size' ({self.hidden_size}) is not divisible by "
                            f"{prefix}num_heads ({self.num_heads})")


class VideoTower(nn.Module):
    """features (B, T, F) + mask (B, T) -> L2-normalised embeddings (B, out_dim)."""

    def __init__(self, cfg: VideoTowerConfig, out_dim: int) -> None:
        super().__init__()
        if cfg.pooling not in ("mean", "first"):
            raise ValueError(f"video pooling must be 'mean' or 'first', got {cfg.pooling!r}")
        self.cfg = cfg
        self.proj = nn.Linear(cfg.feature_dim, cfg.hidden_size)
        self.first = nn.Parameter(torch.zeros(1, 1, cfg.hidden_size)) if cfg.pooling == "first" else None
        self.positions = nn.Embedding(cfg.max_steps + 1, cfg.hidden_size)
        self.norm = nn.LayerNorm(cfg.hidden_size)
        self.dropout = nn.Dropout(cfg.dropout)
        layer = nn.TransformerEncoderLayer(cfg.hidden_size, cfg.num_heads, cfg.intermediate_size, cfg.dropout,
                                           activation="gelu", batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.num_layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.Linear(cfg.hidden_size, cfg.hidden_size), nn.GELU(),
                                  nn.Linear(cfg.hidden_size, out_dim))

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.proj(features)
        valid = mask.bool()
        if self.first is not None:
            x = torch.cat([self.first.expand(x.shape[0], -1, -1), x], dim=1)
            valid = torch.cat([valid.new_ones(x.shape[0], 1), valid], dim=1)
        x = x + self.positions(torch.arange(x.shape[1], device=x.device))
        x = self.encoder(self.dropout(self.norm(x)), src_key_padding_mask=~valid)
        if self.first is not None:
            pooled = x[:, 0]
        else:
            m = valid.unsqueeze(-1).to(x.dtype)
            pooled = (x * m).sum(1) / m.sum(1).clamp_min(1.0)
        return F.normalize(self.head(pooled), dim=-1)


class VideoTextTeacher(nn.Module):
    """Text tower (BertForMaskedLM-compatible, saved with save_pretrained) + video tower. A teacher imported
    from a text-only checkpoint (`vlkd import vidlankd`) has no video tower (`video_cfg` None): it serves
    distillation, which reads the text tower only."""

    def __init__(self, text: BertForMaskedLM, video_cfg: VideoTowerConfig | None) -> None:
        super().__init__()
        self.text = text
        self.video = VideoTower(video_cfg, out_dim=text.config.hidden_size) if video_cfg is not None else None

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """Token features (B, L, H) of the text tower: the distillation target for the student."""
        return encode(self.text, input_ids, attention_mask)

    def encode_video(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.video is None:
            raise VlkdError(NO_VIDEO_TOWER)
        return self.video(features, mask)


NO_VIDEO_TOWER = ("this teacher has no video tower (a text-only import, `vlkd import vidlankd`): it serves "
                  "`task: distill` only")
TEXT_DIR = "text"  # a teacher's final/ holds text/ (the text tower + tokenizer) and video/


def has_video_tower(final_dir: str | Path) -> bool:
    return (Path(final_dir) / "video" / "config.json").is_file()


def save_teacher(teacher: VideoTextTeacher, path: Path, tokenizer_dir: Path) -> None:
    """path/text: the text tower (AutoModelForMaskedLM + tokenizer); path/video: the video tower."""
    teacher.text.save_pretrained(path / "text")
    for file in sorted(Path(tokenizer_dir).iterdir()):
        shutil.copy2(file, path / "text" / file.name)
    (path / "video").mkdir()
    save_file({k: v.contiguous() for k, v in teacher.video.state_dict().items()}, str(path / "video" / "model.safetensors"))
    (path / "video" / "config.json").write_text(json.dumps(asdict(teacher.video.cfg), indent=2) + "\n")


def teacher_depth(final_dir: str | Path) -> int | None:
    """The text tower's number of layers, from a run's `final/` (None when it cannot be read)."""
    return checkpoint_depth(Path(final_dir) / "text")


def load_teacher(final_dir: str | Path, video: bool = True) -> VideoTextTeacher:
    """Load a trained teacher from a run's `final/` (text/ via from_pretrained, video/ safetensors). With
    `video=False` (distillation) a text-only teacher is accepted; else its missing video tower is an error."""
    final_dir = Path(final_dir)
    text_config = final_dir / "text" / "config.json"
    if text_config.is_file() and not has_video_tower(final_dir) and video:
        raise VlkdError(NO_VIDEO_TOWER + "; this command needs one", final_dir)
    needed = [text_config]
    if video or has_video_tower(final_dir):
        needed += [final_dir / "video" / "config.json", final_dir / "video" / "model.safetensors"]
    for path in needed:
        if not path.is_file():
            raise VlkdError("not a teacher run's final/ directory (missing file)", path)
    check_safetensors_dir(final_dir / "text")
    text = BertForMaskedLM.from_pretrained(final_dir / "text")
    if not has_video_tower(final_dir):
        return VideoTextTeacher(text, None).eval()
    check_safetensors_dir(final_dir / "video")
    cfg = VideoTowerConfig(**json.loads((final_dir / "video" / "config.json").read_text(encoding="utf-8")))
    teacher = VideoTextTeacher(text, cfg)
    teacher.video.load_state_dict(load_file(final_dir / "video" / "model.safetensors"))
    return teacher.eval()
