"""`hf-xclip evaluate`: how well an X-CLIP model (optionally with a PEFT adapter) labels videos.

```
hf-xclip evaluate --model microsoft/xclip-base-patch16 --data-dir ucf101/test
hf-xclip evaluate --model microsoft/xclip-base-patch16 --adapter ucf-8shot-lora --data-dir ucf101/test --json
hf-xclip evaluate --annotations test.jsonl --novel-labels novel.txt --adapter multi-label-lora --json
```

Folder-per-class videos (`--data-dir`) and single-label annotation files: top-1, top-5, per-class accuracy and
counts; `--json` adds one JSON object (with at least `top1`) as the last line. Class texts are the folder names, or
the adapter's classes (from its `xclip_adapter.json`) in their training order.

Multi-label annotation files (`--annotations`, label lists): every label is scored on its own (the model's sigmoid
head, else the training-free method; `--multi-label-method`) and the report gives mAP, AP per label, micro AP and
precision / recall / F1 at `--threshold`; with `--novel-labels` (labels never trained on) also `base_mAP` and
`novel_mAP`. The last line of `--json` is an object with `mAP`, `per_class_ap`, `f1`, ... Candidate labels are the
labels of the file, of `--labels-file` and of `--novel-labels`.

Either way labels are ensembled with `--label-descriptions` (default: the adapter's), or taken from a `--label-bank`
(`hf-xclip labels encode`) where it holds them.

Unreadable videos are skipped and counted. Exit status: 0, 1 when some videos were unreadable, 2 for bad input.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from .. import cli

SUMMARY = "accuracy on folder-per-class videos, or mAP on multi-label annotations (optionally with an adapter)"
DESCRIPTION = """Measure an X-CLIP model, optionally with a PEFT adapter (from `hf-xclip finetune`): top-1 / top-5 and
per-class accuracy on DATA_DIR (one folder of videos per class, the folder name being the class text), or mAP
(base / novel), AP per label and F1 on a multi-label annotation file (JSONL {"video": PATH, "labels": [...]} lines,
or a CSV with columns video,labels)."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = cli.add_command_parser(subparsers, "evaluate", SUMMARY, DESCRIPTION)
    parser.add_argument(
        "--model", help="base model: hf_xclip / transformers X-CLIP folder or Hub id (default: embedded)"
    )
    parser.add_argument("--adapter", help="PEFT adapter folder or Hub id (from hf-xclip finetune)")
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--data-dir", type=Path, help="one sub-folder of videos per class")
    data.add_argument("--annotations", type=Path, help="JSONL / CSV annotation file (multi-label with label lists)")
    parser.add_argument(
        "--template",
        help="prompt template with '{}' (default: the label bank's, else the adapter's, else the model's own)",
    )
    cli.add_label_side_arguments(parser)
    parser.add_argument("--num-frames", type=int, help="frames per clip (default: the adapter's, else the model's)")
    parser.add_argument("--batch-size", type=int, default=8, help="videos per forward pass (default 8)")
    parser.add_argument("--num-workers", type=int, default=2, help="DataLoader workers decoding videos (default 2)")
    parser.add_argument(
        "--mixed-precision", choices=("auto", "no", "fp16", "bf16"), default="auto", help="auto: bf16/fp16 on GPU"
    )
    multi = parser.add_argument_group("multi-label (--annotations with label lists)")
    multi.add_argument("--novel-labels", type=Path, help="label file: labels never trained on (base_mAP / novel_mAP)")
    multi.add_argument("--labels-file", type=Path, help="more candidate labels (one per line, or a CSV 'name' column)")
    multi.add_argument("--threshold", type=float, default=0.5, help="probability threshold of precision/recall/F1")
    cli.add_multi_label_method_argument(
        multi, "auto: the model's sigmoid head, else background prompts; negative: label vs 'not label'"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--json", action="store_true", help="print a JSON object (top1 / mAP, per class, ...) last")
    cli.add_decode_argument(parser)
    return parser


def _read_data(args: argparse.Namespace, class_names):
    from ..data.folders import read_annotations, scan_video_folder
    from ..labels import read_label_file

    if args.data_dir is not None:
        return scan_video_folder(args.data_dir, class_names=class_names, allow_empty_classes=True), [], []
    folder = read_annotations(args.annotations)
    if not folder.multi_label and class_names is not None:  # single-label: the adapter's classes and their order
        folder = read_annotations(args.annotations, class_names=class_names)
    novel = read_label_file(args.novel_labels) if args.novel_labels else []
    extra = read_label_file(args.labels_file) if args.labels_file else []
    if (novel or extra) and not folder.multi_label:
        raise cli.UsageError("--novel-labels and --labels-file apply to multi-label annotations (label lists)")
    return folder, novel, extra


@dataclasses.dataclass
class _Inputs:
    """What `run` checked and loaded before evaluating: the model, its data and its label side."""

    model_name: str
    model: Any
    processor: Any
    folder: Any
    novel: list[str]
    extra: list[str]
    template: Any
    num_frames: int | None
    bank: Any
    descriptions: dict[str, list[str]] | None


def run(args: argparse.Namespace) -> int:
    from ..data.clip_dataset import VideoClassificationDataset
    from ..finetuning.accelerator import make_accelerator

    try:
        inputs = _load_inputs(args)
    except (cli.UsageError, ValueError, OSError) as err:
        print(f"hf-xclip evaluate: error: {err}", file=sys.stderr)
        return cli.EXIT_USAGE

    accelerator = make_accelerator(args.mixed_precision)
    inputs.model.to(accelerator.device)
    dataset = VideoClassificationDataset(inputs.folder, inputs.processor, num_frames=inputs.num_frames)
    try:
        result = _evaluate(args, inputs, dataset, accelerator)
    except (ValueError, OSError) as err:  # labels the model cannot encode, a bank of another model, ...
        print(f"hf-xclip evaluate: error: {err}", file=sys.stderr)
        return cli.EXIT_USAGE
    if accelerator.is_main_process:
        _report(args, inputs, result)
    return cli.EXIT_FAILURES if result.failed else cli.EXIT_OK


def _load_inputs(args: argparse.Namespace) -> _Inputs:
    """Check the options, load the model (and adapter), the label side and the data.

    Raises:
        UsageError, ValueError, OSError: bad input, naming it.
    """
    from ..labels import resolve_templates

    cli.check_at_least_one(args, "batch_size", "num_frames")
    if not 0.0 <= args.threshold <= 1.0:
        raise ValueError("--threshold must be in [0, 1].")
    model_name = cli.model_or_default(args.model)
    bank = cli.read_bank_argument(args.label_bank)
    descriptions = cli.read_descriptions_argument(args.label_descriptions)
    model, processor, metadata = cli.load_with_adapter(model_name, args.adapter, language_model=args.language_model)
    cli.apply_decode_backend(processor, args.decode_backend)
    if descriptions is None:
        descriptions = metadata.get("label_descriptions") or None
    folder, novel, extra = _read_data(args, metadata.get("class_names"))
    if bank is not None and args.template is None:
        template = None  # the bank's
    else:
        template = resolve_templates(args.template or metadata.get("template"), processor, name="--template")
    if folder.multi_label:
        from ..multilabel import resolve_method

        resolve_method(args.multi_label_method, model)
    num_frames = args.num_frames or metadata.get("num_frames")
    return _Inputs(model_name, model, processor, folder, novel, extra, template, num_frames, bank, descriptions)


def _evaluate(args: argparse.Namespace, inputs: _Inputs, dataset, accelerator):
    """Accuracy (single-label data) or mAP and F1 (multi-label data) of the model on the dataset."""
    from ..evaluation.evaluate import evaluate_multi_label, evaluate_videos

    bank = inputs.bank
    common = dict(
        templates=inputs.template,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        accelerator=accelerator,
        show_progress=not args.no_progress,
        label_bank=bank,
        # with a bank, only descriptions given here are checked against it (the bank holds its own)
        descriptions=inputs.descriptions if bank is None or args.label_descriptions is not None else None,
    )
    folder, tokenizer = inputs.folder, inputs.processor.tokenizer
    if not folder.multi_label:
        return evaluate_videos(inputs.model, dataset, tokenizer, **common)
    labels = list(folder.class_names) + [label for label in inputs.extra if label not in folder.class_names]
    return evaluate_multi_label(
        inputs.model,
        dataset,
        tokenizer,
        labels=labels,
        novel_labels=inputs.novel,
        threshold=args.threshold,
        method=args.multi_label_method,
        **common,
    )


def _report(args: argparse.Namespace, inputs: _Inputs, result) -> None:
    source = args.data_dir or args.annotations
    print(f"model: {inputs.model_name}" + (f" + adapter {args.adapter}" if args.adapter else ""))
    if inputs.bank is not None:
        print(f"labels: from the bank {args.label_bank} ({len(inputs.bank)} labels)")
    kind = "labels" if inputs.folder.multi_label else "classes"
    print(f"data: {source} ({len(inputs.folder.class_names)} {kind})")
    key = "data_dir" if args.data_dir else "annotations"
    payload = {"model": inputs.model_name, "adapter": args.adapter, key: str(source), **result.to_dict()}
    cli.print_summary(result.format(), payload, args.json)
