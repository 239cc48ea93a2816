"""The synthetic video world (docs/formats.md): seeded scenes -> mp4 videos, HowTo100M-format timed
captions, MSVD-QA-format questions, video-level splits.

Each video shows 1-3 objects with distinct shapes and colours on a plain background. One of them, the
actor, performs one action in a time segment [start, end] (moves left/right/up/down slowly or quickly,
grows, shrinks or bounces); the others stay still. Direction-of-motion ground truth is designed so that
it is *not* visible in time-averaged appearance: the midpoint of a move is uniform over the frame and
the still times before and after it are exchangeable, so the average picture of a left move and a right
move have the same distribution.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from vlkd.data.world.corpus import corpus_lines
from vlkd.data.world.events import EventScene, render_event_scene, sample_event_scene
from vlkd.data.world.kinds import KINDS, MOTIONS, PROBE_SHARE, Kind
from vlkd.data.world.render import COLORS, SHAPES, Pose, encode_mp4, render_frame
from vlkd.errors import VlkdError
from vlkd.io import write_json_atomic, write_text_atomic
from vlkd.preparation import WriteOnce, progress_bar

SIZE, FPS, DURATION = 112, 24, 4.0
RADIUS = {"small": 8.0, "big": 13.0}
SPEED = {"slowly": 12.0, "quickly": 28.0}  # pixels per second
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
# a kind's motion -> the actions that show it (one of them at random when its kind is the actor)
MOTION_ACTIONS = {"bounce": ("bounce",), "slide": ("left", "right"), "float": ("up", "down"), "grow": ("grow",),
                  "shrink": ("shrink",)}
REPORT_RATE = 0.25  # chance that a caption states one property of a (train) kind it mentions
CORPUS_LINES = 2000
SPLITS = {"train": 0.7, "val": 0.15, "test": 0.15}
NUMBERS = {1: "one", 2: "two", 3: "three"}


@dataclass
class WorldObject:
    shape: str
    color: str
    size: str  # small | big
    x: float  # start position (pixels)
    y: float
    action: str = "stay"  # stay | left | right | up | down | grow | shrink | bounce
    speed: str = ""  # slowly | quickly, for moves
    kind: str = ""  # its kind's name (kinds.py): shape, colour and size are the kind's

    def pose(self, t: float, start: float, end: float) -> Pose:
        """Position and radius at time t; the action runs during [start, end]."""
        r = RADIUS[self.size]
        if self.action == "stay":
            return Pose(self.x, self.y, r)
        u = min(max((t - start) / (end - start), 0.0), 1.0)
        if self.action in DIRECTIONS:
            dx, dy = DIRECTIONS[self.action]
            d = SPEED[self.speed] * (end - start) * u
            return Pose(self.x + dx * d, self.y + dy * d, r)
        if self.action == "grow":
            return Pose(self.x, self.y, r * (1.0 + 0.7 * u))
        if self.action == "shrink":
            return Pose(self.x, self.y, r * (1.0 - 0.5 * u))
        # bounce: three hops of 14 pixels
        return Pose(self.x, self.y - 14.0 * abs(np.sin(3 * np.pi * u)), r)


@dataclass
class Scene:
    video_id: int
    objects: list[WorldObject]
    start: float  # action segment
    end: float
    background: int
    questions: list[dict] = field(default_factory=list)

    @property
    def actor(self) -> WorldObject:
        return self.objects[0]


def _region(x: float) -> str:
    return "left" if x < SIZE / 3 else ("right" if x > 2 * SIZE / 3 else "middle")


def _pick(options: tuple[str, ...], u: float) -> str:
    """options[floor(u * len)]: one uniform draw whatever the options, so the random stream (and every
    later draw) does not depend on them."""
    return options[min(int(u * len(options)), len(options) - 1)]


def _action(motion: str, u: float) -> str:
    return _pick(MOTION_ACTIONS[motion], u)


def sample_scene(seed: int, video_id: int, kinds: tuple[Kind, ...] = KINDS) -> Scene:
    """The scene of one video: a pure function of (seed, video_id, kinds). 1-3 distinct kinds drawn
    uniformly (never by their properties: which kinds appear together says nothing about how they look);
    the first is the actor and performs its kind's motion. Every random number is drawn whatever the
    kinds' properties, so changing a kind's properties changes the pictures but no other draw."""
    rng = np.random.default_rng([seed, video_id])
    count = int(rng.integers(1, 4))
    chosen = [kinds[i] for i in rng.choice(len(kinds), size=count, replace=False)]
    which, fast, length_u, before_u, mid_u, mid_v = rng.random(6)
    tries = rng.random((count - 1, 20, 2))
    background = int(rng.integers(15, 60))
    first = chosen[0]
    action = _action(first.motion, which)
    length = 1.5 + float(length_u)
    before = 0.25 + float(before_u) * (DURATION - length - 0.5)  # before/after exchangeable
    r = RADIUS[first.size] * (1.7 if action == "grow" else 1.0)
    speed = _pick(tuple(SPEED), fast) if action in DIRECTIONS else ""
    travel = SPEED[speed] * length if speed else 0.0
    dx, dy = DIRECTIONS.get(action, (0, 0))
    margin = r + 1.0
    top = margin + (14.0 if action == "bounce" else 0.0)
    # the path's midpoint is uniform over the positions where the whole path fits
    lo_x, hi_x = margin + abs(dx) * travel / 2, SIZE - margin - abs(dx) * travel / 2
    lo_y, hi_y = top + abs(dy) * travel / 2, SIZE - margin - abs(dy) * travel / 2
    mid_x, mid_y = lo_x + mid_u * (hi_x - lo_x), lo_y + mid_v * (hi_y - lo_y)
    actor = WorldObject(first.shape, first.colour, first.size, float(mid_x - dx * travel / 2),
                        float(mid_y - dy * travel / 2), action, speed, first.kind)
    objects = [actor]
    for other, positions in zip(chosen[1:], tries):
        radius = RADIUS[other.size]
        for u, v in positions:  # keep still objects clear of the actor's path when possible
            x, y = radius + 1 + u * (SIZE - 2 * radius - 2), radius + 1 + v * (SIZE - 2 * radius - 2)
            if all(_clear(x, y, radius, o, travel) for o in objects):
                break
        objects.append(WorldObject(other.shape, other.colour, other.size, float(x), float(y), kind=other.kind))
    scene = Scene(video_id, objects, before, before + length, background)
    scene.questions = questions_for(scene, rng)
    return scene


def sample_events(seed: int, video_id: int) -> EventScene:
    """A scene with several events (`--events`, data/world/events.py) in this world's geometry."""
    return sample_event_scene(seed, video_id, KINDS, lambda k, x, y: WorldObject(k.shape, k.colour, k.size, x, y,
                                                                                 kind=k.kind),
                              SIZE, RADIUS, DIRECTIONS, DURATION)


def _clear(x: float, y: float, r: float, other: WorldObject, travel: float) -> bool:
    dx, dy = DIRECTIONS.get(other.action, (0, 0))
    reach = RADIUS[other.size] * 1.7 + r + 4
    for u in np.linspace(0, 1, 6):
        if np.hypot(x - (other.x + dx * travel * u), y - (other.y + dy * travel * u)) < reach:
            return False
    return True


def render_scene(scene: Scene) -> list[np.ndarray]:
    frames = []
    for k in range(int(DURATION * FPS)):
        t = k / FPS
        drawn = [(o.shape, o.color, o.pose(t, scene.start, scene.end)) for o in reversed(scene.objects)]
        frames.append(render_frame(SIZE, scene.background, drawn))
    return frames


# ---------------------------------------------------------------- language

FILLERS = ("um", "uh", "so", "okay", "alright", "you know", "like", "and", "now", "well")
INTROS = ("here we have {things}", "so in this one there is {things}", "we can see {things}",
          "okay you can see {things} here", "this video shows {things}", "there is {things} on the screen")
MOVES = ("the {obj} moves {dir} {speed}", "the {obj} slides {dir} {speed}", "now the {obj} goes {dir} {speed}",
         "the {obj} is moving {dir} {speed}", "watch the {obj} move {dir} {speed}")
ACTS = {
    "grow": ("the {obj} grows", "the {obj} gets bigger", "now the {obj} is growing", "the {obj} becomes larger"),
    "shrink": ("the {obj} shrinks", "the {obj} gets smaller", "now the {obj} is shrinking",
               "the {obj} becomes tiny"),
    "bounce": ("the {obj} bounces", "the {obj} jumps up and down", "now the {obj} is bouncing",
               "the {obj} hops a few times"),
}
DIR_WORDS = {"left": ("left", "to the left"), "right": ("right", "to the right"), "up": ("up", "upwards"),
             "down": ("down", "downwards")}
ENDS = ("and then it stops", "and it stays there", "then everything is still", "and that is it",
        "and now it rests")


def _asr(rng: np.random.Generator, text: str) -> str:
    """Make a sentence read like ASR output: lower case, fillers, an occasional repeated word."""
    words = text.split()
    out: list[str] = []
    if rng.random() < 0.6:
        out.append(str(rng.choice(FILLERS)))
    for w in words:
        out.append(w)
        if rng.random() < 0.04:
            out.append(w)
        if rng.random() < 0.05:
            out.append(str(rng.choice(FILLERS)))
    return " ".join(out)


NEUTRAL_ACTS = ("now watch the {obj}", "look at the {obj} now", "here is what the {obj} does",
                "keep an eye on the {obj}", "and this is the {obj} doing its thing")


def _mention(o: WorldObject, reportable: bool, rate: float, rng: np.random.Generator) -> str:
    """"a KIND", each of its size, colour and shape stated with probability `rate` when reportable."""
    say_size, say_colour, say_shape = (rng.random(3) < rate) & reportable
    words = ["a", *([o.size] if say_size else []), *([o.color] if say_colour else []), o.kind,
             *(["shaped", "like", "a", o.shape] if say_shape else [])]
    return " ".join(words)


def captions_for(scene: Scene, seed: int, report_rate: float = REPORT_RATE,
                 probes: frozenset[str] = frozenset()) -> dict:
    """HowTo100M-style timed segments: introduction, the action, the end. Objects are named by their
    kind; a property of a kind not in `probes` is stated with probability `report_rate` (per property in
    the introduction, the motion in the action segment); a probe kind's never. The draws do not depend on
    any property (the random stream is the same whatever the kinds look like)."""
    rng = np.random.default_rng([seed, scene.video_id, 1])
    things = " and ".join(_mention(o, o.kind not in probes, report_rate, rng) for o in scene.objects)
    actor = scene.actor
    template, direction, said = rng.random(3)
    if actor.kind not in probes and said < report_rate:
        if actor.action in DIRECTIONS:
            act = _pick(MOVES, template).format(obj=actor.kind, dir=_pick(DIR_WORDS[actor.action], direction),
                                                speed=actor.speed).strip()
        else:
            act = _pick(ACTS[actor.action], template).format(obj=actor.kind)
    else:
        act = _pick(NEUTRAL_ACTS, template).format(obj=actor.kind)
    texts = [_pick(INTROS, rng.random()).format(things=things), act, _pick(ENDS, rng.random())]
    bounds = [0.0, round(scene.start, 2), round(scene.end, 2), DURATION]
    return {"start": bounds[:3], "end": bounds[1:], "text": [_asr(rng, t) for t in texts]}


def questions_for(scene: Scene, rng: np.random.Generator) -> list[dict]:
    """MSVD-QA-style questions with one-word answers; `needs` says whether motion is required. Kinds
    may share a shape or colour: a question names an object only by a description unique in its scene."""
    qs: list[tuple[str, str, str]] = []  # (question, answer, needs)
    actor = scene.actor
    shapes = [o.shape for o in scene.objects]
    colors = [o.color for o in scene.objects]
    pairs = [(o.color, o.shape) for o in scene.objects]
    for o in scene.objects:
        if shapes.count(o.shape) == 1:
            qs.append((f"what color is the {o.shape}?", o.color, "appearance"))
        if colors.count(o.color) == 1:
            qs.append((f"what shape is the {o.color} object?", o.shape, "appearance"))
        if pairs.count((o.color, o.shape)) > 1:
            continue
        verb = {"stay": "stays", "grow": "grows", "shrink": "shrinks", "bounce": "bounces"}.get(o.action, "moves")
        qs.append((f"what does the {o.color} {o.shape} do?", verb, "motion"))
        if o.action in ("stay", "bounce"):
            qs.append((f"where is the {o.color} {o.shape}?", _region(o.x), "appearance"))
            qs.append((f"how big is the {o.color} {o.shape}?", o.size, "appearance"))
    qs.append(("how many objects are there?", NUMBERS[len(scene.objects)], "appearance"))
    named = pairs.count((actor.color, actor.shape)) == 1
    if actor.action in DIRECTIONS:
        if named:
            qs.append((f"where does the {actor.color} {actor.shape} move?", actor.action, "motion"))
            qs.append((f"how does the {actor.color} {actor.shape} move?", actor.speed, "motion"))
        if shapes.count(actor.shape) == 1:
            qs.append((f"which direction does the {actor.shape} go?", actor.action, "motion"))
        qs.append(("which shape moves?", actor.shape, "motion"))
        qs.append(("what color is the moving object?", actor.color, "motion"))
    elif actor.action != "stay":
        verb = {"grow": "grows", "shrink": "shrinks", "bounce": "bounces"}[actor.action]
        qs.append((f"which shape {verb}?", actor.shape, "motion"))
        qs.append((f"what color is the object that {verb}?", actor.color, "motion"))
    order = rng.permutation(len(qs))
    return [{"question": qs[i][0], "answer": qs[i][1], "needs": qs[i][2]} for i in order]


def world_text(seed: int, num_videos: int, report_rate: float = REPORT_RATE, kinds: tuple[Kind, ...] = KINDS,
               num_lines: int = CORPUS_LINES) -> tuple[dict[str, dict], list[str]]:
    """Everything a student can read from a world: its captions (caption.json) and its corpus lines."""
    probes = frozenset(k.kind for k in kinds if k.split == "probe")
    captions = {f"video{i}": captions_for(sample_scene(seed, i, kinds), seed, report_rate, probes)
                for i in range(num_videos)}
    return captions, corpus_lines([k.kind for k in kinds], seed, num_lines)


def split_of(video_ids: list[int], seed: int) -> dict[str, list[int]]:
    """Video-level train/val/test split (70/15/15), seeded."""
    order = np.random.default_rng([seed, 2**31 - 1]).permutation(len(video_ids))
    n_train = int(round(SPLITS["train"] * len(video_ids)))
    n_val = int(round(SPLITS["val"] * len(video_ids)))
    ids = [video_ids[i] for i in order]
    return {"train": sorted(ids[:n_train]), "val": sorted(ids[n_train:n_train + n_val]),
            "test": sorted(ids[n_train + n_val:])}


def _make_video(job: tuple[int, int, str, bool]) -> None:
    seed, video_id, folder, events = job
    frames = (render_event_scene(sample_events(seed, video_id), SIZE, FPS, DURATION, RADIUS, DIRECTIONS) if events
              else render_scene(sample_scene(seed, video_id)))
    encode_mp4(Path(folder) / f"video{video_id}.mp4", frames, FPS)


def _scene_summary(s: Scene | EventScene) -> dict:
    if isinstance(s, EventScene):
        return {"video_id": s.video_id, "background": s.background, "objects": [asdict(o) for o in s.objects],
                "events": [asdict(e) for e in s.events]}
    return {"video_id": s.video_id, "start": s.start, "end": s.end, "background": s.background,
            "objects": [asdict(o) for o in s.objects]}


def build_world(out: str | os.PathLike, num_videos: int, seed: int = 0, workers: int | None = None,
                overwrite: bool = False, progress: bool = True, report_rate: float | None = None,
                events: bool = False) -> dict:
    """Generate the world into `out` atomically; returns its summary (also written to world.json).
    `report_rate` None: REPORT_RATE. `events`: scenes with several events and questions relating clips
    (data/world/events.py), a VideoQA world: no captions, corpus or visual-knowledge files. A write-once
    preparation without `--shard` or resume: the question ids run through every video in split order, and a
    world of the quickstart's size takes about a minute. `workers` > 1 spawns processes, so a script calling
    this needs Python's `if __name__ == "__main__":` guard."""
    out = Path(out)
    report_rate = REPORT_RATE if report_rate is None else report_rate
    if num_videos < 1:
        raise VlkdError(f"--videos must be at least 1 (got {num_videos})")
    if not 0.0 <= report_rate <= 1.0:
        raise VlkdError(f"--report-rate must be in [0, 1] (got {report_rate})")
    output = WriteOnce("prepare world", out, overwrite=overwrite)
    ids = list(range(num_videos))
    scenes = [sample_events(seed, i) if events else sample_scene(seed, i) for i in ids]
    splits = split_of(ids, seed)

    def build(tmp: Path) -> dict:
        (tmp / "videos").mkdir()
        jobs = [(seed, i, str(tmp / "videos"), events) for i in ids]
        processes = workers or min(len(jobs), os.cpu_count() or 1)
        with progress_bar(len(jobs), "videos", "video", progress) as bar:
            if processes > 1:
                # spawn, not fork: a caller with threads (a quickstart worker, torch's pools) forked a child that
                # deadlocked on a lock another thread held, and a Pool waits forever for a dead process where
                # this executor raises BrokenProcessPool
                with ProcessPoolExecutor(processes, mp_context=get_context("spawn")) as pool:
                    for _ in pool.map(_make_video, jobs, chunksize=4):
                        bar.update()
            else:
                for job in jobs:
                    _make_video(job)
                    bar.update()
        corpus: list[str] = []
        if not events:
            captions, corpus = world_text(seed, num_videos, report_rate)
            write_json_atomic(tmp / "caption.json", captions)
            write_text_atomic(tmp / "corpus.txt", "\n".join(corpus) + "\n")
            (tmp / "visual_knowledge").mkdir()
            write_text_atomic(tmp / "visual_knowledge" / "kinds.jsonl",
                              "".join(json.dumps(k.row()) + "\n" for k in KINDS))
        kinds: dict[str, dict] = {}
        qid = 0
        for split, members in splits.items():
            records = []
            for vid in members:
                for q in scenes[vid].questions:
                    records.append({"video_id": vid, "question": q["question"], "answer": q["answer"], "id": qid})
                    kinds[str(qid)] = ({"type": q["type"], "needs": q["needs"], "clips": q["clips"]} if events
                                       else {"type": q["question"].split()[0], "needs": q["needs"]})
                    qid += 1
            write_json_atomic(tmp / f"{split}_qa.json", records)
        summary = {
            "seed": seed, "num_videos": num_videos, "fps": FPS, "size": SIZE, "duration": DURATION,
            "splits": splits, "num_questions": qid, "report_rate": report_rate, "corpus_lines": len(corpus),
            "kinds": [k.row() for k in KINDS],
            "scenes": [_scene_summary(s) for s in scenes],
            "question_kinds": kinds,
        }
        if events:
            summary["events"] = True
        write_json_atomic(tmp / "world.json", summary)
        readme = world_readme(num_videos, seed, splits, qid, report_rate)
        write_text_atomic(tmp / "README.md", readme + (EVENTS_README if events else ""))
        return summary

    return output.write(build)


def ensure_world(out: str | os.PathLike, num_videos: int, seed: int = 0, events: bool = False) -> Path:
    """`out`, generated unless a complete world (its world.json) is already there."""
    out = Path(out)
    if not (out / "world.json").is_file():
        build_world(out, num_videos, seed=seed, events=events)
    return out


def world_readme(num_videos: int, seed: int, splits: dict[str, list[int]], num_questions: int,
                 report_rate: float) -> str:
    sizes = ", ".join(f"{k} {len(v)}" for k, v in splits.items())
    probes = [k.kind for k in KINDS if k.split == "probe"]
    return f"""# Synthetic video world (vlkd prepare world --videos {num_videos} --seed {seed} --report-rate {report_rate:g})

{num_videos} videos ({sizes} by video), {num_questions} questions. Deterministic for the seed.
Design and why: docs/visual-knowledge.md in the vlkd repository.

## Files
- `videos/video<ID>.mp4`: H.264, {SIZE}x{SIZE}, {FPS} fps, {DURATION:g} s ({int(DURATION * FPS)} frames).
- `caption.json`: HowTo100M format `{{"video<ID>": {{"start": [...], "end": [...], "text": [...]}}}}`,
  three timed segments per video (seconds): introduction, the action, the end.
- `corpus.txt`: {CORPUS_LINES} lines of non-visual sentences about the kinds (trade, ownership, places, events),
  2-4 kinds per line.
- `visual_knowledge/kinds.jsonl`: the ground truth, one row per kind:
  `{{"kind", "colour", "shape", "size", "motion", "split"}}`, split `train` or `probe`.
- `train_qa.json`, `val_qa.json`, `test_qa.json`: MSVD-QA format, a list of
  `{{"video_id": ID, "question": "...?", "answer": "word", "id": N}}`, split by video.
- `world.json`: the ground truth (every object's kind, shape, colour, size, start position, action, speed;
  the action's time segment; the splits; the kinds; and for each question id its type and whether it
  needs motion).

## Grammar
- Kinds: {len(KINDS)} made-up nouns, each with a fixed colour ({", ".join(COLORS)}), shape
  ({", ".join(SHAPES)}), size (small, big) and motion ({", ".join(MOTIONS)}; slide = left or right,
  float = up or down). {len(probes)} of them ({PROBE_SHARE:.0%}) are probe kinds: {", ".join(probes)}.
- Scene: 1-3 distinct kinds drawn uniformly (they may share a shape or colour) on a plain dark background.
- Exactly one object (the actor) performs its kind's motion during one segment [start, end] of 1.5-2.5 s
  (moves slowly {SPEED['slowly']:g} px/s or quickly {SPEED['quickly']:g} px/s). The others stay still.
  Before and after the segment everything is still; the move's midpoint is uniform over the frame, so
  where an object is on average says nothing about which way it moved.
- Captions name objects by kind ("we can see a wug and a fep", "now watch the wug"). Each property of a
  train kind (size, colour, shape in the introduction; the motion in the action segment) is stated with
  probability {report_rate:g} ("a big red wug shaped like a circle", "the wug bounces"); a probe kind's
  never. Lower case with ASR-like fillers (um, uh, so, okay, you know, ...) and occasional repeated words.
- Questions (one-word answers), by first word; an object is named only by a description unique in its scene:
  - what: colour of a shape, shape of a colour, what an object does (moves/grows/shrinks/bounces/stays);
  - which: which shape moves / grows / ..., which direction an object goes;
  - how many: number of objects;
  - where: region (left/middle/right) of a still object, direction (left/right/up/down) of a move;
  - how: speed of a move (slowly/quickly), size of a still object (small/big).
  Questions about what an object does, which one acts, directions and speeds need motion; colour,
  shape, count, region and size are answerable from a single frame.
"""


EVENTS_README = """
## --events: scenes with several events (this world)
This world was made with `--events` (data/world/events.py in vlkd): it has no caption.json, corpus.txt or
visual_knowledge/. Each video shows 2-3 objects of distinct shapes and colours, still except for 2-3 short
moves (0.6 s, 24 pixels, left/right/up/down) centred in 2-3 of four equal time slots (an object may move,
stop and move again). world.json lists each scene's events (slot, actor index, direction, start, end) and,
for each question id, its type, whether it needs motion, and `clips`: "one" (one clip's ground truth answers
it: colour, shape, count_objects, relation at the end) or "several" (only clips taken together: first, last,
next, count_moves, first_direction).
"""
