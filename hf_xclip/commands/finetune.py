"""`hf-xclip finetune`: few-shot adaptation of an X-CLIP model on folder-per-class videos or annotation files.

```
hf-xclip finetune --model microsoft/xclip-base-patch16 --train-dir ucf101/train --method lora --shots 8 \\
    --epochs 10 --output-dir ucf-8shot-lora
hf-xclip finetune --train-annotations train.jsonl --eval-annotations test.jsonl --regularization wise \\
    --output-dir multi-label-lora                      # multi-label: {"video": ..., "labels": [...]} lines
accelerate launch -m hf_xclip.cli finetune ...      # several GPUs
hf-xclip finetune --model M --train-dir ucf101/train --method llm-prompts lora \
    --language-model meta-llama/Llama-3.2-1B --output-dir ucf-llm-prompts
```

`--train-dir` holds one folder per class (the folder name is the class text); `--train-annotations` is a JSONL or
CSV annotation file (`hf_xclip.data.folders.read_annotations`), multi-label when it has label lists. With `--shots K`,
K videos per class are drawn (seeded) and the remaining videos are the held-out evaluation set, unless `--eval-dir`
/ `--eval-annotations` is given. The output folder is a peft adapter (`adapter_config.json`,
`adapter_model.safetensors`), or a whole model for `--method full`, `xclip_adapter.json` (class names, settings,
metrics, the sigmoid head of a multi-label run) and a model card (README.md). Exit status: 0 on success, 1 when
training failed, 2 for bad input (nothing is written then). With `llm-prompts` the folder also holds the label
prompter (`llm_prompter.safetensors`, `llm_prompter_config.json`; not the language model).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import cli

SUMMARY = (
    "few-shot adaptation (LoRA, CoOp, prompt generator, VL prompts, LLM prompts, full) on folder-per-class "
    "videos or annotation files"
)
DESCRIPTION = """Few-shot adaptation of an X-CLIP model with PEFT (LoRA, CoOp context, prompt generator, vision-language
prompts) or in full, and a language-model label prompter (llm-prompts: soft attributes from a frozen causal
language model).

TRAIN_DIR holds one folder per class; the folder name is the class text. TRAIN_ANNOTATIONS is a JSONL file of
{"video": PATH, "labels": [...]} lines or a CSV with columns video,labels (labels separated by ';'; optional
start,end seconds); label lists make the run multi-label: one sigmoid per label (binary cross-entropy or the
asymmetric loss), with --regularization keeping labels never trained on working. Defaults follow the original
X-CLIP recipe where it applies: AdamW (0.9, 0.98), weight decay 0.001, cosine schedule with 10% warm-up, label
smoothing 0.1 (single-label), TSN random frame sampling with random resized crop / flip, frozen text encoder unless
the method tunes it. Runs on CPU, one GPU, or several GPUs with `accelerate launch -m hf_xclip.cli finetune ...`."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    # the library's choices and training options, read from its source without importing torch
    LORA_PARTS, LORA_TYPES, METHODS = (
        cli.static_value("hf_xclip.finetuning.peft_config", name) for name in ("LORA_PARTS", "LORA_TYPES", "METHODS")
    )
    FewShotTrainingArguments = cli.static_dataclass("hf_xclip.finetuning.arguments", "FewShotTrainingArguments")

    parser = cli.add_command_parser(subparsers, "finetune", SUMMARY, DESCRIPTION)
    parser.add_argument(
        "--model", help="base model: hf_xclip / transformers X-CLIP folder or Hub id (default: embedded)"
    )
    _add_data_arguments(parser, METHODS)
    cli.add_dataclass_arguments(parser, FewShotTrainingArguments)  # optimisation, data and multi-label options
    # None = not given: labels naming a left/right direction then turn the flip off (see _direction_aware_flip)
    parser.set_defaults(hflip_prob=None)
    _add_lora_arguments(parser, LORA_PARTS, LORA_TYPES)
    _add_prompt_arguments(parser)
    _add_llm_arguments(parser)
    cli.add_label_side_arguments(parser, bank=False, adapter=False)
    parser.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    cli.add_decode_argument(parser)
    return parser


def _add_data_arguments(parser: argparse.ArgumentParser, methods: tuple[str, ...]) -> None:
    """The training data, the output folder, the methods and the held-out data."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--train-dir", type=Path, help="folder with one sub-folder of videos per class")
    source.add_argument(
        "--train-annotations", type=Path, help="JSONL / CSV annotation file (multi-label when it has label lists)"
    )
    parser.add_argument("--output-dir", required=True, type=Path, help="where the adapter and model card are written")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty --output-dir")
    parser.add_argument(
        "--method",
        nargs="+",
        choices=methods,
        default=["lora"],
        help="what to train; several combine (default lora); 'full' trains every weight, alone",
    )
    parser.add_argument("--shots", type=int, help="videos per class to train on (K-shot); default: all")
    evaluation = parser.add_mutually_exclusive_group()
    evaluation.add_argument("--eval-dir", type=Path, help="held-out videos (same class folders) to measure accuracy on")
    evaluation.add_argument(
        "--eval-annotations",
        type=Path,
        help="held-out annotation file; multi-label: its labels not in training are the novel labels (novel mAP)",
    )
    parser.add_argument(
        "--eval-fraction",
        type=float,
        help="without --shots and held-out videos: fraction held out for evaluation (default 0.2); "
        "with --shots the videos not drawn are held out",
    )
    parser.add_argument("--max-eval-per-class", type=int, help="cap the held-out videos per class")


def _add_lora_arguments(
    parser: argparse.ArgumentParser, lora_parts: dict[str, str], lora_types: tuple[str, ...]
) -> None:
    lora = parser.add_argument_group("LoRA (--method lora)")
    lora.add_argument("--lora-type", choices=lora_types, default="lora", help="low-rank adapter family")
    lora.add_argument("--lora-r", type=int, default=8, help="rank (default 8)")
    lora.add_argument("--lora-alpha", type=int, default=16, help="alpha (default 16)")
    lora.add_argument("--lora-dropout", type=float, default=0.0, help="dropout (default 0)")
    lora.add_argument(
        "--lora-targets",
        default="vision,cross-frame",
        help=f"comma-separated parts among {','.join([*lora_parts, 'mlp'])} (default vision,cross-frame; 'mlp' adds "
        "MLPs)",
    )


def _add_prompt_arguments(parser: argparse.ArgumentParser) -> None:
    """The learned prompts: CoOp contexts, the prompt generator, vision-language prompts."""
    coop = parser.add_argument_group("CoOp (--method coop)")
    coop.add_argument("--n-ctx", type=int, help="context vectors (default: tokens of --ctx-init, or 16)")
    coop.add_argument("--ctx-init", default="a photo of a", help="phrase initialising the context; '' = random")
    coop.add_argument("--class-specific", action="store_true", help="one context per class")
    pg = parser.add_argument_group("prompt generator (--method prompt-generator)")
    pg.add_argument("--no-train-mit", action="store_true", help="train the prompt generator only, not the MIT")
    vl = parser.add_argument_group(
        "vision-language prompts (--method vl-prompts; IVLP as ViFi-CLIP's prompting stage; a model that already "
        "has prompts trains its own)"
    )
    vl.add_argument("--vision-prompts", type=int, help="vision prompt tokens (default: the model's, or 10; 0 = none)")
    vl.add_argument("--text-prompts", type=int, help="text context vectors (default: the model's, or 10)")
    vl.add_argument("--prompt-depth", type=int, help="layers with their own prompts (default: the model's, or all)")


def _add_llm_arguments(parser: argparse.ArgumentParser) -> None:
    llm = parser.add_argument_group("LLM prompts (--method llm-prompts)")
    llm.add_argument("--language-model", metavar="NAME_OR_PATH", help="frozen causal language model (required)")
    llm.add_argument(
        "--llm-prompt-tokens", type=int, help="learnable prompt tokens n (default: tokens of --llm-init-text, or 8)"
    )
    llm.add_argument(
        "--llm-init-text", default="a video of a", help="CLIP phrase the soft tokens start from; '' = random"
    )
    llm.add_argument(
        "--llm-template", default="{}", help="what the language model reads, '{}' = the label (default '{}')"
    )
    llm.add_argument("--llm-no-class-tokens", action="store_true", help="leave the class name out of the CLIP text")
    llm.add_argument("--llm-hidden-size", type=int, default=256, help="prompting transformer width (default 256)")
    llm.add_argument("--llm-layers", type=int, default=1, help="prompting transformer layers (default 1)")
    llm.add_argument("--llm-heads", type=int, default=4, help="prompting transformer heads (default 4)")
    llm.add_argument(
        "--llm-dtype",
        choices=("auto", "float32", "bfloat16", "float16"),
        default="auto",
        help="language-model dtype (auto: bf16/fp16 on GPU, fp32 on CPU)",
    )
    llm.add_argument("--llm-8bit", action="store_true", help="8-bit language model (CUDA GPU + bitsandbytes)")
    llm.add_argument("--llm-batch-size", type=int, default=64, help="labels per language-model pass (default 64)")
    llm.add_argument("--trust-remote-code", action="store_true", help="allow a language model with its own code")


def adapter_config_from_args(args: argparse.Namespace):
    """The `XClipAdapterConfig` the command-line options describe."""
    from ..finetuning.peft_config import LORA_PARTS, CoOpConfig, VLPromptsConfig, XClipAdapterConfig
    from ..language.prompter import LLMPrompterConfig

    overrides = {}
    if "lora" in args.method:
        parts = [p.strip() for p in args.lora_targets.split(",") if p.strip()]
        known = (*LORA_PARTS, "mlp")
        unknown = sorted(set(parts) - set(known))
        if unknown:
            raise ValueError(f"--lora-targets: unknown part(s) {unknown}; choose from {known}.")
        overrides.update(
            lora_type=args.lora_type,
            r=args.lora_r,
            lora_alpha=args.lora_alpha,
            lora_dropout=args.lora_dropout,
            lora_mlp="mlp" in parts,
        )
        overrides.update({f"lora_{keyword}": part in parts for part, keyword in LORA_PARTS.items()})
    if "coop" in args.method:
        overrides["coop"] = CoOpConfig(
            num_context=args.n_ctx, init_text=args.ctx_init or None, class_specific=args.class_specific
        )
    if "prompt-generator" in args.method and args.no_train_mit:
        overrides["train_mit"] = False
    vl_sizes = {"vision_tokens": args.vision_prompts, "text_tokens": args.text_prompts, "depth": args.prompt_depth}
    if "vl-prompts" in args.method:
        overrides["vl_prompts"] = VLPromptsConfig(**vl_sizes)
    elif any(value is not None for value in vl_sizes.values()):
        raise ValueError("--vision-prompts, --text-prompts and --prompt-depth need --method vl-prompts.")
    if "llm-prompts" in args.method:
        if not args.language_model:
            raise cli.UsageError("--method llm-prompts needs --language-model (a causal language model's name or path)")
        overrides["llm_prompter"] = LLMPrompterConfig(
            language_model=args.language_model,
            num_prompt_tokens=args.llm_prompt_tokens,
            init_text=args.llm_init_text or None,
            lm_template=args.llm_template,
            include_class_tokens=not args.llm_no_class_tokens,
            hidden_size=args.llm_hidden_size,
            num_layers=args.llm_layers,
            num_heads=args.llm_heads,
            lm_dtype=args.llm_dtype,
            load_in_8bit=args.llm_8bit,
            lm_batch_size=args.llm_batch_size,
            trust_remote_code=args.trust_remote_code,
        )
    elif args.language_model:
        raise cli.UsageError("--language-model is for --method llm-prompts")
    return XClipAdapterConfig.for_method(args.method, **overrides)


def training_arguments_from_args(args: argparse.Namespace):
    """The `FewShotTrainingArguments` of the flags it declared (see `add_parser`)."""
    from ..finetuning.training import FewShotTrainingArguments

    return cli.dataclass_from_args(FewShotTrainingArguments, args)


def _split_data(args: argparse.Namespace):
    """(train folder, held-out folder or None, description of the held-out set)."""
    from ..data.folders import read_annotations, scan_video_folder, select_shots, split_heldout

    train_source = args.train_dir or args.train_annotations
    if args.train_annotations is not None:
        folder = read_annotations(args.train_annotations)
    else:
        folder = scan_video_folder(args.train_dir)
    given = args.eval_dir or args.eval_annotations
    if args.shots is not None:
        train, rest = select_shots(folder, args.shots, args.seed)
    else:
        fraction = args.eval_fraction if args.eval_fraction is not None else (0.0 if given else 0.2)
        train, rest = split_heldout(folder, fraction, args.seed)
    if args.eval_dir is not None:
        heldout = scan_video_folder(args.eval_dir, class_names=folder.class_names, allow_empty_classes=True)
        source = f"`{args.eval_dir}`"
    elif args.eval_annotations is not None:
        # multi-label: any labels (those not trained on are novel); single-label: the training classes
        heldout = read_annotations(
            args.eval_annotations, class_names=None if folder.multi_label else folder.class_names
        )
        source = f"`{args.eval_annotations}`"
    else:
        heldout = rest
        source = f"videos of `{train_source}` not used for training"
    if args.max_eval_per_class is not None:
        kept = [item for group in heldout.by_class() for item in group[: args.max_eval_per_class]]
        heldout = heldout.subset(list(dict.fromkeys(kept)))  # a multi-label video is in several classes
    if not len(heldout):
        return train, None, "none (no held-out videos; pass --eval-dir or --eval-annotations)"
    return train, heldout, f"{source}, {len(heldout)} videos"


def _check(args: argparse.Namespace) -> None:
    cli.check_at_least_one(args, "epochs", "batch_size", "gradient_accumulation_steps", "shots")
    if args.eval_fraction is not None and not 0.0 <= args.eval_fraction < 1.0:
        raise ValueError("--eval-fraction must be in [0, 1).")
    if args.eval_fraction is not None and (args.shots is not None or args.eval_dir or args.eval_annotations):
        raise ValueError("--eval-fraction only applies without --shots, --eval-dir and --eval-annotations.")
    if args.eval_dir is not None and args.train_dir is None:
        raise ValueError("--eval-dir goes with --train-dir; with --train-annotations use --eval-annotations.")
    cli.check_at_least_one(args, "num_frames")
    if args.output_dir.is_dir() and any(args.output_dir.iterdir()) and not args.overwrite:
        raise cli.UsageError(
            f"--output-dir {args.output_dir} exists and is not empty: choose another folder, or pass "
            "--overwrite to replace its files"
        )


# Words that a horizontal flip turns into each other: a label naming one is not flip-invariant.
DIRECTION_WORDS = (
    "left",
    "right",
    "leftward",
    "rightward",
    "leftwards",
    "rightwards",
    "clockwise",
    "counterclockwise",
    "anticlockwise",
)
HFLIP_PROB_DEFAULT = 0.5


def _direction_aware_flip(training_args, class_names: list[str], given: bool):
    """The flip probability as given; by default 0.5, or 0 (with a notice) when a label names a left/right
    direction (a flip would turn "moving left" into "moving right")."""
    from dataclasses import replace

    if given:
        return training_args
    directional = [name for name in class_names if set(name.lower().replace("-", " ").split()) & set(DIRECTION_WORDS)]
    if not directional or not training_args.augment:
        return training_args
    more = f" (and {len(directional) - 1} more)" if len(directional) > 1 else ""
    print(
        f"hf-xclip finetune: note: label {directional[0]!r}{more} names a direction a horizontal flip would "
        f"reverse: random flips are off (--hflip-prob {HFLIP_PROB_DEFAULT} turns them on)",
        file=sys.stderr,
    )
    return replace(training_args, hflip_prob=0.0)


def _warn_single_class(train) -> None:
    if len(train.class_names) == 1:
        print(
            f"hf-xclip finetune: warning: the training data has a single class ({train.class_names[0]!r}): "
            "there is nothing to tell apart, the loss goes to 0 without learning anything useful",
            file=sys.stderr,
        )


def _family(model_name: str) -> str:
    from ..loading import check_model_family

    return check_model_family(model_name)


def _run_frame_pooling(args: argparse.Namespace, model_name: str, train, heldout) -> int:
    """CLIP / MetaCLIP 2 / SigLIP / SigLIP 2: ViFi-CLIP's recipe (`hf_xclip.finetuning.frame_pooling`), LoRA or full;
    the output folder is a plain transformers checkpoint."""
    from ..finetuning.frame_pooling import FramePoolingTrainingArguments, finetune_folder

    family = _family(model_name)
    methods = list(args.method or ["lora"])
    if family == "videoprism" or len(methods) != 1 or methods[0] not in ("lora", "full"):
        raise cli.UsageError(
            f"{model_name} is a {family} model: hf-xclip finetune trains it with --method lora or --method full "
            "(frame-pooling image-text families only; see docs/models.md, 'Not supported yet')."
        )
    learning_rate = getattr(args, "learning_rate", None) or getattr(args, "lr", None)
    settings = FramePoolingTrainingArguments(
        method=methods[0],
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        lora_rank=args.lora_r,
        template=getattr(args, "template", None) or "{}",
        **({"learning_rate": learning_rate} if learning_rate else {}),
    )
    summary = finetune_folder(model_name, train, heldout, args.output_dir, settings)
    for message in summary["skipped_videos"]:
        print(f"hf-xclip finetune: skipped unreadable training video {message}", file=sys.stderr)
    summary["skipped_videos"] = len(summary["skipped_videos"])
    text = (
        f"fine-tuned {family} ({methods[0]}): loss {summary['first_loss']:.4f} -> {summary['final_loss']:.4f}, "
        f"held-out top-1 {summary['top1_before']} -> {summary['top1']}; wrote {args.output_dir}"
    )
    cli.print_summary(text, summary, args.json)
    return cli.EXIT_OK


def run(args: argparse.Namespace) -> int:
    from ..finetuning.accelerator import make_accelerator
    from ..finetuning.adapters import save_adapter
    from ..finetuning.training import train_few_shot
    from ..modeling_xclip import XClipModel
    from ..processing_xclip import XClipProcessor

    try:
        _check(args)
        adapter_config = adapter_config_from_args(args)
        flip_given = args.hflip_prob is not None
        if not flip_given:
            args.hflip_prob = HFLIP_PROB_DEFAULT
        training_args = training_arguments_from_args(args)
        descriptions = cli.read_descriptions_argument(args.label_descriptions)
        train, heldout, eval_source = _split_data(args)
        _warn_single_class(train)
        training_args = _direction_aware_flip(training_args, train.class_names, flip_given)
        if train.multi_label:
            adapter_config = _multi_label_config(adapter_config)
        model_name = cli.model_or_default(args.model)
        with cli.loading(model_name):
            if _family(model_name) != "xclip":
                return _run_frame_pooling(args, model_name, train, heldout)
            model = XClipModel.from_pretrained(model_name)
            processor = XClipProcessor.from_pretrained(model_name)
        saved_backend = cli.apply_decode_backend(processor, args.decode_backend)
        prompter = None
        if adapter_config.llm_prompter is not None:  # load the language model now: a bad name is bad input
            from accelerate.utils import set_seed

            from ..language.prompter import XClipLLMPrompter

            set_seed(training_args.seed)
            prompter = XClipLLMPrompter.for_model(model, processor.tokenizer, adapter_config.llm_prompter)
    except (cli.UsageError, ValueError, OSError) as err:
        print(f"hf-xclip finetune: error: {err}", file=sys.stderr)
        return cli.EXIT_USAGE

    accelerator = make_accelerator(training_args.mixed_precision, training_args.gradient_accumulation_steps)
    try:
        result = train_few_shot(
            model,
            processor,
            train,
            adapter_config=adapter_config,
            args=training_args,
            eval_folder=heldout,
            accelerator=accelerator,
            label_descriptions=descriptions,
            label_prompter=prompter,
        )
    except ValueError as err:
        print(f"hf-xclip finetune: error: {err}", file=sys.stderr)
        return cli.EXIT_FAILURES
    for message in result.skipped_videos:
        print(f"hf-xclip finetune: skipped unreadable training video {message}", file=sys.stderr)
    for message in result.eval_after.failed if result.eval_after else []:
        print(f"hf-xclip finetune: skipped unreadable evaluation video {message}", file=sys.stderr)
    summary = _summary(result, args.output_dir)
    if accelerator.is_main_process:
        data = {
            "train_dir": str(args.train_dir) if args.train_dir else None,
            "train_annotations": str(args.train_annotations) if args.train_annotations else None,
            "shots": args.shots,
            "seed": args.seed,
            "label_descriptions": str(args.label_descriptions) if args.label_descriptions else None,
            "eval_source": eval_source,
        }
        processor.video_processor.decode_backend = saved_backend  # the saved processor keeps its own
        save_adapter(result, args.output_dir, base_model=model_name, data=data, processor=processor)
        _print_summary(summary)
        if args.json:
            print(json.dumps(summary))
    accelerator.wait_for_everyone()
    return cli.EXIT_OK


def _multi_label_config(adapter_config):
    """Class-specific CoOp contexts exist only for the training labels: a multi-label model must score any label."""
    if adapter_config.coop is not None and adapter_config.coop.class_specific:
        raise cli.UsageError(
            "--class-specific CoOp contexts cannot score labels outside training; leave it out for multi-label training"
        )
    return adapter_config


def _summary(result, output_dir: Path) -> dict:
    before, after = result.eval_before, result.eval_after
    summary = {
        "output_dir": str(output_dir),
        "methods": result.adapter_config.methods,
        "multi_label": result.multi_label,
        "train_videos": result.num_train_videos,
        "skipped_videos": len(result.skipped_videos),
        "epochs": result.args.epochs,
        "first_loss": result.epoch_losses[0] if result.epoch_losses else None,  # epoch means
        "final_loss": result.epoch_losses[-1] if result.epoch_losses else None,
        "eval_videos": after.num_videos if after else 0,
        "eval_skipped_videos": len(after.failed) if after else 0,
        "trainable_parameters": result.trainable_parameters,
        "seconds": round(result.seconds, 2),
    }
    if not result.multi_label:
        summary.update(
            top1_before=before.top1 if before else None,
            top1=after.top1 if after else None,
            top5=after.top5 if after else None,
        )
        return summary
    for key in ("mAP", "base_mAP", "novel_mAP", "f1"):
        summary[f"{key}_before"] = before.metrics.get(key) if before else None
        summary[key] = after.metrics.get(key) if after else None
    summary.update(
        regularization=result.args.regularization,
        loss=result.args.loss,
        sigmoid_head=result.sigmoid_head,
        novel_labels=len(result.novel_labels),
    )
    if summary["mAP"] is not None and summary["mAP_before"] is not None:
        summary["worse_than_training_free"] = summary["mAP"] < summary["mAP_before"]
    return summary


def _print_summary(summary: dict) -> None:
    print(f"adapter written to {summary['output_dir']} ({'+'.join(summary['methods'])})")
    print(f"trained on {summary['train_videos']} videos, {summary['skipped_videos']} unreadable skipped")
    if summary["final_loss"] is not None:
        print(f"mean training loss, first -> last epoch: {summary['first_loss']:.4f} -> {summary['final_loss']:.4f}")
    if summary["multi_label"]:
        head = summary["sigmoid_head"]
        print(f"sigmoid head: sigmoid({head['scale']:.4g} * cosine {head['bias']:+.4g})")
        number = lambda value: "-" if value is None else f"{value:.4f}"  # noqa: E731
        if summary["mAP"] is not None:
            print(
                f"held-out mAP: {number(summary['mAP_before'])} -> {number(summary['mAP'])} on "
                f"{summary['eval_videos']} videos"
            )
            if summary["mAP_before"] is not None and summary["mAP"] < summary["mAP_before"]:
                print(
                    f"hf-xclip finetune: warning: training made the held-out mAP worse than the training-free model "
                    f"({summary['mAP_before']:.4f} -> {summary['mAP']:.4f}); the model card says so too",
                    file=sys.stderr,
                )
        if summary.get("novel_mAP") is not None:
            print(
                f"base mAP: {number(summary['base_mAP_before'])} -> {number(summary['base_mAP'])}   novel mAP "
                f"({summary['novel_labels']} labels): {number(summary['novel_mAP_before'])} -> "
                f"{number(summary['novel_mAP'])}"
            )
        return
    if summary["top1"] is not None:
        before = "-" if summary["top1_before"] is None else f"{summary['top1_before']:.4f}"
        skipped = f" ({summary['eval_skipped_videos']} unreadable skipped)" if summary["eval_skipped_videos"] else ""
        print(f"held-out top-1: {before} -> {summary['top1']:.4f} on {summary['eval_videos']} videos{skipped}")
