"""X-CLIP adapters as a `peft.PeftModel`: creating one from an [`XClipAdapterConfig`] (`hf_xclip.finetuning.peft_config`),
initialising CoOp contexts and VL prompts, gradient checkpointing, and the optimizer's parameter groups."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from ..fingerprint import LABEL_PROMPTER_MODULE
from ..modeling_prompts import XClipDeepPrompts, XClipPromptContext, XClipVisionPrompts
from ..modeling_xclip import XClipModel
from ..processing_xclip import clean_text
from ..utils import unwrap_model
from .peft_config import (
    DEFAULT_ADAPTER_NAME,
    FULL_METHOD,
    PROMPT_CONTEXT_MODULE,
    CoOpConfig,
    VLPromptsConfig,
    XClipAdapterConfig,
    to_peft_config,
)


def _prompt_context(model: nn.Module) -> XClipPromptContext:
    contexts = [m for m in model.modules() if isinstance(m, XClipPromptContext)]
    if len(contexts) != 1:
        raise ValueError(
            f"CoOp needs exactly one XClipPromptContext in the model (the text model's `prompt_context`), "
            f"found {len(contexts)}."
        )
    return contexts[0]


def init_prompt_context(
    model: nn.Module,
    coop: CoOpConfig,
    *,
    tokenizer: Any = None,
    num_classes: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Create the CoOp context vectors on `model`'s (empty) `prompt_context` and return them.

    Args:
        model: an [`XClipModel`] or [`XClipTextModel`] (not yet wrapped by peft).
        coop: sizes and initialisation.
        tokenizer: needed to initialise from `coop.init_text`.
        num_classes: classes of a class-specific context (overrides `coop.num_classes`).
        generator: random generator of the random initialisation.

    Returns:
        The context, `(1 or num_classes, n, hidden_size)`.
    """
    module = _prompt_context(model)
    if module.context is not None:
        raise ValueError("The model already has a prompt context; load a fresh base model to create another one.")
    embedding = model.get_input_embeddings()
    width = embedding.weight.shape[1]
    rows = 1
    if coop.class_specific:
        rows = num_classes if num_classes is not None else coop.num_classes
        if rows is None:
            raise ValueError("A class-specific CoOp context needs the number of classes (num_classes / class names).")
    phrase = _phrase_embeddings(model, coop.init_text, tokenizer) if coop.init_text is not None else None
    num_context = coop.num_context or (phrase.shape[0] if phrase is not None else 16)
    if phrase is not None and phrase.shape[0] > num_context:
        raise ValueError(
            f"The CoOp init text {coop.init_text!r} has {phrase.shape[0]} tokens, more than num_context={num_context}."
        )
    context = torch.randn(rows, num_context, width, generator=generator) * coop.init_std
    if phrase is not None:
        context[:, : phrase.shape[0]] = phrase
    module.set_context(context.to(embedding.weight.dtype))
    return module.context


def _prompt_modules(
    model: nn.Module,
) -> tuple[XClipPromptContext, XClipDeepPrompts, XClipVisionPrompts, XClipDeepPrompts]:
    """The (text context, text deep, vision tokens, vision deep) modules of an XClipModel."""
    text, vision = model.text_model, model.vision_model
    return text.prompt_context, text.deep_prompts, vision.prompt_tokens, vision.deep_prompts


def resolve_vl_prompts(config: XClipAdapterConfig, model: nn.Module) -> XClipAdapterConfig:
    """`config` with the VL prompt sizes left at None filled in: the model's own prompts where it has them (they are
    then trained as they are), else 10 tokens in every layer. Raises when requested sizes contradict the model's
    prompts or its layer counts."""
    vl = config.vl_prompts
    if vl is None:
        return config
    context, text_deep, tokens, vision_deep = _prompt_modules(model)
    has = {
        "text_tokens": context.num_context or None,
        "vision_tokens": tokens.num_tokens or None,
        "text_depth": 1 + text_deep.num_layers if context.num_context else None,
        "vision_depth": 1 + vision_deep.num_layers if tokens.num_tokens else None,
    }
    if has["text_depth"] and has["vision_depth"] and has["text_depth"] != has["vision_depth"]:
        raise ValueError(
            f"The model's text prompts reach {has['text_depth']} layers and its vision prompts {has['vision_depth']}; "
            "vl-prompts trains prompts of one depth."
        )
    own_depth = has["text_depth"] or has["vision_depth"]
    resolved = {
        "text_tokens": vl.text_tokens or has["text_tokens"] or 10,
        "vision_tokens": vl.vision_tokens if vl.vision_tokens is not None else (has["vision_tokens"] or 10),
    }
    text_layers = model.config.text_config.num_hidden_layers
    vision_layers = model.config.vision_config.num_hidden_layers
    layers = min(text_layers, vision_layers) if resolved["vision_tokens"] else text_layers
    resolved["depth"] = vl.depth or own_depth or layers
    for name, mine in (
        ("text_tokens", has["text_tokens"]),
        ("vision_tokens", has["vision_tokens"]),
        ("depth", own_depth),
    ):
        if mine is not None and resolved[name] != mine:
            raise ValueError(
                f"The model already carries learned prompts ({name.replace('_', ' ')} {mine}); vl-prompts trains them "
                f"as they are: leave {name} unset or use {mine}, not {resolved[name]}."
            )
    if resolved["depth"] > layers:
        raise ValueError(
            f"prompt depth {resolved['depth']} exceeds the model's layers (text {text_layers}, vision {vision_layers})."
        )
    return replace(config, vl_prompts=replace(vl, **resolved))


def init_vl_prompts(
    model: nn.Module,
    vl_prompts: VLPromptsConfig,
    *,
    tokenizer: Any = None,
    generator: torch.Generator | None = None,
) -> list[nn.Module]:
    """Create the VL prompts (resolved sizes, see [`resolve_vl_prompts`]) that `model` does not have yet.

    The text context starts from the token embeddings of `init_text` when it has at least `text_tokens` tokens (the
    original's rule), otherwise, like every other prompt, from N(0, init_std). Returns the modules that were filled.
    """
    if vl_prompts.text_tokens is None or vl_prompts.vision_tokens is None or vl_prompts.depth is None:
        raise ValueError("Resolve the VL prompt sizes first (resolve_vl_prompts).")
    context, text_deep, tokens, vision_deep = _prompt_modules(model)
    created: list[nn.Module] = []
    text_width = context.hidden_size
    vision_width = tokens.hidden_size
    dtype = model.get_input_embeddings().weight.dtype

    def random(*shape: int) -> torch.Tensor:
        return (torch.randn(*shape, generator=generator) * vl_prompts.init_std).to(dtype)

    n_text, n_vision, deep = vl_prompts.text_tokens, vl_prompts.vision_tokens, vl_prompts.depth - 1
    if context.context is None:
        phrase = _phrase_embeddings(model, vl_prompts.init_text, tokenizer) if vl_prompts.init_text else None
        if phrase is not None and phrase.shape[0] >= n_text:
            context.set_context(phrase[:n_text].to(dtype))
        else:
            context.set_context(random(n_text, text_width))
        created.append(context)
    if deep and text_deep.tokens is None:
        text_deep.set_tokens(random(deep, n_text, text_width))
        created.append(text_deep)
    if n_vision and tokens.tokens is None:
        tokens.set_tokens(random(n_vision, vision_width))
        created.append(tokens)
    if n_vision and deep and vision_deep.tokens is None:
        vision_deep.set_tokens(random(deep, n_vision, vision_width))
        created.append(vision_deep)
    return created


def _phrase_embeddings(model: nn.Module, text: str, tokenizer: Any) -> torch.Tensor:
    """Token embeddings (n, width) of `text` (cleaned as the original), without start / end tokens."""
    if tokenizer is None:
        raise ValueError(f"Initialising the prompt context from {text!r} needs the tokenizer.")
    embedding = model.get_input_embeddings()
    token_ids = tokenizer(clean_text(text), add_special_tokens=False)["input_ids"]
    unknown = getattr(tokenizer, "unk_token_id", None)
    if not token_ids or (unknown is not None and unknown in token_ids):
        raise ValueError(f"The tokenizer cannot spell the prompt init text {text!r} (unknown tokens).")
    with torch.no_grad():
        return embedding.weight[torch.tensor(token_ids, device=embedding.weight.device)].detach().float().cpu()


def enable_gradient_checkpointing(model: nn.Module, use_reentrant: bool = False) -> None:
    """Turn on gradient checkpointing of the encoder layers of `model` (before or after peft wrapping).

    With `use_reentrant=True` the checkpointed segments only get gradients when their inputs require grad; with
    frozen embeddings they do not, so `enable_input_require_grads()` makes the token and patch embedding outputs
    require grad (peft does it only when checkpointing was on before wrapping).
    """
    base = unwrap_model(model)
    kwargs = {"use_reentrant": use_reentrant}
    if hasattr(base, "activation_checkpointing_enable"):  # transformers >= 5.x; the old name warns
        base.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    if use_reentrant and not getattr(base, "_require_grads_hooks", None):  # transformers may have done it already
        base.enable_input_require_grads()


def get_xclip_peft_model(
    model: XClipModel,
    config: XClipAdapterConfig | None = None,
    *,
    tokenizer: Any = None,
    class_names: Sequence[str] | None = None,
    adapter_name: str = DEFAULT_ADAPTER_NAME,
    seed: int | None = None,
    **overrides: Any,
):
    """Wrap `model` in a `peft.PeftModel` with the adapters of `config`.

    Args:
        model: a base [`XClipModel`] (its weights are frozen; adapters are added in place).
        config: what to adapt; default `XClipAdapterConfig.for_method("lora")`. Keyword `overrides` replace fields.
        tokenizer: the CLIP tokenizer, needed for a CoOp / VL prompt context initialised from a phrase.
        class_names: class texts (their number sizes a class-specific CoOp context).
        adapter_name: peft adapter name.
        seed: seeds the random parts of the initialisation (CoOp random context, VL prompts).

    Returns:
        `peft.PeftModel` with `task_type=None`; `model(input_ids=..., pixel_values=..., labels=...)` works as on the
        base model, and `print_trainable_parameters()` shows what trains.
    """
    from peft import get_peft_model

    if config is None:
        config = XClipAdapterConfig.for_method("lora", **overrides)
    elif overrides:
        config = XClipAdapterConfig(**{**config.to_dict(), **overrides})
    if hasattr(model, "peft_config"):
        raise ValueError("The model is already a PeftModel; pass the base XClipModel (or use add_adapter).")
    config = resolve_vl_prompts(config, model)
    peft_config = to_peft_config(config, model)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    created: list[nn.Module] = []
    if config.coop is not None:
        num_classes = len(class_names) if class_names is not None else None
        init_prompt_context(model, config.coop, tokenizer=tokenizer, num_classes=num_classes, generator=generator)
        created.append(_prompt_context(model))
    if config.vl_prompts is not None:
        created += init_vl_prompts(model, config.vl_prompts, tokenizer=tokenizer, generator=generator)
    peft_model = get_peft_model(model, peft_config, adapter_name=adapter_name)
    # peft copied the new prompts into the adapter; the base modules go back to empty so that the base model
    # (`disable_adapter()`, other adapters) has none. Prompts the base model had stay.
    for module in peft_model.modules():
        if getattr(module, "original_module", None) in created:
            module.original_module.clear()
    return peft_model


def adapter_parameter_count(peft_model: nn.Module) -> tuple[int, int]:
    """(trainable parameters, all parameters) of a peft model, counting each modules-to-save copy once."""
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in peft_model.parameters())
    return trainable, total


def text_is_trainable(peft_model: nn.Module) -> bool:
    """Whether training changes the text embeddings (CoOp context, LoRA in the text tower or its projection, a label
    prompter); when not, they can be computed once."""
    return any(
        param.requires_grad
        and ("text_model." in name or "text_projection" in name or f"{LABEL_PROMPTER_MODULE}." in name)
        for name, param in peft_model.named_parameters()
    )


def default_learning_rates() -> dict[str, float]:
    """Per-method learning rates used when none is given (AdamW, (0.9, 0.98), cosine with warm-up).

    LoRA 2e-4; CoOp context 2e-3 (CoOp's SGD rate); prompt generator / MIT 2e-5 (10x the base rate of the original
    few-shot recipe, 2e-6, as the original gives its new modules 10x); VL prompts 8e-3 (ViFi-CLIP's few-shot
    prompting recipe, AdamW); full fine-tuning 1e-5; LLM label prompter 1e-3 (a small transformer trained from scratch
    and its prompt tokens).
    """
    return {
        "lora": 2e-4,
        "coop": 2e-3,
        "prompt-generator": 2e-5,
        "vl-prompts": 8e-3,
        "llm-prompts": 1e-3,
        FULL_METHOD: 1e-5,
    }


def parameter_groups(peft_model: nn.Module, learning_rates: dict[str, float], weight_decay: float) -> list[dict]:
    """AdamW parameter groups by method (`lora`, `coop`, `prompt-generator`, `vl-prompts`, `llm-prompts`; `full` for
    a model that is not a peft model), without weight decay for 1-D parameters (biases, LayerNorms, `alpha`) as in the
    original's optimizer, nor for a CoOp context or the label prompter's prompt tokens, positions and output offsets."""
    groups: dict[tuple[str, bool], list[nn.Parameter]] = {}
    full = not hasattr(peft_model, "peft_config")
    trained = [(name, param) for name, param in peft_model.named_parameters() if param.requires_grad]
    vl_prompts = any(".prompt_tokens." in name or ".deep_prompts." in name for name, _ in trained)
    for name, param in trained:
        if f"{LABEL_PROMPTER_MODULE}." in name:
            decay = param.ndim > 1 and not name.endswith(("prompt_tokens", "position", "output_bias"))
            groups.setdefault(("llm-prompts", decay), []).append(param)
            continue
        if full:
            method = FULL_METHOD
        elif ".prompt_tokens." in name or ".deep_prompts." in name:
            method = "vl-prompts"
        elif f"{PROMPT_CONTEXT_MODULE}." in name:
            method = "vl-prompts" if vl_prompts else "coop"
        elif "modules_to_save" in name:
            method = "prompt-generator"
        else:
            method = "lora"
        decay = param.ndim > 1 and method != "coop"
        groups.setdefault((method, decay), []).append(param)
    if not groups:
        raise ValueError("The model has no trainable parameters.")
    missing = {method for method, _ in groups} - set(learning_rates)
    if missing:
        raise ValueError(f"No learning rate for {sorted(missing)}.")
    return [
        {"params": params, "lr": learning_rates[method], "weight_decay": weight_decay if decay else 0.0, "name": method}
        for (method, decay), params in groups.items()
    ]


def prepare_full_finetuning(model: XClipModel) -> XClipModel:
    """Make every weight of `model` trainable except the logit scale (frozen in every original X-CLIP setting)."""
    for name, param in model.named_parameters():
        param.requires_grad_("logit_scale" not in name)
    return model


__all__ = [
    "adapter_parameter_count",
    "default_learning_rates",
    "enable_gradient_checkpointing",
    "get_xclip_peft_model",
    "init_prompt_context",
    "init_vl_prompts",
    "parameter_groups",
    "prepare_full_finetuning",
    "resolve_vl_prompts",
    "text_is_trainable",
]
