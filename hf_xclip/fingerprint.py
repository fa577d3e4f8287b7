"""Fingerprints of a model's weights: which model (and adapter) produced a label bank, an index or an export.

A fingerprint is the SHA-256 of the parameters and buffers that decide one side's output (names, shapes and values
rounded to bfloat16, so that an fp32 model and its bf16 / fp32 copies agree while any trained change shows). The
text side covers the text tower, the text projection, any learned prompts or adapters inside them and an attached
language-model label prompter (its weights and settings, and the frozen language model's architecture through the
prompter's identity buffer, not the language model's weights); the video side the vision tower, visual projection, MIT
and prompt generator; `"all"` every weight.
"""

from __future__ import annotations

import hashlib
from typing import Literal

import torch
from torch import nn

Part = Literal["text", "video", "all"]

# Where a language-model label prompter (`hf_xclip.llm_prompter`) is attached to an `XClipModel`: its weights (and
# its identity buffer, which covers its settings and the language model's architecture) decide the label embeddings.
LABEL_PROMPTER_MODULE = "label_prompter"

# Top-level module names (as in `XClipModel`) whose weights decide each side's output.
_TEXT_MODULES = ("text_model", "text_projection", LABEL_PROMPTER_MODULE)
_VIDEO_MODULES = (
    "vision_model",
    "video_model",  # VideoPrism's video tower (hf_xclip.modeling_video_text)
    "logit_scale",  # image-text models' scale and bias (X-CLIP's lives in logit_scale_module)
    "logit_bias",
    "visual_projection",
    "mit",
    "prompts_visual_layernorm",
    "prompts_visual_proj",
    "prompts_generator",
    "logit_scale_module",
)


def _belongs(name: str, part: Part) -> bool:
    if part == "all":
        return True
    modules = _TEXT_MODULES if part == "text" else _VIDEO_MODULES
    # peft wraps the model (`base_model.model.text_model...`) and its modules to save (`...modules_to_save...`):
    # match any dotted component, not only the first.
    return any(component in modules for component in name.split("."))


def _canonical_name(name: str) -> str:
    """The name a weight has in the plain model: peft's wrapper prefix and `base_layer` level removed, so that a peft
    model whose adapters leave a side untouched has that side's plain fingerprint."""
    name = name.removeprefix("base_model.model.")
    return name.replace(".base_layer.", ".")


def model_fingerprint(model: nn.Module, part: Part = "all") -> str:
    """SHA-256 hex digest of the weights of `part` of `model` (an `XClipModel` or a peft model around one).

    Args:
        model: the model.
        part: `"text"` (what label embeddings depend on), `"video"` (what video embeddings and prompt features
            depend on) or `"all"`.
    """
    if part not in ("text", "video", "all"):
        raise ValueError(f"part must be 'text', 'video' or 'all', got {part!r}.")
    recorded = getattr(model, "weights_fingerprint", None)
    if callable(recorded):  # a model without torch weights (an ONNX export) knows its source model's fingerprints
        return recorded(part)
    digest = hashlib.sha256()
    tensors = [*model.named_parameters(), *model.named_buffers()]
    found = 0
    for name, tensor in sorted(((_canonical_name(n), t) for n, t in tensors), key=lambda item: item[0]):
        if tensor is None or not _belongs(name, part) or name.endswith(("position_ids", "device_anchor")):
            continue
        found += 1
        value = tensor.detach()
        if value.is_floating_point():
            value = value.to(torch.bfloat16).view(torch.int16)
        digest.update(f"{name}:{tuple(value.shape)}:{value.dtype};".encode())
        digest.update(value.cpu().contiguous().numpy().tobytes())
    if not found:
        raise ValueError(f"{type(model).__name__} has no {part} weights to fingerprint.")
    return digest.hexdigest()


__all__ = ["LABEL_PROMPTER_MODULE", "model_fingerprint"]
