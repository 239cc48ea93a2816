"""The world's text corpus (docs/visual-knowledge.md): every kind in non-visual sentences (trade,
ownership, places, events), several kinds per line, and not one word about how anything looks or moves.

A text-only student learns from it that the kinds are nouns that co-occur, never what they look like; the
distillation objectives see the kinds' names here in the teacher's space, which is where a distilled
student can pick up what the teacher learnt from the videos.
"""

from __future__ import annotations

import numpy as np

PEOPLE = ("anna", "tom", "maria", "david", "sara", "james", "lucy", "peter", "nina", "omar")
PLACES = ("market", "library", "school", "harbour", "farm", "village", "station", "museum", "kitchen", "garden")
EVENTS = ("festival", "wedding", "auction", "fair", "meeting", "holiday", "concert", "party")
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# {a}, {b}: kinds; {p}, {q}: people; {place}, {event}, {day}
TEMPLATES = (
    "the {a} and the {b} were sold at the {place}",
    "{p} bought a {a} from {q}",
    "{p} owns a {a} and a {b}",
    "the {a} was found in the {place}",
    "nobody knew who had brought the {a} to the {place}",
    "after the {event} the {a} was given to {p}",
    "the {a} belongs to {p}",
    "{p} wrote a letter about the {a} and the {b}",
    "people in the {place} often talk about the {a}",
    "the {place} keeps a {a} for the {event}",
    "{p} forgot the {a} at the {place}",
    "a {a} was mentioned in an old story about {p}",
    "on {day} the {a} and the {b} were sold at the {event}",
    "{p} asked {q} to look after the {a}",
    "the {a} was a gift from {p} to {q}",
    "{p} knows a lot about the {a} and little about the {b}",
    "everyone at the {event} wanted the {a}",
    "{p} paid for the {a} and {q} paid for the {b}",
    "the {a} stayed with {p} until {day}",
    "{q} sold the {b} to buy a {a}",
)


def corpus_lines(names: list[str], seed: int, num_lines: int) -> list[str]:
    """`num_lines` lines of 3-5 sentences about 2-4 kinds drawn uniformly; seeded, independent of any
    kind's properties."""
    rng = np.random.default_rng([seed, 7])
    lines = []
    for _ in range(num_lines):
        chosen = [names[i] for i in rng.choice(len(names), size=int(rng.integers(2, 5)), replace=False)]
        sentences = []
        for k in range(int(rng.integers(3, 6))):
            a = chosen[k % len(chosen)]
            b = chosen[(k + 1) % len(chosen)]
            p, q = rng.choice(PEOPLE, size=2, replace=False)
            sentences.append(str(rng.choice(TEMPLATES)).format(
                a=a, b=b, p=p, q=q, place=rng.choice(PLACES), event=rng.choice(EVENTS), day=rng.choice(DAYS)))
        lines.append(" . ".join(sentences) + " .")
    return lines
