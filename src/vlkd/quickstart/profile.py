"""The quickstart's two sizes: the default (budget 10 minutes on 2 CPU cores; README.md says what it took) and
`--full` (the conclusive version of the same study, budget 60 minutes). The world (seed 0) gives the
teacher's samples, with a held-out share large enough that retrieval is off its ceiling; VideoQA generates
its own `--events` world (same seed), larger than VidLanKD's in the quick profile: on 160 videos the teacher
was 0.5 pooled std ahead of its student over 5 seeds, on 280 2.3, on 320 4.8, on 400 3.4 (README, VideoQA);
at 400 `make quickstart` took 10m31s from a fresh clone, past its budget."""

from __future__ import annotations

from dataclasses import dataclass


def _terms(*terms: str) -> str:
    return "kd.terms=[" + ", ".join("{" + t + "}" for t in terms) + "]"


# student name -> (report label, preset, overrides); every student shares the baseline's steps, batch,
# seed, blocks and masks (equal compute), the KD students add one objective against the same teacher.
# docs/visual-knowledge.md says which objective can carry what the teacher knows about the probe kinds.
STUDENTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "mlm": ("text-only BERT (MLM)", "quickstart-mlm", ()),
    "distill": ("MLM + NST (KD head)", "quickstart-distill", ()),
    # weight 10: at weight 1 the term's share of the gradient fell to 0.12 by step 120 and the student's
    # probe-kind vectors stayed far from the teacher's (centred cosine 0.40); at 10 the share is 0.37 at the
    # end, the cosine 0.96 and perplexity no worse (docs/visual-knowledge.md, measured on the world's text)
    "hidden_cos": ("MLM + hidden_cos x10 (last layer)", "quickstart-distill",
                   (_terms("loss: hidden_cos, student: hidden, teacher: hidden, weight: 10.0"), "kd.head=false")),
    "hidden_mse": ("MLM + hidden_mse (last layer)", "quickstart-distill",
                   (_terms("loss: hidden_mse, student: hidden, teacher: hidden, weight: 1.0"), "kd.head=false")),
    "ntxent": ("MLM + NT-Xent (KD head)", "quickstart-distill",
               (_terms("loss: ntxent, student: tokens, teacher: tokens, weight: 1.0"),)),
    "mmd_rbf": ("MLM + MMD (KD head)", "quickstart-distill",
                (_terms("loss: mmd_rbf, student: tokens, teacher: tokens, weight: 1.0"),)),
    "crd": ("MLM + CRD", "quickstart-distill",
            (_terms("loss: crd, student: hidden, teacher: hidden, weight: 0.5, "
                    "args: {embed_dim: 128, num_negatives: 1024}"),)),
    "pkt": ("MLM + PKT (KD head)", "quickstart-distill",
            (_terms("loss: pkt, student: tokens, teacher: tokens, weight: 1.0"),)),
    "nst_pkt": ("MLM + NST + PKT (KD head)", "quickstart-distill",
                (_terms("loss: nst, student: tokens, teacher: tokens, weight: 1.0",
                        "loss: pkt, student: tokens, teacher: tokens, weight: 1.0"),)),
    "voken": ("MLM + voken classification", "quickstart-distill",
              (_terms("loss: voken, student: vokens, teacher: vokens, weight: 1.0"), "kd.head=false")),
}


@dataclass(frozen=True)
class Profile:
    name: str
    world_videos: int  # VidLanKD's world (seed 0)
    videoqa_world_videos: int  # VideoQA's --events world (seed 0)
    held_out_fraction: float  # of the world's videos, held out from the teacher (its retrieval gallery)
    teacher_steps: int
    text_steps: int  # the MLM baseline and every distilled student
    text_batch_size: int
    students: tuple[str, ...]
    student_seeds: tuple[int, ...]  # training seeds of every student (the visual-knowledge table's spread)
    finetune_tasks: tuple[str, ...]
    finetune_seeds: tuple[int, ...]
    videoqa_seeds: tuple[int, ...]
    videoqa_ablation_seeds: tuple[int, ...]  # the no-motion teacher (a subset of videoqa_seeds)
    videoqa_teacher_epochs: int
    videoqa_student_epochs: int
    videoqa_kd_ablation: bool = False  # the KD terms each alone and all, on the ablation seeds

    def overrides(self) -> dict[str, list[str]]:
        """Per-stage config overrides the profile sets (the caller's own overrides come after)."""
        return {"teacher": [f"max_steps={self.teacher_steps}"],
                "text": [f"max_steps={self.text_steps}", f"batch_size={self.text_batch_size}",
                         f"save_every={self.text_steps}",
                         f"eval_every={self.text_steps}"]}


QUICK = Profile(name="quick", world_videos=160, videoqa_world_videos=320, held_out_fraction=0.3, teacher_steps=150,
                text_steps=120, text_batch_size=16,
                students=("mlm", "distill", "hidden_cos"), student_seeds=(0, 1, 2), finetune_tasks=("rt-polarity",),
                finetune_seeds=(0,), videoqa_seeds=(0, 1), videoqa_ablation_seeds=(),
                videoqa_teacher_epochs=8,
                videoqa_student_epochs=4)
FULL = Profile(name="full", world_videos=400, videoqa_world_videos=400, held_out_fraction=0.3, teacher_steps=450,
               text_steps=150, text_batch_size=16,
               students=("mlm", "distill", "mmd_rbf", "crd", "ntxent", "hidden_cos", "hidden_mse", "voken", "pkt",
                         "nst_pkt"),
               student_seeds=(0, 1, 2, 3, 4), finetune_tasks=("rt-polarity",), finetune_seeds=(0,),
               videoqa_seeds=(0, 1, 2, 3, 4), videoqa_ablation_seeds=(0, 1, 2), videoqa_teacher_epochs=8,
               videoqa_student_epochs=4, videoqa_kd_ablation=True)
PROFILES = {"quick": QUICK, "full": FULL}
