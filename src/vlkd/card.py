"""Model cards: a README.md in the Hugging Face model-card layout (YAML front matter, then what the model
is, how it was trained, its evaluation results, how to load it) in a run's final/ and best/, written from
the run's own files only (config.yaml, results.json, eval_results.json, best/selection.json,
metrics.jsonl), so every number in a card is one of theirs, printed in full.

The engine writes the cards once a run is complete; `vlkd import` writes one for the model it imports.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from vlkd.io import read_json, write_text_atomic
from vlkd.rundir import BEST, EVAL_RESULTS, FINAL, RESULTS, SELECTION, RunDir, load_run_config, read_metrics

CARD = "README.md"


# task -> (what the model is, pipeline tag, how to load PATH)
KINDS: dict[str, tuple[str, str, str]] = {
    "mlm": ("A text-only BERT trained with masked language modelling (the VidLanKD baseline).", "fill-mask",
            "from transformers import AutoModelForMaskedLM, AutoTokenizer\n"
            "model = AutoModelForMaskedLM.from_pretrained(PATH)\ntokenizer = AutoTokenizer.from_pretrained(PATH)"),
    "distill": ("A text-only BERT student distilled from the text tower of a video-language teacher (VidLanKD): "
                "masked language modelling plus KD terms. Its KD head (dense, GELU, LayerNorm, Linear to "
                "the teacher's width, L2 norm) is in `kd_head/` when it has one.", "fill-mask",
                "from transformers import AutoModelForMaskedLM, AutoTokenizer\n"
                "model = AutoModelForMaskedLM.from_pretrained(PATH)\ntokenizer = AutoTokenizer.from_pretrained(PATH)\n"
                "from vlkd.models.student import has_kd_head, load_kd_head\n"
                "head = load_kd_head(PATH) if has_kd_head(PATH) else None"),
    "teacher": ("A video-language teacher (VidLanKD): a BERT text tower in `text/` and, unless imported text-only, "
                "a transformer video tower in `video/`, trained with masked language modelling and video-text "
                "matching.", "feature-extraction",
                "from vlkd.models.teacher import load_teacher\n"
                "teacher = load_teacher(PATH, video=False)  # video=True needs the video tower\n"
                "# the text tower alone: transformers.AutoModelForMaskedLM.from_pretrained(PATH + '/text')"),
    "finetune": ("A BERT fine-tuned on a downstream task (`vlkd finetune`).", "text-classification",
                 "from vlkd.models.heads import load_pretrained\nmodel = load_pretrained(PATH)  # encoder + task head\n"
                 "# the encoder alone: transformers.AutoModel.from_pretrained(PATH)"),
    "videoqa": ("A DualVGR VideoQA model (teacher, or a one-layer student with feature KD).", "visual-question-answering",
                "# vlkd evaluate videoqa --run RUN   (scores the run's best/ or final/)"),
}


def _number(value: Any) -> str:
    """A metric exactly as its JSON file holds it."""
    return json.dumps(value)


def _numbers(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "step"}


def _training(config: dict[str, Any], steps: Any) -> list[str]:
    task = config.get("task", "?")
    imported = config.get("imported")
    if isinstance(imported, dict):
        return [f"- imported with `vlkd import {imported.get('from')} --role {imported.get('role')}` from "
                f"`{imported.get('checkpoint')}` (pytorch_model.bin sha256 `{imported.get('weights_sha256')}`); "
                "not trained by vlkd",
                f"- not imported (checkpoint tensors): {', '.join(imported.get('unexpected') or []) or 'none'}",
                f"- missing (freshly initialised): {', '.join(imported.get('missing') or []) or 'none'}"]
    lines = [f"- recipe: `task: {task}` (vlkd)"]
    data = config.get("data")
    if isinstance(data, dict):
        shown = {k: v for k, v in data.items() if isinstance(v, str) and v}
        lines.append("- data: " + (", ".join(f"{k} `{v}`" for k, v in shown.items()) or "see config.yaml"))
    lines.append(f"- steps: {steps} (batch size {config.get('batch_size')}, lr {config.get('lr')}, "
                 f"seed {config.get('seed')})")
    if config.get("teacher"):
        lines.append(f"- teacher: `{config['teacher']}`")
    for key in ("kd", "matching"):
        terms = config.get(key, {}).get("terms") if key == "kd" and isinstance(config.get(key), dict) else config.get(key)
        if isinstance(terms, list) and terms:
            lines.append(f"- {key} terms: " + ", ".join(f"{t.get('loss')} (weight {t.get('weight', 1.0)})"
                                                       for t in terms if isinstance(t, dict)))
    model = config.get("model")
    if isinstance(model, dict) and "hidden_size" in model:
        lines.append(f"- model: {model.get('num_layers')} layers, hidden size {model.get('hidden_size')}"
                     + (f", initialised from `{model['init_from']}`" if model.get("init_from") else ""))
    return lines


def _card(run_dir: Path, which: str, config: dict[str, Any], results: dict[str, Any]) -> str:
    task = str(config.get("task", "?"))
    what, tag, load = KINDS.get(task, (f"A model of `task: {task}`.", "other", "# see docs/commands.md"))
    evaluation: dict[str, Any] = {}
    if which == BEST and (run_dir / BEST / SELECTION).is_file():
        selection = read_json(run_dir / BEST / SELECTION)
        step = selection.get("step")
        chosen = f"chosen at step {step} on `{selection.get('metric')}` = {_number(selection.get('value'))}"
        for record in read_metrics(RunDir(run_dir).metrics):
            if record.get("step") == step and any(str(k).startswith("valid_") for k in record):
                evaluation = _numbers(record)
        steps: Any = step
        source = f"the evaluation at step {step} (metrics.jsonl)"
    else:
        chosen = "the imported model" if isinstance(config.get("imported"), dict) else "the model at the last step"
        evaluation = _numbers(results)
        steps = results.get("step", config.get("max_steps"))
        source = f"`{RESULTS}`"
        if (run_dir / EVAL_RESULTS).is_file():
            evaluation |= _numbers(read_json(run_dir / EVAL_RESULTS))
            source += f" and `{EVAL_RESULTS}` (the task's official dev metrics)"
    front = {"library_name": "transformers" if task != "videoqa" else "vlkd", "pipeline_tag": tag,
             "tags": ["vlkd", task]}
    lines = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "",
             f"# {run_dir.name}/{which}", "", what, "", f"This is {chosen} of the run `{run_dir}`.", "",
             "## Training", "", *_training(config, steps), "", "The whole resolved config is `../config.yaml`.", "",
             "## Evaluation", ""]
    if evaluation:
        lines += [f"From {source}:", "", "| metric | value |", "|---|---|",
                  *(f"| {k} | {_number(v)} |" for k, v in evaluation.items()), ""]
    else:
        lines += ["No evaluation was run.", ""]
    lines += ["## How to load", "", "```python", f"PATH = {str(run_dir / which)!r}", load, "```", ""]
    return "\n".join(lines)


def write_model_cards(run_dir: str | Path) -> list[Path]:
    """README.md in RUN/final and RUN/best (those that exist); returns the cards written."""
    run_dir = Path(run_dir)
    config = load_run_config(run_dir)
    results = read_json(run_dir / RESULTS) if (run_dir / RESULTS).is_file() else {}
    written = []
    for which in (FINAL, BEST):
        if (run_dir / which).is_dir():
            write_text_atomic(run_dir / which / CARD, _card(run_dir, which, config, results))
            written.append(run_dir / which / CARD)
    return written
