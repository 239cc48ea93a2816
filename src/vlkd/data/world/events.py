"""Scenes with several events (`vlkd prepare world --events`): a VideoQA world whose questions need relating
clips to each other, the reasoning DualVGR's stacked graph layers are for (docs/formats.md).

Each video shows 2-3 objects of distinct shapes and distinct colours. The video's time is cut into
EVENT_SLOTS equal slots; 2-3 of them (at random) each hold one event, a short move (left/right/up/down) of
one object centred in its slot, so an object can move, stop and move again. With 4 clips per video
(the quickstart's), HCRN's clips are centred on the slots and each clip sees at most one event.

Questions, each marked by its type and by whether one clip's ground truth can answer it (`clips`: one)
or only several clips taken together (`clips`: several, decided per question): the order of events (which shape moves first /
last / next after another), counting over time (how many times an object moves), an object's first
direction, and appearance (colour of a shape, shape of a colour, number of objects, which of two objects
is further left at the end).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vlkd.data.world.kinds import Kind
from vlkd.data.world.render import Pose, render_frame

EVENT_SLOTS = 4
EVENT_LENGTH = 0.6  # seconds; a 16-frame clip at 24 fps lasts 0.67 s
EVENT_SPEED = 40.0  # pixels per second: a move covers 24 pixels
COUNTS = {0: "zero", 1: "one", 2: "two", 3: "three"}
# question type -> what it needs
TYPES = {"colour": "appearance", "shape": "appearance", "count_objects": "appearance", "relation": "appearance",
         "first": "motion", "last": "motion", "next": "motion", "count_moves": "motion", "first_direction": "motion"}


@dataclass
class Event:
    slot: int  # 0..EVENT_SLOTS-1
    actor: int  # index into the scene's objects
    direction: str  # left | right | up | down
    start: float
    end: float


@dataclass
class EventScene:
    video_id: int
    objects: list  # WorldObject: shape, color, size, kind, start position (x, y); action "stay"
    events: list[Event]
    background: int
    questions: list[dict] = field(default_factory=list)

    def pose(self, index: int, t: float, size_of: dict[str, float], directions: dict) -> Pose:
        """Where object `index` is at time t: its start position plus its moves so far."""
        o = self.objects[index]
        x, y = o.x, o.y
        for e in self.events:
            if e.actor == index:
                u = min(max((t - e.start) / (e.end - e.start), 0.0), 1.0)
                dx, dy = directions[e.direction]
                x, y = x + dx * EVENT_SPEED * EVENT_LENGTH * u, y + dy * EVENT_SPEED * EVENT_LENGTH * u
        return Pose(x, y, size_of[o.size])


def slot_centre(slot: int, duration: float) -> float:
    """The middle of a slot: HCRN's clip centres, linspace(0, T, SLOTS + 2)[1:-1]."""
    return duration * (slot + 1) / (EVENT_SLOTS + 1)


def sample_event_scene(seed: int, video_id: int, kinds: tuple[Kind, ...], make_object, size: int,
                       radius: dict[str, float], directions: dict, duration: float) -> EventScene:
    """One scene with several events: a pure function of (seed, video_id). `make_object(kind, x, y)` builds a
    still object; the other arguments are the world's geometry (generate.py)."""
    rng = np.random.default_rng([seed, video_id, 7])
    count = int(rng.integers(2, 4))
    order = rng.permutation(len(kinds))
    chosen: list[Kind] = []
    for i in order:  # distinct shapes and colours, so "the square" / "the red object" name one object
        k = kinds[int(i)]
        if all(k.shape != c.shape and k.colour != c.colour for c in chosen):
            chosen.append(k)
        if len(chosen) == count:
            break
    n_events = int(rng.integers(2, 4))
    slots = sorted(rng.choice(EVENT_SLOTS, size=n_events, replace=False).tolist())
    actors = rng.integers(0, count, size=n_events)
    names = tuple(directions)
    dirs = rng.integers(0, len(names), size=n_events)
    travel = EVENT_SPEED * EVENT_LENGTH
    objects = []
    for k in chosen:
        r = radius[k.size]
        lo, hi = r + 2, size - r - 2
        for _ in range(30):
            x, y = rng.uniform(lo, hi, size=2)
            if all(np.hypot(x - o.x, y - o.y) > r + radius[o.size] + 6 for o in objects):
                break
        objects.append(make_object(k, float(x), float(y)))
    opposite = {"left": "right", "right": "left", "up": "down", "down": "up"}
    where = [[o.x, o.y] for o in objects]
    events = []
    for slot, actor, d in zip(slots, actors, dirs):
        name, r = names[int(d)], radius[objects[int(actor)].size]
        dx, dy = directions[name]
        x, y = where[int(actor)][0] + dx * travel, where[int(actor)][1] + dy * travel
        if not (r + 2 <= x <= size - r - 2 and r + 2 <= y <= size - r - 2):  # it would leave the frame: turn
            name = opposite[name]
            dx, dy = directions[name]
        where[int(actor)][0] += dx * travel
        where[int(actor)][1] += dy * travel
        centre = slot_centre(slot, duration)
        events.append(Event(slot, int(actor), name, centre - EVENT_LENGTH / 2, centre + EVENT_LENGTH / 2))
    scene = EventScene(video_id, objects, events, int(rng.integers(15, 60)))
    scene.questions = event_questions(scene, rng, directions)
    return scene


def render_event_scene(scene: EventScene, size: int, fps: int, duration: float, radius: dict[str, float],
                       directions: dict) -> list[np.ndarray]:
    frames = []
    for k in range(int(duration * fps)):
        t = k / fps
        drawn = [(o.shape, o.color, scene.pose(i, t, radius, directions))
                 for i, o in reversed(list(enumerate(scene.objects)))]
        frames.append(render_frame(size, scene.background, drawn))
    return frames


def _name(o) -> str:
    return f"the {o.color} {o.shape}"


def end_x(scene: EventScene, index: int, directions: dict) -> float:
    """Object `index`'s x once every event is over."""
    moves = sum(directions[e.direction][0] for e in scene.events if e.actor == index)
    return scene.objects[index].x + moves * EVENT_SPEED * EVENT_LENGTH


def event_questions(scene: EventScene, rng: np.random.Generator, directions: dict) -> list[dict]:
    """Every question of the scene: {"question", "answer", "type", "needs", "clips"}. `clips` is "several"
    when no single clip (knowing where it sits in time) determines the answer: the order of events unless
    the first (last) one is in the first (last) slot, counting over time, an object's next mover, its first
    direction unless that move is in the first slot; "one" otherwise (appearance; the relation at the end,
    which the last clip shows)."""
    qs: list[tuple[str, str, str, bool]] = []  # (question, answer, type, needs several clips)
    objs, events = scene.objects, scene.events
    for o in objs:
        qs.append((f"what color is the {o.shape}?", o.color, "colour", False))
        qs.append((f"what shape is the {o.color} object?", o.shape, "shape", False))
    qs.append(("how many objects are there?", COUNTS[len(objs)], "count_objects", False))
    first, last = events[0], events[-1]
    qs.append(("which shape moves first?", objs[first.actor].shape, "first", first.slot != 0))
    qs.append(("which shape moves last?", objs[last.actor].shape, "last", last.slot != EVENT_SLOTS - 1))
    for i, o in enumerate(objs):
        mine = [e for e in events if e.actor == i]
        qs.append((f"how many times does {_name(o)} move?", COUNTS[len(mine)], "count_moves", True))
        if mine:
            qs.append((f"which way does {_name(o)} move first?", mine[0].direction, "first_direction",
                       mine[0].slot != 0))
            later = [e for e in events if e.slot > mine[0].slot]
            if later:
                qs.append((f"which shape moves next after {_name(o)}?", objs[later[0].actor].shape, "next", True))
    a, b = (int(v) for v in rng.choice(len(objs), size=2, replace=False))
    xa, xb = end_x(scene, a, directions), end_x(scene, b, directions)
    if abs(xa - xb) > 4:  # clearly apart
        qs.append((f"is {_name(objs[a])} left of {_name(objs[b])} at the end?", "yes" if xa < xb else "no",
                   "relation", False))
    order = rng.permutation(len(qs))
    return [{"question": qs[i][0], "answer": qs[i][1], "type": qs[i][2], "needs": TYPES[qs[i][2]],
             "clips": "several" if qs[i][3] else "one"} for i in order]
