"""Few-shot adaptation of X-CLIP on labelled videos with PEFT and accelerate.

[`train_few_shot`] wraps the model with [`get_xclip_peft_model`] and trains with the original X-CLIP recipe where
it applies (AdamW (0.9, 0.98), weight decay 0.001, cosine schedule with linear warm-up, label smoothing 0.1,
frozen text encoder unless the method tunes it) under `accelerate` (device placement, bf16 / fp16, gradient
accumulation, several GPUs with `accelerate launch`). Data come from `hf_xclip.video_data`, clips from
`hf_xclip.video_dataset`, class texts from `hf_xclip.labels`, accuracy from `hf_xclip.evaluation`; the result is
saved by `hf_xclip.adapters.save_adapter`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F

from .accelerator import make_accelerator
from .evaluation import EvaluationResult, evaluate_videos
from .labels import LabelEncoder, resolve_templates, tokenize_labels, validate_template
from .peft_utils import (
    XClipAdapterConfig,
    default_learning_rates,
    enable_gradient_checkpointing,
    get_xclip_peft_model,
    parameter_groups,
    resolve_vl_prompts,
    text_is_trainable,
)
from .video_data import VideoFolder, drop_unreadable
from .video_dataset import VideoClassificationDataset, collate_videos


@dataclass
class FewShotTrainingArguments:
    """Optimisation settings of [`train_few_shot`]; defaults follow the original X-CLIP recipe where it applies."""

    epochs: int = field(default=10, metadata={"help": "Passes over the training videos."})
    batch_size: int = field(default=8, metadata={"help": "Videos per step and device."})
    learning_rate: float | None = field(
        default=None,
        metadata={"help": "One learning rate for every trained part; None: per method (see default_learning_rates)."},
    )
    weight_decay: float = field(default=0.001, metadata={"help": "AdamW weight decay (not on 1-D parameters)."})
    adam_betas: tuple[float, float] = field(default=(0.9, 0.98), metadata={"help": "AdamW betas."})
    warmup_ratio: float = field(
        default=0.1, metadata={"help": "Fraction of the optimiser steps with linear warm-up (original: 5 of 50 epochs)."}
    )
    label_smoothing: float = field(default=0.1, metadata={"help": "Label smoothing of the cross-entropy."})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Batches per optimiser step."})
    max_grad_norm: float | None = field(default=1.0, metadata={"help": "Gradient clipping (None: off)."})
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = field(
        default="auto", metadata={"help": "'auto': bf16 on GPUs that have it, else fp16 on GPU, fp32 on CPU."}
    )
    gradient_checkpointing: bool = field(default=False, metadata={"help": "Recompute activations in backward."})
    num_workers: int = field(default=0, metadata={"help": "DataLoader worker processes."})
    seed: int = field(default=0, metadata={"help": "Seeds data order, sampling, augmentation and initialisation."})
    template: str | None = field(
        default=None,
        metadata={"help": "Prompt template; None: the model's own (its processor's `hypothesis_template`; the "
                  "original X-CLIP uses the class name, ViFi-CLIP 'a photo of a {}.')."},
    )
    augment: bool = field(default=True, metadata={"help": "Random resized crop and horizontal flip."})
    crop_scale: tuple[float, float] = field(default=(0.4, 1.0), metadata={"help": "Area range of the random crop."})
    hflip_prob: float = field(default=0.5, metadata={"help": "Flip probability (0 for left/right classes)."})
    num_frames: int | None = field(default=None, metadata={"help": "Frames per clip (None: the processor's)."})
    show_progress: bool = field(default=True, metadata={"help": "tqdm progress bar with the loss."})

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "gradient_accumulation_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}.")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}.")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}.")
        if self.mixed_precision not in ("auto", "no", "fp16", "bf16"):
            raise ValueError(f"mixed_precision must be auto, no, fp16 or bf16, got {self.mixed_precision!r}.")
        if self.template is not None:
            validate_template(self.template, "template")
        self.adam_betas = tuple(self.adam_betas)
        self.crop_scale = tuple(self.crop_scale)

    def learning_rates(self) -> dict[str, float]:
        rates = default_learning_rates()
        if self.learning_rate is not None:
            rates = dict.fromkeys(rates, self.learning_rate)
        return rates


@dataclass
class FewShotResult:
    """What [`train_few_shot`] returns."""

    model: Any
    class_names: list[str]
    adapter_config: XClipAdapterConfig
    args: FewShotTrainingArguments
    step_losses: list[float]
    epoch_losses: list[float]
    num_train_videos: int
    skipped_videos: list[str]
    eval_before: EvaluationResult | None = None
    eval_after: EvaluationResult | None = None
    seconds: float = 0.0
    trainable_parameters: int = 0
    mixed_precision: str = "no"
    learning_rates: dict[str, float] = field(default_factory=dict)


def _with_context_sizes(config: XClipAdapterConfig, peft_model: nn.Module) -> XClipAdapterConfig:
    """The config with the CoOp context size that was actually created (for the saved metadata)."""
    if config.coop is None:
        return config
    suffix = "prompt_context.modules_to_save.default.context"
    contexts = [p for n, p in peft_model.named_parameters() if n.endswith(suffix)]
    if not contexts:
        return config
    rows, num_context = contexts[0].shape[:2]
    coop = replace(config.coop, num_context=num_context, num_classes=rows if config.coop.class_specific else None)
    return replace(config, coop=coop)


def _training_loader(folder: VideoFolder, processor: Any, args: FewShotTrainingArguments):
    dataset = VideoClassificationDataset(
        folder,
        processor,
        num_frames=args.num_frames,
        training=True,
        augment=args.augment,
        crop_scale=args.crop_scale,
        hflip_prob=args.hflip_prob,
    )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.num_workers,
        collate_fn=collate_videos,
        generator=torch.Generator().manual_seed(args.seed),
    )
    return dataset, loader


def _run_epochs(peft_model, loader, optimizer, scheduler, accelerator, args, text_kwargs, total_steps):
    """The optimisation loop; returns (loss per optimiser step, mean loss per epoch, failed videos)."""
    from tqdm.auto import tqdm

    trained_params = [p for p in peft_model.parameters() if p.requires_grad]
    step_losses: list[float] = []
    epoch_losses: list[float] = []
    failed: list[str] = []
    progress = tqdm(
        total=total_steps, desc="finetuning", disable=not (args.show_progress and accelerator.is_local_main_process)
    )
    peft_model.train()
    for epoch in range(args.epochs):
        running, batches, window = 0.0, 0, []
        for batch in loader:
            failed.extend(batch["failed"])
            if batch["pixel_values"] is None:
                continue
            with accelerator.accumulate(peft_model):
                outputs = peft_model(pixel_values=batch["pixel_values"], **text_kwargs, return_dict=True)
                logits = outputs.logits_per_video
                loss = F.cross_entropy(logits.float(), batch["labels"], label_smoothing=args.label_smoothing)
                accelerator.backward(loss)
                if accelerator.sync_gradients and args.max_grad_norm is not None:
                    accelerator.clip_grad_norm_(trained_params, args.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
            value = accelerator.gather(loss.detach()[None]).mean().item()
            running, batches = running + value, batches + 1
            window.append(value)
            if accelerator.sync_gradients:
                scheduler.step()
                step_losses.append(sum(window) / len(window))
                window = []
                progress.update(1)
                progress.set_postfix(epoch=epoch + 1, loss=f"{step_losses[-1]:.4f}")
        epoch_losses.append(running / max(batches, 1))
    progress.close()
    peft_model.eval()
    return step_losses, epoch_losses, failed

def train_few_shot(
    model: nn.Module,
    processor: Any,
    train_folder: VideoFolder,
    *,
    adapter_config: XClipAdapterConfig | None = None,
    args: FewShotTrainingArguments | None = None,
    eval_folder: VideoFolder | None = None,
    evaluate_before: bool = True,
    accelerator: Any = None,
) -> FewShotResult:
    """Train PEFT adapters of an [`XClipModel`] on labelled videos.

    Args:
        model: the base model (its weights stay frozen; adapters are added in place).
        processor: an [`XClipProcessor`] (tokenizer + video processor).
        train_folder: training videos (e.g. from [`select_shots`]); unreadable ones are skipped and reported.
        adapter_config: what to train (default: LoRA preset).
        args: optimisation settings.
        eval_folder: held-out videos, evaluated before (base model) and after training.
        evaluate_before: also measure the base model on `eval_folder`.
        accelerator: an `accelerate.Accelerator` (default: one made from `args`).

    Returns:
        [`FewShotResult`] with the trained `peft.PeftModel` (unwrapped), losses and accuracies.
    """
    from accelerate.utils import set_seed
    from transformers import get_cosine_schedule_with_warmup

    start = time.perf_counter()
    args = args or FewShotTrainingArguments()
    # the model's own template unless one was given; recorded in the result (metadata, card)
    args = replace(args, template=resolve_templates(args.template, processor)[0])
    adapter_config = adapter_config or XClipAdapterConfig.for_method("lora")
    accelerator = accelerator or make_accelerator(args.mixed_precision, args.gradient_accumulation_steps)
    set_seed(args.seed)
    tokenizer = processor.tokenizer
    class_names = list(train_folder.class_names)

    train_folder, skipped = drop_unreadable(train_folder)
    empty = [name for name, count in train_folder.counts().items() if count == 0]
    if empty:
        raise ValueError(f"No readable training video left for class(es) {empty}; see the skipped videos: {skipped}")
    max_positions = model.config.text_config.max_position_embeddings
    text_inputs = tokenize_labels(tokenizer, class_names, args.template, max_positions)
    eval_kwargs = {
        "templates": args.template,
        "batch_size": args.batch_size,
        "num_workers": args.num_workers,
        "accelerator": accelerator,
    }
    eval_dataset = None
    if eval_folder is not None and len(eval_folder):
        if eval_folder.class_names != class_names:
            raise ValueError("The evaluation folder must have the training classes, in the same order.")
        eval_dataset = VideoClassificationDataset(eval_folder, processor, num_frames=args.num_frames)

    model.to(accelerator.device)
    eval_before = evaluate_videos(model, eval_dataset, tokenizer, **eval_kwargs) if (
        eval_dataset is not None and evaluate_before
    ) else None

    if args.gradient_checkpointing:
        enable_gradient_checkpointing(model, use_reentrant=False)
    adapter_config = resolve_vl_prompts(adapter_config, model)  # the VL prompt sizes actually used, for the record
    peft_model = get_xclip_peft_model(
        model, adapter_config, tokenizer=tokenizer, class_names=class_names, seed=args.seed
    )
    peft_model.to(accelerator.device)
    adapter_config = _with_context_sizes(adapter_config, peft_model)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    groups = parameter_groups(peft_model, args.learning_rates(), args.weight_decay)
    learning_rates = {group["name"]: group["lr"] for group in groups}
    optimizer = torch.optim.AdamW(groups, betas=args.adam_betas)

    train_dataset, loader = _training_loader(train_folder, processor, args)
    args = replace(args, num_frames=train_dataset.num_frames)  # record the frame count actually used
    peft_model, optimizer, loader = accelerator.prepare(peft_model, optimizer, loader)
    total_steps = math.ceil(len(loader) / args.gradient_accumulation_steps) * args.epochs
    # Stepped by hand once per optimiser update (not through accelerate, which would step it once per process).
    scheduler = get_cosine_schedule_with_warmup(optimizer, int(args.warmup_ratio * total_steps), total_steps)

    unwrapped = accelerator.unwrap_model(peft_model)
    if text_is_trainable(unwrapped):
        text_kwargs = {k: v.to(accelerator.device) for k, v in text_inputs.items()}
    else:  # frozen text side: encode the class prompts once
        with torch.no_grad():
            text_embeds = LabelEncoder(unwrapped, tokenizer).encode_labels(class_names, args.template)
        text_kwargs = {"text_embeds": text_embeds.detach()}
    step_losses, epoch_losses, failed = _run_epochs(
        peft_model, loader, optimizer, scheduler, accelerator, args, text_kwargs, total_steps
    )
    skipped.extend(failed)

    skipped = sorted(set(skipped))
    if accelerator.num_processes > 1:
        from accelerate.utils import gather_object

        skipped = sorted(set(gather_object(skipped)))
    eval_after = evaluate_videos(peft_model, eval_dataset, tokenizer, **eval_kwargs) if eval_dataset else None
    return FewShotResult(
        model=accelerator.unwrap_model(peft_model),
        class_names=class_names,
        adapter_config=adapter_config,
        args=args,
        step_losses=step_losses,
        epoch_losses=epoch_losses,
        num_train_videos=len(train_folder),
        skipped_videos=skipped,
        eval_before=eval_before,
        eval_after=eval_after,
        seconds=time.perf_counter() - start,
        trainable_parameters=trainable,
        mixed_precision=accelerator.mixed_precision,
        learning_rates=learning_rates,
    )


__all__ = ["FewShotResult", "FewShotTrainingArguments", "train_few_shot"]
