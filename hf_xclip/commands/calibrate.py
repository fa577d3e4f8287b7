"""`hf-xclip calibrate`: fit the sigmoid head of a model (or adapter) on a few labelled clips, training-free.

```
hf-xclip calibrate --model microsoft/xclip-base-patch32 --annotations few.jsonl --output-dir xclip-calibrated
hf-xclip calibrate --model base --adapter my-adapter --annotations few.jsonl --output-dir my-adapter-calibrated
```

Converted checkpoints have no multi-label head: their multi-label scores come from a training-free method (see
`hf_xclip.multilabel`). This command scores every clip of the annotation file against every label, fits one scale
and one bias for all labels (``sigmoid(scale * cosine + bias)``, Platt scaling) and writes a copy of the model (or
of the adapter) whose config (`xclip_adapter.json`) carries the head: `pipeline(..., multi_label=True)`,
`hf-xclip classify --multi-label` and `hf-xclip evaluate` then use it. Nothing is trained; the weights are copied
unchanged. The output folder is written only when everything succeeded (never half). Exit status: 0, 1 when some
clips were unreadable (the head is fitted on the others), 2 for bad input.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from .. import cli

SUMMARY = "fit the multi-label sigmoid head on a few labelled clips (training-free)"
DESCRIPTION = """Fit a model's multi-label sigmoid head (one scale and bias on the video-label cosine, for all labels)
on a few labelled clips (ANNOTATIONS: JSONL {"video": PATH, "labels": [...]} lines, or a CSV video,labels) and
write a copy of the model, or of the adapter, that carries it. Training-free: the weights do not change."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = cli.add_command_parser(subparsers, "calibrate", SUMMARY, DESCRIPTION)
    parser.add_argument(
        "--model", help="base model: hf_xclip / transformers X-CLIP folder or Hub id (default: embedded)"
    )
    parser.add_argument("--adapter", help="PEFT adapter folder (from hf-xclip finetune); its copy gets the head")
    parser.add_argument("--annotations", required=True, type=Path, help="labelled clips (JSONL / CSV)")
    parser.add_argument("--labels-file", type=Path, help="more labels, absent from every clip (more negatives)")
    parser.add_argument(
        "--output-dir", required=True, type=Path, help="new folder: the model (or adapter) with the head"
    )
    parser.add_argument("--template", help="prompt template with '{}' (default: the adapter's, else '{}')")
    parser.add_argument("--num-frames", type=int, help="frames per clip (default: the adapter's, else the model's)")
    parser.add_argument("--batch-size", type=int, default=8, help="videos per forward pass (default 8)")
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader workers decoding videos (default 0)")
    parser.add_argument("--threshold", type=float, default=0.5, help="probability threshold of the F1 reported")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    cli.add_decode_argument(parser)
    return parser


def _check_output(path: Path) -> None:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise cli.UsageError(f"--output-dir {path} exists and is not empty; choose a new folder")


def run(args: argparse.Namespace) -> int:
    from ..data.clip_dataset import VideoClassificationDataset
    from ..data.folders import read_annotations
    from ..evaluation.evaluate import calibrate_sigmoid_head
    from ..finetuning.adapters import ADAPTER_METADATA_FILE
    from ..labels import read_label_file, validate_template

    try:
        _check_output(args.output_dir)
        cli.check_at_least_one(args, "batch_size", "num_frames")
        folder = read_annotations(args.annotations)
        extra = read_label_file(args.labels_file) if args.labels_file else []
        if args.adapter is not None and not Path(args.adapter).is_dir():
            raise cli.UsageError(f"--adapter {args.adapter} is not a local folder (calibrate writes a copy of it)")
        model, processor, metadata = cli.load_with_adapter(cli.model_or_default(args.model), args.adapter)
        saved_backend = cli.apply_decode_backend(processor, args.decode_backend)
        template = validate_template(args.template or metadata.get("template") or "{}", "--template")
    except (cli.UsageError, ValueError, OSError) as err:
        print(f"hf-xclip calibrate: error: {err}", file=sys.stderr)
        return cli.EXIT_USAGE

    labels = list(folder.class_names) + [label for label in extra if label not in folder.class_names]
    dataset = VideoClassificationDataset(folder, processor, num_frames=args.num_frames or metadata.get("num_frames"))
    try:
        calibration = calibrate_sigmoid_head(
            model,
            dataset,
            processor.tokenizer,
            labels=labels,
            threshold=args.threshold,
            templates=template,
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            show_progress=not args.no_progress,
        )
    except ValueError as err:  # e.g. every clip unreadable, or the model ranks present labels no higher
        print(f"hf-xclip calibrate: error: {err}", file=sys.stderr)
        return cli.EXIT_FAILURES
    processor.video_processor.decode_backend = saved_backend  # the saved processor keeps its own
    _write(args, model, processor, calibration, ADAPTER_METADATA_FILE)
    _report(args, calibration)
    return cli.EXIT_FAILURES if calibration.failed else cli.EXIT_OK


def _write(args, model, processor, calibration, metadata_file: str) -> None:
    """The model (or adapter) copy with the head, written in a temporary folder and moved into place at the end."""
    from ..multilabel import set_decision_threshold, set_sigmoid_head
    from ..utils import atomic_directory

    head = {
        "scale": calibration.scale,
        "bias": calibration.bias,
        "threshold": calibration.decision_threshold,
        "thresholds": calibration.label_thresholds,
    }
    record = {
        **head,
        "annotations": str(args.annotations),
        "num_videos": calibration.num_videos,
        "num_labels": len(calibration.labels),
    }
    with atomic_directory(args.output_dir) as staging:  # the output is empty (checked before)
        if hasattr(model, "peft_config"):  # a peft adapter folder: copy it, the head goes into its metadata
            shutil.copytree(args.adapter, staging, dirs_exist_ok=True)
            path = staging / metadata_file
            metadata = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
            metadata.update(multi_label_head=head, calibration=record)
            path.write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
        else:  # a model folder: the head goes into its config
            set_sigmoid_head(model, calibration.scale, calibration.bias)
            set_decision_threshold(model, calibration.decision_threshold, calibration.label_thresholds)
            model.save_pretrained(str(staging))
            processor.save_pretrained(str(staging))
            (staging / "calibration.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def _report(args, calibration) -> None:
    before, after = calibration.before, calibration.after
    print(
        f"fitted on {calibration.num_videos} clips x {len(calibration.labels)} labels "
        f"({len(calibration.failed)} unreadable skipped)"
    )
    print(f"sigmoid head: sigmoid({calibration.scale:.4g} * cosine {calibration.bias:+.4g})")
    print(
        f"on these clips, at threshold {args.threshold:g}: F1 {before['f1']:.4f} ({calibration.before_method}) -> "
        f"{after['f1']:.4f} (head); micro AP {before['micro_AP']:.4f} -> {after['micro_AP']:.4f}"
    )
    fitted = calibration.at_decision_threshold
    own = f", {len(calibration.label_thresholds)} label(s) with their own" if calibration.label_thresholds else ""
    print(
        f"decision threshold fitted on these clips: {calibration.decision_threshold:.4g}{own}: F1 {fitted['f1']:.4f} "
        f"(precision {fitted['precision']:.4f}, recall {fitted['recall']:.4f}) vs {after['f1']:.4f} at "
        f"{args.threshold:g}; used when no --threshold is given"
    )
    print(f"written to {args.output_dir}")
    for message in calibration.failed:
        print(f"hf-xclip calibrate: skipped unreadable clip {message}", file=sys.stderr)
    if args.json:
        print(json.dumps({"output_dir": str(args.output_dir), **calibration.to_dict()}))
