"""Fine-tuning: adapter configs (`peft_config`: LoRA family, CoOp, prompt generator, VL prompts, LLM prompts) -> a
`peft.PeftModel` (`peft_model`), few-shot training with accelerate (`training`, `accelerator`), saving and loading
adapters (`adapters`). The peft names (formerly `hf_xclip.peft_utils`) are exported here."""

from .peft_config import (
    FULL_METHOD,
    LORA_TYPES,
    METHODS,
    CoOpConfig,
    VLPromptsConfig,
    XClipAdapterConfig,
    lora_target_modules,
    to_peft_config,
)
from .peft_model import (
    adapter_parameter_count,
    default_learning_rates,
    enable_gradient_checkpointing,
    get_xclip_peft_model,
    init_prompt_context,
    init_vl_prompts,
    parameter_groups,
    prepare_full_finetuning,
    resolve_vl_prompts,
    text_is_trainable,
)

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
