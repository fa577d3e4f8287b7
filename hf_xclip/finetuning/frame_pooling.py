"""Few-shot and full fine-tuning of image-text models on video, ViFi-CLIP's recipe: frames through the image tower,
pooled over time, the image tower adapted on videos (LoRA on its attention projections, or every weight), the text
tower frozen (class texts encoded once). CLIP-style models learn with the softmax cross-entropy over the classes,
SigLIP-style ones with their own sigmoid loss (one-hot targets; multi-hot for multi-label data).

The result has no new layers: LoRA weights are merged into the image tower, and `save_frame_pooling_model` writes a
plain transformers checkpoint of the model's class (with its processor and tokenizer), which `load_model`,
`from_pretrained` and the pipeline load as any checkpoint of that family.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..labels import LabelEncoder


@dataclass
class FramePoolingTrainingArguments:
    """Settings of `train_frame_pooling`."""

    method: str = field(default="lora", metadata={"help": "'lora' (image tower's q/v projections) or 'full'."})
    epochs: int = field(default=40, metadata={"help": "passes over the training clips."})
    batch_size: int = field(default=4, metadata={"help": "clips per step."})
    learning_rate: float = field(default=5e-3, metadata={"help": "AdamW learning rate (LoRA); use ~1e-4 for full."})
    lora_rank: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha."})
    template: str = field(default="{}", metadata={"help": "text template of the class names."})
    seed: int = field(default=0, metadata={"help": "random seed (initialisation and order)."})


@dataclass
class FramePoolingResult:
    epoch_losses: list[float]
    model: Any


def _lora_targets(model: nn.Module) -> list[str]:
    """The image tower's attention query / value projections (CLIP, MetaCLIP 2, SigLIP, SigLIP 2 name them alike)."""
    names = [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and "vision_model" in name and name.endswith(("q_proj", "v_proj"))
    ]
    if not names:
        raise ValueError(f"no image-tower q_proj / v_proj layers found in {type(model).__name__}.")
    return names


def train_frame_pooling(
    model: Any,
    tokenizer: Any,
    pixel_values: torch.Tensor,
    targets: torch.Tensor,
    class_names: Sequence[str],
    args: FramePoolingTrainingArguments | None = None,
) -> FramePoolingResult:
    """Adapt the image tower of a frame-pooling model (`hf_xclip.modeling_video_text.ImageTextVideoModel`) on clips.

    Args:
        model: the wrapped model (changed in place; LoRA weights are merged at the end).
        tokenizer: its tokenizer.
        pixel_values: (N, T, ...) clips from the family's video processor.
        targets: (N,) class indices, or (N, K) multi-hot (multi-label).
        class_names: the K class names.
        args: settings.

    Returns:
        the per-epoch mean losses and the model.
    """
    args = args or FramePoolingTrainingArguments()
    if getattr(getattr(model, "capabilities", None), "frame_pooling", None) is None:
        raise ValueError("train_frame_pooling adapts image-text models run by frame pooling (CLIP, SigLIP, ...).")
    torch.manual_seed(args.seed)
    encoder = LabelEncoder(model, tokenizer)
    text = encoder.encode_labels(list(class_names), (args.template,)).detach()
    inner = model.model
    for param in inner.parameters():
        param.requires_grad_(False)
    peft_model = None
    if args.method == "lora":
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(r=args.lora_rank, lora_alpha=args.lora_alpha, target_modules=_lora_targets(inner))
        peft_model = get_peft_model(inner, config)
        model.model = peft_model
        trainable = [p for p in peft_model.parameters() if p.requires_grad]
    elif args.method == "full":
        trainable = list(inner.vision_model.parameters())
        for param in trainable:
            param.requires_grad_(True)
    else:
        raise ValueError(f"method must be 'lora' or 'full' for frame-pooling models, got {args.method!r}.")
    optimizer = torch.optim.AdamW(trainable, lr=args.learning_rate, weight_decay=0.0)
    multi_label = targets.ndim == 2
    sigmoid = model.capabilities.scores == "sigmoid"
    generator = torch.Generator().manual_seed(args.seed)
    losses = []
    model.train()
    for _ in range(args.epochs):
        order = torch.randperm(len(pixel_values), generator=generator)
        total = 0.0
        for start in range(0, len(order), args.batch_size):
            index = order[start : start + args.batch_size]
            logits = model.score(model.encode_videos(pixel_values[index]), text)
            loss = _loss(logits, targets[index], len(class_names), sigmoid or multi_label)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(index)
        losses.append(total / len(order))
    model.eval()
    if peft_model is not None:
        model.model = peft_model.merge_and_unload()
    for param in model.model.parameters():
        param.requires_grad_(False)
    if not all(math.isfinite(loss) for loss in losses):
        raise FloatingPointError(f"training diverged (losses {losses}); lower the learning rate.")
    return FramePoolingResult(losses, model)


def _loss(logits: torch.Tensor, targets: torch.Tensor, num_classes: int, independent: bool) -> torch.Tensor:
    if targets.ndim == 1:
        if not independent:
            return nn.functional.cross_entropy(logits.float(), targets)
        targets = nn.functional.one_hot(targets, num_classes)
    return nn.functional.binary_cross_entropy_with_logits(logits.float(), targets.float())


def save_frame_pooling_model(model: Any, processor: Any, output_dir: str | os.PathLike) -> None:
    """A plain transformers checkpoint of the fine-tuned model (its class, no new layers), with its processor and
    tokenizer: loads with `from_pretrained`, `hf_xclip.loading.load_model` and the pipeline."""
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)


def folder_clips(processor: Any, folder: Any, num_frames: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Pixel values (N, T, ...) and targets ((N,) class indices, (N, K) multi-hot for a multi-label folder) of the
    readable videos of a `hf_xclip.data.folders.VideoFolder`, and the messages of the unreadable ones."""
    pixels, targets, skipped = [], [], []
    for item in folder.items:
        options = {"start_time": item.start, "end_time": item.end} if item.start is not None else {}
        try:
            pixels.append(
                processor.video_processor(str(item.path), num_frames=num_frames, **options)["pixel_values"][0]
            )
        except (OSError, ValueError) as err:
            skipped.append(f"{item.path}: {err}")
            continue
        if folder.multi_label:
            hot = torch.zeros(len(folder.class_names))
            hot[list(item.labels)] = 1.0
            targets.append(hot)
        else:
            targets.append(torch.tensor(item.label))
    if not pixels:
        raise ValueError("no readable training video.")
    return torch.stack(pixels), torch.stack(targets), skipped


def top1(
    model: Any,
    tokenizer: Any,
    pixel_values: torch.Tensor,
    targets: torch.Tensor,
    class_names: Sequence[str],
    template: str = "{}",
) -> float:
    """Top-1 accuracy of single-label clips against the class names."""
    with torch.no_grad():
        text = LabelEncoder(model, tokenizer).encode_labels(list(class_names), (template,))
        logits = model.score(model.encode_videos(pixel_values), text)
    return float((logits.argmax(-1) == targets).float().mean())


def finetune_folder(
    model_name: str | os.PathLike,
    train: Any,
    heldout: Any,
    output_dir: str | os.PathLike,
    args: FramePoolingTrainingArguments,
) -> dict[str, Any]:
    """`hf-xclip finetune` for a frame-pooling family: train on a folder, measure held-out top-1 before and after
    (single-label), save the plain checkpoint. Returns the summary."""
    from ..loading import load_family_model

    model, processor = load_family_model(model_name)
    num_frames = model.num_frames
    x, y, skipped = folder_clips(processor, train, num_frames)
    evaluation = folder_clips(processor, heldout, num_frames) if heldout is not None and len(heldout) else None
    names = list(train.class_names)
    before = (
        None
        if evaluation is None or train.multi_label
        else top1(model, processor.tokenizer, *evaluation[:2], names, args.template)
    )
    result = train_frame_pooling(model, processor.tokenizer, x, y, names, args)
    after = (
        None
        if evaluation is None or train.multi_label
        else top1(model, processor.tokenizer, *evaluation[:2], names, args.template)
    )
    save_frame_pooling_model(model, processor, output_dir)
    return {
        "output_dir": str(output_dir),
        "methods": [args.method],
        "family": model.capabilities.family,
        "multi_label": bool(train.multi_label),
        "train_videos": len(x),
        "skipped_videos": skipped,
        "epochs": args.epochs,
        "first_loss": result.epoch_losses[0],
        "final_loss": result.epoch_losses[-1],
        "top1_before": before,
        "top1": after,
    }


__all__ = [
    "finetune_folder",
    "folder_clips",
    "top1",
    "FramePoolingResult",
    "FramePoolingTrainingArguments",
    "save_frame_pooling_model",
    "train_frame_pooling",
]
