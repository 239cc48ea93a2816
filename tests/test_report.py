"""`vlkd report`: metrics grouped by kind, each kind on its own axis; counts are not curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from vlkd import report
from vlkd.cli import main
from vlkd.report import BarPanel, metric_kind, plot_bars, plot_curves, plot_runs


def test_metric_kinds() -> None:
    assert [metric_kind(k) for k in ("loss", "valid_mlm", "l_dep", "valid_perplexity", "valid_r5", "accuracy",
                                     "valid_acc_where", "valid_gallery_size", "valid_median_rank", "lr",
                                     "tokens_per_s", "r5_chance")] == \
        ["loss", "loss", "loss", "perplexity", "rate", "rate", "rate", None, None, None, None, None]


def test_curves_put_each_kind_on_its_own_axis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    records = [{"step": 0, "valid_match": 3.0, "valid_perplexity": 3e4, "valid_r5": 0.1, "valid_gallery_size": 37.0},
               {"step": 10, "loss": 9.0, "match": 2.0, "mlm": 7.0, "lr": 1e-3},
               {"step": 10, "valid_match": 1.0, "valid_perplexity": 60.0, "valid_r5": 0.8, "valid_gallery_size": 37.0}]
    figures = []
    monkeypatch.setattr(report, "_save", lambda fig, path: figures.append(fig))
    keys = plot_curves(records, tmp_path / "c.png", "run")
    assert "valid_gallery_size" not in keys and "lr" not in keys
    axes = {ax.get_title(): ax for ax in figures[0].axes if ax.lines}
    assert set(axes) == {"total loss", "loss: match", "loss: mlm", "perplexity", "accuracy / recall"}
    assert axes["perplexity"].get_yscale() == "log"
    assert axes["accuracy / recall"].get_ylim() == (0, 1.02)
    assert {line.get_label() for line in axes["loss: match"].lines} == {"training match", "validation match"}
    assert all(ax.get_xlabel() == "step" and ax.get_ylabel() for ax in axes.values())
    plt.close("all")


def test_bars_and_runs_write_pngs(tmp_path: Path) -> None:
    panel = BarPanel("grounding", "R@5 (0-1)", ["head", "probe"], {"a": [(0.2, 0.01), (0.9, 0.0)],
                                                                   "b": [(0.3, 0.02), (0.8, 0.1)]},
                     ylim=(0, 1), lines={"chance": 0.05})
    plot_bars([panel], tmp_path / "bars.png", "title")
    plot_runs({"a": [{"step": 0, "valid_perplexity": 100.0}, {"step": 5, "valid_perplexity": 50.0}]},
              "valid_perplexity", tmp_path / "ppl.png", "ppl", "perplexity", log=True)
    assert (tmp_path / "bars.png").read_bytes()[:4] == (tmp_path / "ppl.png").read_bytes()[:4] == b"\x89PNG"


def _report_cli(run: Path, lines: list[bytes], capsys: pytest.CaptureFixture) -> tuple[int, list[str]]:
    run.mkdir()
    (run / "metrics.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    code = main(["report", str(run)])
    return code, capsys.readouterr().err.strip().splitlines()


def test_report_on_a_record_without_step_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, err = _report_cli(tmp_path / "run", [b'{"step": 1, "loss": 2.0}', b'{"loss": 1.5}'], capsys)
    assert code == 2 and len(err) == 1 and "record 2 has no integer 'step'" in err[0], err
    assert not (tmp_path / "run" / "report.md").exists()


def test_report_on_a_non_utf8_line_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, err = _report_cli(tmp_path / "run", [b'{"step": 1, "loss": 2.0}', b'{"step": 2, "loss": 1.\xff5}',
                                               b'{"step": 3, "loss": 1.0}'], capsys)
    assert code == 2 and len(err) == 1 and "line 2 is not UTF-8 text" in err[0], err
    assert not (tmp_path / "run" / "report.md").exists()


@pytest.mark.parametrize("tail", [b'{"step": 3, "lo', b'{"step": 3, "loss": "\xe2\x82'], ids=["json", "utf8"])
def test_report_says_it_left_out_a_torn_last_line(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                  tail: bytes) -> None:
    code, err = _report_cli(tmp_path / "run", [b'{"step": 1, "loss": 2.0}', b'{"step": 2, "loss": 1.5}', tail],
                            capsys)
    assert code == 0
    assert err == [f"vlkd: note: left out the torn last line of {tmp_path / 'run' / 'metrics.jsonl'} (line 3, "
                   "written when the run was killed)"]
    assert "| last log | 2 | 1.5000 |" in (tmp_path / "run" / "report.md").read_text()
