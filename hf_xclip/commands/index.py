"""`hf-xclip index`: embed a video collection into a searchable index (resumable, several processes with accelerate).

```
hf-xclip index videos/ --output videos.index
hf-xclip index long_recordings/ --output rec.index --window 4 --stride 2 --model ./my-xclip
accelerate launch --num_processes 4 $(which hf-xclip) index videos/ --output videos.index
hf-xclip index videos/ --output videos.index --engine ray --num-workers 4 [--num-gpus-per-worker 1]
```

`--engine ray` makes the rows on Ray Data workers (`hf_xclip.distributed.jobs.run_index_job`) and commits them as
the same shards: the index is the one a local run builds, and either engine appends to it.

Running it again on the same `--output` appends new videos and resumes an interrupted run: videos already indexed
are skipped, videos that failed are recorded and skipped (`--retry-failed` redoes them). Unreadable videos are
listed on stderr; the others are still indexed. Exit status: 0, 1 when some videos failed, 2 for bad input.
"""

from __future__ import annotations

import argparse
import logging
import sys

from .. import cli
from ..distributed.arguments import add_engine_arguments, engine_options

SUMMARY = "embed videos into a searchable index (resumable; accelerate launch for several processes)"
DESCRIPTION = """Embed videos (or windows of long videos) with an X-CLIP model into INDEX, a folder holding the rows
(video, start, end, video embedding, prompt features) as Arrow shards and a FAISS index over the embeddings; search
it with `hf-xclip search`.

The index records the model and its fingerprint: appending or searching with another model is refused. A run that
is killed resumes where it stopped when started again. Under `accelerate launch` the videos are split between the
processes."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = cli.add_command_parser(subparsers, "index", SUMMARY, DESCRIPTION)
    parser.add_argument("paths", nargs="+", metavar="PATH", help="video files, folders (walked recursively) or URLs")
    parser.add_argument("--output", "-o", required=True, metavar="INDEX", help="index folder (created or appended to)")
    parser.add_argument(
        "--model", help="X-CLIP folder or Hub id (default: the index's model, else the embedded default model)"
    )
    parser.add_argument("--adapter", help="PEFT adapter folder or Hub id to load onto --model")
    parser.add_argument("--window", type=float, metavar="S", help="index windows of S seconds instead of whole videos")
    parser.add_argument("--stride", type=float, metavar="S", help="seconds between window starts (default: --window)")
    parser.add_argument("--num-frames", type=int, help="frames per row (default: the model's)")
    parser.add_argument(
        "--tail",
        choices=("shift", "partial"),
        help="last window: ends at the video's end (shift, default) or keeps the grid (partial)",
    )
    parser.add_argument(
        "--precision",
        choices=("int8", "float16", "float32"),
        help="storage of prompt features (default int8 with a scale per patch)",
    )
    parser.add_argument("--batch-size", type=int, default=8, help="rows per forward pass (default 8)")
    parser.add_argument("--shard-size", type=int, default=256, help="rows per committed shard (default 256)")
    parser.add_argument("--workers", type=int, default=2, help="threads decoding ahead (default 2)")
    parser.add_argument("--retry-failed", action="store_true", help="redo videos an earlier run could not read")
    parser.add_argument(
        "--faiss",
        choices=("auto", "flat", "ivf", "ivfpq"),
        default="auto",
        help="FAISS index: exact (flat) up to 2^26 embedding values, IVF-PQ above (auto, default; see docs/search.md)",
    )
    parser.add_argument("--device", help="torch device (default: accelerate's device for this process)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    cli.add_decode_argument(parser)
    add_engine_arguments(parser)
    return parser


class _NoSkipWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("skipping ")


def _check_there_are_videos(paths: list[str]) -> None:
    """Refuse (before anything is written) when the paths hold no video at all."""
    from ..data.folders import find_videos

    videos, missing = find_videos(paths)
    if videos:
        return
    if missing:
        shown = "; ".join(f"{path}: {reason}" for path, reason in missing[:3])
        raise cli.UsageError(f"nothing to index ({shown}); nothing written")
    raise cli.UsageError(f"no video files found in {', '.join(map(str, paths))}: nothing to index, nothing written")


def run(args: argparse.Namespace) -> int:
    try:
        _check_arguments(args)
        result = _build(args)
    except cli.UsageError as err:
        print(f"hf-xclip index: error: {err}", file=sys.stderr)
        return cli.EXIT_USAGE
    failures = [*result.missing, *result.failed]
    if _is_main_process():
        _report(args, result, failures)
    return cli.EXIT_FAILURES if failures else cli.EXIT_OK


def _check_arguments(args: argparse.Namespace) -> None:
    """Refuse bad numbers, ``--stride`` without ``--window``, a model that is not there and paths without videos."""
    cli.check_at_least_one(args, "batch_size", "shard_size", "num_frames", show_value=True)
    if args.workers < 0:
        raise cli.UsageError(f"--workers must be >= 0, got {args.workers}")
    if args.stride is not None and args.window is None:
        raise cli.UsageError("--stride needs --window")
    if args.model is not None:
        cli.check_model_source(args.model)
    _check_there_are_videos(args.paths)


# the options `build_index` and `run_index_job` take under the same names
INDEX_OPTIONS = (
    "model",
    "adapter",
    "window",
    "stride",
    "num_frames",
    "tail",
    "precision",
    "batch_size",
    "shard_size",
    "retry_failed",
    "device",
)


def _build(args: argparse.Namespace):
    """Index the videos on the engine of ``--engine``: `run_index_job` (Ray) or `build_index` (this process)."""
    from ..search import IndexModelMismatchError, build_index

    try:
        options = engine_options(args, videos_per_call=max(1, args.batch_size // 2))
        common = dict(cli.option_values(args, *INDEX_OPTIONS), faiss_kind=args.faiss)
        if options.engine == "ray":
            from ..distributed.jobs import run_index_job

            if args.decode_backend not in (None, "auto"):
                raise cli.UsageError(
                    "--decode-backend goes with --engine local: Ray workers decode with the "
                    "model processor's own backend"
                )
            return run_index_job(args.paths, args.output, options, **common)
        # each failure is reported below, once: the library's own warnings of them are held back
        logger = logging.getLogger(build_index.__module__)
        if not any(isinstance(f, _NoSkipWarnings) for f in logger.filters):
            logger.addFilter(_NoSkipWarnings())
        return build_index(
            args.paths,
            args.output,
            **common,
            num_workers=args.workers,
            progress=not args.no_progress,
            decode_backend=args.decode_backend,
        )
    except (IndexModelMismatchError, ValueError, RuntimeError, ImportError) as err:
        raise cli.UsageError(str(err)) from None


def _report(args: argparse.Namespace, result, failures: list) -> None:
    """The skipped videos on stderr; what was indexed on stdout (and with ``--json`` as a JSON line)."""
    for path, reason in failures:
        print(f"hf-xclip index: skipped {path}: {reason}", file=sys.stderr)
    if result.previously_failed:
        print(
            f"hf-xclip index: {len(result.previously_failed)} video(s) failed in an earlier run and were "
            "skipped (--retry-failed redoes them)",
            file=sys.stderr,
        )
    faiss = f"FAISS {result.faiss.kind}" if result.faiss else "no FAISS index"
    summary = {
        "output": str(result.output),
        "indexed": result.indexed,
        "rows": result.rows,
        "skipped": result.skipped,
        "failed": [list(f) for f in failures],
        "previously_failed": result.previously_failed,
        "total_rows": result.total_rows,
        "total_videos": result.total_videos,
        "faiss": result.faiss.kind if result.faiss else None,
    }
    text = (
        f"indexed {result.indexed} video(s) ({result.rows} rows); {result.skipped} already indexed; "
        f"{len(failures)} failed\n{result.output}: {result.total_rows} rows from {result.total_videos} videos, "
        f"{faiss}"
    )
    cli.print_summary(text, summary, args.json)


def _is_main_process() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process
