"""`hf-xclip classify`: zero-shot classification of video files and folders from the command line.

```
hf-xclip classify videos/ clip.mp4 --model microsoft/xclip-base-patch32 --labels "surfing,juggling,cooking"
hf-xclip classify videos/ --model ./my-model --labels-file kinetics_400_labels.csv --top-k 5 --csv out.csv
hf-xclip classify videos/ --model ./my-model --label-bank k400.bank            # every label of the bank
hf-xclip classify videos/ --model ./my-model --adapter my-adapter --labels "surfing,juggling"
hf-xclip classify videos/ --labels-file labels.txt --engine ray --num-workers 4 --output results.parquet
```

With `--output FOLDER` the results go to Parquet parts (path, labels, scores, probabilities, video_embeds, error;
`hf_xclip.distributed.jobs`), committed as they complete: a killed run keeps them, and the same command resumes
it. `--engine ray` runs the videos on Ray Data workers (a local Ray, or `--ray-address`); see docs/distributed.md.

Folders are walked recursively for video files (`hf_xclip.data.folders.VIDEO_EXTENSIONS`); files named explicitly are
always read.
A video that cannot be read is reported on stderr and skipped; the others are still classified and written, and the
exit status is 1 when any video failed (2 for usage errors).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .. import cli
from ..distributed.arguments import add_engine_arguments, engine_options, report_job

# the options a local run passes to the pipeline call and a job to its predictor, under the same names
SCORING_OPTIONS = ("multi_label", "multi_label_method", "num_frames", "num_clips", "num_crops")

SUMMARY = "zero-shot classification of videos against free-text labels"
DESCRIPTION = """Score videos against free-text labels with an X-CLIP model (zero-shot).

Results go to stdout as a table, or to --json / --csv files ("-" for stdout). Unreadable videos are reported on
stderr and skipped; the exit status is 1 when some failed."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = cli.add_command_parser(subparsers, "classify", SUMMARY, DESCRIPTION)
    parser.add_argument("paths", nargs="+", metavar="PATH", help="video files, folders (walked recursively) or URLs")
    parser.add_argument("--model", help="hf_xclip or transformers X-CLIP directory, or Hub id")
    cli.add_label_arguments(parser, required=False)  # or --label-bank
    parser.add_argument("--top-k", type=int, default=5, help="labels to report per video (default 5; 0 = all)")
    cli.add_label_side_arguments(parser)
    parser.add_argument(
        "--multi-label",
        action="store_true",
        help="an independent probability per label (the model's sigmoid head, else background prompts)",
    )
    cli.add_multi_label_method_argument(
        parser, "auto (default): sigmoid head if the model has one, else background; negative: label vs 'not label'"
    )
    parser.add_argument("--threshold", type=float, help="report only labels scoring at or above it (0 to 1)")
    parser.add_argument("--num-frames", type=int, help="frames per clip (default: the model's)")
    parser.add_argument("--num-clips", type=int, default=1, help="temporal clips averaged per video (default 1)")
    parser.add_argument("--num-crops", type=int, default=1, choices=(1, 3), help="spatial crops per clip (1 or 3)")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", metavar="OUT", help="write results as JSON ('-' for stdout)")
    output.add_argument("--csv", metavar="OUT", help="write results as CSV: video,rank,label,score ('-' for stdout)")
    parser.add_argument("--plot", metavar="OUT.png", help="draw sampled frames and top-k scores (needs matplotlib)")
    output.add_argument(
        "--output",
        "-o",
        metavar="FOLDER",
        help="write every label's scores and the video embeddings "
        "as Parquet parts into FOLDER (e.g. results.parquet), resumable; required by --engine ray",
    )
    parser.add_argument("--batch-size", type=int, default=1, help="videos per forward pass (default 1)")
    parser.add_argument("--workers", type=int, default=2, help="threads decoding ahead (default 2)")
    cli.add_model_arguments(parser)
    add_engine_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    cli.add_decode_argument(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from ..data.folders import find_videos

    if args.output or args.engine != "local":
        return run_job(args)

    try:
        labels, bank, descriptions = cli.read_label_arguments(args)
        _check_numbers(args)
        if args.plot:
            cli.require_matplotlib()
        model = cli.model_options(args)
        videos, missing = find_videos(args.paths)
        if not videos and not missing:
            raise cli.UsageError(f"no video files found in {', '.join(args.paths)}")
        classifier = cli.load_pipeline(**model)
        cli.apply_decode_backend(classifier.video_processor, args.decode_backend)
    except cli.UsageError as err:
        print(f"hf-xclip classify: error: {err}", file=sys.stderr)
        return cli.EXIT_USAGE
    for path, reason in missing:
        print(f"hf-xclip classify: skipping {path}: {reason}", file=sys.stderr)

    call = dict(
        candidate_labels=labels,
        hypothesis_template=args.templates or None,  # None: the bank's, else the model's own (its processor's)
        label_descriptions=descriptions,
        label_bank=bank,
        **cli.option_values(args, *SCORING_OPTIONS),
        threshold=args.threshold,
        top_k=args.top_k or None,
    )
    cuts = _label_cuts(classifier, labels or (bank.labels if bank is not None else []), args)
    if cuts is not None:  # every score comes back: the thresholds and top-k apply here (see _keep)
        call.update(threshold=0.0, top_k=None)
    cli.warn_unknown_labels(classifier.tokenizer, labels or [], "classify")
    try:
        results, failures = classify_videos(classifier, videos, call, args)
    except (ValueError, OSError) as err:  # labels, templates, the bank or the label prompter's language model
        print(f"hf-xclip classify: error: {err}", file=sys.stderr)
        return cli.EXIT_USAGE
    if cuts is not None:
        results = [(video, _keep(video, predictions, cuts, args)) for video, predictions in results]
    failures = [*((str(p), reason) for p, reason in missing), *failures]
    write_results(results, args)
    if args.plot and results:
        for (video, predictions), out in zip(results, plot_paths(args.plot, [video for video, _ in results])):
            plot_predictions(classifier, video, predictions, out, num_frames=args.num_frames)
    if failures:
        print(f"hf-xclip classify: {len(failures)} of {len(failures) + len(results)} video(s) failed.", file=sys.stderr)
        return cli.EXIT_FAILURES
    return cli.EXIT_OK


def run_job(args: argparse.Namespace) -> int:
    """``--output`` / ``--engine ray``: a resumable job writing Parquet parts (`hf_xclip.distributed.jobs.run_job`)."""
    from ..distributed.jobs import run_job as run_prediction_job

    try:
        labels, _, descriptions = cli.read_label_arguments(args)  # a bank is loaded by each worker
        _check_numbers(args)
        if not args.output:
            raise cli.UsageError("--engine ray writes Parquet: give --output FOLDER (e.g. results.parquet)")
        if args.decode_backend not in (None, "auto"):
            raise cli.UsageError(
                "--decode-backend goes without --output: jobs decode with the model processor's own backend"
            )
        if args.plot:
            raise cli.UsageError("--plot does not combine with --output; plot from a local run")
        options = engine_options(args, videos_per_call=max(args.batch_size, 4))
        predictor = dict(
            mode="classify",
            **cli.model_options(args),
            labels=labels,
            templates=args.templates,
            label_descriptions=descriptions,
            label_bank=None if args.label_bank is None else str(args.label_bank.resolve()),
            **cli.option_values(args, *SCORING_OPTIONS),
            batch_size=args.batch_size,
            decode_threads=max(1, args.workers),
        )
    except (cli.UsageError, ValueError) as err:
        print(f"hf-xclip classify: error: {err}", file=sys.stderr)
        return cli.EXIT_USAGE
    return report_job("classify", lambda: run_prediction_job(args.paths, args.output, predictor, options))


# ----------------------------------------------------------------------------------------------------------------
# Inputs


def _check_numbers(args: argparse.Namespace) -> None:
    for name in ("top_k", "num_frames", "num_clips", "batch_size", "workers"):
        value = getattr(args, name)
        minimum = 0 if name in ("top_k", "workers") else 1
        if value is not None and value < minimum:
            raise cli.UsageError(f"--{name.replace('_', '-')} must be >= {minimum}, got {value}")
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise cli.UsageError(f"--threshold must be in [0, 1], got {args.threshold}")
    if args.multi_label_method != "auto" and not args.multi_label:
        raise cli.UsageError("--multi-label-method needs --multi-label")


# ----------------------------------------------------------------------------------------------------------------
# Running


def classify_videos(classifier, videos: list[str], call: dict[str, Any], args: argparse.Namespace):
    """Returns ([(video, predictions)], [(video, reason)]); failures are reported on stderr as they happen."""
    from tqdm.auto import tqdm

    results: list[tuple[str, list[dict]]] = []
    failures: list[tuple[str, str]] = []
    if not videos:
        return results, failures
    outputs = classifier(
        iter(videos),
        **call,
        return_exceptions=True,
        batch_size=args.batch_size,
        num_workers=max(1, args.workers),
    )
    progress = tqdm(total=len(videos), unit="video", disable=args.no_progress, file=sys.stderr, dynamic_ncols=True)
    with progress:
        for video, output in zip(videos, outputs):
            if isinstance(output, Exception):
                reason = str(output)
                failures.append((video, reason))
                progress.write(f"hf-xclip classify: skipping {video}: {reason}", file=sys.stderr)
            else:
                results.append((video, output))
            progress.update()
    return results, failures


# ----------------------------------------------------------------------------------------------------------------
# Outputs


def write_results(results: list[tuple[str, list[dict]]], args: argparse.Namespace) -> None:
    if args.json:
        payload = [{"video": video, "predictions": predictions} for video, predictions in results]
        _write(args.json, json.dumps(payload, indent=2) + "\n")
    elif args.csv:
        rows = [
            (video, rank, item["label"], f"{item['score']:.6f}")
            for video, predictions in results
            for rank, item in enumerate(predictions, start=1)
        ]
        _write_csv(args.csv, [("video", "rank", "label", "score"), *rows])
    else:
        print(format_table(results))


def _label_cuts(classifier, labels: list[str], args: argparse.Namespace) -> dict[str, float] | None:
    """Label -> the score it needs: ``--threshold``, else (multi-label with the model's sigmoid head) the head's
    decision thresholds fitted by `hf-xclip calibrate`; None when every label is reported (top-k only)."""
    if args.threshold is not None:
        return dict.fromkeys(labels, args.threshold)
    if not args.multi_label:
        return None
    from ..multilabel import decision_thresholds, resolve_method

    try:
        method = resolve_method(args.multi_label_method, classifier.model)
    except ValueError:
        return None  # reported by the pipeline call
    fitted = decision_thresholds(classifier.model, labels) if method == "sigmoid" else None
    return dict(zip(labels, fitted)) if fitted is not None else None


def _keep(video: str, predictions: list[dict], cuts: dict[str, float], args: argparse.Namespace) -> list[dict]:
    """The labels at or above their threshold (then ``--top-k``); when none is, say so with the top score."""
    kept = [item for item in predictions if item["score"] >= cuts.get(item["label"], 0.0)][: args.top_k or None]
    if not kept and predictions:
        top = max(predictions, key=lambda item: item["score"])
        which = (
            f"--threshold {args.threshold:g}"
            if args.threshold is not None
            else (f"the calibrated threshold ({cuts.get(top['label'], 0.0):.4g} for it)")
        )
        print(
            f"hf-xclip classify: {video}: no label reached {which} (top: {top['label']!r} {top['score']:.4f})",
            file=sys.stderr,
        )
    return kept


def format_table(results: list[tuple[str, list[dict]]]) -> str:
    lines = []
    for video, predictions in results:
        lines.append(video)
        if not predictions:
            lines.append("  (no label reached the threshold)")
        width = max((len(item["label"]) for item in predictions), default=0)
        lines.extend(f"  {item['score']:7.2%}  {item['label']:<{width}}" for item in predictions)
    return "\n".join(lines)


def _write(target: str, text: str) -> None:
    if target == "-":
        sys.stdout.write(text)
        return
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    Path(target).write_text(text, encoding="utf-8")


def _write_csv(target: str, rows: Iterable[Sequence[Any]]) -> None:
    if target == "-":
        csv.writer(sys.stdout).writerows(rows)
        return
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)


def plot_paths(target: str, videos: Sequence[str]) -> list[Path]:
    """One PNG per video: ``target`` itself for one video, ``<stem>-<n>-<video name>.png`` for several."""
    target = Path(target)
    if len(videos) == 1:
        return [target]
    stem, suffix = target.stem, target.suffix or ".png"
    return [
        target.with_name(f"{stem}-{index:03d}-{Path(video.split('?')[0]).stem or 'video'}{suffix}")
        for index, video in enumerate(videos)
    ]


def plot_predictions(classifier, video: str, predictions: list[dict], out: Path, num_frames: int | None = None):
    """Save a figure: the frames the model saw (first clip, centre crop) above a bar chart of the scores."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    processor = classifier.video_processor
    frames_per_clip = num_frames or classifier.model.config.vision_config.num_frames
    from ..video_io import fetch_video

    try:
        source = fetch_video(video, None)
    except ValueError:
        source = None
    fig_frames = None
    if source is not None:
        pixels = processor(source, num_frames=frames_per_clip, num_clips=1, num_crops=1)["pixel_values"][0]
        mean = np.asarray(processor.image_mean, dtype=np.float32).reshape(1, 3, 1, 1)
        std = np.asarray(processor.image_std, dtype=np.float32).reshape(1, 3, 1, 1)
        images = pixels.float().numpy() * std + mean
        fig_frames = np.clip(images.transpose(0, 2, 3, 1), 0, 1)
    count = len(fig_frames) if fig_frames is not None else 1
    fig = plt.figure(figsize=(max(6, 1.5 * count), 2.2 + 0.35 * len(predictions)))
    grid = fig.add_gridspec(2, count, height_ratios=[1.4, max(1, 0.35 * len(predictions))])
    for i in range(count):
        ax = fig.add_subplot(grid[0, i])
        if fig_frames is not None:
            ax.imshow(fig_frames[i])
        ax.set_axis_off()
    bars = fig.add_subplot(grid[1, :])
    labels = [item["label"] for item in predictions][::-1]
    scores = [item["score"] for item in predictions][::-1]
    bars.barh(labels, scores, color="tab:blue")
    bars.set_xlim(0, 1)
    bars.set_xlabel("score")
    for y, score in enumerate(scores):
        bars.text(min(score + 0.01, 0.9), y, f"{score:.1%}", va="center", fontsize=8)
    fig.suptitle(Path(video).name, fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out
