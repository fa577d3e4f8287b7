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
* **VL prompts** (independent vision-language prompting, IVLP; ViFi-CLIP's "bridge and prompt" recipe): learned text
  context after the start token and vision tokens after the patch tokens, each replaced by its own tokens in layers
  1..depth-1 (deep prompts). They live in the model's `prompt_context`, `vision_model.prompt_tokens` and
  `{text,vision}_model.deep_prompts` modules (empty on a base model; a converted prompted ViFi-CLIP has them) and
  are trained and saved as modules to save.
* **LLM prompts** (`llm-prompts`): a language-model label prompter (`hf_xclip.language.prompter`), attached to the model
  as its `label_prompter` outside peft (it holds a frozen language model); `XClipAdapterConfig.llm_prompter` says how
  to build it, the training loop trains it and `hf_xclip.finetuning.adapters.save_adapter` saves it next to the peft adapter.

Any combination is one peft config: a LoRA-family config whose `modules_to_save` carries the CoOp context, the
VL prompts and the prompt generator (a config without low-rank layers uses peft's dummy target modules).

Use `task_type=None` (what [`get_xclip_peft_model`] does): peft's task-specific wrappers assume a language model's
`forward` signature (`"FEATURE_EXTRACTION"` is the one that breaks transformers' X-CLIP port, which then receives
`inputs_embeds` in its vision tower); X-CLIP needs its own arguments (`pixel_values`, `labels`, `text_embeds`)
passed through unchanged.

Gradient checkpointing: see [`enable_gradient_checkpointing`] (with `use_reentrant=True` the inputs of the
checkpointed layers must require gradients, which `enable_input_require_grads()` arranges).

Example:

```python
>>> from hf_xclip import XClipModel
>>> from hf_xclip.finetuning.peft_model import XClipAdapterConfig, get_xclip_peft_model
>>> model = XClipModel.from_pretrained("microsoft/xclip-base-patch32")  # doctest: +SKIP
>>> peft_model = get_xclip_peft_model(model, XClipAdapterConfig.for_method("lora"))  # doctest: +SKIP
>>> peft_model.save_pretrained("my-adapter")  # doctest: +SKIP
```
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import torch
from torch import nn

from ..fingerprint import LABEL_PROMPTER_MODULE
from ..language.prompter import LLMPrompterConfig
from ..modeling_prompts import XClipDeepPrompts, XClipPromptContext, XClipVisionPrompts
from ..modeling_xclip import XClipModel
from ..processing_xclip import clean_text

METHODS: tuple[str, ...] = ("lora", "coop", "prompt-generator", "vl-prompts", "llm-prompts", "full")
# Full fine-tuning: every weight trains, no peft adapter; it combines with no other method.
FULL_METHOD = "full"
LORA_TYPES: tuple[str, ...] = ("lora", "dora", "rslora", "loha", "lokr")
PROMPT_GENERATOR_MODULES: tuple[str, ...] = ("prompts_generator", "prompts_visual_layernorm", "prompts_visual_proj")
PROMPT_CONTEXT_MODULE = "prompt_context"
VISION_PROMPT_MODULE = "vision_model.prompt_tokens"
TEXT_DEEP_PROMPT_MODULE = "text_model.deep_prompts"
VISION_DEEP_PROMPT_MODULE = "vision_model.deep_prompts"
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
class VLPromptsConfig:
    """Independent vision-language prompting (IVLP, as ViFi-CLIP's prompting stage): `text_tokens` context vectors
    after the start token, `vision_tokens` tokens after the patch tokens, and in layers 1..depth-1 of each tower
    their own tokens in those positions. Sizes left at None take the model's own prompts (a converted prompted
    ViFi-CLIP) or the original few-shot recipe: 10 tokens, every layer.
    """

    vision_tokens: int | None = field(
        default=None, metadata={"help": "Vision prompt tokens (None: the model's, or 10). 0: text prompts only."}
    )
    text_tokens: int | None = field(default=None, metadata={"help": "Text context vectors (None: the model's, or 10)."})
    depth: int | None = field(
        default=None,
        metadata={"help": "Layers of each tower with their own prompts, from the first (None: the model's, or all)."},
    )
    init_text: str | None = field(
        default="a photo of a",
        metadata={"help": "Phrase initialising the text context when it has at most as many tokens (the original's "
                  "rule); otherwise, and for every other prompt, N(0, init_std)."},
    )
    init_std: float = field(default=0.02, metadata={"help": "Std of the random initialisation."})

    def __post_init__(self) -> None:
        for name in ("vision_tokens", "text_tokens"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"VLPromptsConfig.{name} must be >= 0, got {value}.")
        if self.text_tokens == 0:
            raise ValueError("VLPromptsConfig.text_tokens must be at least 1 (the deep text prompts replace them).")
        if self.depth is not None and self.depth < 1:
            raise ValueError(f"VLPromptsConfig.depth must be at least 1, got {self.depth}.")
        if self.init_std <= 0:
            raise ValueError(f"VLPromptsConfig.init_std must be positive, got {self.init_std}.")


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
    vl_prompts: VLPromptsConfig | None = field(
        default=None, metadata={"help": "Vision-language prompts, text context included (None: none)."}
    )
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
    llm_prompter: LLMPrompterConfig | None = field(
        default=None, metadata={"help": "A language-model label prompter trained with the adapters (None: none)."}
    )

    def __post_init__(self) -> None:
        if isinstance(self.coop, dict):
            self.coop = CoOpConfig(**self.coop)
        if isinstance(self.vl_prompts, dict):
            self.vl_prompts = VLPromptsConfig(**self.vl_prompts)
        if self.coop is not None and self.vl_prompts is not None:
            raise ValueError("vl-prompts already learn the text context after the start token: drop coop.")
        if isinstance(self.llm_prompter, dict):
            self.llm_prompter = LLMPrompterConfig.from_dict(self.llm_prompter)
        if self.llm_prompter is not None and self.coop is not None and self.coop.class_specific:
            raise ValueError("llm-prompts cannot be combined with a class-specific CoOp context; use a unified one.")
        if self.full_finetune:
            if (
                self.lora_type is not None
                or self.coop is not None
                or self.vl_prompts is not None
                or self.llm_prompter is not None
                or self.modules_to_save()
            ):
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
        adapts = self.lora_type is not None or self.coop is not None or self.vl_prompts is not None
        if not adapts and self.llm_prompter is None and not self.modules_to_save():
            raise ValueError(
                "XClipAdapterConfig adapts nothing: set lora_type, coop, vl_prompts, train_prompt_generator, "
                "train_mit, train_logit_scale, extra_modules_to_save or llm_prompter."
            )

    @classmethod
    def for_method(cls, methods: str | Iterable[str], **overrides: Any) -> XClipAdapterConfig:
        """Preset for `hf-xclip finetune --method`: one of, or a combination of, `"lora"`, `"coop"`,
        `"prompt-generator"`, `"vl-prompts"`, `"llm-prompts"`. Keyword arguments override fields.

        * `lora`: LoRA r=8 on the frame attention and the cross-frame message layers (text tower frozen).
        * `coop`: unified context of the token embeddings of "a photo of a".
        * `prompt-generator`: the prompt generator and the MIT trained in full.
        * `vl-prompts`: vision and text prompts in every layer, 10 tokens each (the model's own prompts if it has
          them), as ViFi-CLIP's few-shot prompting.
        * `llm-prompts`: a language-model label prompter (`llm_prompter=LLMPrompterConfig(language_model=...)`
          names the language model; required).
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
        if "vl-prompts" in methods:
            preset["vl_prompts"] = VLPromptsConfig()
        preset.update(overrides)
        if "llm-prompts" in methods and preset.get("llm_prompter") is None:
            raise ValueError("--method llm-prompts needs a language model: pass llm_prompter=LLMPrompterConfig(...).")
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
        if self.vl_prompts is not None:
            names.append("vl-prompts")
        if self.train_prompt_generator:
            names.append("prompt-generator")
        if self.train_mit:
            names.append("mit")
        if self.llm_prompter is not None:
            names.append("llm-prompts")
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
        """Module names peft trains in full and saves with the adapter (for `vl_prompts`, the sizes must be
        resolved: see [`resolve_vl_prompts`])."""
        names = []
        if self.coop is not None:
            names.append(PROMPT_CONTEXT_MODULE)
        if self.vl_prompts is not None:
            names.extend(vl_prompt_modules(self.vl_prompts))
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


def vl_prompt_modules(vl_prompts: VLPromptsConfig) -> list[str]:
    """Modules to save for VL prompts: the text context, and the vision tokens and deep prompts when there are any
    (a module without prompts cannot be saved, so unresolved sizes count as present)."""
    names = [PROMPT_CONTEXT_MODULE]
    deep = vl_prompts.depth is None or vl_prompts.depth > 1
    vision = vl_prompts.vision_tokens is None or vl_prompts.vision_tokens > 0
    if vision:
        names.append(VISION_PROMPT_MODULE)
    if deep:
        names.append(TEXT_DEEP_PROMPT_MODULE)
    if deep and vision:
        names.append(VISION_DEEP_PROMPT_MODULE)
    return names


def _prompt_modules(model: nn.Module) -> tuple[XClipPromptContext, XClipDeepPrompts, XClipVisionPrompts, XClipDeepPrompts]:
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
    for name, mine in (("text_tokens", has["text_tokens"]), ("vision_tokens", has["vision_tokens"]), ("depth", own_depth)):
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
        "lora": 2e-4, "coop": 2e-3, "prompt-generator": 2e-5, "vl-prompts": 8e-3, "llm-prompts": 1e-3, FULL_METHOD: 1e-5
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
    "CoOpConfig",
    "FULL_METHOD",
    "LORA_TYPES",
    "METHODS",
    "VLPromptsConfig",
    "XClipAdapterConfig",
    "adapter_parameter_count",
    "default_learning_rates",
    "enable_gradient_checkpointing",
    "get_xclip_peft_model",
    "init_prompt_context",
    "init_vl_prompts",
    "lora_target_modules",
    "parameter_groups",
    "prepare_full_finetuning",
    "resolve_vl_prompts",
    "text_is_trainable",
    "to_peft_config",
]
