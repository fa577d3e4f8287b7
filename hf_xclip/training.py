"""Few-shot adaptation of X-CLIP on folder-per-class videos with PEFT and accelerate.

* [`scan_video_folder`] reads `root/<class text>/<video>` (the folder name is the class text),
  [`select_shots`] draws K videos per class with a seed, [`split_heldout`] holds out a fraction.
* [`VideoClassificationDataset`] decodes with [`XClipVideoProcessor`] (TSN `"random"` sampling and random resized
  crop / horizontal flip when training, the original's test protocol otherwise); a video that cannot be read is
  replaced by another video of its class and reported, never fatal.
* [`train_few_shot`] wraps the model with [`get_xclip_peft_model`] and trains with the original X-CLIP recipe where
  it applies (AdamW (0.9, 0.98), weight decay 0.001, cosine schedule with linear warm-up, label smoothing 0.1,
  frozen text encoder unless the method tunes it) under `accelerate` (device placement, bf16 / fp16, gradient
  accumulation, several GPUs with `accelerate launch`).
* [`evaluate_videos`] gives top-1 / top-5 and per-class accuracy; [`save_adapter`] writes the peft adapter, a
  `xclip_adapter.json` (class names and settings) and a model card.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F
from transformers.utils import logging

from .peft_utils import (
    XClipAdapterConfig,
    default_learning_rates,
    enable_gradient_checkpointing,
    get_xclip_peft_model,
    parameter_groups,
    text_is_trainable,
)
from .processing_xclip import clean_text
from .video_io import VideoDecodeError, probe_video

logger = logging.get_logger(__name__)

VIDEO_EXTENSIONS: tuple[str, ...] = (
    ".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ogv", ".ts",
)
ADAPTER_METADATA_FILE = "xclip_adapter.json"
# What decoding can raise for a broken file; anything else is a bug and propagates.
DECODE_ERRORS = (VideoDecodeError, OSError, RuntimeError, ValueError, EOFError)


# ----------------------------------------------------------------------------------------------------------------
# Folder-per-class data
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoItem:
    """One labelled video file."""

    path: Path
    label: int


@dataclass
class VideoFolder:
    """Videos of a folder-per-class dataset: `class_names[label]` is the class text of each item."""

    root: Path
    class_names: list[str]
    items: list[VideoItem]

    def __len__(self) -> int:
        return len(self.items)

    def counts(self) -> dict[str, int]:
        """Videos per class (every class, zero included)."""
        counts = dict.fromkeys(self.class_names, 0)
        for item in self.items:
            counts[self.class_names[item.label]] += 1
        return counts

    def subset(self, items: Sequence[VideoItem]) -> VideoFolder:
        return VideoFolder(self.root, list(self.class_names), list(items))

    def by_class(self) -> list[list[VideoItem]]:
        groups: list[list[VideoItem]] = [[] for _ in self.class_names]
        for item in self.items:
            groups[item.label].append(item)
        return groups


def scan_video_folder(
    root: str | Path,
    *,
    class_names: Sequence[str] | None = None,
    extensions: Sequence[str] = VIDEO_EXTENSIONS,
    allow_empty_classes: bool = False,
) -> VideoFolder:
    """List `root/<class>/**/<video>` files.

    Args:
        root: folder with one sub-folder per class; the sub-folder name is the class text.
        class_names: fix the classes and their order (e.g. those an adapter was trained with). Folders must be
            among them; classes without a folder are kept as candidate labels with no videos.
        extensions: file suffixes counted as videos (case-insensitive).
        allow_empty_classes: keep class folders without videos (a warning) instead of raising.

    Raises:
        FileNotFoundError / NotADirectoryError: `root` is missing or not a folder.
        ValueError: no class folders, a folder without videos, or a folder outside `class_names`.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"Video folder {str(root)!r} does not exist.")
    if not root.is_dir():
        raise NotADirectoryError(f"{str(root)!r} is not a folder (expected one sub-folder per class).")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise ValueError(f"{str(root)!r} holds no class folders (expected {root}/<class name>/<video files>).")
    suffixes = {s.lower() for s in extensions}
    if class_names is None:
        class_names = [p.name for p in folders]
    else:
        class_names = list(class_names)
        unknown = [p.name for p in folders if p.name not in class_names]
        if unknown:
            raise ValueError(f"Class folders {unknown} in {str(root)!r} are not among the classes {class_names}.")
    index = {name: i for i, name in enumerate(class_names)}
    items, empty = [], []
    for folder in folders:
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
        if not files:
            empty.append(folder.name)
        items.extend(VideoItem(path, index[folder.name]) for path in files)
    if empty:
        message = (
            f"Class folder(s) {empty} in {str(root)!r} contain no videos (looked for {', '.join(sorted(suffixes))})."
        )
        if not allow_empty_classes:
            raise ValueError(message)
        logger.warning(message)
    if not items:
        raise ValueError(f"No videos found under {str(root)!r}.")
    return VideoFolder(root, class_names, items)


def select_shots(folder: VideoFolder, shots: int, seed: int = 0) -> tuple[VideoFolder, VideoFolder]:
    """Draw `shots` videos of every class (seeded); return `(selected, rest)`.

    Raises:
        ValueError: a class has fewer than `shots` videos (all such classes are named).
    """
    if shots < 1:
        raise ValueError(f"shots must be at least 1, got {shots}.")
    groups = folder.by_class()
    short = {folder.class_names[c]: len(g) for c, g in enumerate(groups) if len(g) < shots}
    if short:
        raise ValueError(
            f"{shots}-shot training needs {shots} videos per class, but these classes have fewer: {short}. "
            "Lower --shots or add videos."
        )
    rng = random.Random(seed)
    selected, rest = [], []
    for group in groups:
        chosen = set(rng.sample(range(len(group)), shots))
        selected.extend(item for i, item in enumerate(group) if i in chosen)
        rest.extend(item for i, item in enumerate(group) if i not in chosen)
    return folder.subset(selected), folder.subset(rest)


def split_heldout(folder: VideoFolder, fraction: float, seed: int = 0) -> tuple[VideoFolder, VideoFolder]:
    """Hold out `fraction` of every class's videos (at least one video stays for training); `(train, heldout)`."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"The held-out fraction must be in [0, 1), got {fraction}.")
    rng = random.Random(seed)
    train, heldout = [], []
    for group in folder.by_class():
        order = list(range(len(group)))
        rng.shuffle(order)
        count = min(int(round(len(group) * fraction)), max(len(group) - 1, 0))
        held = set(order[:count])
        heldout.extend(item for i, item in enumerate(group) if i in held)
        train.extend(item for i, item in enumerate(group) if i not in held)
    return folder.subset(train), folder.subset(heldout)


def drop_unreadable(folder: VideoFolder) -> tuple[VideoFolder, list[str]]:
    """Probe every video (container, stream, packets); return the readable ones and `"path: reason"` for the rest."""
    kept, failed = [], []
    for item in folder.items:
        try:
            info = probe_video(item.path)
            if not info.num_frames:
                raise VideoDecodeError(str(item.path), "no frames")
            kept.append(item)
        except DECODE_ERRORS as err:
            failed.append(f"{item.path}: {err}")
    if failed:
        logger.warning(f"Skipping {len(failed)} unreadable video(s): " + "; ".join(failed[:5]))
    return folder.subset(kept), failed


# ----------------------------------------------------------------------------------------------------------------
# Dataset and augmentation
# ----------------------------------------------------------------------------------------------------------------


def random_resized_crop(
    clip: torch.Tensor,
    size: int,
    *,
    scale: tuple[float, float] = (0.4, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    hflip_prob: float = 0.5,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The same random resized crop (area `scale`, aspect `ratio`) and horizontal flip for every frame.

    Args:
        clip: `(T, C, H, W)` frames.
        size: output side S.

    Returns:
        `(T, C, S, S)`.
    """
    height, width = clip.shape[-2:]
    area = height * width
    crop_h, crop_w, top, left = height, width, 0, 0
    for _ in range(10):
        target = area * _uniform(*scale, generator)
        aspect = math.exp(_uniform(math.log(ratio[0]), math.log(ratio[1]), generator))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            crop_h, crop_w = h, w
            top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
            left = int(torch.randint(0, width - w + 1, (1,), generator=generator))
            break
    else:  # fall back to the largest centred crop of a valid aspect ratio
        side = min(height, width)
        crop_h = crop_w = side
        top, left = (height - side) // 2, (width - side) // 2
    crop = clip[..., top : top + crop_h, left : left + crop_w]
    crop = F.interpolate(crop.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    if hflip_prob > 0 and _uniform(0.0, 1.0, generator) < hflip_prob:
        crop = crop.flip(-1)
    return crop


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


class VideoClassificationDataset(torch.utils.data.Dataset):
    """Decoded, preprocessed videos of a [`VideoFolder`].

    Items are `{"pixel_values": (T, 3, S, S), "label": int, "failed": [str]}`. `failed` lists videos that could not
    be decoded: with `substitute_failed` (training) another readable video of the same class takes their place;
    otherwise the item has `pixel_values=None` and [`collate_videos`] drops it.

    Args:
        folder: the videos.
        video_processor: an `XClipVideoProcessor` (or an `XClipProcessor`).
        num_frames: frames per clip (default: the processor's).
        training: TSN random frame sampling plus random resized crop and flip; otherwise the test protocol
            (middle frames, resize, centre crop).
        augment: with `training`, random resized crop / flip (off: centre crop).
        crop_scale: area range of the random resized crop.
        hflip_prob: probability of a horizontal flip (0 for classes that depend on left / right).
        substitute_failed: replace an unreadable video by another of its class.
    """

    def __init__(
        self,
        folder: VideoFolder,
        video_processor: Any,
        *,
        num_frames: int | None = None,
        training: bool = False,
        augment: bool = True,
        crop_scale: tuple[float, float] = (0.4, 1.0),
        hflip_prob: float = 0.5,
        substitute_failed: bool | None = None,
    ) -> None:
        self.folder = folder
        self.video_processor = getattr(video_processor, "video_processor", video_processor)
        self.num_frames = num_frames or self.video_processor.num_frames
        self.training = training
        self.augment = augment and training
        self.crop_scale = crop_scale
        self.hflip_prob = hflip_prob
        self.substitute_failed = training if substitute_failed is None else substitute_failed
        self.crop_size = int(self.video_processor.crop_size["height"])
        self._bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.folder)

    def load(self, index: int) -> torch.Tensor:
        """`(T, 3, S, S)` pixel values of video `index` (raises on unreadable videos)."""
        path = str(self.folder.items[index].path)
        if not self.training:
            return self.video_processor(path, num_frames=self.num_frames)["pixel_values"][0]
        pixels = self.video_processor(
            path, num_frames=self.num_frames, frame_sampling="random", do_center_crop=not self.augment
        )["pixel_values"][0]
        if not self.augment:
            return pixels
        return random_resized_crop(pixels, self.crop_size, scale=self.crop_scale, hflip_prob=self.hflip_prob)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.folder.items[index]
        failed = []
        candidates = [index]
        if self.substitute_failed:
            same_class = [i for i, other in enumerate(self.folder.items) if other.label == item.label and i != index]
            candidates += [i for i in same_class if i not in self._bad]
        for candidate in candidates:
            if candidate in self._bad and candidate != index:
                continue
            try:
                return {"pixel_values": self.load(candidate), "label": item.label, "failed": failed}
            except DECODE_ERRORS as err:
                self._bad.add(candidate)
                failed.append(f"{self.folder.items[candidate].path}: {err}")
            if not self.substitute_failed:
                break
        return {"pixel_values": None, "label": item.label, "failed": failed}


def collate_videos(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack readable items: `pixel_values` (B, T, 3, S, S) or None, `labels` (B,), `failed` (all failures)."""
    good = [item for item in items if item["pixel_values"] is not None]
    failed = [message for item in items for message in item["failed"]]
    if not good:
        return {"pixel_values": None, "labels": torch.zeros(0, dtype=torch.long), "failed": failed}
    return {
        "pixel_values": torch.stack([item["pixel_values"] for item in good]),
        "labels": torch.tensor([item["label"] for item in good], dtype=torch.long),
        "failed": failed,
    }


# ----------------------------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class EvaluationResult:
    """Accuracy on a labelled video set.

    Attributes:
        top1 / top5: fraction of readable videos whose class is the first / among the first `top_k` predictions.
        top_k: the k of `top5` (`min(5, num_classes)`).
        num_videos: readable videos evaluated.
        per_class: class text -> `{"correct", "total", "accuracy"}` (accuracy None without videos).
        failed: `"path: reason"` of videos that could not be decoded (skipped).
    """

    top1: float
    top5: float
    top_k: int
    num_videos: int
    per_class: dict[str, dict[str, Any]]
    failed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["num_failed"] = len(self.failed)
        return data

    def format(self) -> str:
        """A human-readable report: overall accuracy, then one line per class."""
        width = max([len(name) for name in self.per_class] + [5])
        lines = [
            f"videos: {self.num_videos} (unreadable, skipped: {len(self.failed)})",
            f"top-1: {self.top1:.4f}",
            f"top-{self.top_k}: {self.top5:.4f}",
            "",
            f"{'class':<{width}}  correct  total  accuracy",
        ]
        for name, stats in self.per_class.items():
            accuracy = "-" if stats["accuracy"] is None else f"{stats['accuracy']:.4f}"
            lines.append(f"{name:<{width}}  {stats['correct']:>7}  {stats['total']:>5}  {accuracy:>8}")
        for message in self.failed:
            lines.append(f"skipped: {message}")
        return "\n".join(lines)


def tokenize_classes(tokenizer: Any, class_names: Sequence[str], template: str = "{}", max_length: int = 77):
    """Tokenise `template.format(name)` for every class, cleaned as the original does (`clean_text`), padded to the
    longest and truncated to `max_length`."""
    if "{}" not in template:
        raise ValueError(f"The prompt template must contain '{{}}' for the class name, got {template!r}.")
    texts = [clean_text(template.format(name)) for name in class_names]
    max_length = min(max_length, getattr(tokenizer, "model_max_length", max_length) or max_length)
    return tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")


@torch.no_grad()
def class_text_embeds(model: nn.Module, text_inputs: dict[str, torch.Tensor], device: torch.device) -> torch.Tensor:
    """`get_text_features(...).pooler_output` (K, D) of the class prompts (CoOp context included when loaded)."""
    inputs = {k: v.to(device) for k, v in text_inputs.items() if k in ("input_ids", "attention_mask")}
    return model.get_text_features(**inputs).pooler_output


@torch.no_grad()
def evaluate_videos(
    model: nn.Module,
    dataset: VideoClassificationDataset,
    text_inputs: dict[str, torch.Tensor],
    *,
    batch_size: int = 8,
    num_workers: int = 0,
    accelerator: Any = None,
    show_progress: bool = False,
) -> EvaluationResult:
    """Classify every video of `dataset` among its folder's classes (the texts of `text_inputs`, in class order).

    Unreadable videos are skipped and listed in `failed`. Works on one device or, through `accelerator`, on
    several (predictions are gathered).
    """
    from tqdm.auto import tqdm

    class_names = dataset.folder.class_names
    if accelerator is None:
        accelerator = make_accelerator("no")
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate_videos
    )
    loader = accelerator.prepare_data_loader(loader)
    unwrapped = accelerator.unwrap_model(model)
    was_training = unwrapped.training
    unwrapped.eval()
    with accelerator.autocast():
        text_embeds = class_text_embeds(unwrapped, text_inputs, accelerator.device)
    if text_embeds.shape[0] != len(class_names):
        raise ValueError(f"{text_embeds.shape[0]} class texts for {len(class_names)} classes.")
    top_k = min(5, len(class_names))
    correct1, correct_k, labels_all, failed = [], [], [], []
    for batch in tqdm(loader, desc="evaluating", disable=not (show_progress and accelerator.is_local_main_process)):
        failed.extend(batch["failed"])
        if batch["pixel_values"] is None:
            continue
        with accelerator.autocast():
            logits = unwrapped(pixel_values=batch["pixel_values"], text_embeds=text_embeds).logits_per_video
        labels = batch["labels"].to(logits.device)
        ranked = logits.float().topk(top_k, dim=-1).indices
        correct1.append(ranked[:, 0] == labels)
        correct_k.append((ranked == labels[:, None]).any(dim=-1))
        labels_all.append(labels)
    unwrapped.train(was_training)
    device = accelerator.device
    hits1 = torch.cat(correct1) if correct1 else torch.zeros(0, dtype=torch.bool, device=device)
    hits_k = torch.cat(correct_k) if correct_k else torch.zeros(0, dtype=torch.bool, device=device)
    labels = torch.cat(labels_all) if labels_all else torch.zeros(0, dtype=torch.long, device=device)
    if accelerator.num_processes > 1:
        from accelerate.utils import gather_object

        hits1, hits_k, labels = accelerator.gather_for_metrics((hits1, hits_k, labels))
        failed = gather_object(failed)
    return _accuracy(hits1.cpu(), hits_k.cpu(), labels.cpu(), class_names, top_k, sorted(set(failed)))


def _accuracy(hits1, hits_k, labels, class_names, top_k, failed) -> EvaluationResult:
    total = int(labels.numel())
    per_class = {}
    for index, name in enumerate(class_names):
        mask = labels == index
        count = int(mask.sum())
        right = int(hits1[mask].sum())
        per_class[name] = {"correct": right, "total": count, "accuracy": right / count if count else None}
    return EvaluationResult(
        top1=float(hits1.float().mean()) if total else 0.0,
        top5=float(hits_k.float().mean()) if total else 0.0,
        top_k=top_k,
        num_videos=total,
        per_class=per_class,
        failed=failed,
    )


# ----------------------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------------------


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
    template: str = field(default="{}", metadata={"help": "Prompt template; the original X-CLIP uses the class name."})
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
        if "{}" not in self.template:
            raise ValueError(f"template must contain '{{}}' for the class name, got {self.template!r}.")
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
                logits = peft_model(pixel_values=batch["pixel_values"], **text_kwargs).logits_per_video
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


def resolve_mixed_precision(mixed_precision: str) -> str:
    """`"auto"` -> bf16 on a GPU that supports it, fp16 on other GPUs, `"no"` without a GPU."""
    if mixed_precision != "auto":
        return mixed_precision
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"


def make_accelerator(mixed_precision: str = "auto", gradient_accumulation_steps: int = 1):
    """An `accelerate.Accelerator`. In a single process whose accelerate state was set up with another precision
    (a notebook, a test session) that state is reset; under `accelerate launch` the launcher's setting must match."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState

    mixed_precision = resolve_mixed_precision(mixed_precision)
    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision") != mixed_precision and PartialState().num_processes == 1:
        AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(mixed_precision=mixed_precision, gradient_accumulation_steps=gradient_accumulation_steps)


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
    text_inputs = tokenize_classes(tokenizer, class_names, args.template, max_positions)
    eval_kwargs = {"batch_size": args.batch_size, "num_workers": args.num_workers, "accelerator": accelerator}
    eval_dataset = None
    if eval_folder is not None and len(eval_folder):
        if eval_folder.class_names != class_names:
            raise ValueError("The evaluation folder must have the training classes, in the same order.")
        eval_dataset = VideoClassificationDataset(eval_folder, processor, num_frames=args.num_frames)

    model.to(accelerator.device)
    eval_before = evaluate_videos(model, eval_dataset, text_inputs, **eval_kwargs) if (
        eval_dataset is not None and evaluate_before
    ) else None

    if args.gradient_checkpointing:
        enable_gradient_checkpointing(model, use_reentrant=False)
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
        text_kwargs = {"text_embeds": class_text_embeds(unwrapped, text_inputs, accelerator.device).detach()}
    step_losses, epoch_losses, failed = _run_epochs(
        peft_model, loader, optimizer, scheduler, accelerator, args, text_kwargs, total_steps
    )
    skipped.extend(failed)

    skipped = sorted(set(skipped))
    if accelerator.num_processes > 1:
        from accelerate.utils import gather_object

        skipped = sorted(set(gather_object(skipped)))
    eval_after = evaluate_videos(peft_model, eval_dataset, text_inputs, **eval_kwargs) if eval_dataset else None
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


# ----------------------------------------------------------------------------------------------------------------
# Saving: adapter, metadata, model card
# ----------------------------------------------------------------------------------------------------------------


def save_adapter(
    result: FewShotResult,
    output_dir: str | Path,
    *,
    base_model: str | None = None,
    data: dict[str, Any] | None = None,
) -> Path:
    """Write the peft adapter, `xclip_adapter.json` and a model card (README.md) to `output_dir`.

    Args:
        result: from [`train_few_shot`].
        output_dir: created if needed.
        base_model: name or path of the base model (for the card and peft's config).
        data: description of the data for the card (`train_dir`, `eval_dir`, `shots`, `seed`, ...).
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    result.model.save_pretrained(str(output_dir))
    metadata = {
        "format": "hf_xclip-adapter",
        "class_names": result.class_names,
        "methods": result.adapter_config.methods,
        "adapter_config": result.adapter_config.to_dict(),
        "template": result.args.template,
        "num_frames": result.args.num_frames,
        "base_model": base_model,
        "data": data or {},
        "training": _jsonable(asdict(result.args)),
        "eval_before": result.eval_before.to_dict() if result.eval_before else None,
        "eval_after": result.eval_after.to_dict() if result.eval_after else None,
        "skipped_videos": result.skipped_videos,
        "num_train_videos": result.num_train_videos,
        "trainable_parameters": result.trainable_parameters,
        "learning_rates": result.learning_rates,
    }
    (output_dir / ADAPTER_METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    model_card(result, base_model=base_model, data=data).save(str(output_dir / "README.md"))
    return output_dir


def load_adapter_metadata(adapter_dir: str | Path) -> dict[str, Any] | None:
    """The `xclip_adapter.json` of an adapter folder written by [`save_adapter`], or None."""
    path = Path(adapter_dir) / ADAPTER_METADATA_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _accuracy_row(name: str, result: EvaluationResult | None) -> str:
    if result is None:
        return f"| {name} | - | - | - |"
    skipped = f" ({len(result.failed)} unreadable skipped)" if result.failed else ""
    return f"| {name} | {result.top1:.4f} | {result.top5:.4f} (top-{result.top_k}) | {result.num_videos}{skipped} |"


def model_card(result: FewShotResult, *, base_model: str | None = None, data: dict[str, Any] | None = None):
    """A `huggingface_hub.ModelCard` describing data, shots, method, settings and measured accuracy."""
    from huggingface_hub import ModelCard, ModelCardData

    data = data or {}
    methods = result.adapter_config.methods
    hub_base = base_model if base_model and not Path(base_model).exists() else None
    card_data = ModelCardData(
        library_name="peft",
        base_model=hub_base,
        tags=["hf_xclip", "x-clip", "video-classification", "few-shot", "peft", *methods],
        pipeline_tag="video-classification",
    )
    shots, seed = data.get("shots"), data.get("seed")
    args = result.args
    held_out = data.get("eval_source") or ("none" if result.eval_after is None else "held-out videos")
    lines = [
        f"# X-CLIP few-shot adapter ({' + '.join(methods)})",
        "",
        f"A PEFT adapter for the X-CLIP model `{base_model or 'unknown'}`, trained with `hf-xclip finetune` (hf_xclip).",
        "",
        "## Data",
        "",
        f"- Training videos: `{data.get('train_dir', '?')}`, {len(result.class_names)} classes "
        f"(folder name = class text), {f'{shots} shots per class' if shots else 'all videos'}"
        f"{f' (seed {seed})' if shots else ''}, "
        f"{result.num_train_videos} readable videos used.",
        f"- Unreadable training videos skipped: {len(result.skipped_videos)}.",
        f"- Evaluation: {held_out}.",
        f"- Classes: {', '.join(result.class_names[:50])}{' ...' if len(result.class_names) > 50 else ''}",
        "",
        "## Method",
        "",
        _method_text(result.adapter_config),
        "",
        "## Results",
        "",
        "| model | top-1 | top-5 | videos |",
        "| --- | --- | --- | --- |",
        _accuracy_row("base model (zero-shot)", result.eval_before),
        _accuracy_row("with this adapter", result.eval_after),
        "",
        "## Training",
        "",
        f"- epochs {args.epochs}, batch size {args.batch_size} x {args.gradient_accumulation_steps} accumulation, "
        f"learning rates {result.learning_rates}, AdamW betas {args.adam_betas}, weight decay {args.weight_decay}, "
        f"cosine schedule with {args.warmup_ratio:.0%} warm-up, label smoothing {args.label_smoothing}",
        f"- frames per clip: {args.num_frames}, TSN random sampling, "
        f"{'random resized crop ' + str(args.crop_scale) + f' + flip p={args.hflip_prob}' if args.augment else 'centre crop'}",
        f"- mixed precision: {result.mixed_precision}, prompt template: `{args.template}`, seed {args.seed}",
        f"- trainable parameters: {result.trainable_parameters:,}; training took {result.seconds:.0f} s",
        f"- final training loss: {result.step_losses[-1]:.4f}" if result.step_losses else "- no training step ran",
        "",
        "## Usage",
        "",
        "```python",
        "from peft import PeftModel",
        "from hf_xclip import XClipModel, XClipProcessor",
        "",
        f'base = XClipModel.from_pretrained("{base_model or "BASE_MODEL"}")',
        'model = PeftModel.from_pretrained(base, "PATH_TO_THIS_ADAPTER").eval()',
        f'processor = XClipProcessor.from_pretrained("{base_model or "BASE_MODEL"}")',
        "```",
        "",
        "or `hf-xclip evaluate --model BASE_MODEL --adapter PATH_TO_THIS_ADAPTER --data-dir VIDEOS`. "
        "The class names, in training order, are in `xclip_adapter.json`"
        + (" (required order: the CoOp context is class-specific)." if _class_specific(result.adapter_config) else "."),
    ]
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n" + "\n".join(lines) + "\n")


def _class_specific(config: XClipAdapterConfig) -> bool:
    return config.coop is not None and config.coop.class_specific


def _method_text(config: XClipAdapterConfig) -> str:
    parts = []
    if config.lora_type is not None:
        parts.append(f"- {config.lora_type} (r={config.r}, alpha={config.lora_alpha}) on {config.lora_parts()}")
    if config.coop is not None:
        coop = config.coop
        kind = "class-specific" if coop.class_specific else "unified"
        init = f'initialised from "{coop.init_text}"' if coop.init_text else "randomly initialised"
        parts.append(
            f"- CoOp: {coop.num_context} {kind} context vectors after the start token, {init}"
        )
    if config.train_prompt_generator:
        parts.append("- X-CLIP's video-specific prompt generator trained in full")
    if config.train_mit:
        parts.append("- multi-frame integration transformer (MIT) trained in full")
    if config.train_logit_scale:
        parts.append("- logit scale trained")
    parts.append("- everything else frozen (text encoder frozen unless listed above)")
    return "\n".join(parts)


__all__ = [
    "EvaluationResult",
    "FewShotResult",
    "FewShotTrainingArguments",
    "VideoClassificationDataset",
    "VideoFolder",
    "VideoItem",
    "collate_videos",
    "drop_unreadable",
    "evaluate_videos",
    "load_adapter_metadata",
    "make_accelerator",
    "model_card",
    "random_resized_crop",
    "save_adapter",
    "scan_video_folder",
    "select_shots",
    "split_heldout",
    "tokenize_classes",
    "train_few_shot",
]
