"""Few-shot adaptation of X-CLIP on labelled videos with PEFT and accelerate, single-label or multi-label.

[`train_few_shot`] wraps the model with [`get_xclip_peft_model`] (or trains every weight, ``full``) and trains with
the original X-CLIP recipe where it applies (AdamW (0.9, 0.98), weight decay 0.001, cosine schedule with linear
warm-up, label smoothing 0.1, frozen text encoder unless the method tunes it) under `accelerate` (device placement,
bf16 / fp16, gradient accumulation, several GPUs with `accelerate launch`). Data come from `hf_xclip.data.folders`,
clips from `hf_xclip.data.clip_dataset`, class texts from `hf_xclip.labels`, metrics from `hf_xclip.evaluation`; the
result is saved by `hf_xclip.finetuning.adapters.save_adapter`.

Multi-label data (an annotation file with label lists) train the sigmoid head of `hf_xclip.multilabel` with the
model: ``sigmoid(s * cosine + b)`` per label, binary cross-entropy or the asymmetric loss, the head initialised by
fitting it to the training clips. Regularisation keeps labels never trained on (novel) working:

* ``wise``: WiSE-FT (Wortsman et al., CVPR 2022; Open-VCLIP's weight interpolation): the weights become
  ``w0 + alpha * (w - w0)``, the head is refitted after;
* ``distill``: the video and prompted label embeddings of the model in training are pulled toward those of the
  frozen starting model (cosine distance);
* ``l2sp``: L2 penalty toward the starting weights (Li et al., "Explicit Inductive Bias for Transfer Learning",
  ICML 2018).
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..data.clip_dataset import VideoClassificationDataset, collate_videos
from ..data.folders import VideoFolder, drop_unreadable
from ..evaluation.evaluate import EvaluationResult, MultiLabelResult, evaluate_multi_label, evaluate_videos
from ..labels import (
    LabelEncoder,
    descriptions_for,
    find_label_prompter,
    resolve_templates,
    tokenize_labels,
)
from ..language.prompter import XClipLLMPrompter, attach_label_prompter
from ..multilabel import (
    SigmoidHead,
    asymmetric_loss,
    cosines,
    fit_sigmoid_head,
    set_sigmoid_head,
    sigmoid_head_of,
)
from ..utils import unwrap_model
from .accelerator import make_accelerator
from .arguments import MULTI_LABEL_LOSSES, REGULARIZATIONS, FewShotTrainingArguments
from .peft_config import XClipAdapterConfig
from .peft_model import (
    enable_gradient_checkpointing,
    get_xclip_peft_model,
    parameter_groups,
    prepare_full_finetuning,
    resolve_vl_prompts,
    text_is_trainable,
)


@dataclass
class FewShotResult:
    """What [`train_few_shot`] returns.

    `model` is the trained `peft.PeftModel` (or, for full fine-tuning, the `XClipModel`). Multi-label runs set
    `multi_label`, the trained `sigmoid_head` (``{"scale", "bias"}``, also written into the model's config) and
    evaluate with mAP ([`MultiLabelResult`]); `novel_labels` are the evaluation labels not trained on.
    """

    model: Any
    class_names: list[str]
    adapter_config: XClipAdapterConfig
    args: FewShotTrainingArguments
    step_losses: list[float]
    epoch_losses: list[float]
    num_train_videos: int
    skipped_videos: list[str]
    eval_before: EvaluationResult | MultiLabelResult | None = None
    eval_after: EvaluationResult | MultiLabelResult | None = None
    seconds: float = 0.0
    trainable_parameters: int = 0
    mixed_precision: str = "no"
    learning_rates: dict[str, float] = field(default_factory=dict)
    multi_label: bool = False
    sigmoid_head: dict[str, float] | None = None
    novel_labels: list[str] = field(default_factory=list)
    label_descriptions: dict[str, list[str]] = field(default_factory=dict)


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


LossFunction = Callable[[Any, dict[str, Any]], torch.Tensor]


def _run_epochs(peft_model, loader, optimizer, scheduler, accelerator, args, text_kwargs, total_steps, loss_fn):
    """The optimisation loop; returns (loss per optimiser step, mean loss per epoch, failed videos)."""
    from tqdm.auto import tqdm

    trained_params = [p for group in optimizer.param_groups for p in group["params"]]
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
                output = peft_model(pixel_values=batch["pixel_values"], **_resolve(text_kwargs), return_dict=True)
                loss = loss_fn(output, batch)
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


# ----------------------------------------------------------------------------------------------------------------
# Losses and regularisation


def _single_label_loss(args: FewShotTrainingArguments) -> LossFunction:
    def loss(output, batch):
        return F.cross_entropy(output.logits_per_video.float(), batch["labels"], label_smoothing=args.label_smoothing)

    return loss


def _multi_label_loss(args: FewShotTrainingArguments, model: nn.Module, head: SigmoidHead) -> LossFunction:
    def loss(output, batch):
        logits = head(cosines(model, output.logits_per_video))
        targets = batch["targets"].to(logits.device)
        if args.loss == "asl":
            return asymmetric_loss(logits, targets, gamma_neg=args.asl_gamma_neg, clip=args.asl_clip)
        return F.binary_cross_entropy_with_logits(logits, targets)

    return loss


def _trained_parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: param.detach().clone() for name, param in model.named_parameters() if param.requires_grad}


def _l2sp_penalty(model: nn.Module, start: dict[str, torch.Tensor], weight: float) -> LossFunction:
    def penalty(output, batch):
        total = sum(
            (param.float() - start[name].to(param.device).float()).pow(2).sum()
            for name, param in model.named_parameters()
            if name in start
        )
        return 0.5 * weight * total

    return penalty


def _distillation(model: nn.Module, teacher: Callable, text_kwargs: dict, weight: float) -> LossFunction:
    """Cosine distance of the video embeddings and of the video-specifically prompted label embeddings to those of
    the starting model (`teacher` runs it without gradients)."""

    def loss(output, batch):
        with torch.no_grad():
            reference = teacher(pixel_values=batch["pixel_values"], **_resolve(text_kwargs))
        video = 1 - F.cosine_similarity(output.video_embeds.float(), reference.video_embeds.float(), dim=-1).mean()
        text = 1 - F.cosine_similarity(output.text_embeds.float(), reference.text_embeds.float(), dim=-1).mean()
        return weight * (video + text)

    return loss


def _frozen_teacher(model: nn.Module) -> Callable:
    """The starting model, frozen: the peft model with its adapters switched off, or a copy of a fully trained one."""
    if hasattr(model, "disable_adapter"):

        def run(**inputs):
            with model.disable_adapter():
                was_training = model.training
                model.eval()
                try:
                    return model(**inputs, return_dict=True)
                finally:
                    model.train(was_training)

        return run
    teacher = copy.deepcopy(model).eval().requires_grad_(False)
    return lambda **inputs: teacher(**inputs)


def _combine(*parts: LossFunction | None) -> LossFunction:
    active = [part for part in parts if part is not None]
    return lambda output, batch: sum(part(output, batch) for part in active)


# Parameters whose scaling by alpha scales a low-rank family's weight update by alpha (the other factors keep their
# trained values): LoRA / rsLoRA / DoRA B, LoHa w1_a, LoKr w1 (or w1_a when w1 is factored).
_DELTA_FACTORS = ("lora_B.", "lora_embedding_B.", "hada_w1_a.", "lokr_w1.", "lokr_w1_a.")
_OTHER_FACTORS = (
    "lora_A.",
    "lora_embedding_A.",
    "hada_w1_b.",
    "hada_w2_a.",
    "hada_w2_b.",
    "hada_t1.",
    "hada_t2.",
    "lokr_w1_b.",
    "lokr_w2.",
    "lokr_w2_a.",
    "lokr_w2_b.",
    "lokr_t2.",
)


@torch.no_grad()
def wise_interpolate(model: nn.Module, start: dict[str, torch.Tensor], alpha: float) -> None:
    """WiSE-FT in place: every trained weight becomes ``w0 + alpha * (w - w0)`` in the model's weight space.

    Weights trained in full (full fine-tuning, modules to save, CoOp context, DoRA magnitudes) are interpolated
    directly; for low-rank adapters the update they add to a frozen weight is scaled by `alpha` (one factor scaled,
    so the merged weight is exactly the interpolation; for DoRA's normalised update approximately).
    """
    for name, param in model.named_parameters():
        if name not in start:
            continue
        if any(key in name for key in _DELTA_FACTORS):
            param.mul_(alpha)
        elif any(key in name for key in _OTHER_FACTORS):
            continue
        else:
            param.copy_(start[name].to(param) + alpha * (param - start[name].to(param)))


# ----------------------------------------------------------------------------------------------------------------
# The sigmoid head


@torch.no_grad()
def _training_cosines(model, dataset, text_kwargs, batch_size: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, K) cosines of the training clips (test-time preprocessing) with the class texts, and their targets."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=collate_videos)
    was_training = model.training
    model.eval()
    values, targets = [], []
    for batch in loader:
        if batch["pixel_values"] is None:
            continue
        output = model(pixel_values=batch["pixel_values"].to(device), **_resolve(text_kwargs), return_dict=True)
        values.append(cosines(model, output.logits_per_video).cpu())
        targets.append(batch["targets"])
    model.train(was_training)
    return torch.cat(values), torch.cat(targets)


def _fit_head(model, folder, processor, args, text_kwargs, device, min_scale: float | None) -> tuple[float, float]:
    """The head fitted to the training clips (Platt scaling), at least as sharp as `min_scale`."""
    dataset = VideoClassificationDataset(folder, processor, num_frames=args.num_frames)
    values, targets = _training_cosines(model, dataset, text_kwargs, args.batch_size, device)
    return fit_sigmoid_head(values, targets, min_scale=min_scale)


def _logit_scale(model) -> float:
    base = unwrap_model(model)
    return float(base.logit_scale_module().detach())


# ----------------------------------------------------------------------------------------------------------------
# Training


def _evaluate(model, dataset, tokenizer, multi_label: bool, class_names, novel, kwargs, threshold):
    if dataset is None:
        return None
    if not multi_label:
        return evaluate_videos(model, dataset, tokenizer, **kwargs)
    labels = list(class_names) + [label for label in dataset.folder.class_names if label not in class_names]
    return evaluate_multi_label(
        model, dataset, tokenizer, labels=labels, novel_labels=novel, threshold=threshold, **kwargs
    )


def _wrap(model, adapter_config, tokenizer, class_names, seed):
    if adapter_config.full_finetune:
        return prepare_full_finetuning(model)
    return get_xclip_peft_model(model, adapter_config, tokenizer=tokenizer, class_names=class_names, seed=seed)


TextInputs = dict[str, torch.Tensor] | Callable[[], dict[str, torch.Tensor]]


def _text_inputs(unwrapped, tokenizer, class_names, args, device, descriptions=None, accelerator=None) -> TextInputs:
    """The class texts' model inputs: token ids (trainable text side), embeddings encoded once (frozen text side),
    or, with a label prompter or descriptions and a trainable text side, a function the loop calls every step (the
    label core with gradients)."""
    labels = LabelEncoder(unwrapped, tokenizer)
    if text_is_trainable(unwrapped) and (find_label_prompter(unwrapped) is not None or descriptions):

        def every_step() -> dict[str, torch.Tensor]:
            with accelerator.autocast() if accelerator is not None else contextlib.nullcontext():
                return {"text_embeds": labels.label_features(class_names, args.template, descriptions)}

        return every_step
    if text_is_trainable(unwrapped):
        max_positions = unwrapped.config.text_config.max_position_embeddings
        return {
            k: v.to(device) for k, v in tokenize_labels(tokenizer, class_names, args.template, max_positions).items()
        }
    # frozen text side: encode the class prompts once
    return {"text_embeds": labels.encode_labels(class_names, args.template, descriptions).detach()}


def _starting_text(model, tokenizer, class_names, args, descriptions) -> dict[str, torch.Tensor]:
    """The class text embeddings of the starting model (adapters off, before a label prompter is attached): what the
    distillation teacher reads."""
    off = model.disable_adapter() if hasattr(model, "disable_adapter") else contextlib.nullcontext()
    with off:
        return {"text_embeds": LabelEncoder(model, tokenizer).encode_labels(class_names, args.template, descriptions)}


def _resolve(text_inputs: TextInputs) -> dict[str, torch.Tensor]:
    return text_inputs() if callable(text_inputs) else text_inputs


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
    label_descriptions: Any = None,
    label_prompter: XClipLLMPrompter | None = None,
) -> FewShotResult:
    """Train PEFT adapters of an [`XClipModel`] (or all its weights) on labelled videos.

    Single-label folders train with the cross-entropy over the class texts; multi-label ones (annotation files with
    label lists) with a sigmoid per label (see the module docs), the trained head written into the model's config.

    Args:
        model: the base model (frozen except for full fine-tuning; adapters are added in place).
        processor: an [`XClipProcessor`] (tokenizer + video processor).
        train_folder: training videos (e.g. from [`select_shots`]); unreadable ones are skipped and reported.
        adapter_config: what to train (default: LoRA preset; ``XClipAdapterConfig.for_method("full")``: every weight).
        args: optimisation settings.
        eval_folder: held-out videos, evaluated before (base model) and after training. Multi-label: its labels that
            are not training classes are the novel labels (``novel_mAP``).
        evaluate_before: also measure the base model on `eval_folder`.
        accelerator: an `accelerate.Accelerator` (default: one made from `args`).
        label_descriptions: per-class descriptions (mapping class -> sentences, or a JSON path), ensembled with the
            class texts by the label core in training and evaluation.
        label_prompter: a ready label prompter for `llm-prompts` (default: built from `adapter_config.llm_prompter`,
            which loads its language model).

    Returns:
        [`FewShotResult`] with the trained model (unwrapped), losses and metrics.
    """
    start = time.perf_counter()
    adapter_config = adapter_config or XClipAdapterConfig.for_method("lora")
    run = _prepare_run(processor, train_folder, eval_folder, args, accelerator, label_descriptions)
    model.to(run.device)
    eval_before = run.evaluate(model) if evaluate_before else None
    peft_model, adapter_config, teacher_text = _adapt(model, adapter_config, run, label_prompter)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    step = _optimisation(peft_model, run, teacher_text)
    peft_model, step_losses, epoch_losses = _train(peft_model, run, step)
    unwrapped = run.accelerator.unwrap_model(peft_model)
    sigmoid_head = _finish_weights(unwrapped, run, step)
    skipped = run.skipped_everywhere()
    return FewShotResult(
        model=unwrapped,
        class_names=run.class_names,
        adapter_config=adapter_config,
        args=run.args,
        step_losses=step_losses,
        epoch_losses=epoch_losses,
        num_train_videos=len(run.train_folder),
        skipped_videos=skipped,
        eval_before=eval_before,
        eval_after=run.evaluate(peft_model),
        seconds=time.perf_counter() - start,
        trainable_parameters=trainable + (2 if step.head is not None else 0),
        mixed_precision=run.accelerator.mixed_precision,
        learning_rates=step.learning_rates,
        multi_label=run.multi_label,
        sigmoid_head=sigmoid_head,
        novel_labels=run.novel,
        label_descriptions=run.descriptions,
    )


@dataclass
class _Run:
    """What one `train_few_shot` call works with: its settings, data and the class texts' side."""

    args: FewShotTrainingArguments
    processor: Any
    accelerator: Any
    class_names: list[str]
    multi_label: bool
    descriptions: dict[str, list[str]]
    train_folder: VideoFolder
    skipped: list[str]
    eval_dataset: VideoClassificationDataset | None
    novel: list[str]

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    @property
    def tokenizer(self) -> Any:
        return self.processor.tokenizer

    def text_inputs(self, model) -> TextInputs:
        return _text_inputs(
            model, self.tokenizer, self.class_names, self.args, self.device, self.descriptions, self.accelerator
        )

    def starting_text(self, model) -> dict[str, torch.Tensor]:
        return _starting_text(model, self.tokenizer, self.class_names, self.args, self.descriptions)

    def evaluate(self, model) -> EvaluationResult | MultiLabelResult | None:
        kwargs = {
            "templates": self.args.template,
            "descriptions": self.descriptions,
            "batch_size": self.args.batch_size,
            "num_workers": self.args.num_workers,
            "accelerator": self.accelerator,
        }
        return _evaluate(
            model,
            self.eval_dataset,
            self.tokenizer,
            self.multi_label,
            self.class_names,
            self.novel,
            kwargs,
            self.args.threshold,
        )

    def skipped_everywhere(self) -> list[str]:
        """The unreadable training videos of every process, sorted."""
        skipped = sorted(set(self.skipped))
        if self.accelerator.num_processes > 1:
            from accelerate.utils import gather_object

            skipped = sorted(set(gather_object(skipped)))
        return skipped


def _prepare_run(
    processor,
    train_folder: VideoFolder,
    eval_folder: VideoFolder | None,
    args: FewShotTrainingArguments | None,
    accelerator,
    label_descriptions,
) -> _Run:
    """Settings (the template resolved), the accelerator, the seed, readable training videos, the held-out set."""
    from accelerate.utils import set_seed

    args = args or FewShotTrainingArguments()
    # the model's own template unless one was given; recorded in the result (metadata, card)
    args = replace(args, template=resolve_templates(args.template, processor)[0])
    accelerator = accelerator or make_accelerator(args.mixed_precision, args.gradient_accumulation_steps)
    set_seed(args.seed)
    class_names = list(train_folder.class_names)
    multi_label = train_folder.multi_label
    descriptions = {label: list(v) for label, v in descriptions_for(class_names, label_descriptions).items()}
    train_folder, skipped = drop_unreadable(train_folder)
    empty = [name for name, count in train_folder.counts().items() if count == 0]
    if empty:
        raise ValueError(f"No readable training video left for class(es) {empty}; see the skipped videos: {skipped}")
    eval_dataset, novel = None, []
    if eval_folder is not None and len(eval_folder):
        if eval_folder.multi_label != multi_label:
            raise ValueError(
                "The evaluation videos must be labelled like the training videos (single- or multi-label)."
            )
        if not multi_label and eval_folder.class_names != class_names:
            raise ValueError("The evaluation folder must have the training classes, in the same order.")
        novel = [label for label in eval_folder.class_names if label not in class_names]
        eval_dataset = VideoClassificationDataset(eval_folder, processor, num_frames=args.num_frames)
    return _Run(
        args,
        processor,
        accelerator,
        class_names,
        multi_label,
        descriptions,
        train_folder,
        list(skipped),
        eval_dataset,
        novel,
    )


def _adapt(model, adapter_config: XClipAdapterConfig, run: _Run, label_prompter):
    """(the model with its adapters or prepared for full fine-tuning, the adapter config as used, the starting
    class texts a distillation teacher reads or None)."""
    if run.args.gradient_checkpointing:
        enable_gradient_checkpointing(model, use_reentrant=False)
    adapter_config = resolve_vl_prompts(adapter_config, model)  # the VL prompt sizes actually used, for the record
    peft_model = _wrap(model, adapter_config, run.tokenizer, run.class_names, run.args.seed)
    teacher_text = run.starting_text(peft_model) if run.args.regularization == "distill" else None
    if adapter_config.llm_prompter is not None:
        if label_prompter is None:
            label_prompter = XClipLLMPrompter.for_model(model, run.tokenizer, adapter_config.llm_prompter)
        attach_label_prompter(peft_model, label_prompter)
        label_prompter.requires_grad_(True)  # after peft froze everything but its adapters
    peft_model.to(run.device)
    return peft_model, _with_context_sizes(adapter_config, peft_model), teacher_text


@dataclass
class _Optimisation:
    """The optimiser side of a run: parameter groups' learning rates, the class texts' inputs, the sigmoid head
    (multi-label), the loss and the starting weights WiSE / L2-SP need."""

    optimizer: torch.optim.Optimizer
    learning_rates: dict[str, float]
    text_kwargs: TextInputs
    head: SigmoidHead | None
    loss_fn: Callable
    start_weights: dict[str, torch.Tensor] | None


def _optimisation(peft_model, run: _Run, teacher_text) -> _Optimisation:
    args = run.args
    groups = parameter_groups(peft_model, args.learning_rates(run.multi_label), args.weight_decay)
    learning_rates = {group["name"]: group["lr"] for group in groups}
    text_kwargs = run.text_inputs(peft_model)
    head = None
    if run.multi_label:
        initial = sigmoid_head_of(peft_model)
        # a model without a head starts from one fitted to the training clips, at least as sharp as the model's own
        # logit scale (a flat head fitted to a model that cannot rank the labels yet would pass no gradient)
        scale, bias = (
            (initial["scale"], initial["bias"])
            if initial
            else _fit_head(
                peft_model,
                run.train_folder,
                run.processor,
                args,
                text_kwargs,
                run.device,
                _logit_scale(peft_model) if args.head_min_scale is None else args.head_min_scale,
            )
        )
        head = SigmoidHead(scale, bias).to(run.device)
        groups.append(
            {
                "params": list(head.parameters()),
                "lr": args.head_learning_rate,
                "weight_decay": 0.0,
                "name": "sigmoid-head",
            }
        )
        learning_rates["sigmoid-head"] = args.head_learning_rate
    optimizer = torch.optim.AdamW(groups, betas=args.adam_betas)
    start_weights = _trained_parameters(peft_model) if args.regularization in ("wise", "l2sp") else None
    loss_fn = _multi_label_loss(args, peft_model, head) if run.multi_label else _single_label_loss(args)
    if args.regularization == "l2sp":
        loss_fn = _combine(loss_fn, _l2sp_penalty(peft_model, start_weights, args.l2sp_weight))
    elif args.regularization == "distill":
        loss_fn = _combine(
            loss_fn, _distillation(peft_model, _frozen_teacher(peft_model), teacher_text, args.distill_weight)
        )
    return _Optimisation(optimizer, learning_rates, text_kwargs, head, loss_fn, start_weights)


def _train(peft_model, run: _Run, step: _Optimisation):
    """The epochs over the training clips under accelerate: (the prepared model, loss per step, loss per epoch)."""
    from transformers import get_cosine_schedule_with_warmup

    train_dataset, loader = _training_loader(run.train_folder, run.processor, run.args)
    run.args = replace(run.args, num_frames=train_dataset.num_frames)  # record the frame count actually used
    peft_model, step.optimizer, loader = run.accelerator.prepare(peft_model, step.optimizer, loader)
    total_steps = math.ceil(len(loader) / run.args.gradient_accumulation_steps) * run.args.epochs
    # Stepped by hand once per optimiser update (not through accelerate, which would step it once per process).
    scheduler = get_cosine_schedule_with_warmup(step.optimizer, int(run.args.warmup_ratio * total_steps), total_steps)
    step_losses, epoch_losses, failed = _run_epochs(
        peft_model,
        loader,
        step.optimizer,
        scheduler,
        run.accelerator,
        run.args,
        step.text_kwargs,
        total_steps,
        step.loss_fn,
    )
    run.skipped.extend(failed)
    return peft_model, step_losses, epoch_losses


def _finish_weights(unwrapped, run: _Run, step: _Optimisation) -> dict[str, float] | None:
    """WiSE interpolation, and the trained sigmoid head written into the config (multi-label): the head, or None."""
    if run.args.regularization == "wise":
        wise_interpolate(unwrapped, step.start_weights, run.args.wise_alpha)
    if not run.multi_label:
        return None
    scale, bias = step.head.values()
    if run.args.regularization == "wise":  # the head learnt with the fine-tuned weights: fit it to the interpolated
        text_kwargs = run.text_inputs(unwrapped)
        scale, bias = _fit_head(unwrapped, run.train_folder, run.processor, run.args, text_kwargs, run.device, None)
    set_sigmoid_head(unwrapped, scale, bias)
    return {"scale": scale, "bias": bias}


__all__ = [
    "FewShotResult",
    "FewShotTrainingArguments",
    "MULTI_LABEL_LOSSES",
    "REGULARIZATIONS",
    "train_few_shot",
    "wise_interpolate",
]
