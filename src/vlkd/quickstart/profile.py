"""The quickstart's two sizes: the default (<= 10 minutes on 2 CPU cores) and `--full` (the conclusive
version of the same study, <= 60 minutes). One world serves both pipelines: the teacher's samples (a
held-out share large enough that retrieval is off its ceiling) and VideoQA's questions."""

from __future__ import annotations

from dataclasses import dataclass

# student name -> (report label, preset, overrides); every student shares the baseline's steps, batch,
# seed, blocks and masks (equal compute), the KD students add one objective against the same teacher.
STUDENTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "mlm": ("text-only BERT (MLM)", "quickstart-mlm", ()),
    "distill": ("distilled student (MLM + NST)", "quickstart-distill", ()),
    "voken": ("voken student (MLM + voken classification)", "quickstart-distill",
              ("kd.terms=[{loss: voken, student: vokens, teacher: vokens, weight: 1.0}]", "kd.head=false")),
    "crd": ("CRD student (MLM + CRD)", "quickstart-distill",
            ("kd.terms=[{loss: crd, student: hidden, teacher: hidden, weight: 0.5, "
             "args: {embed_dim: 128, num_negatives: 1024}}]",)),
}


@dataclass(frozen=True)
class Profile:
    name: str
    world_videos: int  # one world (seed 0) for both pipelines
    held_out_fraction: float  # of the world's videos, held out from the teacher (its retrieval gallery)
    teacher_steps: int
    text_steps: int  # the MLM baseline and every distilled student
    students: tuple[str, ...]
    finetune_tasks: tuple[str, ...]
    finetune_seeds: tuple[int, ...]
    videoqa_seeds: tuple[int, ...]
    videoqa_ablation_seeds: tuple[int, ...]  # the no-motion teacher (a subset of videoqa_seeds)
    videoqa_teacher_epochs: int
    videoqa_student_epochs: int

    def overrides(self) -> dict[str, list[str]]:
        """Per-stage config overrides the profile sets (the caller's own overrides come after)."""
        return {"teacher": [f"max_steps={self.teacher_steps}"],
                "text": [f"max_steps={self.text_steps}", f"save_every={self.text_steps // 2}",
                         f"eval_every={self.text_steps // 4}"]}


QUICK = Profile(name="quick", world_videos=160, held_out_fraction=0.6, teacher_steps=150, text_steps=200,
                students=("mlm", "distill"), finetune_tasks=("rt-polarity",), finetune_seeds=(0, 1, 2),
                videoqa_seeds=(0, 1), videoqa_ablation_seeds=(0,), videoqa_teacher_epochs=8,
                videoqa_student_epochs=4)
# Measured once with the two pipelines at once (--jobs 2, one thread each, 2-core AMD EPYC): 60m11s wall;
# the VidLanKD pipeline 3,577 s (its 40 one-epoch fine-tunings 2,113 s: rt-polarity ~33 s, wiki-topic ~70 s
# each), VideoQA 2,639 s (~9 minutes per seed's four models at 400 videos).
FULL = Profile(name="full", world_videos=400, held_out_fraction=0.55, teacher_steps=450, text_steps=400,
               students=("mlm", "distill", "voken", "crd"), finetune_tasks=("rt-polarity", "wiki-topic"),
               finetune_seeds=(0, 1, 2, 3, 4), videoqa_seeds=(0, 1, 2, 3, 4), videoqa_ablation_seeds=(0, 1, 2, 3, 4),
               videoqa_teacher_epochs=8, videoqa_student_epochs=4)
PROFILES = {"quick": QUICK, "full": FULL}
