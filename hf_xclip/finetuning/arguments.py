"""`FewShotTrainingArguments`: the optimisation settings of few-shot training, declared once. The fields' metadata
(help, ``flag``, ``group``) make the flags, defaults and help of `hf-xclip finetune`
(`hf_xclip.cli.add_dataclass_arguments`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..labels import validate_template
from .peft_model import default_learning_rates

REGULARIZATIONS: tuple[str, ...] = ("none", "wise", "distill", "l2sp")
# LoRA's default learning rate in multi-label runs (single-label keeps `default_learning_rates`' 2e-4): the sigmoid
# head starts at the model's logit scale and only the adapters can make each label's videos rank apart; at 2e-4
# forty epochs of a dozen clips do not move them (held-out mAP 0.668 -> 0.654 on the tiny synthetic repro of
# tests/test_finetune_multilabel.py; at 1e-2, the sigmoid head's own rate: 0.925 / 0.931 / 0.958 for seeds 0 / 1 / 2;
# at 5e-3: 0.931 / 0.883 / 0.931).
MULTI_LABEL_LORA_LEARNING_RATE = 1e-2
MULTI_LABEL_LOSSES: tuple[str, ...] = ("bce", "asl")


# Argument groups of `hf-xclip finetune` (FewShotTrainingArguments' metadata)
OPTIMISATION, DATA, MULTI_LABEL = "optimisation", "data", "multi-label (annotation files with label lists)"


@dataclass
class FewShotTrainingArguments:
    """Optimisation settings of [`train_few_shot`]; defaults follow the original X-CLIP recipe where it applies.

    The one declaration of these options: `hf-xclip finetune` makes its flags, defaults and help from the fields
    (`hf_xclip.cli.add_dataclass_arguments`; ``metadata`` names a field's flag and group)."""

    epochs: int = field(default=10, metadata={"help": "Passes over the training videos.", "group": OPTIMISATION})
    batch_size: int = field(default=8, metadata={"help": "Videos per step and device.", "group": OPTIMISATION})
    learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "One learning rate for every trained part; default: per method (lora 2e-4, coop 2e-3, "
            "prompt-generator 2e-5, vl-prompts 8e-3; see default_learning_rates; multi-label runs: lora 1e-2).",
            "flag": "--lr",
            "group": OPTIMISATION,
        },
    )
    weight_decay: float = field(
        default=0.001, metadata={"help": "AdamW weight decay (not on 1-D parameters).", "group": OPTIMISATION}
    )
    adam_betas: tuple[float, float] = field(default=(0.9, 0.98), metadata={"help": "AdamW betas.", "cli": False})
    warmup_ratio: float = field(
        default=0.1,
        metadata={
            "help": "Fraction of the optimiser steps with linear warm-up (original: 5 of 50 epochs).",
            "group": OPTIMISATION,
        },
    )
    label_smoothing: float = field(
        default=0.1, metadata={"help": "Label smoothing of the cross-entropy.", "group": OPTIMISATION}
    )
    gradient_accumulation_steps: int = field(
        default=1, metadata={"help": "Batches per optimiser step.", "group": OPTIMISATION}
    )
    max_grad_norm: float | None = field(
        default=1.0, metadata={"help": "Gradient clipping (None or 0: off).", "group": OPTIMISATION}
    )
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = field(
        default="auto",
        metadata={"help": "'auto': bf16 on GPUs that have it, else fp16 on GPU, fp32 on CPU.", "group": OPTIMISATION},
    )
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "Recompute activations in backward (less memory).", "group": OPTIMISATION}
    )
    num_workers: int = field(
        default=0,
        metadata={
            "help": "DataLoader worker processes decoding videos (0: in the training process).",
            "group": OPTIMISATION,
        },
    )
    seed: int = field(
        default=0, metadata={"help": "Seeds data order, sampling, augmentation, initialisation (and shot selection)."}
    )
    template: str | None = field(
        default=None,
        metadata={
            "help": "Prompt template with '{}' for the class; default: the model's own (its processor's "
            "`hypothesis_template`; the original X-CLIP uses the class name, ViFi-CLIP 'a photo of a "
            "{}.').",
            "group": DATA,
        },
    )
    augment: bool = field(
        default=True,
        metadata={
            "help": "Random resized crop and horizontal flip; --no-augment: centre crop only.",
            "flag": "--no-augment",
            "group": DATA,
        },
    )
    crop_scale: tuple[float, float] = field(
        default=(0.4, 1.0), metadata={"help": "Area range of the random crop.", "cli": False}
    )
    hflip_prob: float = field(
        default=0.5, metadata={"help": "Flip probability (0 for left/right classes).", "group": DATA}
    )
    num_frames: int | None = field(
        default=None, metadata={"help": "Frames per clip; default: the processor's.", "group": DATA}
    )
    show_progress: bool = field(
        default=True,
        metadata={"help": "tqdm progress bar with the loss; --no-progress hides it.", "flag": "--no-progress"},
    )
    loss: Literal["bce", "asl"] = field(
        default="bce",
        metadata={
            "help": "Multi-label loss: 'bce' (sigmoid binary cross-entropy) or 'asl' (asymmetric loss, for the "
            "many negatives).",
            "group": MULTI_LABEL,
        },
    )
    asl_gamma_neg: float = field(default=4.0, metadata={"help": "ASL focusing on negatives.", "group": MULTI_LABEL})
    asl_clip: float = field(
        default=0.05, metadata={"help": "ASL probability margin discarding easy negatives.", "group": MULTI_LABEL}
    )
    regularization: Literal["none", "wise", "distill", "l2sp"] = field(
        default="none",
        metadata={
            "help": "Keep labels not trained on working: 'wise' (weight interpolation with the starting "
            "weights), 'distill' (feature distillation to the frozen starting model), 'l2sp' (L2 "
            "toward the starting weights).",
            "group": MULTI_LABEL,
        },
    )
    wise_alpha: float = field(
        default=0.5,
        metadata={"help": "WiSE: weight of the fine-tuned weights (0 = start, 1 = fine-tuned).", "group": MULTI_LABEL},
    )
    distill_weight: float = field(
        default=1.0, metadata={"help": "Weight of the feature distillation loss.", "group": MULTI_LABEL}
    )
    l2sp_weight: float = field(
        default=0.01, metadata={"help": "Weight of the L2-SP penalty (sum of squares / 2).", "group": MULTI_LABEL}
    )
    head_learning_rate: float = field(
        default=1e-2,
        metadata={
            "help": "Learning rate of the sigmoid head (multi-label).",
            "flag": "--head-lr",
            "group": MULTI_LABEL,
        },
    )
    head_min_scale: float | None = field(
        default=None,
        metadata={
            "help": "Smallest scale of the head fitted before training; default: the model's logit scale (a "
            "flatter head cannot express confident scores until it has grown).",
            "group": MULTI_LABEL,
        },
    )
    threshold: float = field(
        default=0.5, metadata={"help": "Probability threshold of the F1 reported (multi-label).", "group": MULTI_LABEL}
    )

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
        if self.loss not in MULTI_LABEL_LOSSES:
            raise ValueError(f"loss must be one of {MULTI_LABEL_LOSSES}, got {self.loss!r}.")
        if self.regularization not in REGULARIZATIONS:
            raise ValueError(f"regularization must be one of {REGULARIZATIONS}, got {self.regularization!r}.")
        if not 0.0 <= self.wise_alpha <= 1.0:
            raise ValueError(f"wise_alpha must be in [0, 1], got {self.wise_alpha}.")
        for name in ("distill_weight", "l2sp_weight", "asl_gamma_neg", "asl_clip"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)}.")
        if not self.head_learning_rate > 0:
            raise ValueError(f"head_learning_rate must be positive, got {self.head_learning_rate}.")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}.")
        if self.max_grad_norm == 0:
            self.max_grad_norm = None  # 0 turns clipping off, as None does
        self.adam_betas = tuple(self.adam_betas)
        self.crop_scale = tuple(self.crop_scale)

    def learning_rates(self, multi_label: bool = False) -> dict[str, float]:
        """Learning rate per method: `learning_rate` for all when given, else the defaults (multi-label runs: LoRA at
        `MULTI_LABEL_LORA_LEARNING_RATE`)."""
        rates = default_learning_rates()
        if self.learning_rate is not None:
            return dict.fromkeys(rates, self.learning_rate)
        if multi_label:
            rates["lora"] = MULTI_LABEL_LORA_LEARNING_RATE
        return rates


__all__ = ["MULTI_LABEL_LORA_LEARNING_RATE", "MULTI_LABEL_LOSSES", "REGULARIZATIONS", "FewShotTrainingArguments"]
