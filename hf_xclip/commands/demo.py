"""`hf-xclip demo`: classify a few freshly generated clips with the embedded default model, offline.

Single-label: clips of seen and of held-out (zero-shot) shape-colour-motion combinations are rendered with
`hf_xclip.data.synthetic`, written as mp4 files (so the real decoding path runs) and classified with
`pipeline("zero-shot-video-classification")`. Each clip is classified among every caption with the clip's shape
(6 colours x 7 motions = 42 captions, 36 for a circle, which has no "rotating"), seen and held-out combinations
alike: the shape is given, colour and motion must be read from the video. Chance is 1/42 (1/36).

Multi-label: clips holding 2-3 objects (each its own shape, colour and motion; at least one of a held-out
combination) are scored with ``multi_label=True`` against all 204 captions, each on its own (the model's sigmoid
head); the labels at or above ``--threshold`` are what the clip is said to show.
Then a timeline (`hf_xclip.timeline`): a video of four generated actions one after another, cut into windows, and
the segments found in it printed next to the true ones.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import cli

if TYPE_CHECKING:
    from ..data.synthetic import SyntheticVideoSpec

DESCRIPTION = """Generate a few synthetic clips (seen and held-out combinations), write them as mp4, classify each with
the embedded default model (or --model) among all captions of its shape, then label multi-object clips among all
captions (multi-label), and print the results."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "demo", help="classify generated clips with the embedded default model (offline)", description=DESCRIPTION
    )
    parser.add_argument("--num-clips", type=int, default=8, help="clips to generate, half of them held-out (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the clip choice and rendering (default 0)")
    parser.add_argument("--model", help="model directory or Hub id (default: the embedded default model)")
    parser.add_argument("--num-scenes", type=int, default=4, help="multi-object clips for the multi-label part (4)")
    parser.add_argument("--threshold", type=float, default=0.5, help="multi-label: report labels at or above it (0.5)")
    parser.add_argument("--keep-videos", type=Path, metavar="DIR", help="write the mp4 files here and keep them")
    parser.add_argument("--no-timeline", action="store_true", help="skip the timeline of a generated action sequence")
    cli.add_decode_argument(parser)
    return parser


def pick_clips(num_clips: int, seed: int) -> list[tuple[SyntheticVideoSpec, bool]]:
    """``num_clips`` distinct combinations, alternating seen / held-out, chosen with ``seed``."""
    from ..data.synthetic import heldout_specs, train_specs

    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(101,)))
    seen, held = train_specs(), heldout_specs()
    num_held = min(num_clips // 2, len(held))
    chosen_held = [held[i] for i in rng.choice(len(held), num_held, replace=False)]
    chosen_seen = [seen[i] for i in rng.choice(len(seen), num_clips - num_held, replace=False)]
    clips = []
    for i in range(num_clips):
        source = chosen_seen if (i % 2 == 0 or not chosen_held) and chosen_seen else chosen_held
        clips.append((source.pop(0), source is chosen_held))
    return clips


def write_clips(clips, out_dir: Path, size: int, num_frames: int, seed: int) -> list[Path]:
    """Render each clip (16 frames; the processor samples ``num_frames``) and write ``out_dir/NN_<caption>.mp4``."""
    from ..data.synthetic import render_video
    from ..data.video_writer import write_video

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (spec, _) in enumerate(clips):
        frames = render_video(
            spec, num_frames=2 * num_frames, size=size, seed=np.random.SeedSequence(seed, spawn_key=(102, i))
        )
        name = f"{i:02d}_{spec.caption.replace(' ', '_')}.mp4"
        paths.append(write_video(out_dir / name, frames, fps=8, crf=12))
    return paths


def pick_scenes(num_scenes: int, seed: int):
    """Multi-object scenes: each holds a seen and a held-out combination (and sometimes a third object)."""
    from ..data.synthetic import heldout_specs, sample_scenes, train_specs

    return sample_scenes(num_scenes, seed=seed, require=[train_specs(), heldout_specs()])


def write_scenes(scenes, out_dir: Path, size: int, num_frames: int, seed: int) -> list[Path]:
    from ..data.synthetic import render_scene
    from ..data.video_writer import write_video

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, scene in enumerate(scenes):
        frames = render_scene(
            scene, num_frames=2 * num_frames, size=size, seed=np.random.SeedSequence(seed, spawn_key=(105, i))
        )
        paths.append(write_video(out_dir / f"scene_{i:02d}.mp4", frames, fps=8, crf=12))
    return paths


def run_multi_label(classifier, args: argparse.Namespace, out_dir: Path, size: int) -> None:
    """Label multi-object clips among every caption, each label scored on its own, and print what was found: each
    object's probability and rank among all captions, and the best-scoring captions."""
    from ..data.synthetic import all_specs, heldout_specs
    from ..multilabel import describe, resolve_method

    scenes = pick_scenes(args.num_scenes, args.seed)
    paths = write_scenes(scenes, out_dir, size, classifier.video_processor.num_frames, args.seed)
    labels = [spec.caption for spec in all_specs()]
    held = {spec.caption for spec in heldout_specs()}
    method = resolve_method("auto", classifier.model)
    print()
    print(
        f"multi-label: each clip shows 2-3 objects; all {len(labels)} captions are scored on their own "
        f"({describe(method, classifier.model)})"
    )
    found = top5 = total = wrong = 0
    for i, (scene, path) in enumerate(zip(scenes, paths)):
        results = classifier(str(path), candidate_labels=labels, multi_label=True)
        rank = {r["label"]: k + 1 for k, r in enumerate(results)}
        score = {r["label"]: r["score"] for r in results}
        truth = set(scene.captions)
        print(f"clip {i} ({path.name}):")
        for caption in scene.captions:
            split = "held-out" if caption in held else "seen"
            mark = "found" if score[caption] >= args.threshold else "below threshold"
            print(f"  shows  {caption:<30} {split:<8}  p {score[caption]:.3f}  rank {rank[caption]:>3}  {mark}")
        best = ", ".join(f"{r['label']} {r['score']:.3f}{'' if r['label'] in truth else ' (no)'}" for r in results[:3])
        print(f"  best   {best}")
        found += sum(score[caption] >= args.threshold for caption in truth)
        wrong += sum(r["score"] >= args.threshold and r["label"] not in truth for r in results)
        top5 += sum(rank[caption] <= 5 for caption in truth)
        total += len(truth)
    print(
        f"multi-label: {top5}/{total} objects among the 5 best of {len(labels)} captions; at p >= {args.threshold:g}: "
        f"{found}/{total} objects found, {wrong} wrong labels"
    )


def run(args: argparse.Namespace) -> int:
    try:
        cli.check_at_least_one(args, "num_clips", show_value=True)
        if args.num_scenes < 0:
            raise cli.UsageError(f"--num-scenes must be >= 0, got {args.num_scenes}")
        if not 0.0 <= args.threshold <= 1.0:
            raise cli.UsageError(f"--threshold must be in [0, 1], got {args.threshold}")
        model = cli.model_or_default(args.model)
    except cli.UsageError as err:
        print(f"hf-xclip demo: error: {err}", file=sys.stderr)
        return cli.EXIT_USAGE
    start = time.perf_counter()
    from transformers import pipeline

    from ..embedded_model.training import candidate_specs

    classifier = pipeline("zero-shot-video-classification", model=model)
    try:
        cli.apply_decode_backend(classifier.video_processor, args.decode_backend)
    except cli.UsageError as err:
        print(f"hf-xclip demo: error: {err}", file=sys.stderr)
        return cli.EXIT_USAGE
    video_processor = classifier.video_processor
    size = video_processor.crop_size["height"]
    clips = pick_clips(args.num_clips, args.seed)
    with tempfile.TemporaryDirectory(prefix="hf-xclip-demo-") as tmp:
        out_dir = args.keep_videos or Path(tmp)
        # Written at twice the model's input size, so the processor's resize runs as it does on real videos.
        paths = write_clips(clips, out_dir, 2 * size, video_processor.num_frames, args.seed)
        rows = []
        for (spec, held), path in zip(clips, paths):
            labels = [other.caption for other in candidate_specs(spec)]
            top = classifier(str(path), candidate_labels=labels, top_k=3)
            rank = next((k + 1 for k, r in enumerate(top) if r["label"] == spec.caption), None)
            rows.append((path.name, spec.caption, held, top[0]["label"], top[0]["score"], len(labels), rank))
        print_table(rows)
        print_summary(rows)
        if args.num_scenes:
            run_multi_label(classifier, args, out_dir, 2 * size)
        if not args.no_timeline:
            print()
            demo_timeline(classifier, out_dir, 2 * size, args.seed)
    print(
        f"model: {model}   {len(rows) + args.num_scenes} clips{'' if args.no_timeline else ' and a timeline'} in "
        f"{time.perf_counter() - start:.1f} s"
    )
    if args.keep_videos:
        print(f"videos kept in {args.keep_videos}")
    return cli.EXIT_OK


def print_summary(rows) -> None:
    for name, held in (("seen", False), ("held-out", True)):
        part = [row for row in rows if row[2] == held]
        if part:
            right = sum(row[1] == row[3] for row in part)
            top3 = sum(row[6] is not None for row in part)
            print(f"{name}: {right}/{len(part)} right (top-3: {top3}/{len(part)})", end="   ")
    chance = np.mean([1 / row[5] for row in rows])
    print(f"(chance {chance:.1%}: each clip is scored against every caption of its shape, 42 or 36 for circles)")


TIMELINE_FPS, TIMELINE_WINDOW, TIMELINE_STRIDE = 8, 2.0, 0.5


def demo_timeline(classifier, out_dir: Path, size: int, seed: int) -> None:
    """Four actions (different colours) of 3-5 s one after another; their timeline against the truth."""
    from ..data.synthetic import distinct_colour_specs, render_sequence
    from ..data.video_writer import write_video
    from ..timeline import evaluate_segments, format_time, video_timeline

    specs = distinct_colour_specs(4, np.random.SeedSequence(seed, spawn_key=(103,)))
    durations = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(104,))).integers(3, 6, len(specs))
    frames, truth = render_sequence(specs, durations.tolist(), fps=TIMELINE_FPS, size=size, seed=seed)
    path = write_video(out_dir / "timeline_sequence.mp4", frames, fps=TIMELINE_FPS, crf=12)
    timeline = video_timeline(
        classifier, path, [spec.caption for spec in specs], window=TIMELINE_WINDOW, stride=TIMELINE_STRIDE
    )
    print(
        f"timeline of {path.name} ({timeline.duration:g} s, 4 actions): windows of {TIMELINE_WINDOW:g} s every "
        f"{TIMELINE_STRIDE:g} s, {len(timeline.spans)} windows, labels = the 4 captions"
    )
    print("  truth:")
    for label, begin, end in truth:
        print(f"    {format_time(begin, 1):>7} - {format_time(end, 1):<7} {label}")
    print("  found:")
    for segment in timeline.segments:
        print(
            f"    {format_time(segment.start, 1):>7} - {format_time(segment.end, 1):<7} {segment.label} "
            f"({segment.score:.2f})"
        )
    result = evaluate_segments(timeline.segments, truth)
    errors = ", ".join(f"{error:.2f}" for error in result["boundary_errors"])
    print(
        f"  segments right: {result['segment_accuracy']:.0%}, time labelled right: {result['time_accuracy']:.0%}, "
        f"boundary errors: {errors} s"
    )


def print_table(rows) -> None:
    header = ("#", "true caption", "split", "prediction", "score", "", "rank of truth")
    lines = [
        (
            str(i),
            caption,
            "held-out" if held else "seen",
            predicted,
            f"{score:.2f}",
            "right" if predicted == caption else "WRONG",
            str(rank) if rank else "> 3",
        )
        for i, (_, caption, held, predicted, score, _, rank) in enumerate(rows)
    ]
    widths = [max(len(row[k]) for row in [header, *lines]) for k in range(len(header))]
    for row in [header, *lines]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
