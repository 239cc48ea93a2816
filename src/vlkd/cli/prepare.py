"""`vlkd prepare text | world | bundled | howto100m | videoqa | teacher-targets`: raw data into vlkd's formats."""

from __future__ import annotations

import argparse
import sys

from vlkd.cli.common import SHARD_HELP, add_overwrite, integer, number, shard_done


def cmd_prepare_text(args: argparse.Namespace) -> int:
    from vlkd.data.text.store import build_token_store
    from vlkd.shards import parse_shard

    shard = parse_shard(args.shard)
    if shard is not None:
        from vlkd.data.text.sharded import build_token_store_shard

        build_token_store_shard(args.input, args.tokenizer, args.out, shard, block_size=args.block_size,
                                fmt=args.format, min_words=args.min_words, overwrite=args.overwrite)
        return shard_done(args.out, shard)
    meta = build_token_store(args.input, args.tokenizer, args.out, block_size=args.block_size, fmt=args.format,
                             min_words=args.min_words, overwrite=args.overwrite)
    print(f"{args.out}: {meta['num_blocks']:,} blocks of {meta['block_size']} tokens "
          f"({meta['num_tokens']:,} tokens)")
    return 0


def cmd_prepare_world(args: argparse.Namespace) -> int:
    from vlkd.data.world.generate import build_world

    summary = build_world(args.out, args.videos, seed=args.seed, workers=args.workers, overwrite=args.overwrite,
                          report_rate=args.report_rate, events=args.events)
    print(f"{args.out}: {summary['num_videos']} videos, {summary['num_questions']} questions")
    return 0


def cmd_prepare_bundled(args: argparse.Namespace) -> int:
    from vlkd.data.tasks.bundled import prepare_bundled

    for task, counts in prepare_bundled(args.out, overwrite=args.overwrite).items():
        print(f"{args.out}/{task}: " + ", ".join(f"{n:,} {split}" for split, n in counts.items()))
    return 0

def cmd_prepare_howto100m(args: argparse.Namespace) -> int:
    from vlkd.data.teacher.howto100m import prepare_howto100m
    from vlkd.shards import parse_shard

    shard = parse_shard(args.shard)
    meta = prepare_howto100m(args.captions, args.features, args.out, args.tokenizer, feature_2d=args.feature_2d,
                             feature_3d=args.feature_3d, word_budget=args.word_budget, max_tokens=args.max_tokens,
                             max_steps=args.max_steps, valid_fraction=args.valid_fraction, shard=shard,
                             overwrite=args.overwrite)
    if shard is not None:
        return shard_done(args.out, shard)
    splits = ", ".join(f"{k}: {v['samples']:,} samples from {len(v['videos']):,} videos"
                       for k, v in meta["splits"].items())
    print(f"{args.out}: {splits}; skipped {meta['videos_skipped'] or 'none'}")
    return 0


def cmd_prepare_teacher_targets(args: argparse.Namespace) -> int:
    from vlkd.data.teacher.targets import prepare_teacher_targets
    from vlkd.shards import parse_shard

    shard = parse_shard(args.shard)
    meta = prepare_teacher_targets(args.teacher, args.store, args.out, form=args.form, vokens=args.vokens,
                                   batch_size=args.batch_size, overwrite=args.overwrite, shard=shard)
    if shard is not None:
        return shard_done(args.out, shard)
    vokens = f", vokens over {meta['num_vokens']:,} videos" if meta["vokens"] else ""
    print(f"{args.out}: teacher targets ({meta['form']}) of {meta['store']['num_blocks']:,} blocks x "
          f"{meta['seq_len']} tokens, teacher width {meta['width']}{vokens}; {meta['bytes'] / 1e9:.2f} GB")
    return 0


def cmd_prepare_videoqa(args: argparse.Namespace) -> int:
    from vlkd.data.videoqa.prepare import prepare_videoqa

    meta = prepare_videoqa(args.dataset, args.qa_dir, args.glove, args.out, mapping=args.mapping,
                           answer_top=args.answer_top, features=args.features, overwrite=args.overwrite)
    splits = meta["splits"]
    dropped = sum(s["dropped_missing_video"] for s in splits.values())
    if dropped:
        videos = sum(len(s["missing_videos"]) for s in splits.values())
        per_split = ", ".join(f"{k}: {s['dropped_missing_video']:,}" for k, s in splits.items())
        print(f"vlkd: warning: dropped {dropped:,} questions of {videos:,} videos missing from {args.features} "
              f"({per_split})", file=sys.stderr)
    counts = ", ".join(f"{k} {s['questions']:,} questions ({s['oov_answers']:,} OOV answers)"
                       for k, s in splits.items())
    print(f"{args.out}: {counts}; question vocabulary {meta['question_vocab_size']:,} words "
          f"(GloVe coverage {100 * meta['glove']['coverage']:.1f}%), {meta['num_answers']:,} answers")
    return 0


def add(sub: argparse._SubParsersAction) -> None:
    """Add the `vlkd prepare` group."""
    prep = sub.add_parser("prepare", help="convert raw data into vlkd's formats").add_subparsers(
        dest="what", metavar="WHAT", required=True)
    p = prep.add_parser("text", help="tokenize a text corpus into a memory-mapped token store",
                        description="Tokenize text (WikiText-103 raw, plain .txt, or the bundled Wikipedia JSON) "
                                    "into non-overlapping blocks; writes OUT/blocks.bin and OUT/meta.json.")
    p.add_argument("--input", nargs="+", required=True, metavar="FILE", help="input text files, in order")
    p.add_argument("--tokenizer", default="bundled:minilm",
                   help="tokenizer directory, `bundled:minilm` (bert-base-uncased vocab; default), or hub name")
    p.add_argument("--out", required=True, help="output directory (must not exist or be empty)")
    p.add_argument("--block-size", type=integer(ge=1), default=126, help="ids per block (default 126 -> 128 with CLS/SEP)")
    p.add_argument("--format", default="auto", choices=["auto", "wikitext", "txt", "wiki-json"],
                   help="input format (auto: .raw/.tokens -> wikitext, .json -> wiki-json, else txt)")
    p.add_argument("--min-words", type=integer(ge=0), default=None,
                   help="skip lines with fewer words (default: 5 for wikitext as the reference, else 0)")
    add_overwrite(p)
    p.add_argument("--shard", metavar="K/N", help=SHARD_HELP)
    p.set_defaults(func=cmd_prepare_text, out_kind="dir")
    p = prep.add_parser("world", help="generate the synthetic video world (mp4 + captions + questions)",
                        description="Generate a deterministic synthetic video world: OUT/videos/*.mp4, "
                                    "HowTo100M-format OUT/caption.json, MSVD-QA-format OUT/{train,val,test}_qa.json, "
                                    "OUT/world.json (ground truth) and OUT/README.md (the grammar).")
    p.add_argument("--out", required=True, help="output directory (must not exist or be empty)")
    p.add_argument("--videos", type=integer(ge=1), required=True, help="number of videos")
    p.add_argument("--seed", type=integer(ge=0), default=0, help="random seed (default 0); same seed, same world")
    p.add_argument("--workers", type=integer(ge=1), default=None, help="encoding processes (default: all cores)")
    p.add_argument("--report-rate", type=number(ge=0, le=1), default=None,
                   help="chance that a caption states each property of a train kind it mentions (default 0.25); "
                        "a probe kind's never (docs/visual-knowledge.md)")
    p.add_argument("--events", action="store_true",
                   help="a VideoQA world of scenes with several events (objects that move, stop and move again) "
                        "and questions relating clips (order, counting over time); no captions or corpus")
    add_overwrite(p)
    p.set_defaults(func=cmd_prepare_world, out_kind="dir")
    p = prep.add_parser("bundled", help="write the offline tasks rt-polarity and wiki-topic (GLUE layout)",
                        description="Convert bundled real data into GLUE-layout classification tasks: "
                                    "OUT/rt-polarity (Rotten Tomatoes snippets, fresh=1/rotten=0) and OUT/wiki-topic "
                                    "(12-way topic of Wikipedia lead sections), each with fixed train/dev/test splits.")
    p.add_argument("--out", required=True, help="output directory (holding the two task folders)")
    add_overwrite(p)
    p.set_defaults(func=cmd_prepare_bundled, out_kind="dir")
    p = prep.add_parser("howto100m", help="build VidLanKD teacher samples from HowTo100M captions and features",
                        description="Join consecutive caption segments up to a word budget, pair each window "
                                    "with its [2D || 3D] feature steps (FEATURES/<2d>/ID.npy at 1/s, "
                                    "FEATURES/<3d>/ID.npy at 1.5/s), and write memory-mapped train/valid "
                                    "splits (by video) plus meta.json with kept/skipped counts.")
    p.add_argument("--captions", required=True, help="caption.json: {video_id: {start: [], end: [], text: []}}")
    p.add_argument("--features", required=True, help="folder holding the 2D and 3D feature subfolders")
    p.add_argument("--feature-2d", default="2d", help="2D subfolder (default 2d)")
    p.add_argument("--feature-3d", default="3d", help="3D subfolder (default 3d)")
    p.add_argument("--tokenizer", default="bundled:minilm", help="tokenizer directory or `bundled:minilm`")
    p.add_argument("--out", required=True, help="output directory (must not exist or be empty)")
    p.add_argument("--word-budget", type=integer(ge=1), default=126, help="words per caption window (default 126)")
    p.add_argument("--max-tokens", type=integer(ge=1), default=126, help="tokens kept per window (default 126)")
    p.add_argument("--max-steps", type=integer(ge=1), default=384, help="feature steps per window (default 384)")
    p.add_argument("--valid-fraction", type=number(ge=0, lt=1), default=0.05, help="share of videos held out (default 0.05)")
    add_overwrite(p)
    p.add_argument("--shard", metavar="K/N", help=SHARD_HELP)
    p.set_defaults(func=cmd_prepare_howto100m, out_kind="dir")
    p = prep.add_parser("videoqa", help="preprocess MSVD-QA / MSRVTT-QA questions (vocabularies, labels, GloVe)",
                        description="Read QA_DIR/{train,val,test}_qa.json (lists of {video_id|video_name, question, "
                                    "answer, id?}), tokenize the questions (lower-case, final '?' dropped), build the "
                                    "question vocabulary (<NULL>=0, <UNK>=1) and the top-k answer vocabulary from "
                                    "train (an answer outside it is label 0 in train and 1 in val/test, so it never "
                                    "counts as correct), and look up GloVe vectors. Writes OUT/vocab.json, "
                                    "OUT/glove.npy (float32, vocabulary x D), OUT/{train,val,test}.jsonl (one "
                                    "question per line: id, video_id, question, tokens, answer, label, type) and "
                                    "OUT/meta.json (sizes, GloVe coverage, per-split counts). With --features, "
                                    "questions whose video is not in the HCRN feature files are dropped and counted.")
    p.add_argument("--dataset", required=True, choices=["msvd-qa", "msrvtt-qa"], help="which dataset")
    p.add_argument("--qa-dir", required=True, help="folder holding train_qa.json, val_qa.json and test_qa.json")
    p.add_argument("--mapping", default=None,
                   help="MSVD-QA youtube_mapping.txt (lines `NAME vidN`) mapping video_name to the integer N")
    p.add_argument("--glove", required=True,
                   help="a glove.*.txt file (e.g. glove.840B.300d.txt, streamed) or bundled:glove-50d "
                        "(GloVe 6B 50-d, offline)")
    p.add_argument("--answer-top", type=integer(ge=1), default=4000, help="answers kept from train, most frequent first "
                                                                 "(default 4000)")
    p.add_argument("--features", default=None,
                   help="HCRN feature folder (appearance_feat.h5, motion_feat.h5): drop questions whose video "
                        "is not in both files")
    p.add_argument("--out", required=True, help="output directory (must not exist or be empty)")
    add_overwrite(p)
    p.set_defaults(func=cmd_prepare_videoqa, out_kind="dir")
    p = prep.add_parser("teacher-targets", help="cache a frozen teacher's distillation targets for a token store",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Run a trained teacher (RUN/final, frozen) once over every block of a token "
                                    "store, fed the clean\n"
                                    "`[CLS] block [SEP]` (L = block_size + 2 tokens, no masking), and cache what "
                                    "distillation needs, so a run with\n`kd.targets: OUT` never runs "
                                    "the teacher. The teacher must share the store's vocabulary.\n\n"
                                    "Forms (OUT/targets.f16, float16, memory-mapped, row i = block i):\n"
                                    "  full      (num_blocks, L, H_t): norm(last hidden) per token; serves every "
                                    "KD loss.\n"
                                    "  nst-gram  (num_blocks, L(L+1)/2): the upper triangle of the teacher's L x L "
                                    "Gram matrix of\n"
                                    "            channel-normalised features; exact for NST only, and L x H_t / "
                                    "(L(L+1)/2) times\n"
                                    "            smaller (12x at L=128, H_t=768).\n"
                                    "--vokens adds OUT/vokens.i32 (int32, num_blocks x L): each token's nearest "
                                    "training video of the teacher\n(the vokenization baseline). OUT/meta.json "
                                    "names the teacher (weights checksum), the store (checksum), block\nsize and "
                                    "width; a cache of another store, block size or teacher is refused when used. "
                                    "The size is\nprinted before writing. Interrupted? Re-run the same command: it "
                                    "continues.")
    p.add_argument("--teacher", required=True, help="teacher run directory (with final/text and final/video)")
    p.add_argument("--store", required=True, help="token store directory (`vlkd prepare text` output)")
    p.add_argument("--out", required=True, help="output directory (re-running with it resumes)")
    p.add_argument("--form", default="full", choices=["full", "nst-gram"], help="what to store (default full)")
    p.add_argument("--vokens", action="store_true", help="also store voken ids (needs the teacher's training data)")
    p.add_argument("--batch-size", type=integer(ge=1), default=32, help="blocks per teacher forward (default 32)")
    add_overwrite(p)
    p.add_argument("--shard", metavar="K/N", help=SHARD_HELP + "; shards are whole batches of --batch-size")
    p.set_defaults(func=cmd_prepare_teacher_targets, out_kind="dir")
