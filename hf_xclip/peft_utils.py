"""PEFT adapters for X-CLIP: LoRA (and relatives), CoOp context vectors and X-CLIP's own prompt generator.

Everything here produces an ordinary `peft.PeftModel`: `save_pretrained` writes only the adapter, and
`PeftModel.from_pretrained(base, dir)`, `peft_model.load_adapter(dir, name)` or transformers'
`model.load_adapter(dir)` restore it on a plain [`XClipModel`]. peft's method registry is closed, so the pieces map
onto mechanisms peft already has:

* **LoRA / DoRA / rsLoRA / LoHa / LoKr**: a tuner on the `nn.Linear` layers chosen by [`lora_target_modules`]
  (text tower, vision tower, cross-frame message layers, MIT, prompt generator, projections; each on or off).
* **CoOp** (Zhou et al., "Learning to Prompt for Vision-Language Models"): `n` learned context vectors inserted
  after the start token and before the class name, unified or class-specific, initialised from a phrase's token
  embeddings or randomly. They live in the text model's `prompt_context` module (an `XClipPromptContext`, empty on a
  base model), trained and saved by peft as a module to save.
* **Prompt generator** (X-CLIP's video-specific prompting) and the **MIT**: trained in full and saved as modules to
  save (`prompts_generator`, `prompts_visual_layernorm`, `prompts_visual_proj`, `mit`).

Any combination is one peft config: a LoRA-family config whose `modules_to_save` carries the CoOp context and the
prompt generator (a config without low-rank layers uses peft's dummy target modules).

Use `task_type=None` (what [`get_xclip_peft_model`] does): peft's task-specific wrappers assume a language model's
`forward` signature (`"FEATURE_EXTRACTION"` is the one that breaks transformers' X-CLIP port, which then receives
`inputs_embeds` in its vision tower); X-CLIP needs its own arguments (`pixel_values`, `labels`, `text_embeds`)
passed through unchanged.

Gradient checkpointing: see [`enable_gradient_checkpointing`] (with `use_reentrant=True` the inputs of the
checkpointed layers must require gradients, which `enable_input_require_grads()` arranges).

Example:

```python
>>> from hf_xclip import XClipModel
>>> from hf_xclip.peft_utils import XClipAdapterConfig, get_xclip_peft_model
>>> model = XClipModel.from_pretrained("microsoft/xclip-base-patch32")  # doctest: +SKIP
>>> peft_model = get_xclip_peft_model(model, XClipAdapterConfig.for_method("lora"))  # doctest: +SKIP
>>> peft_model.save_pretrained("my-adapter")  # doctest: +SKIP
```
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from .modeling_prompts import XClipPromptContext
from .modeling_xclip import XClipModel
from .processing_xclip import clean_text

METHODS: tuple[str, ...] = ("lora", "coop", "prompt-generator", "full")
# Full fine-tuning: every weight trains, no peft adapter; it combines with no other method.
FULL_METHOD = "full"
LORA_TYPES: tuple[str, ...] = ("lora", "dora", "rslora", "loha", "lokr")
PROMPT_GENERATOR_MODULES: tuple[str, ...] = ("prompts_generator", "prompts_visual_layernorm", "prompts_visual_proj")
PROMPT_CONTEXT_MODULE = "prompt_context"
# Name peft gives the adapter when none is given.
DEFAULT_ADAPTER_NAME = "default"

_ATTENTION = r"(q_proj|k_proj|v_proj|out_proj)"
_MLP = r"(fc1|fc2)"


def lora_target_modules(
    *,
    text: bool = False,
    vision: bool = True,
    cross_frame: bool = True,
    mit: bool = False,
    prompt_generator: bool = False,
    projections: bool = False,
    attention: bool = True,
    mlp: bool = False,
) -> str:
    r"""Regular expression (peft matches it against full module names) selecting X-CLIP's `nn.Linear` layers.

    Args:
        text: layers of the text transformer (`text_model.encoder.layers.N`).
        vision: frame self-attention / MLP of the vision transformer (`vision_model.encoder.layers.N`).
        cross_frame: the message layers of every vision layer (`message_fc`, `message_attn.*`).
        mit: layers of the multi-frame integration transformer.
        prompt_generator: cross-attention (`q/k/v_proj`, `proj`) and MLP of the video-specific prompt generator.
        projections: `visual_projection` and `text_projection`.
        attention: include attention projections of the selected transformers.
        mlp: include MLP layers (`fc1`, `fc2`) of the selected transformers.

    Returns:
        A pattern for `LoraConfig(target_modules=...)`.

    Example:

    ```python
    >>> import re
    >>> pattern = lora_target_modules(text=True, vision=False, cross_frame=False)
    >>> bool(re.fullmatch(pattern, "text_model.encoder.layers.3.self_attn.q_proj"))
    True
    >>> bool(re.fullmatch(pattern, "vision_model.encoder.layers.3.self_attn.q_proj"))
    False
    ```
    """
    if not (attention or mlp) and (text or vision or mit):
        raise ValueError("Select `attention` and/or `mlp` layers for the text, vision or MIT towers.")
    blocks = [f"self_attn\\.{_ATTENTION}" if attention else None, f"mlp\\.{_MLP}" if mlp else None]
    block = "|".join(b for b in blocks if b)
    alternatives = []
    if text:
        alternatives.append(f"text_model\\.encoder\\.layers\\.\\d+\\.({block})")
    if vision:
        alternatives.append(f"vision_model\\.encoder\\.layers\\.\\d+\\.({block})")
    if cross_frame:
        alternatives.append(f"vision_model\\.encoder\\.layers\\.\\d+\\.(message_fc|message_attn\\.{_ATTENTION})")
    if mit:
        alternatives.append(f"mit\\.encoder\\.layers\\.\\d+\\.({block})")
    if prompt_generator:
        alternatives.append(r"prompts_generator\.decoder\.\d+\.(cross_attn\.(q_proj|k_proj|v_proj|proj)|mlp\.(0|3))")
    if projections:
        alternatives.append(r"(visual_projection|text_projection)")
    if not alternatives:
        raise ValueError("lora_target_modules: no part of the model selected (text, vision, cross_frame, mit, ...).")
    return rf"(.*\.)?({'|'.join(alternatives)})"


@dataclass
class CoOpConfig:
    """CoOp-style context vectors: `[SOT] ctx_1 ... ctx_n <class name> [EOT]`.

    The text becomes `num_context` tokens longer; padding beyond the text model's positions is dropped and, when a
    class name is too long, its last tokens are (EOT always stays).
    """

    num_context: int | None = field(
        default=None,
        metadata={"help": "Number of context vectors n. Default: the token count of `init_text`, or 16 without it."},
    )
    init_text: str | None = field(
        default="a photo of a",
        metadata={"help": "Phrase whose token embeddings initialise the context (None: random, normal std 0.02)."},
    )
    class_specific: bool = field(
        default=False,
        metadata={"help": "One context per class (the k-th text uses row k) instead of one shared context."},
    )
    num_classes: int | None = field(
        default=None, metadata={"help": "Number of classes, needed for a class-specific context."}
    )
    init_std: float = field(default=0.02, metadata={"help": "Std of the random initialisation."})

    def __post_init__(self) -> None:
        if self.num_context is not None and self.num_context < 1:
            raise ValueError(f"CoOpConfig.num_context must be at least 1, got {self.num_context}.")
        if self.init_text is not None and not self.init_text.strip():
            raise ValueError("CoOpConfig.init_text is empty; use None for a random initialisation.")
        if self.num_classes is not None and self.num_classes < 1:
            raise ValueError(f"CoOpConfig.num_classes must be at least 1, got {self.num_classes}.")
        if self.init_std <= 0:
            raise ValueError(f"CoOpConfig.init_std must be positive, got {self.init_std}.")


@dataclass
class XClipAdapterConfig:
    """What to adapt in an [`XClipModel`]; [`to_peft_config`] turns it into one peft config.

    Use [`XClipAdapterConfig.for_method`] for the presets of `hf-xclip finetune --method`.
    """

    lora_type: Literal["lora", "dora", "rslora", "loha", "lokr"] | None = field(
        default="lora",
        metadata={"help": f"Low-rank adapter family, one of {LORA_TYPES}, or None for no low-rank layers."},
    )
    r: int = field(default=8, metadata={"help": "Rank of the low-rank layers."})
    lora_alpha: int = field(default=16, metadata={"help": "Scaling numerator (LoRA: alpha / r)."})
    lora_dropout: float = field(default=0.0, metadata={"help": "Dropout on the low-rank branch (module dropout)."})
    lora_text: bool = field(default=False, metadata={"help": "LoRA in the text transformer."})
    lora_vision: bool = field(default=True, metadata={"help": "LoRA in the frame layers of the vision transformer."})
    lora_cross_frame: bool = field(default=True, metadata={"help": "LoRA on the cross-frame message layers."})
    lora_mit: bool = field(default=False, metadata={"help": "LoRA in the multi-frame integration transformer."})
    lora_prompt_generator: bool = field(default=False, metadata={"help": "LoRA in the prompt generator."})
    lora_projections: bool = field(default=False, metadata={"help": "LoRA on visual/text projections."})
    lora_attention: bool = field(default=True, metadata={"help": "Target attention projections."})
    lora_mlp: bool = field(default=False, metadata={"help": "Target MLP layers (fc1, fc2)."})
    target_modules: str | list[str] | None = field(
        default=None, metadata={"help": "Explicit peft target_modules, replacing the lora_* switches."}
    )
    coop: CoOpConfig | None = field(default=None, metadata={"help": "CoOp context vectors (None: none)."})
    train_prompt_generator: bool = field(
        default=False, metadata={"help": "Train the video-specific prompt generator in full (modules to save)."}
    )
    train_mit: bool = field(default=False, metadata={"help": "Train the MIT in full (module to save)."})
    train_logit_scale: bool = field(
        default=False, metadata={"help": "Train the logit scale (frozen in every original X-CLIP setting)."}
    )
    extra_modules_to_save: list[str] = field(
        default_factory=list, metadata={"help": "More module names for peft's modules_to_save."}
    )
    full_finetune: bool = field(
        default=False,
        metadata={"help": "Train every weight of the model except the logit scale (no peft adapter; the result is "
                          "a whole model). Excludes every other option."},
    )

    def __post_init__(self) -> None:
        if isinstance(self.coop, dict):
            self.coop = CoOpConfig(**self.coop)
        if self.full_finetune:
            if self.lora_type is not None or self.coop is not None or self.modules_to_save():
                raise ValueError("full_finetune trains every weight: set lora_type=None and no other method.")
            return
        if self.lora_type is not None and self.lora_type not in LORA_TYPES:
            raise ValueError(f"lora_type must be one of {LORA_TYPES} or None, got {self.lora_type!r}.")
        if self.r < 1:
            raise ValueError(f"r must be at least 1, got {self.r}.")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}.")
        if self.lora_type is not None and self.target_modules is None:
            self.lora_targets()  # raises when nothing is selected
        if self.lora_type is None and self.coop is None and not self.modules_to_save():
            raise ValueError(
                "XClipAdapterConfig adapts nothing: set lora_type, coop, train_prompt_generator, train_mit, "
                "train_logit_scale or extra_modules_to_save."
            )

    @classmethod
    def for_method(cls, methods: str | Iterable[str], **overrides: Any) -> XClipAdapterConfig:
        """Preset for `hf-xclip finetune --method`: one of, or a combination of, `"lora"`, `"coop"`,
        `"prompt-generator"`. Keyword arguments override fields.

        * `lora`: LoRA r=8 on the frame attention and the cross-frame message layers (text tower frozen).
        * `coop`: unified context of the token embeddings of "a photo of a".
        * `prompt-generator`: the prompt generator and the MIT trained in full.
        * `full`: every weight (no adapter), alone.
        """
        methods = [methods] if isinstance(methods, str) else list(methods)
        unknown = sorted(set(methods) - set(METHODS))
        if unknown or not methods:
            raise ValueError(f"Unknown adapter method(s) {unknown or methods}; choose from {METHODS}.")
        if FULL_METHOD in methods:
            if len(set(methods)) > 1:
                raise ValueError(f"'{FULL_METHOD}' fine-tuning trains every weight; it combines with no other method.")
            return cls(**{"lora_type": None, "full_finetune": True, **overrides})
        preset: dict[str, Any] = {"lora_type": "lora" if "lora" in methods else None}
        if "coop" in methods:
            preset["coop"] = CoOpConfig()
        if "prompt-generator" in methods:
            preset.update(train_prompt_generator=True, train_mit=True)
        preset.update(overrides)
        return cls(**preset)

    @property
    def methods(self) -> list[str]:
        """The `--method` names this config amounts to."""
        if self.full_finetune:
            return [FULL_METHOD]
        names = []
        if self.lora_type is not None:
            names.append("lora" if self.lora_type == "lora" else self.lora_type)
        if self.coop is not None:
            names.append("coop")
        if self.train_prompt_generator:
            names.append("prompt-generator")
        if self.train_mit:
            names.append("mit")
        return names

    def lora_targets(self) -> str | list[str]:
        """peft `target_modules` of the low-rank layers."""
        if self.target_modules is not None:
            return self.target_modules
        return lora_target_modules(
            text=self.lora_text,
            vision=self.lora_vision,
            cross_frame=self.lora_cross_frame,
            mit=self.lora_mit,
            prompt_generator=self.lora_prompt_generator,
            projections=self.lora_projections,
            attention=self.lora_attention,
            mlp=self.lora_mlp,
        )

    def lora_parts(self) -> str:
        """Human-readable list of where the low-rank layers go."""
        if self.target_modules is not None:
            return f"target_modules={self.target_modules!r}"
        switches = [
            ("text", self.lora_text),
            ("vision", self.lora_vision),
            ("cross-frame", self.lora_cross_frame),
            ("mit", self.lora_mit),
            ("prompt-generator", self.lora_prompt_generator),
            ("projections", self.lora_projections),
        ]
        layers = [name for name, on in (("attention", self.lora_attention), ("mlp", self.lora_mlp)) if on]
        return f"{', '.join(n for n, on in switches if on)} ({' + '.join(layers)} layers)"

    def modules_to_save(self) -> list[str]:
        """Module names peft trains in full and saves with the adapter."""
        names = []
        if self.coop is not None:
            names.append(PROMPT_CONTEXT_MODULE)
        if self.train_prompt_generator:
            names.extend(PROMPT_GENERATOR_MODULES)
        if self.train_mit:
            names.append("mit")
        if self.train_logit_scale:
            names.append("logit_scale_module")
        names.extend(n for n in self.extra_modules_to_save if n not in names)
        return names

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def to_peft_config(config: XClipAdapterConfig, model: XClipModel | None = None):
    """The peft config (task_type None) for `config`; with `model`, modules it lacks are left out of
    `modules_to_save` with an error when a requested one is missing."""
    from peft import LoHaConfig, LoKrConfig, LoraConfig
    from peft.utils.constants import DUMMY_TARGET_MODULES

    if config.full_finetune:
        raise ValueError("full fine-tuning uses no peft adapter (train the model itself).")
    modules_to_save = config.modules_to_save()
    if model is not None:
        _check_modules_exist(model, modules_to_save)
    modules_to_save = modules_to_save or None
    if config.lora_type is None:
        return LoraConfig(target_modules=DUMMY_TARGET_MODULES, modules_to_save=modules_to_save, task_type=None)
    targets = config.lora_targets()
    if config.lora_type in ("loha", "lokr"):
        config_class = LoHaConfig if config.lora_type == "loha" else LoKrConfig
        return config_class(
            r=config.r,
            alpha=config.lora_alpha,
            module_dropout=config.lora_dropout,
            target_modules=targets,
            modules_to_save=modules_to_save,
            task_type=None,
        )
    return LoraConfig(
        r=config.r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=targets,
        modules_to_save=modules_to_save,
        use_dora=config.lora_type == "dora",
        use_rslora=config.lora_type == "rslora",
        task_type=None,
    )


def _check_modules_exist(model: nn.Module, names: Sequence[str]) -> None:
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [n for n in names if n.rsplit(".", 1)[-1] not in present]
    if missing:
        hint = ""
        if set(missing) & {*PROMPT_GENERATOR_MODULES, "mit"}:
            hint = " (this model has no prompt generator or MIT: config.use_prompt_generator / video_pooling)"
        raise ValueError(f"The model has no module(s) {missing} to train{hint}.")


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
    phrase = None
    if coop.init_text is not None:
        if tokenizer is None:
            raise ValueError(f"Initialising the context from {coop.init_text!r} needs the tokenizer.")
        token_ids = tokenizer(clean_text(coop.init_text), add_special_tokens=False)["input_ids"]
        unknown = getattr(tokenizer, "unk_token_id", None)
        if not token_ids or (unknown is not None and unknown in token_ids):
            raise ValueError(f"The tokenizer cannot spell the CoOp init text {coop.init_text!r} (unknown tokens).")
        with torch.no_grad():
            phrase = embedding.weight[torch.tensor(token_ids, device=embedding.weight.device)].detach().float().cpu()
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


def enable_gradient_checkpointing(model: nn.Module, use_reentrant: bool = False) -> None:
    """Turn on gradient checkpointing of the encoder layers of `model` (before or after peft wrapping).

    With `use_reentrant=True` the checkpointed segments only get gradients when their inputs require grad; with
    frozen embeddings they do not, so `enable_input_require_grads()` makes the token and patch embedding outputs
    require grad (peft does it only when checkpointing was on before wrapping).
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
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
        tokenizer: the CLIP tokenizer, needed for a CoOp context initialised from a phrase.
        class_names: class texts (their number sizes a class-specific CoOp context).
        adapter_name: peft adapter name.
        seed: seeds the random parts of the initialisation (CoOp random context).

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
    peft_config = to_peft_config(config, model)
    if config.coop is not None:
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        num_classes = len(class_names) if class_names is not None else None
        init_prompt_context(model, config.coop, tokenizer=tokenizer, num_classes=num_classes, generator=generator)
    peft_model = get_peft_model(model, peft_config, adapter_name=adapter_name)
    if config.coop is not None:
        # peft copied the context into the adapter; the base module goes back to empty so that the base model
        # (`disable_adapter()`, other adapters) has no context.
        for module in peft_model.modules():
            original = getattr(module, "original_module", None)
            if isinstance(original, XClipPromptContext):
                original.context = None
    return peft_model


def adapter_parameter_count(peft_model: nn.Module) -> tuple[int, int]:
    """(trainable parameters, all parameters) of a peft model, counting each modules-to-save copy once."""
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in peft_model.parameters())
    return trainable, total


def text_is_trainable(peft_model: nn.Module) -> bool:
    """Whether training changes the text embeddings (CoOp context, LoRA in the text tower or its projection); when
    not, they can be computed once."""
    return any(
        param.requires_grad and ("text_model." in name or "text_projection" in name)
        for name, param in peft_model.named_parameters()
    )


def default_learning_rates() -> dict[str, float]:
    """Per-method learning rates used when none is given (AdamW, (0.9, 0.98), cosine with warm-up).

    LoRA 2e-4; CoOp context 2e-3 (CoOp's SGD rate); prompt generator / MIT 2e-5 (10x the base rate of the original
    few-shot recipe, 2e-6, as the original gives its new modules 10x); full fine-tuning 1e-5.
    """
    return {"lora": 2e-4, "coop": 2e-3, "prompt-generator": 2e-5, FULL_METHOD: 1e-5}


def parameter_groups(peft_model: nn.Module, learning_rates: dict[str, float], weight_decay: float) -> list[dict]:
    """AdamW parameter groups by method (`lora`, `coop`, `prompt-generator`; `full` for a model that is not a peft
    model), without weight decay for 1-D parameters (biases, LayerNorms, `alpha`) as in the original's optimizer."""
    groups: dict[tuple[str, bool], list[nn.Parameter]] = {}
    full = not hasattr(peft_model, "peft_config")
    for name, param in peft_model.named_parameters():
        if not param.requires_grad:
            continue
        if full:
            method = FULL_METHOD
        elif f"{PROMPT_CONTEXT_MODULE}." in name:
            method = "coop"
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
    "CoOpConfig",
    "FULL_METHOD",
    "LORA_TYPES",
    "METHODS",
    "XClipAdapterConfig",
    "adapter_parameter_count",
    "default_learning_rates",
    "enable_gradient_checkpointing",
    "get_xclip_peft_model",
    "init_prompt_context",
    "lora_target_modules",
    "parameter_groups",
    "prepare_full_finetuning",
    "text_is_trainable",
    "to_peft_config",
]
