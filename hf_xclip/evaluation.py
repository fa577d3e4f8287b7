"""Accuracy of an X-CLIP model (or a peft model around one) on labelled videos, on one device or several."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from .accelerator import make_accelerator
from .labels import DEFAULT_HYPOTHESIS_TEMPLATE, LabelEncoder
from .video_dataset import VideoClassificationDataset, collate_videos


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


@torch.no_grad()
def evaluate_videos(
    model: nn.Module,
    dataset: VideoClassificationDataset,
    tokenizer: Any = None,
    *,
    templates: str | Sequence[str] = DEFAULT_HYPOTHESIS_TEMPLATE,
    text_embeds: torch.Tensor | None = None,
    batch_size: int = 8,
    num_workers: int = 0,
    accelerator: Any = None,
    show_progress: bool = False,
) -> EvaluationResult:
    """Classify every video of `dataset` among its folder's classes.

    Class texts are the class names in `templates` (ensembled), encoded by the label core ([`LabelEncoder`]) with
    `model` as it is (its adapters and learned prompts applied), or given as `text_embeds` (K, D) in class order
    (e.g. rows of a label bank). Unreadable videos are skipped and listed in `failed`. Works on one device or,
    through `accelerator`, on several (predictions are gathered).
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
    if text_embeds is None:
        if tokenizer is None:
            raise ValueError("evaluate_videos needs the `tokenizer` to encode the class names, or `text_embeds`.")
        with accelerator.autocast():
            text_embeds = LabelEncoder(unwrapped, tokenizer).encode_labels(class_names, templates)
    text_embeds = text_embeds.to(accelerator.device)
    if text_embeds.shape[0] != len(class_names):
        raise ValueError(f"{text_embeds.shape[0]} class texts for {len(class_names)} classes.")
    top_k = min(5, len(class_names))
    correct1, correct_k, labels_all, failed = [], [], [], []
    for batch in tqdm(loader, desc="evaluating", disable=not (show_progress and accelerator.is_local_main_process)):
        failed.extend(batch["failed"])
        if batch["pixel_values"] is None:
            continue
        with accelerator.autocast():
            outputs = unwrapped(pixel_values=batch["pixel_values"], text_embeds=text_embeds, return_dict=True)
            logits = outputs.logits_per_video
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


__all__ = ["EvaluationResult", "evaluate_videos"]
