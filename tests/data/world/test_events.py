"""`prepare world --events`: every question is answered by an oracle over the scene's ground truth (an
independent parser of the questions), and the questions marked as needing several clips are not determined
by any single clip's ground truth (a changed scene that keeps that clip's event gives another answer)."""

from __future__ import annotations

import itertools
import re
from dataclasses import replace

from vlkd.data.world.events import COUNTS, EVENT_SLOTS, TYPES, EventScene, end_x
from vlkd.data.world.generate import DIRECTIONS, sample_events

SCENES = [sample_events(3, i) for i in range(40)]


def _find(scene: EventScene, colour: str | None = None, shape: str | None = None) -> int:
    hits = [i for i, o in enumerate(scene.objects) if colour in (None, o.color) and shape in (None, o.shape)]
    assert len(hits) == 1, "a question must name exactly one object"
    return hits[0]


def oracle(scene: EventScene, question: str) -> str | None:
    """The answer read off the ground truth (objects, time-ordered events); None: the scene cannot answer it."""
    events = sorted(scene.events, key=lambda e: e.start)
    objs = scene.objects
    if m := re.fullmatch(r"what color is the (\w+)\?", question):
        return objs[_find(scene, shape=m[1])].color
    if m := re.fullmatch(r"what shape is the (\w+) object\?", question):
        return objs[_find(scene, colour=m[1])].shape
    if question == "how many objects are there?":
        return COUNTS[len(objs)]
    if question == "which shape moves first?":
        return objs[events[0].actor].shape if events else None
    if question == "which shape moves last?":
        return objs[events[-1].actor].shape if events else None
    if m := re.fullmatch(r"how many times does the (\w+) (\w+) move\?", question):
        return COUNTS[sum(e.actor == _find(scene, m[1], m[2]) for e in events)]
    if m := re.fullmatch(r"which way does the (\w+) (\w+) move first\?", question):
        mine = [e for e in events if e.actor == _find(scene, m[1], m[2])]
        return mine[0].direction if mine else None
    if m := re.fullmatch(r"which shape moves next after the (\w+) (\w+)\?", question):
        me = _find(scene, m[1], m[2])
        first = next((k for k, e in enumerate(events) if e.actor == me), None)
        return objs[events[first + 1].actor].shape if first is not None and first + 1 < len(events) else None
    if m := re.fullmatch(r"is the (\w+) (\w+) left of the (\w+) (\w+) at the end\?", question):
        a, b = _find(scene, m[1], m[2]), _find(scene, m[3], m[4])
        return "yes" if end_x(scene, a, DIRECTIONS) < end_x(scene, b, DIRECTIONS) else "no"
    raise AssertionError(f"the oracle does not know the question {question!r}")


def test_every_question_is_answered_by_the_oracle_and_every_type_occurs() -> None:
    seen = set()
    for scene in SCENES:
        assert 2 <= len(scene.events) <= 3 and len({e.slot for e in scene.events}) == len(scene.events)
        for q in scene.questions:
            assert oracle(scene, q["question"]) == q["answer"], q
            assert q["needs"] == TYPES[q["type"]] and q["clips"] in ("one", "several")
            seen.add(q["type"])
    assert seen == set(TYPES)
    several = {q["type"] for s in SCENES for q in s.questions if q["clips"] == "several"}
    assert several == {"first", "last", "next", "count_moves", "first_direction"}


def test_questions_needing_several_clips_are_not_answered_by_any_single_clip() -> None:
    """For every such question and every slot: some scene that keeps the slot's event (or its stillness) and
    changes only the other slots' events answers it differently."""
    checked = 0
    for scene in SCENES:
        for q in (q for q in scene.questions if q["clips"] == "several"):
            for slot in range(EVENT_SLOTS):
                kept = [e for e in scene.events if e.slot == slot]
                template = scene.events[0]
                others = [s for s in range(EVENT_SLOTS) if s != slot]
                options = [None] + [(a, d) for a in range(len(scene.objects)) for d in ("left", "up")]
                differs = False
                for choice in itertools.product(options, repeat=len(others)):
                    events = kept + [replace(template, slot=s, actor=c[0], direction=c[1], start=float(s),
                                             end=s + 0.5) for s, c in zip(others, choice) if c is not None]
                    for e in kept:  # keep the kept event's time order
                        events[events.index(e)] = replace(e, start=float(e.slot), end=e.slot + 0.5)
                    other = oracle(replace(scene, events=events), q["question"])
                    if other is not None and other != q["answer"]:
                        differs = True
                        break
                assert differs, (q, slot)
                checked += 1
    assert checked > 200
