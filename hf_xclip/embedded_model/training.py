"""Train the embedded default model (``hf_xclip/default_model/``) from scratch on synthetic clips, on a CPU.

```
python -m hf_xclip.embedded_model.training --output-dir hf_xclip/default_model
```

Recipe (:class:`DefaultModelTrainingConfig` holds every setting; the defaults are what the shipped model used):

* data: :mod:`hf_xclip.data.synthetic` clips of the *seen* combinations only (:func:`~hf_xclip.data.synthetic.train_specs`),
  a fresh clip for every sample (no epochs, nothing repeats), rendered at the model's input size with noisy
  backgrounds; the held-out combinations are never shown;
* model: a tiny X-CLIP (cross-frame ViT, MIT, prompt generator) initialised at random from ``seed``;
* objective: cross-entropy of each clip against *all* seen captions (``labels=``), each step's captions written
  in one randomly drawn prompt template of :data:`~hf_xclip.data.synthetic.PROMPT_TEMPLATES`, plus (weighted by
  ``motion_loss_weight``) a cross-entropy among only the seen captions with the clip's shape and colour, whose
  negatives differ in motion alone (without it the easy colour term dominates and motion is barely learnt);
* the sigmoid head of multi-label scores (``config.multi_label_scale`` / ``multi_label_bias``), fitted after
  training, training-free, on ``calibration_scenes`` fresh multi-object clips of seen combinations
  (:func:`calibrate_head`: Platt scaling of the cosines against all seen captions, what ``hf-xclip calibrate`` does);
* optionally (``scene_batch_size > 0``, off by default) multi-object clips in every step (seen combinations only),
  trained through the sigmoid head (SigLIP's initialisation ``s = 10``, ``b = -10``) with the binary cross-entropy
  against all seen captions plus (``scene_rank_weight``) a cross-entropy of each present caption against the absent
  ones. Measured (``docs/multilabel.md``, the card's evaluation clips): with ``scene_batch_size=16`` multi-label
  mAP 0.128 -> 0.170, but same-shape accuracy of held-out combinations 70.7 % -> 62.9 %, so the shipped model does
  not use it;
* AdamW with linear warm-up and cosine decay; one CPU thread and deterministic algorithms, so a run is
  reproducible bit for bit on the same torch build (``bench/check_default_model.py`` retrains the first steps
  and compares the loss curve with ``training_log.json``).

The output folder is a regular model folder (``config.json``, ``model.safetensors``, processor and tokenizer files)
plus ``training_log.json`` (settings, loss curve, metrics) and a model card ``README.md`` with the accuracies of
:func:`evaluate_zero_shot` on freshly generated clips.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import platform
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..configuration_xclip import XClipConfig
from ..data.synthetic import (
    PROMPT_TEMPLATES,
    SyntheticSceneDataset,
    SyntheticVideoDataset,
    SyntheticVideoSpec,
    all_specs,
    build_synthetic_tokenizer,
    heldout_specs,
    novel_labels,
    sample_scenes,
    train_specs,
)
from ..evaluation.evaluate import multi_label_metrics
from ..hub.model_cards import default_model_card
from ..hub.push import remove_remote_code
from ..modeling_xclip import XClipModel
from ..multilabel import SigmoidHead, cosines, fit_sigmoid_head, set_sigmoid_head, sigmoid_head_of
from ..processing_xclip import XClipProcessor
from ..video_processing_xclip import XClipVideoProcessor

LOG_FILE = "training_log.json"


@dataclass
class DefaultModelTrainingConfig:
    """Every setting of a default-model training run (recorded in ``training_log.json``)."""

    seed: int = field(default=0, metadata={"help": "seeds the initialisation, the clips and the template draws"})
    steps: int = field(default=3000, metadata={"help": "optimiser steps"})
    batch_size: int = field(default=32, metadata={"help": "clips per step"})
    learning_rate: float = field(default=1e-3, metadata={"help": "peak AdamW learning rate"})
    weight_decay: float = field(
        default=0.05, metadata={"help": "AdamW weight decay (not on norms, biases, embeddings)"}
    )
    warmup_steps: int = field(default=30, metadata={"help": "linear warm-up steps before the cosine decay"})
    num_frames: int = field(default=4, metadata={"help": "frames per clip"})
    image_size: int = field(default=32, metadata={"help": "model input size (clips are rendered at this size)"})
    patch_size: int = field(default=8, metadata={"help": "ViT patch size"})
    width: int = field(default=64, metadata={"help": "width of the text and vision transformers"})
    projection_dim: int = field(default=64, metadata={"help": "joint embedding width (also MIT / prompt width)"})
    num_layers: int = field(default=2, metadata={"help": "layers of the text and of the vision transformer"})
    num_heads: int = field(default=2, metadata={"help": "attention heads everywhere"})
    prompt_layers: int = field(default=1, metadata={"help": "layers of the video-specific prompt generator"})
    template_augmentation: bool = field(default=True, metadata={"help": "draw a prompt template per step"})
    motion_loss_weight: float = field(
        default=1.0,
        metadata={
            "help": "weight of an extra cross-entropy among the seen captions that differ from the clip's only in "
            "motion (hard negatives: colour is learnt first and would otherwise dominate)"
        },
    )
    scene_batch_size: int = field(
        default=0, metadata={"help": "multi-object clips per step, trained through the sigmoid head (0 = none)"}
    )
    scene_rank_weight: float = field(
        default=1.0,
        metadata={"help": "weight of the cross-entropy of each present caption against the absent ones (scenes)"},
    )
    num_threads: int = field(default=1, metadata={"help": "torch CPU threads (part of what makes runs bit-exact)"})
    log_every: int = field(default=50, metadata={"help": "print the loss every this many steps"})
    eval_clips_per_class: int = field(default=4, metadata={"help": "fresh clips per combination in the final eval"})
    eval_seed: int = field(default=12345, metadata={"help": "seed of the evaluation clips (never used in training)"})
    eval_scenes: int = field(default=600, metadata={"help": "multi-object clips of the final multi-label evaluation"})
    calibration_scenes: int = field(
        default=64,
        metadata={
            "help": "fresh multi-object clips (seen combinations) the sigmoid head is fitted on after training "
            "(0: no head); ignored when scene_batch_size trains the head"
        },
    )
    calibration_seed: int = field(default=777, metadata={"help": "seed of the calibration clips"})

    def __post_init__(self) -> None:
        for name in (
            "steps",
            "batch_size",
            "num_frames",
            "image_size",
            "patch_size",
            "width",
            "projection_dim",
            "num_layers",
            "num_heads",
            "num_threads",
            "log_every",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size ({self.image_size}) must be divisible by patch_size ({self.patch_size})")
        if self.width % self.num_heads or self.projection_dim % self.num_heads:
            raise ValueError(f"width and projection_dim must be divisible by num_heads ({self.num_heads})")
        if not 0 <= self.warmup_steps < self.steps:
            raise ValueError(f"warmup_steps must be in [0, steps), got {self.warmup_steps}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.motion_loss_weight < 0:
            raise ValueError(f"motion_loss_weight must be non-negative, got {self.motion_loss_weight}")
        for name in ("scene_batch_size", "scene_rank_weight", "eval_scenes", "calibration_scenes"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)}")


def build_model_config(config: DefaultModelTrainingConfig, tokenizer) -> XClipConfig:
    """The tiny X-CLIP architecture of ``config`` with the synthetic tokenizer's vocabulary."""
    w, p = config.width, config.projection_dim
    max_length = max(len(ids) for ids in tokenizer(_all_template_texts())["input_ids"])
    return XClipConfig(
        projection_dim=p,
        prompt_layers=config.prompt_layers,
        prompt_num_attention_heads=config.num_heads,
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=w,
            intermediate_size=4 * w,
            num_hidden_layers=config.num_layers,
            num_attention_heads=config.num_heads,
            max_position_embeddings=max(16, max_length),
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        vision_config=dict(
            hidden_size=w,
            intermediate_size=4 * w,
            num_hidden_layers=config.num_layers,
            num_attention_heads=config.num_heads,
            image_size=config.image_size,
            patch_size=config.patch_size,
            num_frames=config.num_frames,
            mit_hidden_size=p,
            mit_intermediate_size=4 * p,
            mit_num_hidden_layers=1,
            mit_num_attention_heads=config.num_heads,
        ),
    )


def build_video_processor(config: DefaultModelTrainingConfig) -> XClipVideoProcessor:
    """Resize the short side straight to the input size (no 256/224 margin: the clips fill the frame)."""
    return XClipVideoProcessor(
        num_frames=config.num_frames,
        crop_size=config.image_size,
        size={"shortest_edge": config.image_size},
        antialias=True,
    )


def _all_template_texts() -> list[str]:
    return [template.format(spec.caption) for template in PROMPT_TEMPLATES for spec in all_specs()]


def frames_to_pixel_values(frames: np.ndarray, processor: XClipVideoProcessor) -> torch.Tensor:
    """(B, T, S, S, 3) uint8 clips already at the input size -> normalised (B, T, 3, S, S) float32, exactly what the
    processor gives for them (its resize is the identity at this size), without its per-video overhead."""
    pixels = torch.from_numpy(frames).permute(0, 1, 4, 2, 3).to(torch.float32) / 255.0
    mean = torch.tensor(processor.image_mean, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(processor.image_std, dtype=torch.float32).view(3, 1, 1)
    return (pixels - mean) / std


def motion_groups(specs: Sequence[SyntheticVideoSpec]) -> torch.Tensor:
    """(K, K) bool: ``[i, j]`` when captions ``i`` and ``j`` name the same shape and colour (they differ in motion)."""
    keys = [(spec.shape, spec.colour) for spec in specs]
    return torch.tensor([[a == b for b in keys] for a in keys])


def motion_loss(logits: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each clip among the captions of its shape and colour only (``groups`` from
    :func:`motion_groups`): the gradient then comes from the motion words alone."""
    masked = logits.float().masked_fill(~groups[labels], float("-inf"))
    return torch.nn.functional.cross_entropy(masked, labels)


def rank_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each present caption of a multi-object clip against the absent captions only (the other
    present captions are left out of its softmax): mean over (clip, present caption) pairs."""
    logits, positive = logits.float(), targets > 0.5
    rows, columns = positive.nonzero(as_tuple=True)
    candidates = logits[rows].masked_fill(positive[rows], float("-inf"))
    candidates[torch.arange(len(rows)), columns] = logits[rows, columns]
    return torch.nn.functional.cross_entropy(candidates, columns)


def _lr_factor(step: int, config: DefaultModelTrainingConfig) -> float:
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * progress))


def _optimizer(
    model: XClipModel, config: DefaultModelTrainingConfig, head: SigmoidHead | None
) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (no_decay if param.ndim < 2 or "embedding" in name or "logit_scale" in name else decay).append(param)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if head is not None:
        groups.append({"params": list(head.parameters()), "weight_decay": 0.0})
    return torch.optim.AdamW(groups, lr=config.learning_rate, betas=(0.9, 0.98), eps=1e-6)


@contextlib.contextmanager
def reproducible(config: DefaultModelTrainingConfig) -> Iterator[None]:
    """Seed torch, fix the CPU thread count and use deterministic algorithms so that runs repeat bit for bit;
    torch's global RNG, thread count and algorithm setting are restored afterwards."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        torch.set_num_threads(config.num_threads)
        torch.use_deterministic_algorithms(True)
        try:
            yield
        finally:
            torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(deterministic)


def train(
    config: DefaultModelTrainingConfig, *, max_steps: int | None = None, verbose: bool = True
) -> tuple[XClipModel, Any, XClipVideoProcessor, dict[str, Any]]:
    """Train from scratch; ``max_steps`` stops early (same schedule) for reproduction checks.

    Returns:
        ``(model, tokenizer, video_processor, log)`` where ``log`` has ``losses`` (one per step) and timings.
    """
    with reproducible(config):
        return _train(config, max_steps, verbose)


def _train(
    config: DefaultModelTrainingConfig, max_steps: int | None, verbose: bool
) -> tuple[XClipModel, Any, XClipVideoProcessor, dict[str, Any]]:
    tokenizer = build_synthetic_tokenizer()
    processor = build_video_processor(config)
    model = XClipModel(build_model_config(config, tokenizer)).train()
    head = SigmoidHead(10.0, -10.0) if config.scene_batch_size else None
    optimizer = _optimizer(model, config, head)
    specs = train_specs()
    data = SyntheticVideoDataset(
        specs=specs,
        num_videos=config.steps * config.batch_size,
        seed=config.seed,
        num_frames=config.num_frames,
        size=config.image_size,
    )
    scenes = SyntheticSceneDataset(
        sample_scenes(config.steps * config.scene_batch_size, seed=config.seed, specs=specs),
        [spec.caption for spec in specs],
        seed=config.seed,
        num_frames=config.num_frames,
        size=config.image_size,
    )
    template_rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(7,)))
    text_cache: dict[str, dict[str, torch.Tensor]] = {}
    groups = motion_groups(specs)
    losses: list[float] = []
    steps = config.steps if max_steps is None else min(max_steps, config.steps)
    start = time.perf_counter()
    for step in range(steps):
        template = PROMPT_TEMPLATES[int(template_rng.integers(len(PROMPT_TEMPLATES)))]
        if not config.template_augmentation:
            template = "{}"
        if template not in text_cache:
            texts = [template.format(spec.caption) for spec in specs]
            text_cache[template] = dict(tokenizer(texts, padding=True, return_tensors="pt"))
        indices = range(step * config.batch_size, (step + 1) * config.batch_size)
        frames = np.stack([data.frames(i) for i in indices])
        labels = torch.from_numpy(
            data.labels[step * config.batch_size : (step + 1) * config.batch_size].astype(np.int64)
        )
        for group in optimizer.param_groups:
            group["lr"] = config.learning_rate * _lr_factor(step, config)
        if head is None:
            output = model(
                **text_cache[template], pixel_values=frames_to_pixel_values(frames, processor), labels=labels
            )
            loss, logits = output.loss, output.logits_per_video
        else:  # one forward for the single-object clips and the scenes
            scene_indices = range(step * config.scene_batch_size, (step + 1) * config.scene_batch_size)
            frames = np.concatenate([frames, np.stack([scenes.frames(i) for i in scene_indices])])
            output = model(**text_cache[template], pixel_values=frames_to_pixel_values(frames, processor))
            logits, scene_logits = output.logits_per_video.split([len(indices), len(scene_indices)])
            targets = torch.stack([scenes[i]["target"] for i in scene_indices])
            loss = torch.nn.functional.cross_entropy(logits.float(), labels)
            loss = loss + torch.nn.functional.binary_cross_entropy_with_logits(
                head(cosines(model, scene_logits)), targets
            )
            if config.scene_rank_weight:
                loss = loss + config.scene_rank_weight * rank_loss(scene_logits, targets)
        if config.motion_loss_weight:
            loss = loss + config.motion_loss_weight * motion_loss(logits, labels, groups)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(float(loss.detach()))
        if verbose and (step % config.log_every == 0 or step == steps - 1):
            print(
                f"step {step:4d}/{config.steps}  loss {losses[-1]:.4f}  {time.perf_counter() - start:6.1f}s", flush=True
            )
    model.eval()
    if head is not None:
        set_sigmoid_head(model, *head.values())
    log = {"losses": losses, "train_seconds": time.perf_counter() - start, "steps_run": steps}
    return model, tokenizer, processor, log


@torch.no_grad()
def caption_logits(
    model: XClipModel,
    tokenizer,
    processor: XClipVideoProcessor,
    captions: Sequence[str],
    clips: Any,
    template: str = "{}",
    batch_size: int = 64,
) -> torch.Tensor:
    """``(len(clips), len(captions))`` X-CLIP logits of synthetic clips (``clips.frames(i)``, as
    `SyntheticVideoDataset` and `SyntheticSceneDataset` give them) against the captions filled into ``template``,
    ``batch_size`` clips per forward pass."""
    tokens = tokenizer([template.format(c) for c in captions], padding=True, return_tensors="pt")
    text_embeds = model.get_text_features(**tokens).pooler_output
    logits = []
    for begin in range(0, len(clips), batch_size):
        frames = np.stack([clips.frames(i) for i in range(begin, min(begin + batch_size, len(clips)))])
        video = model.get_video_features(frames_to_pixel_values(frames, processor), output_prompt_features=True)
        logits.append(model.get_logits(video.pooler_output, text_embeds, video.prompt_features)[0])
    return torch.cat(logits)


@torch.no_grad()
def calibrate_head(model: XClipModel, tokenizer, processor: XClipVideoProcessor, config: DefaultModelTrainingConfig):
    """Fit the sigmoid head, training-free, on ``config.calibration_scenes`` fresh clips of 2-3 objects of seen
    combinations (seed ``config.calibration_seed``) scored against all seen captions, and write it into the model's
    config. Returns ``(scale, bias)``."""
    specs = train_specs()
    captions = [spec.caption for spec in specs]
    scenes = SyntheticSceneDataset(
        sample_scenes(config.calibration_scenes, seed=config.calibration_seed, specs=specs),
        captions,
        seed=config.calibration_seed,
        num_frames=processor.num_frames,
        size=processor.crop_size["height"],
    )
    logits = caption_logits(model, tokenizer, processor, captions, scenes, batch_size=max(len(scenes), 1))
    scale, bias = fit_sigmoid_head(cosines(model, logits), scenes.targets())
    set_sigmoid_head(model, scale, bias)
    return scale, bias


def candidate_specs(spec: SyntheticVideoSpec) -> list[SyntheticVideoSpec]:
    """The candidate set a clip is classified among: every combination with the clip's shape (6 colours x 7
    motions = 42, or 36 for a circle, which has no rotation), seen and held-out alike."""
    return [other for other in all_specs() if other.shape == spec.shape]


@torch.no_grad()
def evaluate_zero_shot(
    model: XClipModel,
    tokenizer,
    processor: XClipVideoProcessor,
    *,
    seed: int,
    clips_per_class: int = 4,
    template: str = "{}",
) -> dict[str, Any]:
    """Accuracy on fresh clips (``seed``) of every seen and every held-out combination.

    Reports, separately for seen and held-out combinations: ``accuracy_same_shape`` (among
    :func:`candidate_specs`, chance 1/42 or 1/36) and ``accuracy_all`` (among all 204 captions, chance 1/204), plus
    per-attribute accuracies (colour, shape, motion of the prediction among all captions).
    """
    specs = all_specs()
    captions = [spec.caption for spec in specs]
    results: dict[str, Any] = {}
    for split, split_specs in (("seen", train_specs()), ("heldout", heldout_specs())):
        data = SyntheticVideoDataset(
            specs=split_specs,
            num_videos=clips_per_class * len(split_specs),
            seed=seed,
            num_frames=processor.num_frames,
            size=processor.crop_size["height"],
        )
        counts = dict.fromkeys(("same_shape", "all", "colour", "shape", "motion"), 0)
        logits = caption_logits(model, tokenizer, processor, captions, data, template)
        for i, row in enumerate(logits):
            truth = split_specs[int(data.labels[i])]
            predicted = specs[int(row.argmax())]
            same = [k for k, s in enumerate(specs) if s.shape == truth.shape]
            counts["same_shape"] += specs[same[int(row[same].argmax())]] == truth
            counts["all"] += predicted == truth
            counts["colour"] += predicted.colour == truth.colour
            counts["shape"] += predicted.shape == truth.shape
            counts["motion"] += predicted.motion == truth.motion
        results[split] = {
            "clips": len(data),
            "combinations": len(split_specs),
            **{
                f"accuracy_{k}" if k in ("same_shape", "all") else f"{k}_accuracy": v / len(data)
                for k, v in counts.items()
            },
        }
    results["chance_same_shape"] = float(np.mean([1 / len(candidate_specs(s)) for s in specs]))
    results["chance_all"] = 1 / len(specs)
    results["seed"], results["clips_per_class"], results["template"] = seed, clips_per_class, template
    return results


@torch.no_grad()
def evaluate_multi_label(
    model: XClipModel,
    tokenizer,
    processor: XClipVideoProcessor,
    *,
    seed: int,
    num_scenes: int = 600,
    template: str = "{}",
) -> dict[str, Any]:
    """mAP (base / novel), micro AP and F1 at 0.5 of the model's sigmoid head on fresh multi-object clips.

    Each clip holds 2-3 objects, at least one of a seen (base) and one of a held-out (novel) combination
    (:func:`~hf_xclip.data.synthetic.sample_scenes` with ``require``); every clip is scored against all 204 captions.
    """
    captions = [spec.caption for spec in all_specs()]
    scenes = SyntheticSceneDataset(
        sample_scenes(num_scenes, seed=seed, require=[train_specs(), heldout_specs()]),
        captions,
        seed=seed,
        num_frames=processor.num_frames,
        size=processor.crop_size["height"],
    )
    scores = model.multi_label_logits(caption_logits(model, tokenizer, processor, captions, scenes, template))
    metrics = multi_label_metrics(scores, scenes.targets(), captions, novel_labels=novel_labels())
    keep = ("mAP", "base_mAP", "novel_mAP", "micro_AP", "precision", "recall", "f1", "threshold", "num_videos")
    return {**{key: metrics[key] for key in keep}, "seed": seed, "template": template}


def save_default_model(
    output_dir: str | Path,
    model: XClipModel,
    tokenizer,
    processor: XClipVideoProcessor,
    config: DefaultModelTrainingConfig,
    log: dict[str, Any],
    metrics: dict[str, Any],
) -> Path:
    """Write the model folder: weights (fp32 safetensors), config, processor + tokenizer, log and model card."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir, safe_serialization=True)
    XClipProcessor(video_processor=processor, tokenizer=tokenizer).save_pretrained(output_dir)
    record = {
        "settings": asdict(config),
        "metrics": metrics,
        "losses": log["losses"],
        "train_seconds": round(log["train_seconds"], 1),
        "environment": {
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
        },
        "command": "python -m hf_xclip.embedded_model.training --output-dir hf_xclip/default_model",
        "multi_label_head": sigmoid_head_of(model),
    }
    (output_dir / LOG_FILE).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    default_model_card(record).save(output_dir / "README.md")
    remove_remote_code(output_dir)
    return output_dir


def parse_args(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, DefaultModelTrainingConfig]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", required=True, type=Path, help="folder to write the model to")
    defaults = DefaultModelTrainingConfig()
    for name, spec in DefaultModelTrainingConfig.__dataclass_fields__.items():
        value = getattr(defaults, name)
        kind = (lambda v: v.lower() in ("1", "true", "yes")) if isinstance(value, bool) else type(value)
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=value, help=spec.metadata.get("help"))
    args = parser.parse_args(argv)
    config = DefaultModelTrainingConfig(
        **{name: getattr(args, name) for name in DefaultModelTrainingConfig.__dataclass_fields__}
    )
    return args, config


def main(argv: Sequence[str] | None = None) -> int:
    args, config = parse_args(argv)
    model, tokenizer, processor, log = train(config)
    print(f"trained {config.steps} steps in {log['train_seconds']:.0f} s", flush=True)
    if not config.scene_batch_size and config.calibration_scenes:
        with reproducible(config):
            scale, bias = calibrate_head(model, tokenizer, processor, config)
        print(f"sigmoid head fitted on {config.calibration_scenes} clips: sigmoid({scale:.4g} * cosine {bias:+.4g})")
    metrics = evaluate_zero_shot(
        model, tokenizer, processor, seed=config.eval_seed, clips_per_class=config.eval_clips_per_class
    )
    if (config.scene_batch_size or config.calibration_scenes) and config.eval_scenes:
        metrics["multi_label"] = evaluate_multi_label(
            model, tokenizer, processor, seed=config.eval_seed, num_scenes=config.eval_scenes
        )
    print(json.dumps(metrics, indent=1))
    save_default_model(args.output_dir, model, tokenizer, processor, config, log, metrics)
    print(f"saved to {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
