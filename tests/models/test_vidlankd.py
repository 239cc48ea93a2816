"""`vlkd import vidlankd` on checkpoints with the reference's key names (transformers-3.3 `CoLwithBert`
state dicts, built here from a tiny BertConfig): the teacher serves a distillation run, the student
fine-tunes with its KD head equal to the imported tensors, and bad checkpoints are one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import AutoModelForMaskedLM, BertConfig, BertForMaskedLM

from tests.conftest import run_cli
from vlkd.cli import main
from vlkd.errors import VlkdError
from vlkd.data.tokenizer import BUNDLED_TOKENIZER
from vlkd.data.teacher.targets import prepare_teacher_targets
from vlkd.models.student import load_kd_head

FIXTURES = Path(__file__).parents[1] / "fixtures" / "finetune"
HIDDEN = 32
HEADS = {"teacher": {"visual_hinge_head": ("dense", "layer_norm", "linear_decoder")},
         "student": {"kd1_student_head": ("dense", "layer_norm", "decoder"),
                     "kd2_student_head": ("dense", "layer_norm", "decoder"),
                     "kd2_teacher_head": ("dense", "layer_norm", "decoder")}}


def reference_checkpoint(root: Path, role: str, seed: int) -> dict[str, torch.Tensor]:
    """ROOT/config.json + ROOT/pytorch_model.bin as the reference saves them; returns the state dict."""
    config = BertConfig(vocab_size=30522, hidden_size=HIDDEN, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    torch.manual_seed(seed)
    state = dict(BertForMaskedLM(config).state_dict())
    state["bert.embeddings.position_ids"] = torch.arange(128).unsqueeze(0)  # a buffer transformers 3.3 saved
    for head, parts in HEADS[role].items():
        for part in parts:
            norm = part == "layer_norm"
            state[f"{head}.{part}.weight"] = 1 + 0.1 * torch.randn(HIDDEN) if norm else torch.randn(HIDDEN, HIDDEN) / 6
            state[f"{head}.{part}.bias"] = 0.1 * torch.randn(HIDDEN)
    root.mkdir(parents=True)
    torch.save(state, root / "pytorch_model.bin")
    fields = {**config.to_dict(), "architectures": ["CoLwithBert"], "voken_size": None, "voken_dim": None,
              "do_kd1_objective": role == "student", "do_kd2_objective": role == "student", "margin": 0.5,
              "verbose": False, "use_clip": False, "transformers_version": "3.3.1"}
    (root / "config.json").write_text(json.dumps(fields))
    return state


def import_cli(checkpoint: Path, role: str, out: Path):
    return run_cli("import", "vidlankd", "--checkpoint", str(checkpoint), "--role", role, "--tokenizer",
                   BUNDLED_TOKENIZER, "--out", str(out))


def report_lines(stderr: str) -> dict[str, str]:
    lines = [line for line in stderr.splitlines() if line.startswith("vlkd: import:")]
    assert len(lines) == 2, stderr
    return {"unexpected": lines[0], "missing": lines[1]}


def assert_same_bert(model: BertForMaskedLM, state: dict[str, torch.Tensor]) -> None:
    own = model.state_dict()
    for key, value in state.items():
        if key.startswith(("bert.", "cls.")) and key in own:
            assert torch.equal(own[key], value), key


def test_teacher_imports_and_serves_a_two_step_distill_run(token_store: Path, tmp_path: Path) -> None:
    state = reference_checkpoint(tmp_path / "released", "teacher", seed=1)
    out = tmp_path / "teacher"
    result = import_cli(tmp_path / "released", "teacher", out)
    assert result.returncode == 0, result.stderr[-3000:]
    report = report_lines(result.stderr)
    assert "visual_hinge_head.dense" in report["unexpected"] and "(6 keys)" in report["unexpected"]
    assert "position_ids" not in report["unexpected"] and report["missing"].endswith(": none")
    assert sorted(p.name for p in (out / "final").iterdir()) == ["README.md", "text"]  # no video tower
    assert_same_bert(AutoModelForMaskedLM.from_pretrained(out / "final" / "text"), state)

    run = tmp_path / "student"
    result = run_cli("train", "distill-tiny", f"data.train={token_store}", f"teacher={out}", f"output_dir={run}",
                     "max_steps=2", "batch_size=4", "log_every=1", "eval_every=0", "save_every=2", "progress=false",
                     "model.num_layers=1", "model.hidden_size=64", "model.num_heads=2",
                     "model.intermediate_size=128", "model.max_position_embeddings=128")
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "nst" in r] == [1, 2]
    head = json.loads((run / "final" / "kd_head" / "config.json").read_text())
    assert head["teacher_width"] == HIDDEN
    meta = prepare_teacher_targets(out, token_store, tmp_path / "targets", progress=False)  # text only: no vokens
    assert meta["width"] == HIDDEN and not meta["vokens"]


def test_commands_that_need_a_video_tower_say_it_is_absent(token_store: Path, tmp_path: Path) -> None:
    reference_checkpoint(tmp_path / "released", "teacher", seed=1)
    out = tmp_path / "teacher"
    assert import_cli(tmp_path / "released", "teacher", out).returncode == 0
    (tmp_path / "data").mkdir()
    result = run_cli("evaluate", "retrieval", "--run", str(out), "--data", str(tmp_path / "data"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no video tower" in lines[0], result.stderr
    with pytest.raises(VlkdError, match="no video tower"):
        prepare_teacher_targets(out, token_store, tmp_path / "targets", vokens=True, progress=False)
    assert not (tmp_path / "targets").exists()


def test_student_imports_with_its_kd_head_and_finetunes(tmp_path: Path) -> None:
    state = reference_checkpoint(tmp_path / "released", "student", seed=2)
    out = tmp_path / "student"
    result = import_cli(tmp_path / "released", "student", out)
    assert result.returncode == 0, result.stderr[-3000:]
    report = report_lines(result.stderr)
    assert "kd2_student_head.dense" in report["unexpected"] and "kd2_teacher_head.decoder" in report["unexpected"]
    assert "kd1_student_head" not in report["unexpected"] and report["missing"].endswith(": none")
    final = out / "final"
    assert_same_bert(AutoModelForMaskedLM.from_pretrained(final), state)
    saved = load_file(final / "kd_head" / "model.safetensors")
    for ours, theirs in (("dense", "dense"), ("norm", "layer_norm"), ("out", "decoder")):
        for kind in ("weight", "bias"):
            assert torch.equal(saved[f"{ours}.{kind}"], state[f"kd1_student_head.{theirs}.{kind}"])
    # the reference's BertVLMSimpleHead forward, written out: dense -> erf GELU -> LayerNorm -> decoder -> L2
    x = torch.randn(2, 5, HIDDEN)
    p = {k.removeprefix("kd1_student_head."): v for k, v in state.items() if k.startswith("kd1_student_head.")}
    h = x @ p["dense.weight"].T + p["dense.bias"]
    h = h * 0.5 * (1 + torch.erf(h / 2 ** 0.5))
    h = F.layer_norm(h, (HIDDEN,), p["layer_norm.weight"], p["layer_norm.bias"], eps=1e-12)
    h = h @ p["decoder.weight"].T + p["decoder.bias"]
    expected = h / h.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(load_kd_head(final)(x), expected)

    card = (final / "README.md").read_text()
    assert "imported with `vlkd import vidlankd --role student`" in card and "No evaluation was run." in card
    tuned = tmp_path / "rte"
    assert main(["finetune", "--task", "rte", "--data-dir", str(FIXTURES / "RTE"), "--model", str(out),
                 "--out", str(tuned), "max_steps=2", "batch_size=4", "progress=false",
                 "data.eval_batch_size=3"]) == 0
    assert set(json.loads((tuned / "eval_results.json").read_text())) == {"accuracy"}


def test_missing_tensors_and_a_missing_kd_head_are_reported(tmp_path: Path) -> None:
    state = reference_checkpoint(tmp_path / "released", "student", seed=3)
    kept = {k: v for k, v in state.items() if not k.startswith(("kd1_", "cls.predictions.transform.dense."))}
    kept["bert.pooler.dense.weight"] = torch.zeros(HIDDEN, HIDDEN)  # older BertForMaskedLM saves had a pooler
    torch.save(kept, tmp_path / "released" / "pytorch_model.bin")
    result = import_cli(tmp_path / "released", "student", tmp_path / "out")
    assert result.returncode == 0, result.stderr[-3000:]
    report = report_lines(result.stderr)
    assert report["missing"].endswith("cls.predictions.transform.dense, kd1_student_head.* (3 keys)"), report
    assert report["unexpected"].startswith("vlkd: import: unexpected keys (not imported): bert.pooler.dense, ")
    assert not (tmp_path / "out" / "final" / "kd_head").exists()


class NotATensor:
    pass


@pytest.mark.parametrize("case", ["no-config", "pickled-object", "no-bert", "wrong-shape", "not-empty"])
def test_bad_checkpoints_are_one_line_exit_2(tmp_path: Path, case: str) -> None:
    src, out = tmp_path / "released", tmp_path / "out"
    state = reference_checkpoint(src, "teacher", seed=4)
    expected = {"no-config": "no config.json", "pickled-object": "weights_only", "no-bert": "not a BERT checkpoint",
                "wrong-shape": "has shape", "not-empty": "not empty"}[case]
    if case == "no-config":
        (src / "config.json").unlink()
    elif case == "pickled-object":
        torch.save({"x": NotATensor()}, src / "pytorch_model.bin")
    elif case == "no-bert":
        torch.save({k: v for k, v in state.items() if not k.startswith("bert.")}, src / "pytorch_model.bin")
    elif case == "wrong-shape":
        state["cls.predictions.transform.dense.bias"] = torch.zeros(HIDDEN + 1)
        torch.save(state, src / "pytorch_model.bin")
    else:
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    result = import_cli(src, "teacher", out)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vlkd: error:") and expected in lines[0], result.stderr
    assert (sorted(p.name for p in out.iterdir()) == ["keep.txt"]) if case == "not-empty" else not out.exists()
