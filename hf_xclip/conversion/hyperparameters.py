"""Every hyperparameter of an original X-CLIP / ViFi-CLIP / CLIP state dict, read from the weights' shapes.

Nothing is taken from names or defaults: widths from matrices, layer counts from block indices, heads as
``width // 64`` (what the original always builds), patch and image size from the patch embedding and the number
of position embeddings, frames from the MIT position embedding.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any

import torch

from ..configuration_xclip import XClipConfig, heads_for_width
from .checkpoint import ConversionError

# Keys that tell the families apart (original naming).
XCLIP_MARKERS = ("visual.transformer.resblocks.0.message_fc.weight", "mit.positional_embedding", "prompts_visual_proj")
CLIP_REQUIRED = (
    "visual.conv1.weight",
    "visual.class_embedding",
    "visual.positional_embedding",
    "visual.proj",
    "positional_embedding",
    "ln_final.weight",
    "text_projection",
)


@dataclass
class ArchitectureSizes:
    """Sizes read from a state dict (original naming); ``mit_layers``/``prompt_layers``/``num_frames`` are 0 for
    a model without those parts, and so are the learned prompt sizes (``*_prompt_tokens``, ``*_prompt_depth``: the
    layers whose input carries prompts) of a model without ViFi-CLIP's vision / language prompts."""

    projection_dim: int
    vision_width: int
    vision_layers: int
    vision_intermediate: int
    patch_size: int
    image_size: int
    text_width: int
    text_layers: int
    text_intermediate: int
    context_length: int
    vocab_size: int
    cross_frame_attention: bool
    num_frames: int
    mit_layers: int
    mit_intermediate: int
    prompt_generator: bool
    prompt_layers: int
    vision_prompt_tokens: int = 0
    vision_prompt_depth: int = 0
    text_prompt_tokens: int = 0
    text_prompt_depth: int = 0

    def describe(self) -> str:
        return ", ".join(f"{key}={value}" for key, value in asdict(self).items())


def _shape(state_dict: dict[str, torch.Tensor], key: str, ndim: int) -> tuple[int, ...]:
    if key not in state_dict:
        raise ConversionError(f"the state dict has no `{key}`; expected an X-CLIP / CLIP checkpoint that has it.")
    shape = tuple(state_dict[key].shape)
    if len(shape) != ndim:
        raise ConversionError(f"`{key}` has shape {shape}; expected a {ndim}-d tensor.")
    return shape


def layer_indices(state_dict: dict[str, torch.Tensor], prefix: str) -> list[int]:
    """Sorted block indices under ``prefix`` (e.g. ``visual.transformer.resblocks.``); they must be 0..n-1."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    indices = sorted({int(match.group(1)) for key in state_dict if (match := pattern.match(key))})
    if indices != list(range(len(indices))):
        raise ConversionError(f"blocks under `{prefix}` are numbered {indices}; expected 0..{len(indices) - 1}.")
    return indices


def _expect(state_dict: dict[str, torch.Tensor], key: str, shape: tuple[int, ...]) -> None:
    actual = tuple(_shape(state_dict, key, len(shape)))
    if actual != shape:
        raise ConversionError(f"`{key}` has shape {actual}; the other weights imply {shape}.")


def _block_sizes(state_dict: dict[str, torch.Tensor], prefix: str, width: int, layers: list[int]) -> int:
    """Check every residual block under `prefix` against `width`; return the MLP width."""
    intermediate = _shape(state_dict, f"{prefix}0.mlp.c_fc.weight", 2)[0] if layers else 4 * width
    for index in layers:
        block = f"{prefix}{index}."
        _expect(state_dict, block + "attn.in_proj_weight", (3 * width, width))
        _expect(state_dict, block + "attn.out_proj.weight", (width, width))
        _expect(state_dict, block + "ln_1.weight", (width,))
        _expect(state_dict, block + "ln_2.weight", (width,))
        _expect(state_dict, block + "mlp.c_fc.weight", (intermediate, width))
        _expect(state_dict, block + "mlp.c_proj.weight", (width, intermediate))
    return intermediate


def _prompt_sizes(
    state_dict: dict[str, torch.Tensor], first: str, blocks: str, width: int, layers: int
) -> tuple[int, int]:
    """(tokens, depth) of learned prompts: `first` (tokens, width) before layer 0 and `<blocks>N.VPT_shallow`
    (tokens, width) for layers N = 1..depth-1 (ViFi-CLIP's prompted CLIP); (0, 0) without prompts."""
    pattern = re.compile(re.escape(blocks) + r"(\d+)\.VPT_shallow$")
    deep = sorted(int(match.group(1)) for key in state_dict if (match := pattern.match(key)))
    if first not in state_dict:
        if deep:
            raise ConversionError(f"`{blocks}N.VPT_shallow` deep prompts without the first layer's `{first}`.")
        return 0, 0
    tokens = _shape(state_dict, first, 2)[0]
    _expect(state_dict, first, (tokens, width))
    if deep != list(range(1, len(deep) + 1)) or len(deep) >= layers:
        raise ConversionError(
            f"deep prompts `{blocks}N.VPT_shallow` for layers {deep}; the original has them in layers 1..depth-1 "
            f"(at most {layers - 1})."
        )
    for index in deep:
        _expect(state_dict, f"{blocks}{index}.VPT_shallow", (tokens, width))
    return tokens, 1 + len(deep)


def infer_sizes(state_dict: dict[str, torch.Tensor]) -> ArchitectureSizes:
    """Read every size from an original-naming state dict (X-CLIP, or plain CLIP / ViFi-CLIP without MIT and
    prompts), checking that all shapes agree."""
    missing = [key for key in CLIP_REQUIRED if key not in state_dict]
    if missing:
        sample = ", ".join(sorted(state_dict)[:5])
        raise ConversionError(
            f"not an X-CLIP / CLIP state dict: missing {', '.join(missing)} (found keys like {sample}). Expected the "
            "original X-CLIP naming (`visual.transformer.resblocks.N...`, `transformer.resblocks.N...`, `mit...`)."
        )
    vision = _vision_sizes(state_dict)
    text = _text_sizes(state_dict, vision["projection_dim"])
    video = _video_sizes(state_dict, vision["vision_width"], vision["projection_dim"])
    prompts = _learned_prompt_sizes(state_dict, vision, text)
    return ArchitectureSizes(**vision, **text, **video, **prompts)


def _encoder_blocks(state_dict: dict[str, torch.Tensor], prefix: str, width: int, what: str) -> tuple[list[int], int]:
    """The block indices of an encoder under `prefix` (``what`` names it in the error when it has none) and the
    width of their MLP, every block checked against `width`."""
    layers = layer_indices(state_dict, prefix)
    if not layers:
        raise ConversionError(f"the state dict has no {what}`{prefix}N` blocks.")
    return layers, _block_sizes(state_dict, prefix, width, layers)


def _vision_sizes(state_dict: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The image encoder's fields of `ArchitectureSizes` (and the projection width), its cross-frame
    communication (message tokens) checked."""
    vision_width, channels, patch, patch_w = _shape(state_dict, "visual.conv1.weight", 4)
    if channels != 3 or patch != patch_w:
        raise ConversionError(
            f"`visual.conv1.weight` has shape {(vision_width, channels, patch, patch_w)}; expected "
            "(width, 3, patch, patch)."
        )
    positions = _shape(state_dict, "visual.positional_embedding", 2)[0]
    grid = math.isqrt(positions - 1)
    if grid * grid != positions - 1:
        raise ConversionError(
            f"`visual.positional_embedding` has {positions} rows; expected 1 + a square number of patches."
        )
    _expect(state_dict, "visual.positional_embedding", (positions, vision_width))
    _expect(state_dict, "visual.class_embedding", (vision_width,))
    projection_dim = _shape(state_dict, "visual.proj", 2)[1]
    _expect(state_dict, "visual.proj", (vision_width, projection_dim))
    layers, intermediate = _encoder_blocks(state_dict, "visual.transformer.resblocks.", vision_width, "")
    cross_frame = "visual.transformer.resblocks.0.message_fc.weight" in state_dict
    if cross_frame:
        for index in layers:
            block = f"visual.transformer.resblocks.{index}."
            _expect(state_dict, block + "message_fc.weight", (vision_width, vision_width))
            _expect(state_dict, block + "message_ln.weight", (vision_width,))
            _expect(state_dict, block + "message_attn.in_proj_weight", (3 * vision_width, vision_width))
    return {
        "projection_dim": projection_dim,
        "vision_width": vision_width,
        "vision_layers": len(layers),
        "vision_intermediate": intermediate,
        "patch_size": patch,
        "image_size": patch * grid,
        "cross_frame_attention": cross_frame,
    }


def _text_sizes(state_dict: dict[str, torch.Tensor], projection_dim: int) -> dict[str, Any]:
    """The text encoder's fields of `ArchitectureSizes` (``vocab_size`` 0 without a token embedding)."""
    text_width = _shape(state_dict, "ln_final.weight", 1)[0]
    context_length = _shape(state_dict, "positional_embedding", 2)[0]
    _expect(state_dict, "positional_embedding", (context_length, text_width))
    _expect(state_dict, "text_projection", (text_width, projection_dim))
    vocab_size = 0
    if "token_embedding.weight" in state_dict:
        vocab_size = _shape(state_dict, "token_embedding.weight", 2)[0]
        _expect(state_dict, "token_embedding.weight", (vocab_size, text_width))
    layers, intermediate = _encoder_blocks(state_dict, "transformer.resblocks.", text_width, "text ")
    return {
        "text_width": text_width,
        "text_layers": len(layers),
        "text_intermediate": intermediate,
        "context_length": context_length,
        "vocab_size": vocab_size,
    }


def _video_sizes(state_dict: dict[str, torch.Tensor], vision_width: int, projection_dim: int) -> dict[str, Any]:
    """The fields of `ArchitectureSizes` for what X-CLIP adds after the encoders: the MIT (frames, layers, MLP
    width) and the video-specific prompt generator."""
    num_frames = mit_intermediate = 0
    mit_layers: list[int] = []
    if "mit.positional_embedding" in state_dict:
        _, num_frames, mit_width = _shape(state_dict, "mit.positional_embedding", 3)
        _expect(state_dict, "mit.positional_embedding", (1, num_frames, projection_dim))
        mit_layers = layer_indices(state_dict, "mit.resblocks.")
        mit_intermediate = _block_sizes(state_dict, "mit.resblocks.", mit_width, mit_layers)
    prompt_layers = layer_indices(state_dict, "prompts_generator.decoder.")
    if "prompts_visual_proj" in state_dict:
        _expect(state_dict, "prompts_visual_proj", (vision_width, projection_dim))
        _expect(state_dict, "prompts_visual_ln.weight", (vision_width,))
        _expect(state_dict, "prompts_generator.alpha", (projection_dim,))
        for index in prompt_layers:
            block = f"prompts_generator.decoder.{index}."
            for name in ("q_proj", "k_proj", "v_proj", "proj"):
                _expect(state_dict, f"{block}cross_attn.{name}.weight", (projection_dim, projection_dim))
            # the prompt generator's MLP is 4x wide in the original and in hf_xclip (not configurable)
            _expect(state_dict, block + "mlp.0.weight", (4 * projection_dim, projection_dim))
            _expect(state_dict, block + "mlp.3.weight", (projection_dim, 4 * projection_dim))
    return {
        "num_frames": num_frames,
        "mit_layers": len(mit_layers),
        "mit_intermediate": mit_intermediate,
        "prompt_generator": "prompts_visual_proj" in state_dict,
        "prompt_layers": len(prompt_layers),
    }


def _learned_prompt_sizes(
    state_dict: dict[str, torch.Tensor], vision: dict[str, Any], text: dict[str, Any]
) -> dict[str, Any]:
    """The fields of `ArchitectureSizes` for ViFi-CLIP's learned vision and language prompts (0 without them)."""
    vision_tokens, vision_depth = _prompt_sizes(
        state_dict, "visual.VPT", "visual.transformer.resblocks.", vision["vision_width"], vision["vision_layers"]
    )
    text_tokens, text_depth = _prompt_sizes(
        state_dict, "prompt_learner.ctx", "transformer.resblocks.", text["text_width"], text["text_layers"]
    )
    context_length = text["context_length"]
    if text_tokens >= context_length - 1:
        raise ConversionError(f"{text_tokens} text context vectors leave no room in {context_length} positions.")
    return {
        "vision_prompt_tokens": vision_tokens,
        "vision_prompt_depth": vision_depth,
        "text_prompt_tokens": text_tokens,
        "text_prompt_depth": text_depth,
    }


def build_config(sizes: ArchitectureSizes, *, num_frames: int | None = None, **overrides) -> XClipConfig:
    """An `XClipConfig` for these sizes. Heads are ``width // 64`` everywhere; text special ids follow CLIP's
    convention (SOT = vocab - 2, EOT = vocab - 1, padding 0 as `clip.tokenize`). A model without MIT uses mean
    pooling over frames, one without prompt generator adds no prompts.

    Args:
        num_frames: frames for a model whose weights do not fix them (no MIT); ignored when they do.
        overrides: top-level `XClipConfig` fields (e.g. ``prompt_alpha``).
    """
    frames = sizes.num_frames or num_frames
    if not frames:
        raise ConversionError("this model has no MIT position embedding to read the frame count from; pass num_frames.")
    if not sizes.vocab_size:
        raise ConversionError("the state dict has no `token_embedding.weight`; the vocabulary size is unknown.")
    has_mit = sizes.num_frames > 0
    has_prompts = sizes.prompt_generator
    vocab = sizes.vocab_size
    text_config = {
        "vocab_size": vocab,
        "hidden_size": sizes.text_width,
        "intermediate_size": sizes.text_intermediate,
        "num_hidden_layers": sizes.text_layers,
        "num_attention_heads": heads_for_width(sizes.text_width),
        "max_position_embeddings": sizes.context_length,
        "bos_token_id": vocab - 2,
        "eos_token_id": vocab - 1,
        "pad_token_id": 0,
        "num_prompt_tokens": sizes.text_prompt_tokens,
        "prompt_depth": max(1, sizes.text_prompt_depth),
    }
    vision_config = {
        "hidden_size": sizes.vision_width,
        "intermediate_size": sizes.vision_intermediate,
        "num_hidden_layers": sizes.vision_layers,
        "num_attention_heads": heads_for_width(sizes.vision_width),
        "image_size": sizes.image_size,
        "patch_size": sizes.patch_size,
        "num_frames": frames,
        "mit_hidden_size": sizes.projection_dim,
        "mit_intermediate_size": sizes.mit_intermediate or 4 * sizes.projection_dim,
        "mit_num_hidden_layers": sizes.mit_layers if has_mit else 0,
        "mit_num_attention_heads": heads_for_width(sizes.projection_dim),
        "use_cross_frame_attention": sizes.cross_frame_attention,
        "num_prompt_tokens": sizes.vision_prompt_tokens,
        "prompt_depth": max(1, sizes.vision_prompt_depth),
    }
    fields = {
        "projection_dim": sizes.projection_dim,
        "prompt_layers": sizes.prompt_layers,
        "prompt_num_attention_heads": heads_for_width(sizes.projection_dim),
        "video_pooling": "mit" if has_mit else "mean",
        "use_prompt_generator": has_prompts,
    }
    fields.update(overrides)
    return XClipConfig(text_config=text_config, vision_config=vision_config, **fields)
