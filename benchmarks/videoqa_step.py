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
appearance frames, 8 frames per clip) so the run fits in a few minutes on 2 CPU cores; the graph part
does not depend on them. Runs on the GPU when there is one. Prints one JSON line per figure.
"""

from __future__ import annotations

import copy
import json
import time

import torch
import torch.nn.functional as F
from torch import nn

from vlkd.models.dualvgr import DualVGR, DualVGRConfig, GraphAttention
from vlkd.recipes.videoqa import Config, VideoQATask

B, N, D, FRAMES, APP_DIM, MOT_DIM, WORDS, ANSWERS = 32, 16, 768, 8, 256, 256, 12, 1000
WARMUP, ROUNDS, STEPS_PER_ROUND = 2, 6, 3
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


def timed(steps: dict, data: list) -> dict[str, float]:
    """Alternate the two implementations round by round so both see the same machine conditions."""
    for batch in data[:WARMUP]:
        for step in steps.values():
            step(batch)
    times = {name: 0.0 for name in steps}
    for r in range(ROUNDS):
        chunk = data[WARMUP + r * STEPS_PER_ROUND: WARMUP + (r + 1) * STEPS_PER_ROUND]
        for name in (list(steps) if r % 2 == 0 else list(steps)[::-1]):
            sync()
            start = time.perf_counter()
            for batch in chunk:
                steps[name](batch)
            sync()
            times[name] += time.perf_counter() - start
    return times


def report(name: str, times: dict[str, float], unit_count: int) -> None:
    ours, ref = unit_count / times["ours"], unit_count / times["reference"]
    print(json.dumps({"benchmark": name, "ours": round(ours, 2), "reference": round(ref, 2), "unit": "videos/s",
                      "ratio": round(ours / ref, 3), "target": 2.0, "device": DEVICE.type}), flush=True)


def main() -> None:
    torch.manual_seed(0)
    config = Config(model=DualVGRConfig(module_dim=D, word_dim=300, num_clips=N, graph_layers=4,
                                        appearance_dim=APP_DIM, motion_dim=MOT_DIM))
    ours_model = DualVGR(config.model, 5000, ANSWERS).to(DEVICE)
    models = {"ours": ours_model, "reference": with_pairwise_graphs(ours_model).to(DEVICE)}
    tasks = {name: VideoQATask(model, config) for name, model in models.items()}
    data = batches(WARMUP + ROUNDS * STEPS_PER_ROUND)

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
        def step(_: dict) -> None:
            inp = x.clone().requires_grad_(True)
            sum(layer(inp, gate).sum() for layer in graphs[name]).backward()
        return step

    report("videoqa_graph_attention_step", timed({n: graph_step(n) for n in models}, data), B * ROUNDS * STEPS_PER_ROUND)

    # 2. the whole training step
    optimizers = {name: torch.optim.Adam(task.parameters(), lr=1e-4) for name, task in tasks.items()}

    def train_step(name: str):
        def step(batch: dict) -> None:
            tasks[name](batch)["loss"].backward()
            torch.nn.utils.clip_grad_norm_(tasks[name].parameters(), 12.0)
            optimizers[name].step()
            optimizers[name].zero_grad(set_to_none=True)
        return step

    report("videoqa_train_step", timed({n: train_step(n) for n in tasks}, data), B * ROUNDS * STEPS_PER_ROUND)


if __name__ == "__main__":
    main()
