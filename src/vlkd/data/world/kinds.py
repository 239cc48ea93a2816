"""The synthetic world's object kinds (docs/visual-knowledge.md): nonce nouns, each with fixed visual
properties (colour, shape, size, characteristic motion) that the videos show and the text under-reports.

A quarter of the kinds are *probe kinds*: no caption or corpus sentence ever states their properties, so
only a model that learnt from the videos (the teacher) or from the teacher (a distilled student) can know
them. The table is fixed (it does not depend on the world's seed): every world shares kinds and probes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from vlkd.data.world.render import COLORS, SHAPES

# Pronounceable made-up words: none is an English word or a whole word of the bundled WordPiece vocabulary
# (tests/data/world/test_kinds.py); the tokenizer splits them into pieces, which is fine.
NAMES = ("wug", "blicket", "fep", "zorp", "tulver", "snib", "yarbo", "mif", "quiv", "drell", "fendle", "glorp",
         "nazzle", "pilk", "spog", "taffin", "vosk", "wemble", "zibber", "crandle", "dreb", "flim", "gazzer",
         "hobbin", "jurl", "klemp", "lorvish", "mabble", "nolt", "orbix", "pemble", "quazzle", "sarp", "tozzle",
         "vindle", "kiki", "bouba", "tupa", "frapo", "dimmox")
SIZES = ("small", "big")
# a kind's characteristic motion when it is the actor: slide = left or right, float = up or down
MOTIONS = ("bounce", "slide", "float", "grow", "shrink")
PROPERTIES = ("colour", "shape", "size", "motion")
PROBE_SHARE = 0.25
TABLE_SEED = 23


@dataclass(frozen=True)
class Kind:
    kind: str
    colour: str
    shape: str
    size: str
    motion: str
    split: str  # train | probe

    def row(self) -> dict[str, str]:
        """Its kinds.jsonl row (docs/formats.md)."""
        return asdict(self)


def _balanced(values: tuple[str, ...], n: int, rng: np.random.Generator) -> list[str]:
    """n values, each of `values` as often as possible (counts differ by at most one), in random order."""
    return [values[i] for i in rng.permutation(np.arange(n) % len(values))]


def make_kinds(names: tuple[str, ...] = NAMES, probe_share: float = PROBE_SHARE, seed: int = TABLE_SEED) -> list[Kind]:
    """The kinds table: balanced, independently shuffled properties; the probe kinds are a random
    `probe_share` of the kinds, redrawn until every value of every property remains among the train kinds
    (so a probe trained on the train kinds has seen every label)."""
    rng = np.random.default_rng(seed)
    n = len(names)
    values = {"colour": tuple(COLORS), "shape": SHAPES, "size": SIZES, "motion": MOTIONS}
    columns = {p: _balanced(v, n, rng) for p, v in values.items()}
    n_probe = int(round(probe_share * n))
    while True:
        probe = set(rng.choice(n, size=n_probe, replace=False).tolist())
        train = [i for i in range(n) if i not in probe]
        if all({columns[p][i] for i in train} == set(v) for p, v in values.items()):
            break
    return [Kind(name, columns["colour"][i], columns["shape"][i], columns["size"][i], columns["motion"][i],
                 "probe" if i in probe else "train") for i, name in enumerate(names)]


KINDS: tuple[Kind, ...] = tuple(make_kinds())
