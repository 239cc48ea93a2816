"""`precision: auto` on a CPU: bf16 autocast where the CPU has native bf16 matrix support, fp32 elsewhere
(the detection faked both ways), said in the run log; explicit choices and the environment override."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from vlkd.cli import main
from vlkd.engine import precision
from vlkd.engine.precision import cpu_native_bf16, resolve_precision
from vlkd.errors import VlkdError

AMX_FLAGS = {"fpu", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"}
EPYC_FLAGS = {"fpu", "avx2", "fma"}


@pytest.fixture(autouse=True)
def cpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(precision.ENV_OVERRIDE, raising=False)  # conftest pins 0 for the rest of the suite
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def fake_cpu(monkeypatch: pytest.MonkeyPatch, flags: set[str]) -> None:
    monkeypatch.setattr(precision, "cpu_flags", lambda: flags)


def test_flags_are_read_from_cpuinfo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Xeon\nflags\t\t: fpu avx512_bf16 amx_bf16\n\n")
    monkeypatch.setattr(precision, "CPUINFO", cpuinfo)
    assert precision.cpu_flags() == {"fpu", "avx512_bf16", "amx_bf16"}
    assert cpu_native_bf16() == (True, "CPU has amx_bf16, avx512_bf16")
    monkeypatch.setattr(precision, "CPUINFO", tmp_path / "missing")
    assert precision.cpu_flags() == set() and not cpu_native_bf16()[0]


@pytest.mark.parametrize("flags, expected", [(AMX_FLAGS, "bf16"), ({"avx512_bf16"}, "bf16"), (EPYC_FLAGS, "fp32")])
def test_auto_follows_the_cpu(monkeypatch: pytest.MonkeyPatch, flags: set[str], expected: str) -> None:
    fake_cpu(monkeypatch, flags)
    chosen, why = resolve_precision("auto")
    assert chosen == expected and why.startswith("auto: CPU")


def test_explicit_choices_and_the_override(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cpu(monkeypatch, AMX_FLAGS)
    assert resolve_precision("fp32") == ("fp32", "set in the config")
    monkeypatch.setenv(precision.ENV_OVERRIDE, "0")
    assert resolve_precision("auto") == ("fp32", f"auto: {precision.ENV_OVERRIDE}=0")
    fake_cpu(monkeypatch, EPYC_FLAGS)
    assert resolve_precision("bf16")[0] == "bf16"  # bf16 can be asked for on any CPU (emulated: slow)
    monkeypatch.setenv(precision.ENV_OVERRIDE, "1")
    assert resolve_precision("auto")[0] == "bf16"
    with pytest.raises(VlkdError, match="fp16 needs a GPU"):
        resolve_precision("fp16")


@pytest.mark.parametrize("flags, expected", [(AMX_FLAGS, torch.bfloat16), (EPYC_FLAGS, torch.float32)])
def test_vlkd_train_runs_and_says_the_chosen_precision(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
                                                       token_store: Path, tmp_path: Path, flags: set[str],
                                                       expected: torch.dtype) -> None:
    fake_cpu(monkeypatch, flags)
    dtypes: set[torch.dtype] = set()

    def linear_output(module: nn.Module, args: tuple, output: object) -> None:
        if isinstance(module, nn.Linear) and module.training:
            dtypes.add(output.dtype)

    handle = nn.modules.module.register_module_forward_hook(linear_output)
    try:
        code = main(["train", "mlm-tiny", f"data.train={token_store}", f"output_dir={tmp_path / 'run'}",
                     "max_steps=2", "batch_size=4", "log_every=1", "save_every=2", "eval_every=0",
                     "data.valid_blocks=8", "eval_batches=1", "progress=false"])
    finally:
        handle.remove()
    assert code == 0
    log = capsys.readouterr().err
    name = "bf16" if expected == torch.bfloat16 else "fp32"
    assert f"precision {name} (auto: CPU" in log, log
    # the encoder's matmuls ran in that precision (MLM's vocabulary head is part of the `mlm` loss, which
    # runs in fp32 under autocast by design: losses/registry.py)
    assert dtypes == ({torch.bfloat16, torch.float32} if expected == torch.bfloat16 else {torch.float32})


def test_compile_is_opt_in_and_in_place(monkeypatch: pytest.MonkeyPatch, token_store: Path, tmp_path: Path) -> None:
    fake_cpu(monkeypatch, EPYC_FLAGS)
    compiled: list[str] = []
    monkeypatch.setattr(nn.Module, "compile", lambda self, *a, **kw: compiled.append(type(self).__name__))
    args = ["train", "mlm-tiny", f"data.train={token_store}", "max_steps=1", "batch_size=4", "save_every=1",
            "data.valid_blocks=8", "eval_batches=1", "progress=false"]
    assert main([*args, f"output_dir={tmp_path / 'plain'}"]) == 0 and compiled == []
    assert main([*args, f"output_dir={tmp_path / 'compiled'}", "compile=true"]) == 0
    assert compiled == ["MaskedLM"]  # the training module, compiled in place (its state dict keeps its names)
