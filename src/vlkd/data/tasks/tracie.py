"""TRACIE (Zhou et al., NAACL 2021): temporal NLI over implicit events, in its official text files.

Each line is `event: QUERY story: CONTEXT\tanswer: positive|negative`; the folders `data/iid/` and
`data/uniform-prior/` hold one `tracie_train*.txt` and `tracie_test.txt`. TRACIE has no dev set: the
official test set is the evaluation split (fine-tuning always keeps the final model, so no choice is
ever made on it). The premise is the story, the hypothesis the event query.

Scores are the AllenAI leaderboard evaluator's (`total_acc`, `start_acc`, `end_acc`, `story_em`), and the
test predictions are written as that evaluator reads them: `tracie_predictions.txt`, one label per line in
test-file order, `entailment` (= positive) or `contradiction` (= negative).
"""

from __future__ import annotations

from pathlib import Path

from vlkd.data.tasks.spec import CLASSIFY, LST, TRACIE_SCORER, PairExample, TaskSpec, label_index
from vlkd.data.tasks.tsv import text_lines
from vlkd.errors import VlkdError

LABELS = ("negative", "positive")
LEADERBOARD_LABELS = ("contradiction", "entailment")  # the evaluator's names of LABELS, index for index
PREDICTIONS = "tracie_predictions.txt"


def split_file(data_dir: Path, split: str) -> Path:
    if split == "test":
        return data_dir / "tracie_test.txt"
    found = sorted(data_dir.glob("tracie_train*.txt"))
    if len(found) != 1:
        what = "no" if not found else "more than one"
        raise VlkdError(f"{what} training file tracie_train*.txt (expected exactly one)", data_dir)
    return found[0]


def read_tracie(data_dir: Path, split: str) -> list[PairExample]:
    path = split_file(data_dir, split)
    examples = []
    for line, text in text_lines(path):
        fields = text.rstrip("\n").split("\t")
        query, sep, story = fields[0].partition(" story: ")
        if len(fields) < 2 or not sep or not query.startswith("event: ") or not fields[1].startswith("answer: "):
            raise VlkdError(f"line {line}: expected 'event: ... story: ...<TAB>answer: LABEL'", path)
        label = label_index(LABELS, fields[1][len("answer: "):], path, line)
        examples.append(PairExample(story.strip(), query[len("event: "):].strip(), label, str(len(examples))))
    if not examples:
        raise VlkdError("no data lines", path)
    return examples


TRACIE = TaskSpec(name="tracie", kind=CLASSIFY, metrics=("total_acc", "start_acc", "end_acc", "story_em"),
                  read=read_tracie, train="train", dev=(("test", ""),), labels=LABELS, path=split_file,
                  scorer=TRACIE_SCORER, leaderboard_labels=LEADERBOARD_LABELS, dev_predictions=PREDICTIONS,
                  prediction_format=LST)
