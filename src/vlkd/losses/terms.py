"""Losses composed from config: a recipe's config lists its terms, this module looks each up in the registry,
applies its weight and returns the named values for logging. No recipe hard-codes which losses it adds.

A term in YAML:
    kd:
      - {loss: feature_kl, student: appearance, teacher: fused, weight: 1.0, args: {temperature: 1.0}}
`student` and `teacher` name the outputs (of the student and of the teacher side) that become the loss's
first two arguments; each recipe documents the names it offers. Shared inputs a recipe provides (a token
mask, sample indices) are passed to the losses whose signature takes them.
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Sequence

import torch
from torch import nn

from vlkd.config import bounded
from vlkd.errors import VlkdError
from vlkd.losses.registry import get_loss


@dataclass
class LossTerm:
    loss: str = ""  # a registered loss name (`vlkd ls losses`)
    weight: float = bounded(1.0, ge=0)
    student: str = ""  # the student-side output fed as the first argument
    teacher: str = ""  # the teacher-side output fed as the second argument
    args: dict[str, Any] = field(default_factory=dict)  # keyword arguments of the loss
    name: str = ""  # logged name; default: the loss name (with the student output when it repeats)


def term_names(terms: Sequence[LossTerm]) -> list[str]:
    """Logged names: `name`, else the loss name, else `loss_student` when a loss appears twice."""
    counts: dict[str, int] = {}
    for t in terms:
        counts[t.loss] = counts.get(t.loss, 0) + 1
    return [t.name or (t.loss if counts[t.loss] == 1 else f"{t.loss}_{t.student}") for t in terms]


def _parameters(fn: Callable) -> Mapping[str, inspect.Parameter]:
    target = fn.forward if isinstance(fn, type) else inspect.unwrap(fn)
    return inspect.signature(target).parameters


def check_terms(terms: Sequence[LossTerm], key: str, kinds: Sequence[str], student: Sequence[str],
                teacher: Sequence[str], module_args: Sequence[str] = ()) -> None:
    """Config-time check of a term list: known loss of an allowed kind, known outputs, known arguments,
    unique names. `module_args` are the constructor arguments a recipe supplies to module losses."""
    names = term_names(terms)
    if len(set(names)) != len(names):
        raise VlkdError(f"config key {key!r}: two terms log under the same name ({', '.join(names)}); "
                        "give them distinct `name:`s")
    for i, term in enumerate(terms):
        where = f"{key}[{i}]"
        if not term.loss:
            raise VlkdError(f"config key '{where}.loss' is required (a registered loss, see `vlkd ls losses`)")
        try:
            entry = get_loss(term.loss)
        except VlkdError as e:
            raise VlkdError(f"config key '{where}.loss': {e}") from None
        if entry.kind not in kinds:
            raise VlkdError(f"config key '{where}.loss': {term.loss} takes {entry.kind} inputs; this list takes "
                            f"{' or '.join(kinds)} losses")
        for side, value, offered in (("student", term.student, student), ("teacher", term.teacher, teacher)):
            if value not in offered:
                raise VlkdError(f"config key '{where}.{side}' must be one of {', '.join(offered)}, got {value!r}")
        params = _parameters(entry.fn)
        if entry.is_module:
            params = {**params, **inspect.signature(entry.fn.__init__).parameters}
        unknown = sorted(set(term.args) - set(params) - set(module_args))
        if unknown and not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            raise VlkdError(f"config key '{where}.args': {term.loss} takes no argument {unknown[0]!r} "
                            f"(it takes {', '.join(p for p in params if p not in ('self',))})")
        hints = typing.get_type_hints(entry.fn.forward if entry.is_module else inspect.unwrap(entry.fn))
        for arg, value in term.args.items():
            choices = typing.get_args(hints.get(arg)) if typing.get_origin(hints.get(arg)) is Literal else ()
            if choices and value not in choices:
                raise VlkdError(f"config key '{where}.args.{arg}' must be one of {', '.join(map(str, choices))}, "
                                f"got {value!r}")


class LossTerms(nn.Module):
    """The weighted sum of a config's loss terms. Module losses (with state, e.g. CRD's memory banks) are
    built here, once, with `module_args` from the recipe, and are submodules: trained and checkpointed."""

    def __init__(self, terms: Sequence[LossTerm], module_args: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.terms = list(terms)
        self.names = term_names(self.terms)
        self.stateful = nn.ModuleDict()
        for name, term in zip(self.names, self.terms):
            entry = get_loss(term.loss)
            if entry.is_module:
                self.stateful[name] = entry.fn(**{**(module_args or {}), **term.args})

    def forward(self, student: Mapping[str, Any], teacher: Mapping[str, Any], base: torch.Tensor | float = 0.0,
                **shared: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Returns (base + sum of weight x value, {name: value}), added term by term in config order.
        `shared` inputs (mask=..., index=...) go to the losses that take them."""
        total: torch.Tensor | float = base
        values: dict[str, torch.Tensor] = {}
        for name, term in zip(self.names, self.terms):
            if name in self.stateful:
                fn, kwargs = self.stateful[name], {}
            else:
                fn, kwargs = get_loss(term.loss).fn, dict(term.args)
            accepted = _parameters(type(fn) if isinstance(fn, nn.Module) else fn)
            kwargs.update({k: v for k, v in shared.items() if k in accepted})
            value = fn(student[term.student], teacher[term.teacher], **kwargs)
            values[name] = value
            total = total + term.weight * value
        return torch.as_tensor(total) if not isinstance(total, torch.Tensor) else total, values
