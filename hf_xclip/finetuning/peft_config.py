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
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from torch import nn

from ..language.prompter import LLMPrompterConfig
from ..modeling_xclip import XClipModel

METHODS: tuple[str, ...] = ("lora", "coop", "prompt-generator", "vl-prompts", "llm-prompts", "full")
# Full fine-tuning: every weight trains, no peft adapter; it combines with no other method.
FULL_METHOD = "full"
LORA_TYPES: tuple[str, ...] = ("lora", "dora", "rslora", "loha", "lokr")
# The parts of X-CLIP low-rank layers can go in: CLI name -> `lora_target_modules` keyword (and the
# `XClipAdapterConfig.lora_<keyword>` switch); the layers inside the chosen transformers are LORA_LAYERS.
LORA_PARTS: dict[str, str] = {
    "text": "text",
    "vision": "vision",
    "cross-frame": "cross_frame",
    "mit": "mit",
    "prompt-generator": "prompt_generator",
    "projections": "projections",
}
LORA_LAYERS: tuple[str, ...] = ("attention", "mlp")
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
        _check_at_least(self, "num_context", 1)
        if self.init_text is not None and not self.init_text.strip():
            raise ValueError("CoOpConfig.init_text is empty; use None for a random initialisation.")
        _check_at_least(self, "num_classes", 1)
        _check_init_std(self)


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
        metadata={
            "help": "Phrase initialising the text context when it has at most as many tokens (the original's "
            "rule); otherwise, and for every other prompt, N(0, init_std)."
        },
    )
    init_std: float = field(default=0.02, metadata={"help": "Std of the random initialisation."})

    def __post_init__(self) -> None:
        _check_at_least(self, "vision_tokens", 0)
        _check_at_least(self, "text_tokens", 0)
        if self.text_tokens == 0:
            raise ValueError("VLPromptsConfig.text_tokens must be at least 1 (the deep text prompts replace them).")
        _check_at_least(self, "depth", 1)
        _check_init_std(self)


def _check_at_least(config: Any, name: str, minimum: int) -> None:
    """A prompt config's size field: None (the default rule) or at least `minimum`."""
    value = getattr(config, name)
    if value is not None and value < minimum:
        bound = ">= 0" if minimum == 0 else f"at least {minimum}"
        raise ValueError(f"{type(config).__name__}.{name} must be {bound}, got {value}.")


def _check_init_std(config: Any) -> None:
    if config.init_std <= 0:
        raise ValueError(f"{type(config).__name__}.init_std must be positive, got {config.init_std}.")


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
        metadata={
            "help": "Train every weight of the model except the logit scale (no peft adapter; the result is "
            "a whole model). Excludes every other option."
        },
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
        keywords = [*LORA_PARTS.values(), *LORA_LAYERS]
        return lora_target_modules(**{keyword: getattr(self, f"lora_{keyword}") for keyword in keywords})

    def lora_parts(self) -> str:
        """Human-readable list of where the low-rank layers go."""
        if self.target_modules is not None:
            return f"target_modules={self.target_modules!r}"
        parts = [part for part, keyword in LORA_PARTS.items() if getattr(self, f"lora_{keyword}")]
        layers = [layer for layer in LORA_LAYERS if getattr(self, f"lora_{layer}")]
        return f"{', '.join(parts)} ({' + '.join(layers)} layers)"

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


__all__ = [
    "CoOpConfig",
    "FULL_METHOD",
    "LORA_LAYERS",
    "LORA_PARTS",
    "LORA_TYPES",
    "METHODS",
    "VLPromptsConfig",
    "XClipAdapterConfig",
    "lora_target_modules",
    "to_peft_config",
]
