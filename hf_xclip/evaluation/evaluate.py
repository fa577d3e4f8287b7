"""How well an X-CLIP model (or a peft model around one) labels videos, on one device or several.

* Single-label: top-1 / top-5 and per-class accuracy ([`evaluate_videos`]).
* Multi-label: average precision per label and its mean, mAP ([`average_precision`], [`multi_label_metrics`]),
  split into *base* (labels trained on) and *novel* (never trained on) labels for open-vocabulary evaluation, and
  precision / recall / F1 at a probability threshold ([`evaluate_multi_label`]).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from ..data.clip_dataset import VideoClassificationDataset, collate_videos
from ..finetuning.accelerator import make_accelerator
from ..labels import DEFAULT_HYPOTHESIS_TEMPLATE, LabelEncoder
from ..multilabel import DEFAULT_BACKGROUND_PROMPTS, reference_texts, resolve_method, video_label_scores


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
    templates: str | Sequence[str] | None = None,
    descriptions: Any = None,
    label_bank: Any = None,
    text_embeds: torch.Tensor | None = None,
    batch_size: int = 8,
    num_workers: int = 0,
    accelerator: Any = None,
    show_progress: bool = False,
) -> EvaluationResult:
    """Classify every video of `dataset` among its folder's classes.

    Class texts are the class names in `templates` (ensembled with their `descriptions`, a mapping class ->
    sentences), encoded by the label core ([`LabelEncoder`]) with `model` as it is (its adapters, learned prompts and
    label prompter applied), or given as `text_embeds` (K, D) in class order (e.g. from a label bank,
    `LabelEncoder.embeddings_with_bank`), or taken from `label_bank` (a `LabelBank`; `templates` default to its own,
    `descriptions` must agree with it). Unreadable videos are skipped and listed in `failed`. Works on one device or,
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
            text_embeds = _label_embeddings(unwrapped, tokenizer, class_names, templates, descriptions, label_bank)
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


# ----------------------------------------------------------------------------------------------------------------
# Multi-label


def average_precision(scores: torch.Tensor, targets: torch.Tensor) -> float | None:
    """Average precision of one label: scores (N,) of N videos, targets (N,) 1 where the video shows the label.

    The area under the precision-recall curve as a sum over distinct score thresholds, ``sum_n (R_n - R_{n-1}) P_n``
    (scikit-learn's `average_precision_score`; tied scores form one threshold). None when no video shows the
    label (undefined).
    """
    scores, targets = scores.detach().reshape(-1).double().cpu(), targets.detach().reshape(-1).double().cpu()
    positives = float(targets.sum())
    if positives == 0:
        return None
    order = torch.argsort(scores, descending=True, stable=True)
    scores, targets = scores[order], targets[order]
    true_pos, false_pos = targets.cumsum(0), (1 - targets).cumsum(0)
    last = torch.ones_like(scores, dtype=torch.bool)
    last[:-1] = scores[1:] != scores[:-1]  # the last position of each distinct score
    true_pos, false_pos = true_pos[last], false_pos[last]
    precision = true_pos / (true_pos + false_pos)
    recall = true_pos / positives
    steps = torch.diff(recall, prepend=torch.zeros(1, dtype=recall.dtype))
    return float((steps * precision).sum())


def _mean(values: Sequence[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return sum(defined) / len(defined) if defined else None


def multi_label_metrics(
    scores: torch.Tensor,
    targets: torch.Tensor,
    labels: Sequence[str],
    *,
    novel_labels: Collection[str] = (),
    threshold: float = 0.5,
) -> dict[str, Any]:
    """Multi-label metrics of N videos and K labels.

    Args:
        scores: (N, K) pre-sigmoid scores z (probabilities are ``sigmoid(z)``; ranking on z avoids the ties that
            saturated float32 probabilities would make).
        targets: (N, K), 1 where the video shows the label.
        labels: the K label texts.
        novel_labels: labels never trained on; with them ``base_mAP`` and ``novel_mAP`` are reported.
        threshold: probability at or above which a label counts as predicted (for precision / recall / F1).

    Returns:
        ``mAP`` (mean over labels with at least one positive video), ``per_class_ap`` (label -> AP, None without
        positives), ``micro_AP`` (AP of all (video, label) pairs pooled: how well one threshold can separate
        present from absent labels), ``precision`` / ``recall`` / ``f1`` (micro, at `threshold`), ``macro_f1``,
        ``num_videos``, ``num_labels``, ``threshold``, and ``base_mAP`` / ``novel_mAP`` with `novel_labels`.
    """
    if scores.shape != targets.shape or scores.ndim != 2 or scores.shape[1] != len(labels):
        raise ValueError(
            f"scores {tuple(scores.shape)} and targets {tuple(targets.shape)} must both be (videos, {len(labels)})."
        )
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}.")
    scores, targets = scores.detach().double().cpu(), targets.detach().cpu() > 0.5
    per_class = {label: average_precision(scores[:, k], targets[:, k]) for k, label in enumerate(labels)}
    # p >= threshold  <=>  z >= logit(threshold)
    cut = math.inf if threshold >= 1.0 else (-math.inf if threshold <= 0.0 else math.log(threshold / (1 - threshold)))
    predicted = scores >= cut
    hits = predicted & targets
    precision = float(hits.sum() / predicted.sum()) if predicted.any() else 0.0
    recall = float(hits.sum() / targets.sum()) if targets.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    per_label_f1 = []
    for k in range(len(labels)):
        denominator = int(predicted[:, k].sum() + targets[:, k].sum())
        if targets[:, k].any():
            per_label_f1.append(2 * int(hits[:, k].sum()) / denominator)
    result: dict[str, Any] = {
        "mAP": _mean(list(per_class.values())),
        "per_class_ap": per_class,
        "micro_AP": average_precision(scores, targets) if scores.numel() else None,
        "threshold": threshold,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "macro_f1": _mean(per_label_f1),
        "num_videos": int(scores.shape[0]),
        "num_labels": len(labels),
    }
    if novel_labels:
        novel = set(novel_labels)
        result["base_mAP"] = _mean([ap for label, ap in per_class.items() if label not in novel])
        result["novel_mAP"] = _mean([ap for label, ap in per_class.items() if label in novel])
    return result


@dataclass
class MultiLabelResult:
    """Multi-label metrics on annotated videos ([`evaluate_multi_label`]); `metrics` as [`multi_label_metrics`]
    returns them, `scores` the (N, K) pre-sigmoid scores (``sigmoid`` gives probabilities), `failed` the videos
    that could not be decoded (skipped)."""

    metrics: dict[str, Any]
    labels: list[str]
    novel_labels: list[str]
    method: str
    scores: torch.Tensor
    targets: torch.Tensor
    failed: list[str] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        metrics = self.__dict__.get("metrics", {})
        if name in metrics:
            return metrics[name]
        raise AttributeError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: the metrics, the method, counts and the skipped videos."""
        return {**self.metrics, "method": self.method, "failed": self.failed, "num_failed": len(self.failed)}

    def format(self) -> str:
        """A human-readable report: mAP (base / novel), F1 at the threshold, then AP per label."""
        m = self.metrics
        number = lambda value: "-" if value is None else f"{value:.4f}"  # noqa: E731
        lines = [
            f"videos: {m['num_videos']} (unreadable, skipped: {len(self.failed)}), labels: {m['num_labels']}",
            f"scores: {self.method}",
            f"mAP: {number(m['mAP'])}",
        ]
        if "novel_mAP" in m:
            lines.append(f"base mAP: {number(m['base_mAP'])}   novel mAP: {number(m['novel_mAP'])}")
        lines += [
            f"micro AP: {number(m['micro_AP'])}",
            f"at threshold {m['threshold']:g}: precision {m['precision']:.4f}  recall {m['recall']:.4f}  "
            f"F1 {m['f1']:.4f}  macro F1 {number(m['macro_f1'])}",
            "",
        ]
        width = max([len(label) for label in self.labels] + [5])
        novel = set(self.novel_labels)
        positives = self.targets.sum(dim=0).tolist()
        lines.append(f"{'label':<{width}}  videos  AP      {'split' if novel else ''}".rstrip())
        for k, label in enumerate(self.labels):
            split = ("novel" if label in novel else "base") if novel else ""
            lines.append(
                f"{label:<{width}}  {int(positives[k]):>6}  {number(m['per_class_ap'][label]):<6}  {split}".rstrip()
            )
        lines.extend(f"skipped: {message}" for message in self.failed)
        return "\n".join(lines)


@torch.no_grad()
def multi_label_scores(
    model: nn.Module,
    dataset: VideoClassificationDataset,
    tokenizer: Any = None,
    *,
    labels: Sequence[str] | None = None,
    templates: str | Sequence[str] | None = None,
    descriptions: Any = None,
    label_bank: Any = None,
    method: str = "auto",
    negative_template: str = "not {}",
    background_prompts: Sequence[str] = DEFAULT_BACKGROUND_PROMPTS,
    batch_size: int = 8,
    num_workers: int = 0,
    accelerator: Any = None,
    show_progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, list[str], str]:
    """Pre-sigmoid scores (N, K) of every readable video of `dataset` for `labels` (default: its class names),
    their targets (N, K) (zero columns for labels outside the dataset's classes), the unreadable videos, and the
    method used (`"auto"` resolved, see `hf_xclip.multilabel`). Labels are ensembled with their `descriptions`, or
    taken from `label_bank` where it holds them (`templates` default to the bank's, else ``"{}"``)."""
    from tqdm.auto import tqdm

    folder = dataset.folder
    labels = list(labels) if labels is not None else list(folder.class_names)
    if accelerator is None:
        accelerator = make_accelerator("no")
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate_videos
    )
    loader = accelerator.prepare_data_loader(loader)
    unwrapped = accelerator.unwrap_model(model)
    method = resolve_method(method, unwrapped)
    was_training = unwrapped.training
    unwrapped.eval()
    encoder = LabelEncoder(unwrapped, tokenizer)
    with accelerator.autocast():
        label_embeds = _label_embeddings(unwrapped, tokenizer, labels, templates, descriptions, label_bank, encoder)
        if templates is None:
            templates = label_bank.templates if label_bank is not None else DEFAULT_HYPOTHESIS_TEMPLATE
        references = reference_texts(method, labels, negative_template, background_prompts)
        reference_embeds = None
        if references is not None:
            reference_templates = templates if method == "negative" else DEFAULT_HYPOTHESIS_TEMPLATE
            reference_embeds = encoder.encode_labels(references, reference_templates)
    # class index of the dataset -> column among the labels
    column = {k: labels.index(name) for k, name in enumerate(folder.class_names) if name in labels}
    all_scores, all_targets, failed = [], [], []
    for batch in tqdm(loader, desc="evaluating", disable=not (show_progress and accelerator.is_local_main_process)):
        failed.extend(batch["failed"])
        if batch["pixel_values"] is None:
            continue
        with accelerator.autocast():
            video = unwrapped.get_video_features(batch["pixel_values"], output_prompt_features=True, return_dict=True)
            scores = video_label_scores(
                unwrapped, video.pooler_output, video.prompt_features, label_embeds, method, reference_embeds
            )
        all_scores.append(scores.float())
        all_targets.append(_targets_for(batch, column, len(folder.class_names), len(labels), scores.device))
    unwrapped.train(was_training)
    device = accelerator.device
    scores = torch.cat(all_scores) if all_scores else torch.zeros(0, len(labels), device=device)
    targets = torch.cat(all_targets) if all_targets else torch.zeros(0, len(labels), device=device)
    if accelerator.num_processes > 1:
        from accelerate.utils import gather_object

        scores, targets = accelerator.gather_for_metrics((scores, targets))
        failed = gather_object(failed)
    return scores.cpu(), targets.cpu(), sorted(set(failed)), method


def _label_embeddings(model, tokenizer, labels, templates, descriptions, label_bank, encoder=None) -> torch.Tensor:
    """Label embeddings by the label core: from the bank where it holds them, else encoded (with descriptions)."""
    if tokenizer is None and encoder is None:
        raise ValueError("evaluation needs the `tokenizer` to encode the labels, or `text_embeds` / a `label_bank`.")
    encoder = encoder or LabelEncoder(model, tokenizer)
    if label_bank is not None:
        return encoder.embeddings_with_bank(label_bank, labels, templates, descriptions)
    return encoder.encode_labels(
        labels, templates if templates is not None else DEFAULT_HYPOTHESIS_TEMPLATE, descriptions
    )


def _targets_for(batch: dict[str, Any], column: dict[int, int], num_classes: int, num_labels: int, device):
    """(B, num_labels) targets of a batch: its dataset's classes moved to their columns among the labels."""
    if "targets" in batch:
        source = batch["targets"]
    else:
        source = torch.nn.functional.one_hot(batch["labels"], num_classes=num_classes).float()
    out = torch.zeros(source.shape[0], num_labels, device=device)
    for k, target_column in column.items():
        out[:, target_column] = source[:, k].to(device)
    return out


def evaluate_multi_label(
    model: nn.Module,
    dataset: VideoClassificationDataset,
    tokenizer: Any = None,
    *,
    labels: Sequence[str] | None = None,
    novel_labels: Collection[str] = (),
    threshold: float = 0.5,
    **kwargs: Any,
) -> MultiLabelResult:
    """mAP (base / novel), per-label AP and F1 at `threshold` of `model` on `dataset` (multi-label annotations, or
    single-label ones read as one label per video).

    Candidate labels are `labels` (default: the dataset's class names); labels of `novel_labels` that are not
    among them are added as candidates. Every label is scored on its own (``kwargs``: `method`, `templates`,
    `negative_template`, `background_prompts`, `batch_size`, `num_workers`, `accelerator`, `show_progress`; see
    [`multi_label_scores`]). Unreadable videos are skipped and listed.
    """
    labels = list(labels) if labels is not None else list(dataset.folder.class_names)
    labels += [label for label in novel_labels if label not in labels]
    scores, targets, failed, method = multi_label_scores(model, dataset, tokenizer, labels=labels, **kwargs)
    metrics = multi_label_metrics(scores, targets, labels, novel_labels=novel_labels, threshold=threshold)
    novel = [label for label in labels if label in set(novel_labels)]
    return MultiLabelResult(metrics, labels, novel, method, scores, targets, failed)


@dataclass
class Calibration:
    """A sigmoid head fitted by [`calibrate_sigmoid_head`]: ``sigmoid(scale * cosine + bias)``, with the metrics of
    the calibration clips scored by the training-free method (`before`) and by the fitted head (`after`)."""

    scale: float
    bias: float
    labels: list[str]
    num_videos: int
    before: dict[str, Any]
    after: dict[str, Any]
    before_method: str
    failed: list[str] = field(default_factory=list)
    decision_threshold: float | None = None
    label_thresholds: dict[str, float] = field(default_factory=dict)
    at_decision_threshold: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        keep = ("mAP", "micro_AP", "precision", "recall", "f1", "threshold")
        return {
            "scale": self.scale,
            "bias": self.bias,
            "num_videos": self.num_videos,
            "num_labels": len(self.labels),
            "before_method": self.before_method,
            "before": {key: self.before[key] for key in keep},
            "after": {key: self.after[key] for key in keep},
            "decision_threshold": self.decision_threshold,
            "label_thresholds": self.label_thresholds,
            "at_decision_threshold": self.at_decision_threshold,
            "failed": self.failed,
        }


def _micro_prf(predicted: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    predicted, targets = predicted.bool(), targets > 0.5
    hits = int((predicted & targets).sum())
    precision = hits / int(predicted.sum()) if predicted.any() else 0.0
    recall = hits / int(targets.sum()) if targets.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def calibrate_sigmoid_head(
    model: nn.Module,
    dataset: VideoClassificationDataset,
    tokenizer: Any = None,
    *,
    labels: Sequence[str] | None = None,
    threshold: float = 0.5,
    **kwargs: Any,
) -> Calibration:
    """Fit the sigmoid head of `hf_xclip.multilabel` (one scale and bias for all labels, Platt scaling) to the
    labelled clips of `dataset`; the model is not changed (write the head with `multilabel.set_sigmoid_head`).

    Every video is scored against every label of `labels` (default: the dataset's class names; a label the video
    does not hold is a negative). ``kwargs`` go to [`multi_label_scores`] (templates, batch size, ...).
    """
    from ..multilabel import TRAINING_FREE_METHOD, fit_decision_threshold, fit_sigmoid_head

    labels = list(labels) if labels is not None else list(dataset.folder.class_names)
    kwargs.pop("method", None)
    cosine, targets, failed, _ = multi_label_scores(model, dataset, tokenizer, labels=labels, method="cosine", **kwargs)
    before_scores, _, _, before_method = multi_label_scores(
        model, dataset, tokenizer, labels=labels, method=TRAINING_FREE_METHOD, **kwargs
    )
    scale, bias = fit_sigmoid_head(cosine, targets)
    before = multi_label_metrics(before_scores, targets, labels, threshold=threshold)
    after = multi_label_metrics(scale * cosine + bias, targets, labels, threshold=threshold)
    # the head is honest about a rare label (its probabilities stay low): the threshold that serves F1 is fitted too
    probs = torch.sigmoid((scale * cosine + bias).double())
    decision, per_label = fit_decision_threshold(probs, targets, labels)
    cuts = torch.tensor([per_label.get(label, decision) for label in labels], dtype=torch.float64)
    at_decision = _micro_prf(probs >= cuts, targets)
    return Calibration(
        scale,
        bias,
        labels,
        int(cosine.shape[0]),
        before,
        after,
        before_method,
        failed,
        decision,
        per_label,
        at_decision,
    )


__all__ = [
    "Calibration",
    "EvaluationResult",
    "MultiLabelResult",
    "average_precision",
    "calibrate_sigmoid_head",
    "evaluate_multi_label",
    "evaluate_videos",
    "multi_label_metrics",
    "multi_label_scores",
]
