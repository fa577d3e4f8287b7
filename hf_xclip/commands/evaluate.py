"""`hf-xclip evaluate`: accuracy of an X-CLIP model (optionally with a PEFT adapter) on folder-per-class videos.

```
hf-xclip evaluate --model microsoft/xclip-base-patch16 --data-dir ucf101/test
hf-xclip evaluate --model microsoft/xclip-base-patch16 --adapter ucf-8shot-lora --data-dir ucf101/test --json
```

Prints top-1, top-5, per-class accuracy and counts; `--json` adds one JSON object (with at least `top1`) as the last
line. Class texts are the folder names, or the adapter's classes (from its `xclip_adapter.json`) in their training
order. Unreadable videos are skipped and counted. Exit status: 0, 1 when some videos were unreadable, 2 for bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..cli import EXIT_FAILURES, EXIT_OK, EXIT_USAGE, UsageError, model_or_default

DESCRIPTION = """Measure top-1 / top-5 and per-class accuracy of an X-CLIP model, optionally with a PEFT adapter
(from `hf-xclip finetune`), on DATA_DIR: one folder of videos per class, the folder name being the class text."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "evaluate",
        help="top-1 / top-5 / per-class accuracy on folder-per-class videos (optionally with an adapter)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", help="base model: hf_xclip / transformers X-CLIP folder or Hub id (default: embedded)")
    parser.add_argument("--adapter", help="PEFT adapter folder or Hub id (from hf-xclip finetune)")
    parser.add_argument("--data-dir", required=True, type=Path, help="one sub-folder of videos per class")
    parser.add_argument("--template", help="prompt template with '{}' (default: the adapter's, else the model's own)")
    parser.add_argument("--num-frames", type=int, help="frames per clip (default: the adapter's, else the model's)")
    parser.add_argument("--batch-size", type=int, default=8, help="videos per forward pass (default 8)")
    parser.add_argument("--num-workers", type=int, default=2, help="DataLoader workers decoding videos (default 2)")
    parser.add_argument(
        "--mixed-precision", choices=("auto", "no", "fp16", "bf16"), default="auto", help="auto: bf16/fp16 on GPU"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--json", action="store_true", help="print a JSON object (top1, top5, per_class, ...) last")
    return parser


def run(args: argparse.Namespace) -> int:
    from ..accelerator import make_accelerator
    from ..adapters import load_model_with_adapter
    from ..evaluation import evaluate_videos
    from ..labels import resolve_templates
    from ..video_data import scan_video_folder
    from ..video_dataset import VideoClassificationDataset

    try:
        if args.batch_size < 1:
            raise ValueError("--batch-size must be at least 1.")
        if args.num_frames is not None and args.num_frames < 1:
            raise ValueError("--num-frames must be at least 1.")
        model_name = model_or_default(args.model)
        model, processor, metadata = load_model_with_adapter(model_name, args.adapter)
        metadata = metadata or {}
        class_names = metadata.get("class_names")
        folder = scan_video_folder(args.data_dir, class_names=class_names, allow_empty_classes=True)
        template = resolve_templates(args.template or metadata.get("template"), processor, name="--template")
        num_frames = args.num_frames or metadata.get("num_frames")
    except (UsageError, ValueError, OSError) as err:
        print(f"hf-xclip evaluate: error: {err}", file=sys.stderr)
        return EXIT_USAGE

    accelerator = make_accelerator(args.mixed_precision)
    model.to(accelerator.device)
    dataset = VideoClassificationDataset(folder, processor, num_frames=num_frames)
    result = evaluate_videos(
        model,
        dataset,
        processor.tokenizer,
        templates=template,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        accelerator=accelerator,
        show_progress=not args.no_progress,
    )
    if accelerator.is_main_process:
        print(f"model: {model_name}" + (f" + adapter {args.adapter}" if args.adapter else ""))
        print(f"data: {args.data_dir} ({len(folder.class_names)} classes)")
        print(result.format())
        if args.json:
            payload = {"model": model_name, "adapter": args.adapter, "data_dir": str(args.data_dir), **result.to_dict()}
            print(json.dumps(payload))
    return EXIT_FAILURES if result.failed else EXIT_OK
