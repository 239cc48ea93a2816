"""Every registered loss, by its declared input kind: a finite fp32 scalar, the same value under CPU bf16
autocast as in fp32, and a gradient that reaches the student (first) argument. Composition from config."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vlkd.errors import VlkdError
from vlkd.losses import KINDS, LOSSES, LossTerm, LossTerms, check_terms, feature_kl, nst, teacher_gram


def example(kind: str, g: torch.Generator) -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
    """(positional inputs, keyword inputs, module constructor arguments) for a loss of `kind`."""
    mask = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0]])
    if kind == "tokens":
        return [F.normalize(torch.randn(4, 6, 8, generator=g), dim=-1),
                F.normalize(torch.randn(4, 6, 8, generator=g), dim=-1)], {"mask": mask}, {}
    if kind == "gram":
        return [F.normalize(torch.randn(4, 6, 8, generator=g), dim=-1),
                teacher_gram(F.normalize(torch.randn(4, 6, 12, generator=g), dim=-1), mask)], \
            {"mask": mask, "teacher_width": 12}, {}
    if kind == "sentences":
        return [torch.randn(4, 6, 8, generator=g), torch.randn(4, 6, 12, generator=g)], \
            {"index": torch.tensor([0, 3, 5, 7]), "mask": mask}, \
            {"student_dim": 8, "teacher_dim": 12, "num_samples": 10, "embed_dim": 4, "num_negatives": 5}
    if kind == "logits":
        return [torch.randn(4, 6, 9, generator=g), torch.randn(4, 6, 9, generator=g)], {}, {}
    if kind == "clips":
        return [torch.randn(4, 5, 8, generator=g), torch.randn(4, 5, 8, generator=g)], {}, {}
    if kind == "video_text":
        return [torch.randn(4, 6, 8, generator=g), torch.randn(4, 8, generator=g), mask], {}, {}
    if kind == "vokens":
        return [torch.randn(4, 6, 7, generator=g), torch.randint(7, (4, 6), generator=g)], {"mask": mask}, {}
    if kind == "masked_lm":
        labels = torch.full((4, 6), -100)
        labels[:, 1] = torch.randint(9, (4,), generator=g)
        head = nn.Linear(8, 9)
        return [torch.randn(4, 6, 8, generator=g), labels, head], {}, {}
    raise AssertionError(f"no example inputs for kind {kind!r}: add them here")


def test_every_kind_has_example_inputs() -> None:
    g = torch.Generator().manual_seed(0)
    for kind in KINDS:
        example(kind, g)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_registered_loss_is_fp32_scalar_same_under_bf16_autocast_with_student_gradient(name: str) -> None:
    entry = LOSSES[name]
    g = torch.Generator().manual_seed(1)
    args, kwargs, ctor = example(entry.kind, g)
    if entry.is_module:
        torch.manual_seed(0)
        fn = entry.fn(**ctor)
        fn_bf16 = entry.fn(**ctor)
        fn_bf16.load_state_dict(fn.state_dict())
    else:
        fn = fn_bf16 = entry.fn
    student = args[0].clone().requires_grad_(True)
    exact = fn(student, *args[1:], **kwargs)
    assert exact.dim() == 0 and exact.dtype == torch.float32 and torch.isfinite(exact), name
    exact.backward()
    assert student.grad is not None and student.grad.abs().sum() > 0, f"{name}: no gradient to the student"
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = fn_bf16(*[a.bfloat16() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
                        for a in args], **kwargs)
    assert low.dtype == torch.float32, f"{name}: computed in {low.dtype} under autocast"
    # inputs rounded to bf16 (8 bits of mantissa) move the value by about 1%; fp32 inside keeps it there
    torch.testing.assert_close(low, exact.detach(), rtol=3e-2, atol=3e-2, msg=name)


def test_full_precision_keeps_float64() -> None:
    x = torch.randn(2, 5, 4, dtype=torch.float64)
    assert nst(x, x.flip(0)).dtype == torch.float64


def test_terms_weight_and_name_each_loss() -> None:
    g = torch.Generator().manual_seed(2)
    a, m, f = (torch.randn(2, 3, 5, generator=g) for _ in range(3))
    terms = [LossTerm(loss="feature_kl", student="appearance", teacher="fused", weight=0.5, args={"temperature": 2.0}),
             LossTerm(loss="feature_kl", student="motion", teacher="fused", weight=3.0)]
    total, values = LossTerms(terms)({"appearance": a, "motion": m}, {"fused": f})
    assert list(values) == ["feature_kl_appearance", "feature_kl_motion"]
    expected = 0.5 * feature_kl(a, f, 2.0) + 3.0 * feature_kl(m, f, 1.0)
    torch.testing.assert_close(total, expected)
    torch.testing.assert_close(values["feature_kl_appearance"], feature_kl(a, f, 2.0))


def test_terms_pass_shared_inputs_only_to_losses_that_take_them() -> None:
    g = torch.Generator().manual_seed(3)
    s, t = F.normalize(torch.randn(2, 4, 6, generator=g), dim=-1), F.normalize(torch.randn(2, 4, 6, generator=g), dim=-1)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    logits_s, logits_t = torch.randn(3, 7, generator=g), torch.randn(3, 7, generator=g)
    terms = [LossTerm(loss="nst", student="hidden", teacher="hidden"),
             LossTerm(loss="soft_kl", student="logits", teacher="logits", args={"temperature": 2.0})]
    total, values = LossTerms(terms)({"hidden": s, "logits": logits_s}, {"hidden": t, "logits": logits_t}, mask=mask)
    torch.testing.assert_close(values["nst"], nst(s, t, mask))
    assert "mask" not in inspect.signature(inspect.unwrap(LOSSES["soft_kl"].fn)).parameters
    torch.testing.assert_close(total, values["nst"] + values["soft_kl"])


@pytest.mark.parametrize("term, message", [
    (LossTerm(loss="nsst", student="hidden", teacher="hidden"), "unknown loss 'nsst'"),
    (LossTerm(loss="paired_hinge", student="hidden", teacher="hidden"), "takes video_text inputs"),
    (LossTerm(loss="nst", student="hiden", teacher="hidden"), r"'kd\[0\]\.student' must be one of hidden"),
    (LossTerm(loss="nst", student="hidden", teacher="hidden", args={"temprature": 1}), "no argument 'temprature'"),
])
def test_check_terms_names_the_bad_key(term: LossTerm, message: str) -> None:
    with pytest.raises(VlkdError, match=message):
        check_terms([term], "kd", kinds=("tokens",), student=("hidden",), teacher=("hidden",))
