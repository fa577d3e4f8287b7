"""Model cards (README.md with Hub metadata), in one place for every kind of model hf_xclip writes.

All cards share their metadata rules ([`card_data`]: `pipeline_tag` ``video-classification`` — the Hub has no
zero-shot video task; the pipeline's name ``zero-shot-video-classification`` goes into the tags so that the card
can still be found by it), their description of a model ([`model_lines`]), usage snippets and citation, and the
offline check a push runs ([`check_model_card`]). Builders:

* [`converted_model_card`]: a checkpoint converted from the original code (source file, sha256, reported accuracy);
* [`finetuned_model_card`]: a model trained with hf_xclip;
* [`adapter_model_card`]: a PEFT adapter written by `hf-xclip finetune`;
* [`default_model_card`]: the embedded default model, from its training record.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..pipeline_zero_shot_video_classification import TASK as PIPELINE_TASK

PAPER_URL = "https://arxiv.org/abs/2208.02816"
CODE_URL = "https://github.com/microsoft/VideoX/tree/master/X-CLIP"
VIFICLIP_URL = "https://github.com/muzairkhattak/ViFi-CLIP"
# The Hub has no zero-shot video task; video-classification is the closest tag it knows. The pipeline name goes
# into `tags` so the card can still be found by it.
PIPELINE_TAG = "video-classification"
BASE_TAGS: tuple[str, ...] = ("hf_xclip", "video", "zero-shot", PIPELINE_TASK)
CITATION = (
    "Ni et al., *Expanding Language-Image Pretrained Models for General Video Recognition*, ECCV 2022 "
    f"([paper]({PAPER_URL}), [code]({CODE_URL}))."
)


# ---------------------------------------------------------------------------------------------- shared parts


def card_data(
    *,
    license: str | None = None,
    library_name: str = "transformers",
    tags: Sequence[str] = (),
    **fields: Any,
) -> ModelCardData:
    """`ModelCardData` with the metadata every hf_xclip card has (`pipeline_tag`, the base tags) plus `fields`
    (`base_model`, `datasets`, `eval_results`, `license_link`, `model_name`, ...)."""
    fields = {key: value for key, value in fields.items() if value is not None}
    return ModelCardData(
        license=license,
        library_name=library_name,
        pipeline_tag=PIPELINE_TAG,
        tags=list(dict.fromkeys([*BASE_TAGS, *tags])),
        **fields,
    )


def render_card(data: ModelCardData, lines: Sequence[str]) -> ModelCard:
    """A `ModelCard`: the YAML metadata header, then the body `lines`."""
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines).rstrip("\n") + "\n")


def model_lines(config: Any, template: str = "{}") -> list[str]:
    """Bullet points describing a model: frames, image size, widths, pooling, prompt generator, text template."""
    vision = config.vision_config
    return [
        f"- frames per video: {vision.num_frames}",
        f"- image size: {vision.image_size} px, patch {vision.patch_size}",
        f"- widths: vision {vision.hidden_size} x {vision.num_hidden_layers} layers, text "
        f"{config.text_config.hidden_size} x {config.text_config.num_hidden_layers} layers, joint space "
        f"{config.projection_dim}",
        f"- video pooling: {config.video_pooling}; cross-frame attention: {vision.use_cross_frame_attention}; "
        f"prompt generator: {config.use_prompt_generator}",
        f"- text template: `{template}`",
    ]


def pipeline_usage(repo_id: str, template: str = "{}", trust_remote_code: bool = False) -> str:
    """The usage snippet: `pipeline("zero-shot-video-classification", model=repo_id)` on a video."""
    labels = '["playing guitar", "riding a bike", "cooking"]'
    template_arg = "" if template == "{}" else f', hypothesis_template="{template}"'
    remote = ", trust_remote_code=True" if trust_remote_code else ""
    return f"""```python
import hf_xclip  # registers the model, processor and pipeline with transformers
from transformers import pipeline

classifier = pipeline("{PIPELINE_TASK}", model="{repo_id}"{remote})
classifier("video.mp4", candidate_labels={labels}{template_arg})
```"""


def remote_code_usage(repo_id: str, pipeline: bool = True) -> str:
    """The model card section on loading the repo with transformers alone (``trust_remote_code=True``)."""
    lines = [
        "## Use with transformers only",
        "",
        "The repository ships hf_xclip's model and processor code, so it loads without installing hf_xclip "
        "(`trust_remote_code=True` runs that code: read it first):",
        "",
        "```python",
    ]
    if pipeline:
        lines += [
            "from transformers import pipeline",
            "",
            f'classifier = pipeline("{PIPELINE_TASK}", model="{repo_id}", trust_remote_code=True)',
            'classifier("video.mp4", candidate_labels=["playing guitar", "riding a bike", "cooking"])',
            "",
        ]
    lines += [
        "from transformers import AutoModel, AutoProcessor",
        "",
        f'model = AutoModel.from_pretrained("{repo_id}", trust_remote_code=True)',
        f'processor = AutoProcessor.from_pretrained("{repo_id}", trust_remote_code=True)',
        'inputs = processor(text=["playing guitar", "cooking"], videos="video.mp4")',
        "probs = model(**inputs).logits_per_video.softmax(dim=-1)",
        "```",
    ]
    if pipeline:
        lines += [
            "",
            "The repository records its pipeline (`custom_pipelines` in `config.json`), so transformers asks for "
            "`trust_remote_code=True` for it even where hf_xclip is installed.",
        ]
    return "\n".join(lines)


def check_model_card(card: ModelCard | str | os.PathLike) -> ModelCardData:
    """Check a model card offline the way the Hub reads it; returns its metadata.

    The card is parsed by huggingface_hub (YAML header into `ModelCardData`, ``model-index`` into evaluation
    results). `ModelCard.validate` would ask the Hub; this checks what a push needs without network: a licence, a
    ``library_name`` and a ``pipeline_tag``, string tags, and a body after the header.

    Raises:
        ValueError: naming the missing or malformed field.
    """
    if isinstance(card, ModelCard):
        text = card.content
    elif isinstance(card, os.PathLike) or (isinstance(card, str) and "\n" not in card and Path(card).is_file()):
        text = Path(card).read_text(encoding="utf-8")
    else:
        text = str(card)
    if not text.lstrip().startswith("---"):
        raise ValueError("the model card has no YAML metadata header (--- ... ---).")
    try:
        parsed = ModelCard(text)
    except Exception as err:  # yaml errors, malformed model-index (ValueError)
        raise ValueError(f"the model card's metadata cannot be parsed: {err}") from err
    data = parsed.data
    for field in ("license", "library_name", "pipeline_tag"):
        if not getattr(data, field, None):
            raise ValueError(f"the model card metadata has no `{field}`.")
    tags = data.tags or []
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise ValueError(f"the model card `tags` must be a list of strings, got {tags!r}.")
    base_model = data.base_model
    if base_model is not None and not (
        isinstance(base_model, str) or (isinstance(base_model, list) and all(isinstance(b, str) for b in base_model))
    ):
        raise ValueError(f"the model card `base_model` must be a repo id or a list of them, got {base_model!r}.")
    if not parsed.text.strip():
        raise ValueError("the model card has metadata but no text.")
    return data


# ------------------------------------------------------------------------------------------------- builders


def _reported_accuracy_lines(release: Any) -> list[str]:
    lines = [
        "## Reported accuracy",
        "",
        f"The paper reports for `{release.file}` (X-CLIP-{release.arch}, {release.num_frames} x "
        f"{release.image_size}, {release.setting}, trained on {release.trained_on}):",
        "",
        "| evaluated on | top-1 (%) | top-5 (%) | views |",
        "| --- | --- | --- | --- |",
    ]
    for dataset, top1 in release.top1.items():
        top5 = release.top5.get(dataset)
        lines.append(f"| {dataset} | {top1} | {top5 if top5 is not None else '-'} | {release.views} |")
    return [*lines, ""]


def converted_model_card(
    *,
    title: str,
    summary: str,
    source_file: str,
    source_sha256: str,
    config: Any,
    repo_id: str | None = None,
    license: str = "mit",
    family: str = "x-clip",
    release: Any = None,
    template: str = "{}",
    notes: list[str] | None = None,
    license_link: str | None = None,
) -> ModelCard:
    """A model card for a converted checkpoint.

    Args:
        title: first heading.
        summary: one paragraph on what the model is.
        source_file / source_sha256: the converted file, so anyone can check which release it came from.
        config: the `XClipConfig` written next to the card (frames, image size, patch).
        repo_id: name used in the usage snippet (defaults to a placeholder).
        family: model family tag (``"x-clip"``, ``"vifi-clip"``).
        release: the released checkpoint this file is (a `hf_xclip.conversion.ReleasedCheckpoint`), for its
            reported accuracy.
        template: text template the model was trained with.
        notes: extra bullet points.
        license_link: where the terms are, for ``license="other"``.
    """
    data = card_data(license=license, license_link=license_link, tags=[family, "clip"])
    vision = config.vision_config
    lines = [
        f"# {title}",
        "",
        summary,
        "",
        "## Conversion",
        "",
        f"- source file: `{source_file}`",
        f"- sha256: `{source_sha256}`",
        *model_lines(config, template),
        "- preprocessing: short side resized to int(256 / 224 * size), centre crop, ImageNet mean/std; "
        f"{vision.num_frames} frames sampled TSN-style (middle frame of equal segments)",
        *[f"- {note}" for note in notes or []],
        "",
        "## Usage",
        "",
        pipeline_usage(repo_id or "path/to/this/model", template),
        "",
    ]
    if release is not None:
        lines += _reported_accuracy_lines(release)
    lines += ["## Citation", "", CITATION]
    return render_card(data, lines)


def _eval_results(results: Mapping[str, float] | None, dataset_name: str | None) -> list[EvalResult] | None:
    if not results:
        return None
    if not dataset_name:
        raise ValueError("`results` need `dataset_name`: the data the metrics were measured on.")
    eval_results = []
    for metric, value in results.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"result {metric!r} must be a number, got {value!r}.")
        eval_results.append(
            EvalResult(
                task_type=PIPELINE_TAG,
                dataset_type=dataset_name,
                dataset_name=dataset_name,
                metric_type=metric,
                metric_value=float(value),
            )
        )
    return eval_results


def finetuned_model_card(
    config: Any,
    *,
    repo_id: str,
    base_model: str | None = None,
    datasets: str | Sequence[str] | None = None,
    summary: str | None = None,
    results: Mapping[str, float] | None = None,
    dataset_name: str | None = None,
    license: str = "mit",
    template: str = "{}",
    pipeline: bool = True,
) -> ModelCard:
    """A model card for a fine-tuned (or otherwise trained) hf_xclip model.

    Converted checkpoints get theirs from [`converted_model_card`] (source file, reported accuracy); this one is
    for models trained with hf_xclip.

    Args:
        config: the model's configuration (frames, image size, widths).
        repo_id: the Hub name used in the usage snippets.
        base_model: the Hub name of the model it was fine-tuned from (``base_model`` metadata).
        datasets: training data names (``datasets`` metadata).
        summary: one paragraph on what the model is.
        results: metric name -> value (e.g. ``{"accuracy": 0.91}``) measured on `dataset_name`; written as
            ``model-index`` evaluation results.
        dataset_name: the evaluation data of `results` (required with `results`).
        license: licence identifier (X-CLIP's weights are MIT).
        template: the text template the model was trained with.
        pipeline: the repository ships the zero-shot pipeline (see `hf_xclip.hub.push.add_remote_code`).

    Raises:
        ValueError: `results` without `dataset_name`, or a non-numeric result.
    """
    vision = config.vision_config
    data = card_data(
        license=license,
        tags=["x-clip", "clip"],
        base_model=base_model,
        datasets=[datasets] if isinstance(datasets, str) else (list(datasets) if datasets else None),
        model_name=repo_id,
        eval_results=_eval_results(results, dataset_name),
    )
    summary = summary or (
        f"An X-CLIP video-text model ({vision.num_frames} frames of {vision.image_size} px, patch "
        f"{vision.patch_size}) trained with hf_xclip"
        + (f", starting from [{base_model}](https://huggingface.co/{base_model})." if base_model else ".")
    )
    lines = [f"# {repo_id.split('/')[-1]}", "", summary, "", "## Model", "", *model_lines(config, template), ""]
    if results:
        lines += ["## Results", "", f"Measured on {dataset_name}:", "", "| metric | value |", "| --- | --- |"]
        lines += [f"| {metric} | {value:.4g} |" for metric, value in results.items()]
        lines.append("")
    lines += [
        "## Usage",
        "",
        pipeline_usage(repo_id, template, trust_remote_code=pipeline),
        "",
        remote_code_usage(repo_id, pipeline=pipeline),
        "",
        "## Citation",
        "",
        CITATION,
    ]
    card = render_card(data, lines)
    check_model_card(card)
    return card


def _accuracy_row(name: str, result: Any) -> str:
    if result is None:
        return f"| {name} | - | - | - |"
    skipped = f" ({len(result.failed)} unreadable skipped)" if result.failed else ""
    return f"| {name} | {result.top1:.4f} | {result.top5:.4f} (top-{result.top_k}) | {result.num_videos}{skipped} |"


def _map_row(name: str, result: Any) -> str:
    if result is None:
        return f"| {name} | - | - | - | - | - |"
    m = result.metrics
    number = lambda value: "-" if value is None else f"{value:.4f}"  # noqa: E731
    skipped = f" ({len(result.failed)} unreadable skipped)" if result.failed else ""
    return (
        f"| {name} ({result.method}) | {number(m['mAP'])} | {number(m.get('base_mAP'))} | {number(m.get('novel_mAP'))} "
        f"| {m['f1']:.4f} | {m['num_videos']}{skipped} |"
    )


def _results_lines(result: Any) -> list[str]:
    if not getattr(result, "multi_label", False):
        return [
            "| model | top-1 | top-5 | videos |",
            "| --- | --- | --- | --- |",
            _accuracy_row("base model (zero-shot)", result.eval_before),
            _accuracy_row("with this adapter", result.eval_after),
        ]
    head = result.sigmoid_head
    threshold = result.args.threshold
    return [
        f"Multi-label: one probability per label, `sigmoid({head['scale']:.4g} * cosine {head['bias']:+.4g})` (the "
        "sigmoid head, stored in `xclip_adapter.json`). mAP = mean average precision over labels; *novel* labels are "
        f"evaluation labels never trained on{f' ({len(result.novel_labels)})' if result.novel_labels else ''}; F1 at "
        f"probability {threshold:g}.",
        "",
        "| model (scores) | mAP | base mAP | novel mAP | F1 | videos |",
        "| --- | --- | --- | --- | --- | --- |",
        _map_row("base model", result.eval_before),
        _map_row("with this adapter", result.eval_after),
        *_worse_than_training_free(result),
    ]


def _worse_than_training_free(result: Any) -> list[str]:
    """A warning line when training lowered the held-out mAP below the training-free model's."""
    before, after = result.eval_before, result.eval_after
    if before is None or after is None or before.metrics.get("mAP") is None or after.metrics.get("mAP") is None:
        return []
    if after.metrics["mAP"] >= before.metrics["mAP"]:
        return []
    return [
        "",
        f"**Warning:** training made the held-out mAP worse than the training-free base model "
        f"({before.metrics['mAP']:.4f} -> {after.metrics['mAP']:.4f}): use the base model, or train "
        "differently (more clips, other --lr / --lora-targets).",
    ]


def adapter_model_card(result: Any, *, base_model: str | None = None, data: dict[str, Any] | None = None) -> ModelCard:
    """The card of a PEFT adapter written by `hf-xclip finetune`: data, shots, method, settings, measured accuracy.

    Args:
        result: a `hf_xclip.finetuning.training.FewShotResult`.
        base_model: name or path of the base model (a Hub id becomes the ``base_model`` metadata).
        data: description of the data (`train_dir`, `eval_source`, `shots`, `seed`, ...).
    """
    data = data or {}
    methods = result.adapter_config.methods
    full = getattr(result.adapter_config, "full_finetune", False)
    hub_base = base_model if base_model and not Path(base_model).exists() else None
    metadata = card_data(
        library_name="hf_xclip" if full else "peft",
        base_model=hub_base,
        tags=["x-clip", "few-shot", *([] if full else ["peft"]), *methods],
    )
    shots, seed = data.get("shots"), data.get("seed")
    args = result.args
    held_out = data.get("eval_source") or ("none" if result.eval_after is None else "held-out videos")
    lines = [
        f"# X-CLIP few-shot {'fine-tuned model (every weight)' if full else 'adapter (' + ' + '.join(methods) + ')'}",
        "",
        (
            f"X-CLIP fine-tuned in full from `{base_model or 'unknown'}`"
            if full
            else f"A PEFT adapter for the X-CLIP model `{base_model or 'unknown'}`"
        )
        + ", trained with `hf-xclip finetune` (hf_xclip).",
        "",
        "## Data",
        "",
        (
            f"- Training videos: `{data['train_annotations']}` (annotation file), {len(result.class_names)} labels, "
            if data.get("train_annotations")
            else f"- Training videos: `{data.get('train_dir', '?')}`, {len(result.class_names)} classes (folder name = class text), "
        )
        + f"{f'{shots} shots per class' if shots else 'all videos'}"
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
        *_results_lines(result),
        "",
        "## Training",
        "",
        f"- epochs {args.epochs}, batch size {args.batch_size} x {args.gradient_accumulation_steps} accumulation, "
        f"learning rates {result.learning_rates}, AdamW betas {args.adam_betas}, weight decay {args.weight_decay}, "
        f"cosine schedule with {args.warmup_ratio:.0%} warm-up, "
        + (
            _multi_label_loss_text(args)
            if getattr(result, "multi_label", False)
            else f"label smoothing {args.label_smoothing}"
        ),
        f"- frames per clip: {args.num_frames}, TSN random sampling, "
        f"{'random resized crop ' + str(args.crop_scale) + f' + flip p={args.hflip_prob}' if args.augment else 'centre crop'}",
        f"- mixed precision: {result.mixed_precision}, prompt template: `{args.template}`, seed {args.seed}",
        f"- trainable parameters: {result.trainable_parameters:,}; training took {result.seconds:.0f} s",
        f"- final training loss: {result.step_losses[-1]:.4f}" if result.step_losses else "- no training step ran",
        "",
        "## Usage",
        "",
        *_adapter_usage(result, base_model, full),
    ]
    return render_card(metadata, lines)


def _adapter_usage(result: Any, base_model: str | None, full: bool) -> list[str]:
    base = base_model or "BASE_MODEL"
    data_option = "--annotations ANNOTATIONS" if getattr(result, "multi_label", False) else "--data-dir VIDEOS"
    if full:
        return [
            "```python",
            "from hf_xclip import XClipModel, XClipProcessor",
            "",
            'model = XClipModel.from_pretrained("PATH_TO_THIS_FOLDER").eval()',
            'processor = XClipProcessor.from_pretrained("PATH_TO_THIS_FOLDER")',
            "```",
            "",
            f"or `hf-xclip evaluate --model PATH_TO_THIS_FOLDER {data_option}` (the sigmoid head is in `config.json`).",
        ]
    lines = [
        "```python",
        "from hf_xclip.finetuning.adapters import load_model_with_adapter",
        "",
        f'model, processor, metadata = load_model_with_adapter("{base}", "PATH_TO_THIS_ADAPTER")',
        "```",
        "",
        "(or `peft.PeftModel.from_pretrained(XClipModel.from_pretrained(BASE), PATH)`"
        + (
            ", then `hf_xclip.finetuning.adapters.apply_adapter_head(model, metadata)` for the sigmoid head)"
            if getattr(result, "multi_label", False)
            else ")"
        ),
        f"or `hf-xclip evaluate --model {base} --adapter PATH_TO_THIS_ADAPTER {data_option}`. "
        "The class names, in training order, are in `xclip_adapter.json`"
        + (" (required order: the CoOp context is class-specific)." if _class_specific(result.adapter_config) else "."),
    ]
    return lines


def _multi_label_loss_text(args: Any) -> str:
    loss = (
        f"asymmetric loss (gamma_neg {args.asl_gamma_neg}, clip {args.asl_clip})"
        if args.loss == "asl"
        else "sigmoid binary cross-entropy"
    )
    regularization = {
        "none": "no regularisation",
        "wise": f"WiSE-FT weight interpolation with the starting weights (alpha {args.wise_alpha})",
        "distill": f"feature distillation to the frozen starting model (weight {args.distill_weight})",
        "l2sp": f"L2-SP toward the starting weights (weight {args.l2sp_weight})",
    }[args.regularization]
    return f"{loss}, {regularization}"


def _class_specific(config: Any) -> bool:
    return config.coop is not None and config.coop.class_specific


def _method_text(config: Any) -> str:
    if getattr(config, "full_finetune", False):
        return "- full fine-tuning: every weight trained except the logit scale (this folder is a whole model)"
    parts = []
    if config.lora_type is not None:
        parts.append(f"- {config.lora_type} (r={config.r}, alpha={config.lora_alpha}) on {config.lora_parts()}")
    if config.coop is not None:
        coop = config.coop
        kind = "class-specific" if coop.class_specific else "unified"
        init = f'initialised from "{coop.init_text}"' if coop.init_text else "randomly initialised"
        parts.append(f"- CoOp: {coop.num_context} {kind} context vectors after the start token, {init}")
    if config.vl_prompts is not None:
        vl = config.vl_prompts
        parts.append(
            f"- vision-language prompts (IVLP): {vl.text_tokens} text context vectors after the start token, "
            f"{vl.vision_tokens} vision tokens after the patch tokens, own prompts in the first {vl.depth} layer(s) "
            "of each tower"
        )
    if config.train_prompt_generator:
        parts.append("- X-CLIP's video-specific prompt generator trained in full")
    if config.train_mit:
        parts.append("- multi-frame integration transformer (MIT) trained in full")
    if config.train_logit_scale:
        parts.append("- logit scale trained")
    parts.append("- everything else frozen (text encoder frozen unless listed above)")
    return "\n".join(parts)


def _default_multi_label_recipe(settings: dict[str, Any]) -> str:
    if not settings.get("scene_batch_size"):
        return ""
    return (
        f"\nand {settings['scene_batch_size']} clips of 2-3 objects (seen combinations only) per step, trained with the "
        "sigmoid head (binary cross-entropy against all seen captions, head initialised at scale 10, bias -10) plus "
        f"{settings['scene_rank_weight']} x the cross-entropy of each present caption against the absent ones,"
    )


def _default_multi_label_section(record: dict[str, Any]) -> str:
    metrics = record["metrics"].get("multi_label")
    if not metrics:
        return ""
    head = record.get("multi_label_head") or {}
    head_text = f"`sigmoid({head['scale']:.4g} * cosine {head['bias']:+.4g})`" if head else "the sigmoid head"
    return f"""
### Multi-label

{metrics["num_videos"]} fresh clips (seed {metrics["seed"]}) of 2-3 objects, each its own shape, colour and motion,
at least one of a seen and one of a held-out combination; every clip is scored against all 204 captions, each on its
own, by the model's sigmoid head {head_text} (stored in `config.json`, used by `pipeline(..., multi_label=True)`).
Novel labels are the 64 held-out captions (never trained on, alone or in a scene).

| mAP | base mAP (140 seen captions) | novel mAP (64 held-out captions) | micro AP | precision / recall / F1 at {metrics["threshold"]:g} |
|---|---|---|---|---|
| {metrics["mAP"]:.3f} | {metrics["base_mAP"]:.3f} | {metrics["novel_mAP"]:.3f} | {metrics["micro_AP"]:.3f} | {metrics["precision"]:.3f} / {metrics["recall"]:.3f} / {metrics["f1"]:.3f} |
"""


def default_model_card(record: dict[str, Any]) -> ModelCard:
    """The card of the embedded default model, with its measured accuracies, from its training record
    (`training_log.json`, written by `hf_xclip.embedded_model.training`)."""
    s, m = record["settings"], record["metrics"]
    seen, held = m["seen"], m["heldout"]
    metadata = card_data(license="apache-2.0", library_name="hf_xclip", tags=["x-clip", "synthetic"])
    text = f"""# hf_xclip embedded default model

A tiny X-CLIP (cross-frame ViT, multi-frame integration transformer, video-specific prompt generator) trained from
scratch on a CPU on the procedural clips of `hf_xclip.data.synthetic`: one coloured shape (circle, square, triangle,
star, cross; red, green, blue, yellow, white, purple) doing one motion (moving left/right/up/down, growing,
shrinking, rotating) on a noisy background, captioned e.g. "a red circle moving left". It ships inside the
`hf_xclip` package so that `hf-xclip demo` and `hf-xclip classify` work offline. It knows nothing about real videos.

```python
import hf_xclip
from transformers import pipeline

clf = pipeline("zero-shot-video-classification", model=hf_xclip.default_model_path())
clf("clip.mp4", candidate_labels=["a red circle moving left", "a blue star growing"])
```

## Evaluation

Fresh clips (seed {m["seed"]}, never seen in training), {m["clips_per_class"]} per combination, classified among
all combinations with the clip's shape (42 captions, 36 for circles; chance {m["chance_same_shape"]:.1%}) and among
all {round(1 / m["chance_all"])} captions (chance {m["chance_all"]:.2%}). *Held-out* combinations (zero-shot) pair a
colour with a motion or a shape never seen together in training (`hf_xclip.data.synthetic.heldout_specs`).

| combinations | clips | accuracy, same-shape candidates | accuracy, all captions | colour | shape | motion |
|---|---|---|---|---|---|---|
| seen ({seen["combinations"]}) | {seen["clips"]} | {seen["accuracy_same_shape"]:.1%} | {seen["accuracy_all"]:.1%} | {seen["colour_accuracy"]:.1%} | {seen["shape_accuracy"]:.1%} | {seen["motion_accuracy"]:.1%} |
| held-out ({held["combinations"]}) | {held["clips"]} | {held["accuracy_same_shape"]:.1%} | {held["accuracy_all"]:.1%} | {held["colour_accuracy"]:.1%} | {held["shape_accuracy"]:.1%} | {held["motion_accuracy"]:.1%} |

(colour / shape / motion: how often that attribute of the best caption among all captions is right.)
{_default_multi_label_section(record)}
## Training

`python -m hf_xclip.embedded_model.training --output-dir hf_xclip/default_model` (settings below are its defaults).
{s["steps"]} AdamW steps of {s["batch_size"]} fresh clips of the seen combinations ({s["num_frames"]} frames,
{s["image_size"]} px), cross-entropy of each clip against all seen captions (one random prompt template per step)
plus {s["motion_loss_weight"]} x the cross-entropy among the seen captions with the clip's shape and colour (negatives
that differ in motion only),{_default_multi_label_recipe(s)}
learning rate {s["learning_rate"]} with {s["warmup_steps"]} warm-up steps and cosine decay, seed {s["seed"]}, 
{s["num_threads"]} CPU thread(s), deterministic algorithms: {record["train_seconds"]:.0f} s on the training machine
(torch {record["environment"]["torch"]}). Architecture: widths {s["width"]} (text and vision),
{s["num_layers"]} layers each, patch {s["patch_size"]}, projection / MIT width {s["projection_dim"]}, 1 MIT layer,
{s["prompt_layers"]} prompt generator layer(s), {s["num_heads"]} heads. `training_log.json` holds every setting, the
loss of every step and these metrics; `bench/check_default_model.py` retrains the first steps and compares.
"""
    return render_card(metadata, text.splitlines())


__all__ = [
    "BASE_TAGS",
    "CITATION",
    "CODE_URL",
    "PAPER_URL",
    "PIPELINE_TAG",
    "PIPELINE_TASK",
    "VIFICLIP_URL",
    "adapter_model_card",
    "card_data",
    "check_model_card",
    "converted_model_card",
    "default_model_card",
    "finetuned_model_card",
    "model_lines",
    "pipeline_usage",
    "remote_code_usage",
    "render_card",
]
