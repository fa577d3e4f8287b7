"""Reading CLIP weights in the original (OpenAI) naming from a transformers CLIP directory, a safetensors file, an
OpenAI state dict or OpenAI's TorchScript release (``ViT-B-16.pt``)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from ..configuration_xclip import heads_for_width
from .checkpoint import ConversionError, is_torchscript_archive, read_original_checkpoint
from .key_mapping import hf_to_original

# Entries OpenAI's TorchScript state dict carries besides weights.
_NON_WEIGHTS = ("input_resolution", "context_length", "vocab_size")
_HF_PREFIXES = ("text_model.", "vision_model.", "visual_projection.", "text_projection.", "logit_scale")


def _read_transformers_weights(directory: Path) -> dict[str, torch.Tensor]:
    single = directory / "model.safetensors"
    if single.is_file():
        return load_file(str(single))
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        weights: dict[str, torch.Tensor] = {}
        for shard in sorted(set(json.loads(index.read_text())["weight_map"].values())):
            weights.update(load_file(str(directory / shard)))
        return weights
    bin_file = directory / "pytorch_model.bin"
    if bin_file.is_file():
        return torch.load(bin_file, map_location="cpu", weights_only=True)
    raise ConversionError(
        f"{directory} has no model.safetensors, model.safetensors.index.json or pytorch_model.bin; expected a "
        "transformers CLIP directory (CLIPModel.save_pretrained)."
    )


def _check_transformers_heads(directory: Path, weights: dict[str, torch.Tensor]) -> None:
    config_path = directory / "config.json"
    if not config_path.is_file():
        return
    config = json.loads(config_path.read_text())
    if config.get("model_type") not in (None, "clip", "metaclip_2"):  # MetaCLIP 2: the same ViT and text layout
        raise ConversionError(f"{directory} holds a `{config.get('model_type')}` model; expected a CLIP model.")
    for section, key in (
        ("text_config", "text_model.final_layer_norm.weight"),
        ("vision_config", "vision_model.post_layernorm.weight"),
    ):
        heads = (config.get(section) or {}).get("num_attention_heads")
        if heads is not None and key in weights and heads != heads_for_width(weights[key].shape[0]):
            raise ConversionError(
                f"{directory}: {section}.num_attention_heads is {heads}, but X-CLIP uses width // 64 = "
                f"{heads_for_width(weights[key].shape[0])} heads for width {weights[key].shape[0]}."
            )


def from_transformers_clip(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers `CLIPModel` keys -> original CLIP keys (buffers such as ``position_ids`` dropped)."""
    kept = {
        key: value
        for key, value in weights.items()
        if key.startswith(_HF_PREFIXES) and not key.endswith("position_ids")
    }
    return hf_to_original(kept)


def load_clip_state_dict(source: str | Path) -> dict[str, torch.Tensor]:
    """CLIP weights in the original naming (``visual.*``, ``transformer.*``, ``token_embedding.weight``, ...).

    Args:
        source: a transformers CLIP directory (or its ``.safetensors``), an OpenAI-format state dict saved with
            ``torch.save``, or OpenAI's TorchScript release file. TorchScript archives are read with
            ``torch.jit.load`` (TorchScript, not pickle, so no Python code runs).
    """
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"CLIP weights not found: {path}")
    if path.is_dir():
        weights = _read_transformers_weights(path)
        _check_transformers_heads(path, weights)
        return from_transformers_clip(weights)
    if path.suffix == ".safetensors":
        return from_transformers_clip(load_file(str(path)))
    if is_torchscript_archive(path):
        try:
            weights = dict(torch.jit.load(str(path), map_location="cpu").state_dict())
        except Exception as error:
            raise ConversionError(f"cannot read the TorchScript archive {path}: {error}") from error
    else:
        weights = read_original_checkpoint(path).state_dict
    if any(key.startswith(_HF_PREFIXES[:2]) for key in weights):
        return from_transformers_clip(weights)
    return {key: value for key, value in weights.items() if key not in _NON_WEIGHTS}
