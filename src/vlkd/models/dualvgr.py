"""DualVGR (Wang et al., 2021): VideoQA over appearance and motion clip features, as in the reference
architecture (docs/commands.md, `task: videoqa`), with its defects fixed.

Reading order, as the data flows:
1. question: GloVe-initialised embeddings -> a BiLSTM giving per-token states and a BiLSTM giving the
   sentence vector;
2. video: a BiLSTM over each clip's frames (appearance), a linear map (motion) -> (B, N, D) each, plus
   a learned embedding of the clip's index with `clip_positions` (everything after is order-blind);
3. `unit_layers` DualVGR units, each: query attention over the words -> query punishment (a per-clip
   gate from the question) -> `graph_layers` multi-head graph attention layers over the clips, one
   common and one specific branch per view -> attention fusion of common and specific -> residual;
4. MFB fusion of appearance and motion per clip (the "fused feature" the student distils from);
5. self-attention pooling over clips -> concatenated with the question -> answer classifier.

Every (unit, graph layer) pair owns its modules: `unit_layers` and `graph_layers` both reach the model
and nothing is shared by accident (the reference indexed its layer lists with `i + j`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from vlkd.config import bounded, from_dict
from vlkd.errors import VlkdError
from vlkd.io import check_safetensors, read_json
from vlkd.rundir import model_dir


@dataclass
class DualVGRConfig:
    """Sizes of a DualVGR model. `appearance_dim` / `motion_dim` 0: taken from the feature files."""

    module_dim: int = bounded(768, ge=1)
    word_dim: int = bounded(300, ge=1)
    num_clips: int = bounded(8, ge=1)
    unit_layers: int = bounded(1, ge=1)
    graph_layers: int = bounded(1, ge=1)
    heads: int = bounded(4, ge=1)
    dropout: float = bounded(0.15, ge=0, lt=1)
    leaky_slope: float = bounded(0.01, ge=0)
    mfb_dim: int = bounded(1200, ge=1)
    mfb_factor: int = bounded(2, ge=1)
    appearance_dim: int = bounded(0, ge=0)
    motion_dim: int = bounded(0, ge=0)
    # the graph attention and the clip pooling are invariant to the order of the clips: without a learned
    # embedding of each clip's index, nothing tells the model which clip came first (off: the reference)
    clip_positions: bool = False


@dataclass
class DualVGROutput:
    logits: torch.Tensor  # (B, answers)
    fused: torch.Tensor  # (B, N, D) MFB(appearance, motion) per clip, before pooling
    appearance: torch.Tensor  # (B, N, D) appearance clip features after the units
    motion: torch.Tensor  # (B, N, D)
    # one (B, N, D) tensor per (unit, graph layer), for L_com and L_dep
    common_a: list[torch.Tensor] = field(default_factory=list)
    common_m: list[torch.Tensor] = field(default_factory=list)
    specific_a: list[torch.Tensor] = field(default_factory=list)
    specific_m: list[torch.Tensor] = field(default_factory=list)


def _bilstm_last(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Run a 1-layer bidirectional LSTM; returns (states (B, L, 2H), [forward last ‖ backward last] (B, 2H))."""
    if lengths is None:
        out, (h, _) = lstm(x)
    else:
        packed = pack_padded_sequence(x, lengths.cpu().clamp_min(1), batch_first=True, enforce_sorted=False)
        out, (h, _) = lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    return out, torch.cat([h[0], h[1]], dim=-1)


class QuestionEncoder(nn.Module):
    """Words -> (sentence vector (B, D), word vectors (B, L, word_dim), per-token states (B, L, D))."""

    def __init__(self, vocab_size: int, word_dim: int, module_dim: int, dropout: float) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, word_dim)
        self.token_lstm = nn.LSTM(word_dim, module_dim // 2, batch_first=True, bidirectional=True)
        self.sentence_lstm = nn.LSTM(word_dim, module_dim // 2, batch_first=True, bidirectional=True)
        self.embed_dropout = nn.Dropout(dropout)
        self.out_dropout = nn.Dropout(0.18)

    def forward(self, question: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        words = torch.tanh(self.embed_dropout(self.embed(question)))
        tokens, _ = _bilstm_last(self.token_lstm, words, lengths)
        _, sentence = _bilstm_last(self.sentence_lstm, words, lengths)
        return self.out_dropout(sentence), words, tokens


class AppearanceEncoder(nn.Module):
    """(B, N, F, appearance_dim) frame features -> (B, N, D): a BiLSTM over each clip's F frames."""

    def __init__(self, appearance_dim: int, module_dim: int, dropout: float) -> None:
        super().__init__()
        self.lstm = nn.LSTM(appearance_dim, module_dim // 2, batch_first=True, bidirectional=True)
        self.in_dropout = nn.Dropout(dropout)
        self.out_dropout = nn.Dropout(0.18)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        b, n, f, d = frames.shape
        x = torch.tanh(self.in_dropout(frames)).reshape(b * n, f, d)
        _, last = _bilstm_last(self.lstm, x, None)
        return self.out_dropout(last).reshape(b, n, -1)


class QueryAttention(nn.Module):
    """A question vector for this unit: attention over the tokens, applied to the word vectors."""

    def __init__(self, module_dim: int) -> None:
        super().__init__()
        self.enhance = nn.Linear(module_dim, module_dim)
        self.score = nn.Linear(module_dim, 1)

    def forward(self, words: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = self.score(F.normalize(self.enhance(tokens), dim=-1)).squeeze(-1)  # (B, L)
        weights = scores.masked_fill(mask == 0, float("-inf")).softmax(dim=-1)
        return torch.einsum("bl,blw->bw", weights, words)


class QueryPunish(nn.Module):
    """Per-clip relevance gate in (0, 1): sigmoid(clip . W q), (B, N, 1)."""

    def __init__(self, word_dim: int, module_dim: int) -> None:
        super().__init__()
        self.query = nn.Linear(word_dim, module_dim)

    def forward(self, query: torch.Tensor, clips: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(torch.einsum("bnd,bd->bn", clips, self.query(query))).unsqueeze(-1)


class GraphAttention(nn.Module):
    """Multi-head graph attention over the N clips of each video (a complete graph with self-loops).

    Per head h: e_ij = LeakyReLU(a_src . W x_i + a_dst . W x_j) (the pairwise concatenation a^T [Wx_i ‖ Wx_j]
    split into its two halves, so it is two batched products instead of an (N, N, 2d) tensor); node values
    W x_j are scaled by the query punishment gate; out_i = ELU(sum_j softmax_j(e_ij) W x_j); heads
    concatenated. `mask` (B, N), 1 for real clips, removes padded clips as neighbours.
    """

    def __init__(self, dim: int, heads: int, dropout: float, leaky_slope: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"module_dim {dim} is not divisible by heads {heads}")
        self.heads, self.head_dim = heads, dim // heads
        self.proj = nn.Linear(dim, dim)
        self.a_src = nn.Parameter(torch.empty(heads, self.head_dim))
        self.a_dst = nn.Parameter(torch.empty(heads, self.head_dim))
        nn.init.xavier_uniform_(self.a_src)
        nn.init.xavier_uniform_(self.a_dst)
        self.dropout = nn.Dropout(dropout)
        self.leaky_slope = leaky_slope

    def forward(self, x: torch.Tensor, gate: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, n, _ = x.shape
        wx = self.proj(self.dropout(x)).view(b, n, self.heads, self.head_dim)
        src = torch.einsum("bnhd,hd->bhn", wx, self.a_src)
        dst = torch.einsum("bnhd,hd->bhn", wx, self.a_dst)
        logits = F.leaky_relu(src.unsqueeze(-1) + dst.unsqueeze(-2), self.leaky_slope)  # (B, H, N, N)
        if mask is not None:
            logits = logits.masked_fill(mask[:, None, None, :] == 0, float("-inf"))
        attention = self.dropout(logits.softmax(dim=-1))
        if gate is not None:
            wx = wx * gate.unsqueeze(-1)  # (B, N, 1, 1): the same gate for every head
        out = F.elu(torch.einsum("bhij,bjhd->bihd", attention, wx))
        return self.dropout(out.reshape(b, n, -1))


class ViewFusion(nn.Module):
    """Attention over views (common, specific) of the same clips: (B, V, N, D) -> (B, N, D)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.project = nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, 1, bias=False))

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        weights = self.project(views).softmax(dim=1)
        return (weights * views).sum(dim=1)


class MFB(nn.Module):
    """Multi-modal factorised bilinear pooling (Yu et al., 2017), as DualVGR uses it:
    relu(W0 x) * relu(W1 y), sum-pooled over `factor`, then relu(W_out .).
    Hand-written because it is ten lines; the library DualVGR took it from (block.bootstrap) is not on PyPI."""

    def __init__(self, dims: tuple[int, int], out_dim: int, mm_dim: int, factor: int) -> None:
        super().__init__()
        self.mm_dim, self.factor = mm_dim, factor
        self.left = nn.Linear(dims[0], mm_dim * factor)
        self.right = nn.Linear(dims[1], mm_dim * factor)
        self.out = nn.Linear(mm_dim, out_dim)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        z = F.relu(self.left(x)) * F.relu(self.right(y))
        z = z.view(*z.shape[:-1], self.mm_dim, self.factor).sum(-1)
        return F.relu(self.out(z))


class DualVGRUnit(nn.Module):
    """One reasoning cycle: question-gated graph attention on both views, then common/specific fusion."""

    def __init__(self, config: DualVGRConfig) -> None:
        super().__init__()
        d, w = config.module_dim, config.word_dim

        def graphs() -> nn.ModuleList:
            return nn.ModuleList([GraphAttention(d, config.heads, config.dropout, config.leaky_slope)
                                  for _ in range(config.graph_layers)])

        self.query_attention = QueryAttention(d)
        self.punish_a, self.punish_m = QueryPunish(w, d), QueryPunish(w, d)
        self.specific_a, self.specific_m = graphs(), graphs()
        self.common_a, self.common_m = graphs(), graphs()
        self.fuse_a, self.fuse_m = ViewFusion(d), ViewFusion(d)

    def forward(self, a: torch.Tensor, m: torch.Tensor, words: torch.Tensor, tokens: torch.Tensor,
                token_mask: torch.Tensor, trace: dict[str, list[torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Updated (a, m); appends each graph layer's common/specific features to `trace`."""
        query = self.query_attention(words, tokens, token_mask)
        gate_a, gate_m = self.punish_a(query, a), self.punish_m(query, m)
        spec_a, spec_m = a, m
        for layer in range(len(self.specific_a)):
            com_a = self.common_a[layer](spec_a, gate_a)
            com_m = self.common_m[layer](spec_m, gate_m)
            spec_a = self.specific_a[layer](spec_a, gate_a)
            spec_m = self.specific_m[layer](spec_m, gate_m)
            for key, value in (("common_a", com_a), ("common_m", com_m), ("specific_a", spec_a),
                               ("specific_m", spec_m)):
                trace[key].append(value)
        a = a + self.fuse_a(torch.stack([com_a, spec_a], dim=1))
        m = m + self.fuse_m(torch.stack([com_m, spec_m], dim=1))
        return a, m


class ClipPooling(nn.Module):
    """Self-attention pooling over clips: (B, N, D) -> (B, D)."""

    def __init__(self, dim: int, dropout: float) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, dim, bias=False)
        self.score = nn.Linear(dim, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        clips = self.dropout(clips)
        weights = self.score(F.elu(self.proj(clips))).softmax(dim=1)
        return (weights * clips).sum(dim=1)


class AnswerHead(nn.Module):
    """[pooled video ‖ projected question] -> answer logits (open-ended classification)."""

    def __init__(self, dim: int, num_answers: int, dropout: float) -> None:
        super().__init__()
        self.question = nn.Linear(dim, dim)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * dim, dim), nn.ELU(),
                                        nn.BatchNorm1d(dim), nn.Dropout(dropout), nn.Linear(dim, num_answers))

    def forward(self, question: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.cat([video, self.question(question)], dim=-1))


class DualVGR(nn.Module):
    def __init__(self, config: DualVGRConfig, vocab_size: int, num_answers: int) -> None:
        super().__init__()
        if config.appearance_dim <= 0 or config.motion_dim <= 0:
            raise ValueError("DualVGR needs appearance_dim and motion_dim (take them from the feature files)")
        self.config = config
        d = config.module_dim
        self.question = QuestionEncoder(vocab_size, config.word_dim, d, config.dropout)
        self.appearance = AppearanceEncoder(config.appearance_dim, d, config.dropout)
        self.motion = nn.Linear(config.motion_dim, d)
        self.clip_position = nn.Embedding(config.num_clips, d) if config.clip_positions else None
        self.units = nn.ModuleList([DualVGRUnit(config) for _ in range(config.unit_layers)])
        self.fusion = MFB((d, d), d, config.mfb_dim, config.mfb_factor)
        self.pool = ClipPooling(d, config.dropout)
        self.head = AnswerHead(d, num_answers, config.dropout)
        self._init_weights()

    def _init_weights(self) -> None:
        """Xavier-uniform weights and zero biases for linear and LSTM layers (the reference's init);
        word embeddings uniform in [-1, 1] until `load_word_vectors`."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LSTM):
                for name, param in module.named_parameters():
                    (nn.init.zeros_ if "bias" in name else nn.init.xavier_uniform_)(param)
        nn.init.uniform_(self.question.embed.weight, -1.0, 1.0)
        if self.clip_position is not None:
            nn.init.normal_(self.clip_position.weight, std=0.02)

    def load_word_vectors(self, vectors: torch.Tensor) -> None:
        """Initialise the question embeddings from a GloVe matrix (vocabulary x word_dim)."""
        weight = self.question.embed.weight
        if tuple(vectors.shape) != tuple(weight.shape):
            raise ValueError(f"word vectors {tuple(vectors.shape)} do not fit the embedding {tuple(weight.shape)}")
        with torch.no_grad():
            weight.copy_(vectors)

    def forward(self, appearance: torch.Tensor, motion: torch.Tensor, question: torch.Tensor,
                question_len: torch.Tensor) -> DualVGROutput:
        """appearance (B, N, F, Da), motion (B, N, Dm), question (B, L) ids, question_len (B,)."""
        sentence, words, tokens = self.question(question, question_len)
        token_mask = torch.arange(question.shape[1], device=question.device)[None, :] < question_len[:, None]
        a, m = self.appearance(appearance), self.motion(motion)
        if self.clip_position is not None:
            a, m = a + self.clip_position.weight, m + self.clip_position.weight  # (N, D) onto (B, N, D)
        trace: dict[str, list[torch.Tensor]] = {"common_a": [], "common_m": [], "specific_a": [], "specific_m": []}
        for unit in self.units:
            a, m = unit(a, m, words, tokens, token_mask, trace)
        fused = self.fusion(a, m)
        return DualVGROutput(self.head(sentence, self.pool(fused)), fused, a, m, **trace)


# -- save / load ---------------------------------------------------------------------------------------

def save_dualvgr(model: DualVGR, path: Path, data_dir: Path) -> None:
    """A model directory: weights, sizes, and the vocabulary it answers in."""
    path.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path / "model.safetensors"))
    info = {"model": asdict(model.config), "vocab_size": model.question.embed.num_embeddings,
            "num_answers": model.head.classifier[-1].out_features}
    (path / "config.json").write_text(json.dumps(info, indent=2) + "\n")
    (path / "vocab.json").write_bytes((data_dir / "vocab.json").read_bytes())


def load_dualvgr(run_or_model: str | Path, data_dir: Path | None = None) -> tuple[DualVGR, Path]:
    """The model (eval mode) and the directory it came from; with `data_dir` (a `prepare videoqa` output),
    the model must answer in that data's vocabulary."""
    path = model_dir(run_or_model, "model.safetensors", "config.json", what="DualVGR model")
    if data_dir is not None and read_json(path / "vocab.json") != read_json(data_dir / "vocab.json"):
        raise VlkdError(f"mismatched vocab: the model was trained with another vocabulary than "
                        f"{data_dir / 'vocab.json'}", path / "vocab.json")
    info = read_json(path / "config.json")
    model = DualVGR(from_dict(DualVGRConfig, info["model"]), info["vocab_size"], info["num_answers"])
    check_safetensors(path / "model.safetensors")
    model.load_state_dict(load_file(str(path / "model.safetensors")))
    return model.eval(), path
