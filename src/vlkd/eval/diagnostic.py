"""GLUE diagnostics scored by category: an MNLI model on the labelled `diagnostic-full.tsv`.

R3 (GLUE's three-class Matthews correlation) overall, per coarse category (Lexical Semantics,
Predicate-Argument Structure, Logic, Knowledge: an example counts in a category when it has any of its
fine-grained labels) and per fine-grained label ("Knowledge/World knowledge"), each with its count. This is
the table VidLanKD reads "world knowledge" from. The unlabelled `diagnostic.tsv` only gives `AX.tsv`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from accelerate import PartialState
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from vlkd.data.tasks.encode import PadCollate, encode_pairs
from vlkd.data.tasks.glue import AX_CATEGORIES, read_diagnostic_full
from vlkd.data.tasks.registry import get_task
from vlkd.data.tasks.spec import CLASSIFY
from vlkd.data.tokenizer import load_tokenizer
from vlkd.errors import VlkdError
from vlkd.eval.metrics import r3_by_category
from vlkd.eval.predict import predict
from vlkd.io import write_json_atomic
from vlkd.models.heads import TaskModel, load_classifier
from vlkd.rundir import RunDir


def load_mnli_classifier(model: str | Path) -> PreTrainedModel:
    """A fine-tuned MNLI classifier (its labels are the leaderboard's three names), or a one-line error."""
    path = Path(model)
    if not (path / "config.json").is_file():
        raise VlkdError("model: not a directory with config.json (a save_pretrained output)", path)
    return load_classifier(path, get_task("mnli"))


def score_diagnostic(classifier: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, data: str | Path,
                     max_length: int = 126, batch_size: int = 64) -> dict[str, Any]:
    """R3 with counts, overall / per coarse category / per fine-grained label, of `classifier` on `data`."""
    examples = read_diagnostic_full(Path(data))
    module = TaskModel(classifier, CLASSIFY).to(PartialState().device).eval()
    items = encode_pairs([e.pair for e in examples], tokenizer, max_length)
    logits = predict(module.logits, items, PadCollate(tokenizer.pad_token_id or 0), batch_size)
    result = r3_by_category(logits.argmax(-1).tolist(), [e.pair.label for e in examples],
                            [e.categories for e in examples])
    result["coarse"] = {c: result["coarse"].get(c, {"r3": 0.0, "count": 0}) for c in AX_CATEGORIES}
    return {"data": str(data), "metric": "r3 (3-class Matthews correlation)", **result}


def evaluate_diagnostic(model: str, data: str, out: str | None = None, tokenizer: str = "",
                        max_length: int = 126, batch_size: int = 64) -> tuple[dict[str, Any], Path]:
    """`vlkd evaluate diagnostic`: score, write OUT.json (default: next to MODEL's run, `diagnostic.json`)."""
    classifier = load_mnli_classifier(model)
    result = score_diagnostic(classifier, load_tokenizer(tokenizer or model), data, max_length, batch_size)
    result["model"] = str(model)
    model_dir = Path(model)
    run = model_dir.parent if RunDir(model_dir.parent).final == model_dir else model_dir
    target = Path(f"{out}.json") if out else RunDir(run).diagnostic
    if PartialState().is_main_process:
        write_json_atomic(target, result)
    return result, target


def diagnostic_table(result: dict[str, Any]) -> str:
    """The result as a plain-text table: overall, each coarse category, then its fine-grained labels."""
    rows = [("overall", result["overall"])]
    for coarse in AX_CATEGORIES:
        rows.append((coarse, result["coarse"][coarse]))
        rows += [(f"  {name.split('/', 1)[1]}", v) for name, v in result["fine"].items()
                 if name.split("/", 1)[0] == coarse]
    width = max(len(name) for name, _ in rows)
    lines = [f"{'category':<{width}}  {'R3 x100':>7}  {'count':>5}"]
    lines += [f"{name:<{width}}  {100 * v['r3']:>7.2f}  {v['count']:>5}" for name, v in rows]
    return "\n".join(lines)
