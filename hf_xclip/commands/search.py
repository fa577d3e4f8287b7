"""`hf-xclip search`: find the rows of a video index (`hf-xclip index`) that best match a text, or a video.

```
hf-xclip search videos.index "someone surfing" --top-k 5
hf-xclip search videos.index "someone surfing" --json
hf-xclip search videos.index --video query.mp4
```

Candidates come from FAISS on the plain video embeddings; each is then scored with the exact X-CLIP logit (its own
video-specific prompts) and the best are printed. The model is the one the index records unless `--model` is given,
and a model other than the one that built the index is refused. Exit status: 0, 2 for bad input.
"""

from __future__ import annotations

import argparse
import json
import sys

from .. import cli

SUMMARY = "search a video index by text (exact X-CLIP re-ranking) or by video"
DESCRIPTION = """Search INDEX (made by `hf-xclip index`) for TEXT: FAISS candidates, re-ranked by the exact X-CLIP
score. Prints a table (rank, score, time span, video) or, with --json, a list of {"video", "start", "end", "score"}
best first. With --video, finds the rows most similar to a video (cosine similarity of video embeddings)."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = cli.add_command_parser(subparsers, "search", SUMMARY, DESCRIPTION)
    parser.add_argument("index", metavar="INDEX", help="index folder written by hf-xclip index")
    parser.add_argument("query", nargs="?", metavar="TEXT", help="what to look for")
    parser.add_argument("--video", metavar="PATH", help="find rows similar to this video instead of a text")
    parser.add_argument("--top-k", type=int, default=10, help="results to return (default 10)")
    parser.add_argument("--json", action="store_true", help='print [{"video", "start", "end", "score"}, ...] as JSON')
    parser.add_argument("--model", help="the model that built the index (default: the one it records)")
    parser.add_argument("--adapter", help="PEFT adapter loaded onto --model (default: the index's)")
    parser.add_argument(
        "--template",
        action="append",
        dest="templates",
        metavar="TEMPLATE",
        help="text template with '{}' for the query (repeat to ensemble; default: the model's own)",
    )
    parser.add_argument("--candidates", type=int, help="rows re-ranked exactly (default max(50, 5 x top-k))")
    parser.add_argument("--nprobe", type=int, help="IVF cells probed (default: calibrated when the index was built)")
    parser.add_argument("--exhaustive", action="store_true", help="score every row exactly (no FAISS; slow)")
    parser.add_argument("--device", help="torch device for the model (default cpu)")
    return parser


def run(args: argparse.Namespace) -> int:
    from ..search import IndexModelMismatchError
    from ..search.index import VideoIndex

    try:
        if (args.query is None) == (args.video is None):
            raise cli.UsageError("give a TEXT to search for, or --video PATH (not both)")
        cli.check_at_least_one(args, "top_k", "candidates", "nprobe", show_value=True)
        if args.model is not None:
            cli.check_model_source(args.model)
        try:
            index = VideoIndex.open(
                args.index, args.model, adapter=args.adapter, templates=args.templates, device=args.device
            )
            if args.video is not None:
                results = index.search_video(args.video, args.top_k, num_candidates=args.candidates, nprobe=args.nprobe)
            else:
                results = index.search(
                    args.query,
                    args.top_k,
                    num_candidates=args.candidates,
                    nprobe=args.nprobe,
                    exhaustive=args.exhaustive,
                )
        except (IndexModelMismatchError, ValueError, FileNotFoundError, ImportError) as err:
            raise cli.UsageError(str(err)) from None
    except cli.UsageError as err:
        print(f"hf-xclip search: error: {err}", file=sys.stderr)
        return cli.EXIT_USAGE
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(format_results(results))
    return cli.EXIT_OK


def format_results(results: list[dict]) -> str:
    """One line per result: rank, score, time span in seconds, video."""
    if not results:
        return "(no results: the index is empty)"
    spans = [f"{item['start']:.2f}-{item['end']:.2f} s" for item in results]
    width = max(len(span) for span in spans)
    return "\n".join(
        f"{rank:3d}  {item['score']:8.3f}  {span:>{width}}  {item['video']}"
        for rank, (item, span) in enumerate(zip(results, spans), start=1)
    )
