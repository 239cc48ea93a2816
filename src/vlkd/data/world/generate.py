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

import os
from dataclasses import asdict, dataclass, field
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path

import numpy as np

from vlkd.data.world.render import COLORS, SHAPES, Pose, encode_mp4, render_frame
from vlkd.errors import VlkdError
from vlkd.io import atomic_path, write_json_atomic, write_text_atomic
from vlkd.outputs import check_output

SIZE, FPS, DURATION = 112, 24, 4.0
RADIUS = {"small": 8.0, "big": 13.0}
SPEED = {"slowly": 12.0, "quickly": 28.0}  # pixels per second
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
ACTIONS = ("left", "right", "up", "down", "grow", "shrink", "bounce")
ACTION_WEIGHTS = (0.15, 0.15, 0.15, 0.15, 0.13, 0.13, 0.14)
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


def sample_scene(seed: int, video_id: int) -> Scene:
    """The scene of one video: a pure function of (seed, video_id)."""
    rng = np.random.default_rng([seed, video_id])
    count = int(rng.integers(1, 4))
    shapes = rng.choice(SHAPES, size=count, replace=False)
    colors = rng.choice(list(COLORS), size=count, replace=False)
    action = str(rng.choice(ACTIONS, p=ACTION_WEIGHTS))
    length = float(rng.uniform(1.5, 2.5))
    before = float(rng.uniform(0.25, DURATION - length - 0.25))  # before/after exchangeable
    size = str(rng.choice(["small", "big"]))
    r = RADIUS[size] * (1.7 if action == "grow" else 1.0)
    speed = str(rng.choice(list(SPEED))) if action in DIRECTIONS else ""
    travel = SPEED[speed] * length if speed else 0.0
    dx, dy = DIRECTIONS.get(action, (0, 0))
    margin = r + 1.0
    top = margin + (14.0 if action == "bounce" else 0.0)
    # the path's midpoint is uniform over the positions where the whole path fits
    mid_x = rng.uniform(margin + abs(dx) * travel / 2, SIZE - margin - abs(dx) * travel / 2)
    mid_y = rng.uniform(top + abs(dy) * travel / 2, SIZE - margin - abs(dy) * travel / 2)
    actor = WorldObject(str(shapes[0]), str(colors[0]), size, float(mid_x - dx * travel / 2),
                        float(mid_y - dy * travel / 2), action, speed)
    objects = [actor]
    for shape, color in zip(shapes[1:], colors[1:]):
        other_size = str(rng.choice(["small", "big"]))
        for _ in range(20):  # keep still objects clear of the actor's path when possible
            x, y = rng.uniform(RADIUS[other_size] + 1, SIZE - RADIUS[other_size] - 1, size=2)
            if all(_clear(x, y, RADIUS[other_size], o, travel) for o in objects):
                break
        objects.append(WorldObject(str(shape), str(color), other_size, float(x), float(y)))
    scene = Scene(video_id, objects, before, before + length, int(rng.integers(15, 60)))
    scene.questions = questions_for(scene, rng)
    return scene


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


def _name(o: WorldObject, rng: np.random.Generator) -> str:
    return f"{o.color} {o.shape}" if rng.random() < 0.8 else f"{o.size} {o.color} {o.shape}"


def captions_for(scene: Scene, seed: int) -> dict:
    """HowTo100M-style timed segments: introduction, the action, the end state."""
    rng = np.random.default_rng([seed, scene.video_id, 1])
    things = " and ".join(f"a {_name(o, rng)}" for o in scene.objects)
    actor = scene.actor
    obj = f"{actor.color} {actor.shape}"
    if actor.action in DIRECTIONS:
        act = str(rng.choice(MOVES)).format(obj=obj, dir=str(rng.choice(DIR_WORDS[actor.action])),
                                            speed=actor.speed).strip()
    else:
        act = str(rng.choice(ACTS[actor.action])).format(obj=obj)
    end_pose = actor.pose(DURATION, scene.start, scene.end)
    ending = str(rng.choice(ENDS))
    if actor.action in DIRECTIONS:
        region = _region(end_pose.x)
        ending += (" in the middle" if region == "middle" else f" on the {region}") if rng.random() < 0.5 else ""
    texts = [str(rng.choice(INTROS)).format(things=things), act, ending]
    bounds = [0.0, round(scene.start, 2), round(scene.end, 2), DURATION]
    return {"start": bounds[:3], "end": bounds[1:], "text": [_asr(rng, t) for t in texts]}


def questions_for(scene: Scene, rng: np.random.Generator) -> list[dict]:
    """MSVD-QA-style questions with one-word answers; `needs` says whether motion is required."""
    qs: list[tuple[str, str, str]] = []  # (question, answer, needs)
    actor = scene.actor
    for o in scene.objects:
        qs.append((f"what color is the {o.shape}?", o.color, "appearance"))
        qs.append((f"what shape is the {o.color} object?", o.shape, "appearance"))
        verb = {"stay": "stays", "grow": "grows", "shrink": "shrinks", "bounce": "bounces"}.get(o.action, "moves")
        qs.append((f"what does the {o.color} {o.shape} do?", verb, "motion"))
        if o.action in ("stay", "bounce"):
            qs.append((f"where is the {o.color} {o.shape}?", _region(o.x), "appearance"))
            qs.append((f"how big is the {o.color} {o.shape}?", o.size, "appearance"))
    qs.append(("how many objects are there?", NUMBERS[len(scene.objects)], "appearance"))
    if actor.action in DIRECTIONS:
        qs.append((f"where does the {actor.color} {actor.shape} move?", actor.action, "motion"))
        qs.append((f"which direction does the {actor.shape} go?", actor.action, "motion"))
        qs.append((f"how does the {actor.color} {actor.shape} move?", actor.speed, "motion"))
        qs.append(("which shape moves?", actor.shape, "motion"))
        qs.append(("what color is the moving object?", actor.color, "motion"))
    elif actor.action != "stay":
        verb = {"grow": "grows", "shrink": "shrinks", "bounce": "bounces"}[actor.action]
        qs.append((f"which shape {verb}?", actor.shape, "motion"))
        qs.append((f"what color is the object that {verb}?", actor.color, "motion"))
    order = rng.permutation(len(qs))
    return [{"question": qs[i][0], "answer": qs[i][1], "needs": qs[i][2]} for i in order]


def split_of(video_ids: list[int], seed: int) -> dict[str, list[int]]:
    """Video-level train/val/test split (70/15/15), seeded."""
    order = np.random.default_rng([seed, 2**31 - 1]).permutation(len(video_ids))
    n_train = int(round(SPLITS["train"] * len(video_ids)))
    n_val = int(round(SPLITS["val"] * len(video_ids)))
    ids = [video_ids[i] for i in order]
    return {"train": sorted(ids[:n_train]), "val": sorted(ids[n_train:n_train + n_val]),
            "test": sorted(ids[n_train + n_val:])}


def _make_video(job: tuple[int, int, str]) -> None:
    seed, video_id, folder = job
    encode_mp4(Path(folder) / f"video{video_id}.mp4", render_scene(sample_scene(seed, video_id)), FPS)


def build_world(out: str | os.PathLike, num_videos: int, seed: int = 0, workers: int | None = None,
                overwrite: bool = False, progress: bool = True) -> dict:
    """Generate the world into `out` atomically; returns its summary (also written to world.json)."""
    out = Path(out)
    if num_videos < 1:
        raise VlkdError(f"--videos must be at least 1 (got {num_videos})")
    check_output(out, overwrite)
    from tqdm import tqdm

    ids = list(range(num_videos))
    scenes = [sample_scene(seed, i) for i in ids]
    splits = split_of(ids, seed)
    with atomic_path(out) as tmp:
        (tmp / "videos").mkdir(parents=True)
        jobs = [(seed, i, str(tmp / "videos")) for i in ids]
        workers = workers or min(len(jobs), os.cpu_count() or 1)
        bar = tqdm(total=len(jobs), desc="videos", unit="video", disable=not progress)
        if workers > 1:
            # fork: the job function lives in this module, so nothing depends on how __main__ was started
            method = "fork" if "fork" in get_all_start_methods() else "spawn"
            with get_context(method).Pool(workers) as pool:
                for _ in pool.imap_unordered(_make_video, jobs, chunksize=4):
                    bar.update()
        else:
            for job in jobs:
                _make_video(job)
                bar.update()
        bar.close()
        write_json_atomic(tmp / "caption.json", {f"video{s.video_id}": captions_for(s, seed) for s in scenes})
        kinds: dict[str, dict] = {}
        qid = 0
        for split, members in splits.items():
            records = []
            for vid in members:
                for q in scenes[vid].questions:
                    records.append({"video_id": vid, "question": q["question"], "answer": q["answer"], "id": qid})
                    kinds[str(qid)] = {"type": q["question"].split()[0], "needs": q["needs"]}
                    qid += 1
            write_json_atomic(tmp / f"{split}_qa.json", records)
        summary = {
            "seed": seed, "num_videos": num_videos, "fps": FPS, "size": SIZE, "duration": DURATION,
            "splits": splits, "num_questions": qid,
            "scenes": [{"video_id": s.video_id, "start": s.start, "end": s.end, "background": s.background,
                        "objects": [asdict(o) for o in s.objects]} for s in scenes],
            "question_kinds": kinds,
        }
        write_json_atomic(tmp / "world.json", summary)
        write_text_atomic(tmp / "README.md", world_readme(num_videos, seed, splits, qid))
    return summary


def ensure_world(out: str | os.PathLike, num_videos: int, seed: int = 0) -> Path:
    """`out`, generated unless a complete world (its world.json) is already there."""
    out = Path(out)
    if not (out / "world.json").is_file():
        build_world(out, num_videos, seed=seed)
    return out


def world_readme(num_videos: int, seed: int, splits: dict[str, list[int]], num_questions: int) -> str:
    sizes = ", ".join(f"{k} {len(v)}" for k, v in splits.items())
    return f"""# Synthetic video world (vlkd prepare world --videos {num_videos} --seed {seed})

{num_videos} videos ({sizes} by video), {num_questions} questions. Deterministic for the seed.

## Files
- `videos/video<ID>.mp4`: H.264, {SIZE}x{SIZE}, {FPS} fps, {DURATION:g} s ({int(DURATION * FPS)} frames).
- `caption.json`: HowTo100M format `{{"video<ID>": {{"start": [...], "end": [...], "text": [...]}}}}`,
  three timed segments per video (seconds): introduction, the action, the end state.
- `train_qa.json`, `val_qa.json`, `test_qa.json`: MSVD-QA format, a list of
  `{{"video_id": ID, "question": "...?", "answer": "word", "id": N}}`, split by video.
- `world.json`: the ground truth (every object's shape, colour, size, start position, action, speed;
  the action's time segment; the splits; and for each question id its type and whether it needs motion).

## Grammar
- Scene: 1-3 objects with distinct shapes ({", ".join(SHAPES)}) and distinct colours
  ({", ".join(COLORS)}), size small or big, on a plain dark background.
- Exactly one object (the actor) acts during one segment [start, end] of 1.5-2.5 s: moves left, right,
  up or down (slowly {SPEED['slowly']:g} px/s or quickly {SPEED['quickly']:g} px/s), grows, shrinks or bounces.
  The others stay still. Before and after the segment everything is still; the move's midpoint is uniform
  over the frame, so where an object is on average says nothing about which way it moved.
- Captions: paraphrase templates ("the red circle slides to the left slowly", "we can see a blue square
  and a small green cross", ...) in lower case with ASR-like fillers (um, uh, so, okay, you know, ...)
  and occasional repeated words.
- Questions (one-word answers), by first word:
  - what: colour of a shape, shape of a colour, what an object does (moves/grows/shrinks/bounces/stays);
  - which: which shape moves / grows / ..., which direction an object goes;
  - how many: number of objects;
  - where: region (left/middle/right) of a still object, direction (left/right/up/down) of a move;
  - how: speed of a move (slowly/quickly), size of a still object (small/big).
  Questions about what an object does, which one acts, directions and speeds need motion; colour,
  shape, count, region and size are answerable from a single frame.
"""
