"""Independent per-label probabilities for multi-label video classification (what a video shows, several at once).

X-CLIP scores a video against labels by a softmax over the labels: one label wins. For "which of these labels does
the video show", every label needs its own probability p = sigmoid(z) that does not depend on the other labels
asked (the open-vocabulary multi-label recipe of Gupta et al., ECCV 2024: CLIP text embeddings, a temporal vision
encoder, one sigmoid per label with a SigLIP-style scale and bias). The methods, each giving the pre-sigmoid score z
of every (video, label) pair:

* ``"sigmoid"``: the model's sigmoid head, ``z = s * cosine + b`` with ``s, b`` from the config
  (``multi_label_scale`` / ``multi_label_bias``), learned by multi-label fine-tuning or fitted on a few labelled
  clips by `hf-xclip calibrate` ([`fit_sigmoid_head`]).
* ``"background"``: training-free and data-free: each label against a bank of generic prompts
  ([`DEFAULT_BACKGROUND_PROMPTS`]), ``z = l_label - log(mean_j exp(l_j))`` with the model's own logits ``l``.
* ``"negative"``: each label against its negation, ``z = l_label - l_"not label"`` (a two-way softmax; CLIP-style
  text encoders read negation weakly).

``"auto"`` is ``"sigmoid"`` when the model has a head, else [`TRAINING_FREE_METHOD`]. Scores are computed per label
from the video and that label only, so adding or removing other candidate labels never changes a label's score.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .utils import unwrap_model

MULTI_LABEL_METHODS: tuple[str, ...] = ("auto", "sigmoid", "background", "negative")
# What `scores_from_logits` computes: the methods, and the plain cosine similarity (what a head is fitted on).
SCORE_KINDS: tuple[str, ...] = (*MULTI_LABEL_METHODS, "cosine")
# The method "auto" falls back to for a model without a sigmoid head (measured in docs/multilabel.md).
TRAINING_FREE_METHOD = "background"
# Generic texts that describe any video a little; a label must beat them to score above 0.5.
DEFAULT_BACKGROUND_PROMPTS: tuple[str, ...] = ("a video", "a photo", "a clip", "something", "a scene", "background")


def has_sigmoid_head(model: nn.Module) -> bool:
    """Whether the model (or the model a peft model wraps) has a sigmoid head: one in its config, or logits trained
    as independent per-label sigmoids (SigLIP-style models: ``logit_scale * cosine + logit_bias``)."""
    return getattr(model.config, "multi_label_scale", None) is not None or native_sigmoid(model)


def native_sigmoid(model: nn.Module) -> bool:
    """Whether the model's own logits are per-label sigmoid logits (SigLIP, SigLIP 2)."""
    base = unwrap_model(model)
    capabilities = getattr(base, "capabilities", None)
    return capabilities is not None and capabilities.scores == "sigmoid"


def resolve_method(method: str, model: nn.Module) -> str:
    """The method `"auto"` stands for with this model; other names are checked and returned.

    Raises:
        ValueError: an unknown method, or ``"sigmoid"`` for a model without a head.
    """
    if method not in SCORE_KINDS:
        raise ValueError(f"unknown multi-label method {method!r}; choose from {MULTI_LABEL_METHODS}.")
    if method == "auto":
        return "sigmoid" if has_sigmoid_head(model) else TRAINING_FREE_METHOD
    if method == "sigmoid" and not has_sigmoid_head(model):
        raise ValueError(
            "multi_label_method='sigmoid' needs a model with a sigmoid head (config.multi_label_scale); this model "
            "has none: fit one on a few labelled clips with `hf-xclip calibrate`, or use 'background' / 'negative'."
        )
    return method


def reference_texts(
    method: str,
    labels: Sequence[str],
    negative_template: str = "not {}",
    background_prompts: Sequence[str] = DEFAULT_BACKGROUND_PROMPTS,
) -> list[str] | None:
    """The texts a method scores labels against: the negated labels, the background prompts, or None."""
    if method == "negative":
        return [negative_template.format(label) for label in labels]
    if method == "background":
        return list(background_prompts)
    return None


def scores_from_logits(
    model: nn.Module, logits: torch.Tensor, method: str, reference_logits: torch.Tensor | None = None
) -> torch.Tensor:
    """Pre-sigmoid scores z (B, K) of the K labels from X-CLIP's `logits` (B, K) (``logit_scale * cosine``).

    Args:
        model: the `XClipModel` (or a peft model around it) that made the logits; its head serves ``"sigmoid"``.
        method: ``"sigmoid"``, ``"background"`` or ``"negative"`` (see [`resolve_method`]), or ``"cosine"`` for the
            plain cosine similarities.
        reference_logits: logits of the [`reference_texts`]: (B, K) negated labels, or (B, M) background prompts.
    """
    logits = logits.float()
    if method == "sigmoid":
        return model.multi_label_logits(logits)
    if method == "cosine":
        return cosines(model, logits)
    if reference_logits is None:
        raise ValueError(f"the {method!r} method needs the logits of its reference texts.")
    reference_logits = reference_logits.float()
    if method == "negative":
        return logits - reference_logits
    if method == "background":
        background = torch.logsumexp(reference_logits, dim=-1, keepdim=True) - math.log(reference_logits.shape[-1])
        return logits - background
    raise ValueError(f"unknown multi-label method {method!r}; choose from {MULTI_LABEL_METHODS[1:]}.")


def video_label_scores(
    model: nn.Module,
    video_embeds: torch.Tensor,
    prompt_features: torch.Tensor | None,
    label_embeds: torch.Tensor,
    method: str,
    reference_embeds: torch.Tensor | None = None,
) -> torch.Tensor:
    """Pre-sigmoid scores z (B, K): videos (`get_video_features` outputs) against label embeddings (K, D) (from
    `hf_xclip.labels.LabelEncoder`), and the method's reference texts' embeddings when it has some."""
    texts = label_embeds if reference_embeds is None else torch.cat([label_embeds, reference_embeds.to(label_embeds)])
    logits, _ = model.get_logits(video_embeds, texts, prompt_features)
    num_labels = label_embeds.shape[0]
    reference = None if reference_embeds is None else logits[:, num_labels:]
    return scores_from_logits(model, logits[:, :num_labels], method, reference)


def cosines(model: nn.Module, logits: torch.Tensor) -> torch.Tensor:
    """X-CLIP's video-label cosine similarities from its logits (``logit_scale * cosine``)."""
    base = unwrap_model(model)
    if hasattr(base, "cosines"):  # the video-text interface: removes the scale (and a SigLIP-style bias)
        return base.cosines(logits)
    return logits.float() / base.logit_scale_module().float()


def fit_sigmoid_head(
    cosine: torch.Tensor,
    targets: torch.Tensor,
    *,
    min_scale: float | None = None,
    max_iter: int = 100,
    ridge: float = 1e-6,
) -> tuple[float, float]:
    """Fit the sigmoid head ``sigmoid(s * cosine + b)`` to labelled pairs (Platt scaling, shared by every label).

    Newton's method on the mean binary cross-entropy, in float64, with Platt's smoothed targets (positives
    ``(P + 1) / (P + 2)``, negatives ``1 / (N + 2)``) and a tiny ridge on ``s`` so that perfectly separated pairs
    still give finite values. One scale and one bias for all labels: it transfers to labels never seen while
    fitting (open vocabulary) and leaves the ranking of each label's videos, hence mAP, unchanged.

    Args:
        cosine: (N, K) cosines of N videos with K labels (any shape; flattened).
        targets: same shape, 1 where the video shows the label.
        min_scale: when the fitted scale is below it, the scale is set to it and only the bias is fitted (training
            starts from such a head: a flat one, fitted to a model that cannot rank the labels yet, would pass almost
            no gradient).

    Returns:
        ``(scale, bias)``; ``scale`` is positive.

    Raises:
        ValueError: shapes differ, or the pairs are all positive or all negative; without `min_scale`, the fitted
            scale is not positive.
    """
    x = cosine.detach().reshape(-1).double().cpu()
    y = targets.detach().reshape(-1).double().cpu()
    if x.shape != y.shape:
        raise ValueError(f"cosine and targets differ in size: {tuple(cosine.shape)} vs {tuple(targets.shape)}.")
    positives = float(y.sum())
    negatives = float(y.numel() - positives)
    if positives == 0 or negatives == 0:
        raise ValueError("fitting a sigmoid head needs both present and absent (video, label) pairs.")
    y = torch.where(y > 0.5, (positives + 1) / (positives + 2), 1 / (negatives + 2))
    features = torch.stack([x, torch.ones_like(x)], dim=1)
    spread = float(x.std()) or 1.0
    params = torch.tensor([4.0 / spread, 0.0], dtype=torch.float64)
    params[1] = -params[0] * float(x.mean())
    penalty = torch.diag(torch.tensor([ridge, 0.0], dtype=torch.float64))

    def objective(theta: torch.Tensor) -> float:
        z = features @ theta
        bce = torch.nn.functional.binary_cross_entropy_with_logits(z, y)
        return float(bce + 0.5 * ridge * theta[0] ** 2)

    loss = objective(params)
    for _ in range(max_iter):
        p = torch.sigmoid(features @ params)
        gradient = features.T @ (p - y) / len(x) + penalty @ params
        hessian = (features * (p * (1 - p))[:, None]).T @ features / len(x) + penalty
        step = torch.linalg.solve(hessian + 1e-12 * torch.eye(2, dtype=torch.float64), gradient)
        for _ in range(40):  # damped Newton: halve the step until the loss does not grow
            candidate = params - step
            candidate_loss = objective(candidate)
            if candidate_loss <= loss + 1e-15:
                break
            step = step / 2
        params, loss = candidate, candidate_loss
        if float(step.abs().max()) < 1e-9 * (1 + float(params.abs().max())):
            break
    scale, bias = float(params[0]), float(params[1])
    if min_scale is not None and not scale >= min_scale:
        return min_scale, _fit_bias(x, y, min_scale, bias if scale > 0 else -min_scale * float(x.mean()))
    if not scale > 0:
        raise ValueError(
            f"the fitted sigmoid scale is {scale:.3g}: on these clips the labels shown score no higher than the others; "
            "the model cannot tell them apart."
        )
    return scale, bias


def _fit_bias(x: torch.Tensor, y: torch.Tensor, scale: float, bias: float, max_iter: int = 100) -> float:
    """Newton's method for the bias alone (the loss is convex in it; the steps are safe)."""
    for _ in range(max_iter):
        p = torch.sigmoid(scale * x + bias)
        curvature = float((p * (1 - p)).mean())
        if curvature <= 0:
            break
        step = float((p - y).mean()) / curvature
        bias -= step
        if abs(step) < 1e-10 * (1 + abs(bias)):
            break
    return float(bias)


def set_sigmoid_head(model: nn.Module, scale: float | None, bias: float = 0.0) -> None:
    """Write a sigmoid head into the model's config (``None``: remove it). A decision threshold fitted for another
    head no longer applies: it is removed (see `set_decision_threshold`)."""
    model.config.multi_label_scale = None if scale is None else float(scale)
    model.config.multi_label_bias = float(bias)
    set_decision_threshold(model, None)


# Labels need this many positive calibration clips for a threshold of their own (else the global one applies).
MIN_POSITIVES_PER_LABEL_THRESHOLD = 5


def _best_f1_cut(probs: torch.Tensor, targets: torch.Tensor) -> tuple[float, float]:
    """``(threshold, F1)``: the probability cut (one of `probs`, midway to the next lower one) with the best micro
    F1 of ``probs >= cut`` against `targets` (ties: the higher cut)."""
    probs, targets = probs.flatten().double(), targets.flatten() > 0.5
    order = torch.argsort(probs, descending=True)
    sorted_probs, hits = probs[order], targets[order].double()
    true_pos = hits.cumsum(0)
    predicted = torch.arange(1, len(hits) + 1, dtype=torch.float64)
    f1 = 2 * true_pos / (predicted + hits.sum())
    last_of_ties = torch.ones_like(sorted_probs, dtype=torch.bool)  # a cut keeps every equal probability
    last_of_ties[:-1] = sorted_probs[:-1] != sorted_probs[1:]
    f1 = torch.where(last_of_ties, f1, torch.zeros_like(f1))
    best = int(torch.argmax(f1))
    below = float(sorted_probs[best + 1]) if best + 1 < len(sorted_probs) else 0.0
    return (float(sorted_probs[best]) + below) / 2, float(f1[best])


def fit_decision_threshold(
    probs: torch.Tensor,
    targets: torch.Tensor,
    labels: Sequence[str],
    min_positives: int = MIN_POSITIVES_PER_LABEL_THRESHOLD,
) -> tuple[float, dict[str, float]]:
    """The probability threshold with the best micro F1 over (N, K) `probs` of a calibrated head, and a threshold
    of its own (best F1 of that label) for every label with at least `min_positives` positive clips."""
    targets = targets > 0.5
    if not targets.any():
        raise ValueError("fitting a decision threshold needs at least one positive (clip, label) pair.")
    threshold, _ = _best_f1_cut(probs, targets)
    per_label = {
        label: _best_f1_cut(probs[:, k], targets[:, k])[0]
        for k, label in enumerate(labels)
        if int(targets[:, k].sum()) >= min_positives
    }
    return threshold, per_label


def set_decision_threshold(
    model: nn.Module, threshold: float | None, per_label: dict[str, float] | None = None
) -> None:
    """Write the sigmoid head's decision threshold (and per-label ones) into the model's config (``None``: remove)."""
    model.config.multi_label_threshold = None if threshold is None else float(threshold)
    model.config.multi_label_thresholds = {k: float(v) for k, v in per_label.items()} if per_label else None


def decision_thresholds(model: nn.Module, labels: Sequence[str]) -> list[float] | None:
    """Each label's fitted threshold (its own, else the global one), or None when the model has none fitted."""
    config = getattr(model, "config", None)
    threshold = getattr(config, "multi_label_threshold", None)
    if threshold is None:
        return None
    own = getattr(config, "multi_label_thresholds", None) or {}
    return [float(own.get(label, threshold)) for label in labels]


def sigmoid_head_of(model: nn.Module) -> dict[str, float] | None:
    """``{"scale", "bias"}`` of the model's head in its config, or None."""
    if getattr(model.config, "multi_label_scale", None) is None:
        return None
    return {"scale": float(model.config.multi_label_scale), "bias": float(model.config.multi_label_bias)}


def asymmetric_loss(
    logits: torch.Tensor, targets: torch.Tensor, *, gamma_neg: float = 4.0, gamma_pos: float = 0.0, clip: float = 0.05
) -> torch.Tensor:
    """Asymmetric loss (Ridnik et al., "Asymmetric Loss For Multi-Label Classification", ICCV 2021), mean over
    pairs: focusing ``gamma_neg`` down-weights easy negatives (the many labels a video does not show) and the
    probability margin `clip` discards the easiest negatives entirely; ``gamma_neg = gamma_pos = clip = 0`` is
    the binary cross-entropy."""
    logits, targets = logits.float(), targets.float()
    p = torch.sigmoid(logits)
    p_neg = (p - clip).clamp(min=0) if clip > 0 else p
    loss_pos = targets * nn.functional.logsigmoid(logits) * (1 - p) ** gamma_pos
    # log(1 - p_neg), computed from the logits when there is no margin (exact for large logits)
    log_neg = nn.functional.logsigmoid(-logits) if clip <= 0 else torch.log((1 - p_neg).clamp(min=1e-8))
    loss_neg = (1 - targets) * log_neg * p_neg**gamma_neg
    return -(loss_pos + loss_neg).mean()


class SigmoidHead(nn.Module):
    """The sigmoid head as trainable parameters (``scale`` as its log, as SigLIP learns its temperature), for
    training; [`set_sigmoid_head`] writes the trained values into the config."""

    def __init__(self, scale: float, bias: float) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(math.log(scale)))
        self.bias = nn.Parameter(torch.tensor(float(bias)))

    @property
    def scale(self) -> torch.Tensor:
        return self.log_scale.exp()

    def forward(self, cosine: torch.Tensor) -> torch.Tensor:
        return self.scale * cosine.float() + self.bias

    def values(self) -> tuple[float, float]:
        return float(self.scale.detach()), float(self.bias.detach())


def describe(method: str, model: Any = None) -> str:
    """One line saying how scores are computed (for reports)."""
    if method == "sigmoid" and model is not None and has_sigmoid_head(model):
        head = sigmoid_head_of(model)
        if head is None:
            return "the model's own sigmoid: sigmoid(logit_scale * cosine + logit_bias)"
        return f"sigmoid head: sigmoid({head['scale']:.4g} * cosine {head['bias']:+.4g})"
    return {
        "sigmoid": "sigmoid head",
        "background": f"label vs. background prompts {list(DEFAULT_BACKGROUND_PROMPTS)}",
        "negative": "label vs. 'not {label}'",
    }.get(method, method)


__all__ = [
    "DEFAULT_BACKGROUND_PROMPTS",
    "MULTI_LABEL_METHODS",
    "SCORE_KINDS",
    "SigmoidHead",
    "TRAINING_FREE_METHOD",
    "asymmetric_loss",
    "MIN_POSITIVES_PER_LABEL_THRESHOLD",
    "cosines",
    "decision_thresholds",
    "describe",
    "fit_decision_threshold",
    "fit_sigmoid_head",
    "has_sigmoid_head",
    "reference_texts",
    "resolve_method",
    "scores_from_logits",
    "set_decision_threshold",
    "set_sigmoid_head",
    "sigmoid_head_of",
    "video_label_scores",
]
