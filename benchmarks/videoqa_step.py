"""DualVGR training step, ours vs. the straightforward pairwise-concatenation graph attention, side by side.

Both: the teacher DualVGR (4 graph layers, 4 heads, module dim 768) at B=32 videos, N=16 clips, the same
weights and batches, fp32, forward + backward (CE + alpha L_com + beta L_dep) + clip + Adam step.
- reference graph attention: one module per head (a Python loop over heads), every pair of clips
  materialised as [W x_i ‖ W x_j] in a (B, N, N, 2d) tensor by repeat + cat, scored by Linear(2d, 1)
  (the reference code's layer);
- ours: `vlkd.models.dualvgr.GraphAttention`: all heads in one projection, a^T [W x_i ‖ W x_j] split into
  a_src . W x_i + a_dst . W x_j (two batched products, no pair tensor).
Two figures: the graph-attention layers alone (forward + backward of all 16 of the model's graph layers,
the part that differs) and the whole training step. Inputs are smaller than the real features (256-d
appearance frames, 8 frames per clip) so the run fits in about two minutes on 2 CPU cores; the graph part
does not depend on them. Runs on the GPU when there is one.

Timing is paired (benchmarks/paired_timing.py): each round runs one step of each side (and, for the
training step, one batch of the GEMM peak: 512 x 768 @ 768 x 768, the clip features' projection, 20
products), the order reversed every other round; a figure is the median of the per-round ratios with
quartiles and extremes. FLOPs of our training step are counted by FlopCounterMode; `fraction_of_peak` =
achieved GFLOP/s / the GEMM's, per round. `--precision bf16`: both sides and the GEMM under CPU bf16
autocast. Prints one JSON line per figure.
"""

from __future__ import annotations

import copy
import statistics

import torch
import torch.nn.functional as F
from torch import nn

from vlkd.models.dualvgr import DualVGR, DualVGRConfig, GraphAttention
from vlkd.recipes.videoqa import Config, VideoQATask

from paired_timing import Gemm, autocast, count_flops, line, parse_args, peak_fields, ratios, rounds  # noqa: E402

B, N, D, FRAMES, APP_DIM, MOT_DIM, WORDS, ANSWERS = 32, 16, 768, 8, 256, 256, 12, 1000
WARMUP, ROUNDS, QUICK_ROUNDS = 2, 10, 2
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # fp32 on either


class PairwiseHead(nn.Module):
    """One head of the reference layer: Linear(2d, 1) over every concatenated pair of clips."""

    def __init__(self, dim: int, head_dim: int, slope: float) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, head_dim)
        self.a = nn.Linear(2 * head_dim, 1)
        self.slope = slope

    def forward(self, x: torch.Tensor, gate: torch.Tensor | None, dropout: nn.Dropout) -> torch.Tensor:
        wx = self.proj(x)
        b, n, d = wx.shape
        pairs = torch.cat([wx.repeat(1, 1, n).view(b, n * n, d), wx.repeat(1, n, 1)], dim=2).view(b, n, n, 2 * d)
        e = F.leaky_relu(self.a(pairs).squeeze(-1), self.slope)
        attention = dropout(e.softmax(dim=-1))
        if gate is not None:
            wx = wx * gate
        return F.elu(torch.bmm(attention, wx))


class PairwiseGraphAttention(nn.Module):
    """The reference's multi-head layer, initialised to compute exactly what `ours` computes."""

    def __init__(self, ours: GraphAttention) -> None:
        super().__init__()
        h, d = ours.heads, ours.head_dim
        self.heads = nn.ModuleList([PairwiseHead(h * d, d, ours.leaky_slope) for _ in range(h)])
        self.dropout = nn.Dropout(ours.dropout.p)
        with torch.no_grad():
            for k, head in enumerate(self.heads):
                head.proj.weight.copy_(ours.proj.weight[k * d:(k + 1) * d])
                head.proj.bias.copy_(ours.proj.bias[k * d:(k + 1) * d])
                head.a.weight.copy_(torch.cat([ours.a_src[k], ours.a_dst[k]])[None])
                head.a.bias.zero_()

    def forward(self, x: torch.Tensor, gate: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.dropout(x)
        return self.dropout(torch.cat([head(x, gate, self.dropout) for head in self.heads], dim=2))


def with_pairwise_graphs(model: nn.Module) -> nn.Module:
    model = copy.deepcopy(model)
    for unit in model.units:
        for name in ("specific_a", "specific_m", "common_a", "common_m"):
            layers = getattr(unit, name)
            for i, layer in enumerate(layers):
                layers[i] = PairwiseGraphAttention(layer)
    return model


def batches(n: int) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    made = [{"appearance": torch.randn(B, N, FRAMES, APP_DIM, generator=g), "motion": torch.randn(B, N, MOT_DIM, generator=g),
             "question": torch.randint(2, 5000, (B, WORDS), generator=g), "question_len": torch.randint(3, WORDS + 1, (B,), generator=g),
             "labels": torch.randint(0, ANSWERS, (B,), generator=g)} for _ in range(n)]
    return [{k: (v if k == "question_len" else v.to(DEVICE)) for k, v in batch.items()} for batch in made]


def sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def synced(step):
    def run(i: int) -> None:
        step(i)
        sync()
    return run


def report(name: str, times: dict[str, list[float]], **extra) -> None:
    median = statistics.median
    line(name, B / median(times["ours"]), B / median(times["reference"]), "videos/s",
         ratios(times["ours"], times["reference"]), 2.0, device=DEVICE.type, **extra)


def main() -> None:
    args = parse_args(__doc__, ROUNDS, QUICK_ROUNDS)
    torch.manual_seed(0)
    config = Config(model=DualVGRConfig(module_dim=D, word_dim=300, num_clips=N, graph_layers=4,
                                        appearance_dim=APP_DIM, motion_dim=MOT_DIM))
    ours_model = DualVGR(config.model, 5000, ANSWERS).to(DEVICE)
    models = {"ours": ours_model, "reference": with_pairwise_graphs(ours_model).to(DEVICE)}
    tasks = {name: VideoQATask(model, config) for name, model in models.items()}
    data = batches(4)

    # correctness first: same weights, same batch -> same answers and CE (dropout off). (L_com is left out
    # of the check: on random inputs the clip features are nearly equal, and centring them over clips
    # leaves rounding noise that its normalisation amplifies, in both implementations alike.)
    with torch.no_grad():
        b = data[0]
        outs = [model.eval()(b["appearance"], b["motion"], b["question"], b["question_len"]) for model in models.values()]
        ces = [task.eval()(b)["ce"] for task in tasks.values()]
    assert torch.allclose(outs[0].logits, outs[1].logits, atol=1e-4) and torch.allclose(ces[0], ces[1], atol=1e-5), ces
    for task in tasks.values():
        task.train()

    # 1. the graph-attention layers alone: every graph layer of the model on the same clip features
    x = torch.randn(B, N, D, device=DEVICE)
    gate = torch.rand(B, N, 1, device=DEVICE)
    graphs = {name: [layer for unit in model.units for group in (unit.specific_a, unit.specific_m,
                                                                 unit.common_a, unit.common_m) for layer in group]
              for name, model in models.items()}

    def graph_step(name: str):
        def step(_: int) -> None:
            inp = x.clone().requires_grad_(True)
            with autocast():
                total = sum(layer(inp, gate).float().sum() for layer in graphs[name])
            total.backward()
        return synced(step)

    graph_steps = {n: graph_step(n) for n in models}
    for _ in range(WARMUP):
        for step in graph_steps.values():
            step(0)
    report("videoqa_graph_attention_step", rounds(graph_steps, args.rounds))

    # 2. the whole training step
    optimizers = {name: torch.optim.Adam(task.parameters(), lr=1e-4) for name, task in tasks.items()}

    def train_step(name: str):
        def step(i: int) -> None:
            with autocast():
                loss = tasks[name](data[i % len(data)])["loss"]
            loss.backward()
            torch.nn.utils.clip_grad_norm_(tasks[name].parameters(), 12.0)
            optimizers[name].step()
            optimizers[name].zero_grad(set_to_none=True)
        return synced(step)

    train_steps = {n: train_step(n) for n in tasks}
    our_flops = count_flops(lambda: train_steps["ours"](0))
    for i in range(WARMUP):
        for name, step in train_steps.items():
            if i or name != "ours":
                step(i)
    gemm = Gemm(B * N, D, D, reps=20, device=DEVICE)
    times = rounds({**train_steps, "gemm": gemm}, args.rounds)
    report("videoqa_train_step", times, **peak_fields(our_flops, times["ours"], gemm, times["gemm"]))


if __name__ == "__main__":
    main()
