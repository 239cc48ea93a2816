"""Each loss term's share of the gradient norm (docs/run-directory.md, `grad_share_<term>`): does a KD term
act on the student at all, or is it too small to matter next to the MLM loss?

Measured at evaluations only, on one fixed batch: one forward and one gradient per term. Gradients are
taken with `torch.autograd.grad`, so nothing accumulates in `.grad`; the global RNG is forked, so the
training run draws exactly what it would without the measurement.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterable

import torch
from torch import nn

LossTermsFn = Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]


def term_gradient_norms(module: nn.Module, batch: dict[str, torch.Tensor], loss_terms: LossTermsFn,
                        parameters: Iterable[nn.Parameter],
                        autocast: contextlib.AbstractContextManager | None = None) -> dict[str, float]:
    """||d(weighted term)/d(parameters)||_2 per term, from one forward of `module` on `batch`.

    `loss_terms` maps the module's outputs to the weighted terms whose sum is the optimised loss. The caller
    sets the module's mode (eval: no dropout) and restores it afterwards."""
    params = [p for p in parameters if p.requires_grad]
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices), torch.enable_grad(), autocast or contextlib.nullcontext():
        terms = loss_terms(module(batch))
    norms: dict[str, float] = {}
    names = list(terms)
    for i, name in enumerate(names):
        value = terms[name]
        if not value.requires_grad:
            norms[name] = 0.0
            continue
        grads = torch.autograd.grad(value, params, retain_graph=i < len(names) - 1, allow_unused=True)
        present = [torch.linalg.vector_norm(g.float()) for g in grads if g is not None]
        norms[name] = float(torch.linalg.vector_norm(torch.stack(present))) if present else 0.0
    return norms


def shares(norms: dict[str, float]) -> dict[str, float]:
    """share_t = ||g_t|| / sum_u ||g_u||, logged as `grad_share_<t>` (all 0 when no term has a gradient)."""
    total = sum(norms.values())
    return {f"grad_share_{name}": (norm / total if total > 0 else 0.0) for name, norm in norms.items()}
