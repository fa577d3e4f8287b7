"""`hf-xclip timeline`: when does each label happen in a long video (zero-shot temporal localisation).

```
hf-xclip timeline match.mp4 --model microsoft/xclip-base-patch32 --labels "running,jumping,falling" --plot t.png
hf-xclip timeline lecture.mp4 --labels-file actions.txt --window 8 --stride 4 --json t.json --html t.html
hf-xclip timeline cam.mkv --labels "a person,a dog,a car" --multi-label --threshold 0.6 --csv windows.csv
hf-xclip timeline match.mp4 --model ./base --adapter ./my-adapter --label-bank k400.bank --plot t.png
hf-xclip timeline recordings/ --labels-file actions.txt --engine ray --num-workers 4 --output timelines/
```

With `--output DIR` (several videos or folders; required by `--engine ray`) every window becomes a row of Parquet
parts in DIR (path, start, end, labels, scores, error; `hf_xclip.distributed.jobs`), committed as they complete and
resumed by the same command; `DIR/_segments.jsonl` holds each video's segments. See docs/distributed.md.

The video is cut into windows of `--window` seconds every `--stride` seconds, decoded once from front to back, and
each window is scored against the labels (`hf_xclip.timeline.video_timeline`). The segments are printed (or written
with `--json`); `--csv` writes one row per window, `--plot` a heat strip, `--html` a page with the video.
Exit status: 0; 1 when the video cannot be read, or broke before its end (the windows before the break are still
written); 2 for usage errors.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import cli
from ..distributed.arguments import add_engine_arguments, engine_options, report_job

# the options that are `TimelineConfig` fields of the same names
CONFIG_OPTIONS = (
    "window",
    "stride",
    "multi_label",
    "multi_label_method",
    "threshold",
    "smoothing",
    "min_gap",
    "min_duration",
    "num_frames",
    "batch_size",
)

SUMMARY = "per-label timeline of a long video: window scores, segments, plot"
DESCRIPTION = """Score every window of a video against free-text labels (zero-shot) and find the segments where each
label happens. Windows of --window seconds every --stride seconds; the model's frame count is sampled inside each.
Single-label: the best label of each window; --multi-label: every label reaching --threshold. Results: the segments
on stdout (or --json), windows as --csv, a --plot heat strip, an --html page with the video."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    defaults = argparse.Namespace(
        **cli.static_defaults("hf_xclip.timeline", "TimelineConfig")
    )  # without importing torch
    parser = cli.add_command_parser(subparsers, "timeline", SUMMARY, DESCRIPTION)
    parser.add_argument(
        "video", nargs="+", metavar="VIDEO", help="video file (with --output: several files or folders)"
    )
    parser.add_argument("--model", help="hf_xclip or transformers X-CLIP directory, or Hub id (default: embedded)")
    cli.add_label_arguments(parser, required=False)  # or --label-bank
    cli.add_label_side_arguments(parser)
    _add_window_arguments(parser, defaults)
    _add_segment_arguments(parser, defaults)
    output = _add_output_arguments(parser)
    parser.add_argument(
        "--exact-resize",
        action="store_true",
        help="decode full frames and resize them in the processor (slower; exactly a pipeline "
        "call's pixels) instead of downscaling while decoding",
    )
    output.add_argument(
        "--output",
        "-o",
        metavar="DIR",
        help="window rows as Parquet parts in DIR and the segments "
        "in DIR/_segments.jsonl, resumable; for many videos, required by --engine ray",
    )
    cli.add_model_arguments(parser)
    add_engine_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    cli.add_decode_argument(parser)
    return parser


def _add_window_arguments(parser: argparse.ArgumentParser, defaults: argparse.Namespace) -> None:
    windows = parser.add_argument_group("windows")
    windows.add_argument(
        "--window",
        type=float,
        default=defaults.window,
        metavar="SECONDS",
        help=f"window length (default {defaults.window:g})",
    )
    windows.add_argument("--stride", type=float, metavar="SECONDS", help="seconds between windows (default window/2)")
    windows.add_argument("--start", type=float, metavar="SECONDS", help="cover the video from here")
    windows.add_argument("--end", type=float, metavar="SECONDS", help="cover the video up to here")
    windows.add_argument("--num-frames", type=int, help="frames per window (default: the model's)")
    windows.add_argument(
        "--batch-size",
        type=int,
        default=defaults.batch_size,
        help=f"windows per forward pass (default {defaults.batch_size})",
    )


def _add_segment_arguments(parser: argparse.ArgumentParser, defaults: argparse.Namespace) -> None:
    segments = parser.add_argument_group("segments")
    segments.add_argument(
        "--multi-label",
        action="store_true",
        help="independent per-label scores; segments where a label reaches --threshold",
    )
    cli.add_multi_label_method_argument(
        segments,
        "multi-label scores: 'sigmoid' (the model's calibrated head, see hf-xclip calibrate), "
        "'background', 'negative'; default 'auto': the head when the model has one, else "
        "'background'",
    )
    segments.add_argument(
        "--threshold", type=float, help="score a label needs (multi-label default 0.5; single-label default: none)"
    )
    segments.add_argument(
        "--smoothing",
        type=int,
        default=defaults.smoothing,
        metavar="WINDOWS",
        help="moving average of the scores over this many windows (default 1: none)",
    )
    segments.add_argument(
        "--min-gap", type=float, metavar="SECONDS", help="merge a label's segments this close (default: one stride)"
    )
    segments.add_argument(
        "--min-duration",
        type=float,
        default=defaults.min_duration,
        metavar="SECONDS",
        help="drop shorter segments (default 0)",
    )


def _add_output_arguments(parser: argparse.ArgumentParser):
    """The "outputs" group (its ``--output`` is added last, after ``--exact-resize``: the order of ``--help``)."""
    output = parser.add_argument_group("outputs")
    output.add_argument("--json", metavar="OUT", help="windows and segments as JSON ('-' for stdout)")
    output.add_argument("--csv", metavar="OUT", help="one row per window: start,end,top label,score per label ('-')")
    output.add_argument("--plot", metavar="OUT.png", help="labels x time heat strip with segments (needs matplotlib)")
    output.add_argument("--html", metavar="OUT.html", help="one page: the video, the strip, clickable segments")
    output.add_argument("--top-labels", type=int, default=20, help="labels drawn in --plot / --html (default 20)")
    output.add_argument(
        "--html-link-video",
        action="store_true",
        help="link the video from the page instead of embedding it (default: embed up to 64 MiB)",
    )
    return output


def run(args: argparse.Namespace) -> int:
    from ..timeline import video_timeline
    from ..video_io import VideoDecodeError

    if args.output or args.engine != "local":
        return run_job(args)
    if len(args.video) != 1:
        print("hf-xclip timeline: error: one VIDEO at a time; for several give --output DIR", file=sys.stderr)
        return cli.EXIT_USAGE
    args.video = args.video[0]
    try:
        labels, bank, descriptions = cli.read_label_arguments(args)
        if args.plot:
            cli.require_matplotlib()
        if args.top_labels < 1:
            raise cli.UsageError(f"--top-labels must be >= 1, got {args.top_labels}")
        config = _timeline_config(args)
        model = cli.model_options(args)
        if not Path(args.video).is_file():  # before loading the model
            reason = "not found" if not Path(args.video).exists() else "not a file"
            print(f"hf-xclip timeline: error: video {args.video}: {reason}", file=sys.stderr)
            return cli.EXIT_FAILURES
        classifier = cli.load_pipeline(**model)
        cli.apply_decode_backend(classifier.video_processor, args.decode_backend)
        cli.warn_unknown_labels(classifier.tokenizer, labels or [], "timeline")
        config = _calibrated_threshold(config, classifier.model)
        try:
            timeline = video_timeline(
                classifier,
                args.video,
                labels,
                config,
                label_descriptions=descriptions,
                label_bank=bank,
                progress=not args.no_progress,
            )
        except VideoDecodeError as err:  # missing or unreadable video: names the file
            print(f"hf-xclip timeline: error: {err}", file=sys.stderr)
            return cli.EXIT_FAILURES
        except (ValueError, OSError) as err:  # labels, templates, the bank, options, the prompter's language model
            raise cli.UsageError(str(err)) from None
    except cli.UsageError as err:
        print(f"hf-xclip timeline: error: {err}", file=sys.stderr)
        return cli.EXIT_USAGE

    write_outputs(timeline, args)
    _say_when_nothing_reached_the_threshold(timeline)
    for warning in timeline.warnings:
        print(f"hf-xclip timeline: warning: {warning}", file=sys.stderr)
    return cli.EXIT_FAILURES if timeline.truncated else cli.EXIT_OK


def _timeline_config(args: argparse.Namespace):
    """The `TimelineConfig` of the window and segment options.

    Raises:
        UsageError: naming the bad option.
    """
    from ..timeline import TimelineConfig

    try:
        return TimelineConfig(
            **cli.option_values(args, *CONFIG_OPTIONS),
            hypothesis_template=tuple(args.templates) if args.templates else None,
            start_time=args.start,
            end_time=args.end,
            decode_resize=not args.exact_resize,
        )
    except ValueError as err:
        raise cli.UsageError(str(err).replace("`", "")) from None


def _calibrated_threshold(config, model):
    """Multi-label without --threshold, scored by the model's sigmoid head: the head's decision threshold fitted by
    `hf-xclip calibrate` (the global one; segments use one threshold), when it has one."""
    from dataclasses import replace

    from ..multilabel import resolve_method

    fitted = getattr(model.config, "multi_label_threshold", None)
    if not config.multi_label or config.threshold is not None or fitted is None:
        return config
    try:
        if resolve_method(config.multi_label_method, model) != "sigmoid":
            return config
    except ValueError:
        return config  # reported when scoring
    print(
        f"hf-xclip timeline: using the sigmoid head's calibrated threshold {fitted:.4g} (--threshold overrides)",
        file=sys.stderr,
    )
    return replace(config, threshold=float(fitted))


def _say_when_nothing_reached_the_threshold(timeline) -> None:
    config = timeline.config
    if timeline.segments or not config.multi_label or timeline.scores.size == 0:
        return
    window, label = divmod(int(timeline.scores.argmax()), timeline.scores.shape[1])
    start, end = timeline.spans[window]
    print(
        f"hf-xclip timeline: no label reached --threshold {config.effective_threshold:g} in any window (top: "
        f"{timeline.labels[label]!r} {float(timeline.scores[window, label]):.4f} at {start:.1f}-{end:.1f} s)",
        file=sys.stderr,
    )


def run_job(args: argparse.Namespace) -> int:
    """``--output`` / ``--engine ray``: window rows of many videos as Parquet parts, then their segments."""
    from dataclasses import asdict

    from ..distributed.jobs import run_job as run_prediction_job
    from ..distributed.jobs import write_segments

    try:
        labels, _, descriptions = cli.read_label_arguments(args)  # a bank is loaded by each worker
        if not args.output:
            raise cli.UsageError("--engine ray writes Parquet: give --output DIR")
        if args.decode_backend not in (None, "auto"):
            raise cli.UsageError(
                "--decode-backend goes with one video and --engine local: jobs decode with the model "
                "processor's own backend"
            )
        given = [name for name in ("json", "csv", "plot", "html") if getattr(args, name)]
        if given:
            raise cli.UsageError(f"--{given[0]} is for one video; with --output the windows go to DIR")
        config = _timeline_config(args)
        try:
            options = engine_options(args, videos_per_call=1)
        except ValueError as err:
            raise cli.UsageError(str(err).replace("`", "")) from None
        predictor = dict(
            mode="timeline",
            **cli.model_options(args),
            labels=labels,
            label_descriptions=descriptions,
            label_bank=None if args.label_bank is None else str(args.label_bank.resolve()),
            timeline={k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()},
            batch_size=args.batch_size,
        )
    except cli.UsageError as err:
        print(f"hf-xclip timeline: error: {err}", file=sys.stderr)
        return cli.EXIT_USAGE

    def job():
        result = run_prediction_job(args.video, args.output, predictor, options)
        write_segments(args.output, config)
        return result

    return report_job("timeline", job)


def write_outputs(timeline, args: argparse.Namespace) -> None:
    if args.json == "-":
        sys.stdout.write(timeline.to_json())
    elif args.json:
        timeline.to_json(args.json)
    if args.csv == "-":
        timeline.to_csv(sys.stdout)
    elif args.csv:
        timeline.to_csv(args.csv)
    if args.plot:
        timeline.plot(args.plot, top_labels=args.top_labels)
    if args.html:
        timeline.to_html(args.html, top_labels=args.top_labels, embed_video=False if args.html_link_video else None)
    if "-" not in (args.json, args.csv):
        stats = timeline.stats
        print(
            f"{timeline.video}: {timeline.duration:.1f} s, {stats['windows']} windows of {timeline.window:g} s every "
            f"{timeline.stride:g} s, {stats['frames_needed']} frames read, {stats['seconds']:.1f} s"
        )
        print(timeline.format_segments())
    for name, target in (("json", args.json), ("csv", args.csv), ("plot", args.plot), ("html", args.html)):
        if target and target != "-":
            print(f"{name}: {target}", file=sys.stderr)
