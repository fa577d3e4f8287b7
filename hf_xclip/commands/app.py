"""`hf-xclip app`: a web page (Gradio) to classify clips, see a video's timeline and search a video index.

```
hf-xclip app                                   # the embedded default model and generated clips, on 127.0.0.1:7860
hf-xclip app --model ./my-model --adapter ./my-adapter --label-bank k400.bank --index videos.index
hf-xclip app --host 0.0.0.0 --port 8080        # reachable from other machines: see the warning in docs/app.md
```

The model is loaded once, before the page is served, and kept warm; label embeddings are cached across requests.
Needs ``pip install 'hf_xclip[app]'``. Exit status: 0 when stopped (Ctrl-C), 2 for bad input (including a model,
adapter or label bank that cannot be loaded).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import cli

SUMMARY = "web app (Gradio): classify, timeline, search"
DESCRIPTION = """Serve a web page (Gradio) to look at what a model does: Classify (upload a video or pick a generated
clip, type labels or use a label file / bank, single- or multi-label), Timeline (labels x time heat strip, segments
that seek the video, JSON/CSV downloads) and Search (a video index from `hf-xclip index`: thumbnails of the best
windows, each playing its window). Binds 127.0.0.1 unless --host says otherwise; no public link unless --share on."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    from ..app.handlers import AppConfig

    defaults = AppConfig()
    parser = cli.add_command_parser(subparsers, "app", SUMMARY, DESCRIPTION)
    parser.add_argument("--model", help="hf_xclip or transformers X-CLIP directory, or Hub id (default: embedded)")
    parser.add_argument("--adapter", help="PEFT adapter folder or Hub id (from hf-xclip finetune)")
    parser.add_argument(
        "--label-bank",
        type=Path,
        metavar="BANK",
        help="label embeddings from `hf-xclip labels encode` (same model), offered as labels",
    )
    parser.add_argument("--index", metavar="INDEX", help="video index folder (hf-xclip index) for the Search tab")
    parser.add_argument(
        "--host",
        default=defaults.host,
        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 exposes the app "
        "to the network, without any login)",
    )
    parser.add_argument("--port", type=int, default=defaults.port, help=f"port (default {defaults.port}; 0: any)")
    parser.add_argument(
        "--share", choices=("on", "off"), default="off", help="open a public gradio.live link (default off)"
    )
    parser.add_argument(
        "--max-upload-mb",
        type=float,
        default=defaults.max_upload_mb,
        metavar="N",
        help=f"refuse uploads larger than N MiB (default {defaults.max_upload_mb:g})",
    )
    parser.add_argument(
        "--demo-clips",
        type=int,
        default=defaults.demo_clips,
        metavar="N",
        help=f"generated clips offered next to uploads (default {defaults.demo_clips}; 0: none)",
    )
    parser.add_argument("--device", help="torch device, e.g. cpu, cuda (default: first GPU if any)")
    return parser


def run(args: argparse.Namespace) -> int:
    try:
        from ..app import server

        try:
            server.require_gradio()
        except ImportError as err:
            raise cli.UsageError(str(err)) from None
        from ..app.handlers import AppConfig, AppError, AppState

        try:
            config = AppConfig(
                model=args.model,
                adapter=args.adapter,
                label_bank=str(args.label_bank) if args.label_bank else None,
                index=args.index,
                host=args.host,
                port=args.port,
                share=args.share == "on",
                max_upload_mb=args.max_upload_mb,
                device=args.device,
                demo_clips=args.demo_clips,
            )
        except ValueError as err:
            raise cli.UsageError(
                str(err).replace("max_upload_mb", "--max-upload-mb").replace("demo_clips", "--demo-clips")
            ) from None
        state = AppState(config)
        try:
            state.warm_up()  # the model loaded once, now: a model that cannot load stops here with one line
        except AppError as err:
            raise cli.UsageError(str(err)) from None
    except cli.UsageError as err:
        print(f"hf-xclip app: error: {err}", file=sys.stderr)
        return cli.EXIT_USAGE
    warning = server.host_warning(config.host)
    if warning:
        print(warning, file=sys.stderr)
    try:
        server.launch(config, state=state, block=True)
    except KeyboardInterrupt:
        pass
    except OSError as err:  # the port is taken, the address cannot be bound
        print(f"hf-xclip app: error: cannot serve on {config.host}:{config.port}: {err}", file=sys.stderr)
        return cli.EXIT_USAGE
    return cli.EXIT_OK
