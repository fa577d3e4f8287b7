"""A new X-CLIP initialised from CLIP, as the paper starts training: CLIP's weights for the image and text
encoders, and the modules X-CLIP adds initialised as the original code initialises them."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from ..configuration_xclip import heads_for_width
from .checkpoint import ConversionError, sha256_of
from .clip_weights import load_clip_state_dict
from .export import ConversionResult, ExportOptions, export_model, resolve_tokenizer
from .hyperparameters import build_config, infer_sizes
from .output import check_output_dir
from .xclip import detect_family

if TYPE_CHECKING:
    from typing_extensions import Unpack

logger = logging.getLogger(__name__)


def _prefixed(module: nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + key: value.detach().clone() for key, value in module.state_dict().items()}


def _trunc_normal_linears(module: nn.Module) -> None:
    """The original `_init_weights` of the MIT and the prompt generator: truncated normal (std 0.02, cut at +-2)
    for every Linear (MultiheadAttention's `out_proj` included), zero biases, LayerNorm 1 / 0."""
    for submodule in module.modules():
        if isinstance(submodule, nn.Linear):
            nn.init.trunc_normal_(submodule.weight, std=0.02)
            if submodule.bias is not None:
                nn.init.zeros_(submodule.bias)
        elif isinstance(submodule, nn.LayerNorm):
            nn.init.ones_(submodule.weight)
            nn.init.zeros_(submodule.bias)


def _residual_block(width: int) -> nn.ModuleDict:
    return nn.ModuleDict(
        {
            "attn": nn.MultiheadAttention(width, heads_for_width(width)),
            "ln_1": nn.LayerNorm(width),
            "mlp": nn.ModuleDict({"c_fc": nn.Linear(width, 4 * width), "c_proj": nn.Linear(4 * width, width)}),
            "ln_2": nn.LayerNorm(width),
        }
    )


def _prompt_layer(width: int) -> nn.ModuleDict:
    mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.Identity(), nn.Identity(), nn.Linear(4 * width, width))
    return nn.ModuleDict(
        {
            "cross_attn": nn.ModuleDict(
                {
                    "q_proj": nn.Linear(width, width, bias=False),
                    "k_proj": nn.Linear(width, width, bias=False),
                    "v_proj": nn.Linear(width, width, bias=False),
                    "proj": nn.Linear(width, width),
                }
            ),
            "norm1": nn.LayerNorm(width),
            "norm3": nn.LayerNorm(width),
            "mlp": mlp,
        }
    )


def init_xclip_modules(
    vision_width: int,
    vision_layers: int,
    projection_dim: int,
    *,
    num_frames: int = 8,
    mit_layers: int = 1,
    prompt_layers: int = 2,
    prompt_alpha: float = 0.1,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """The parameters X-CLIP adds to CLIP, in original naming, initialised like the original code:

    * per vision layer: ``message_fc`` (torch's Linear default), ``message_ln`` (1 / 0), ``message_attn``
      (torch's MultiheadAttention default: Xavier-uniform ``in_proj``, zero biases);
    * MIT: position embedding and every Linear truncated normal (std 0.02), zero biases, MultiheadAttention
      ``in_proj`` Xavier-uniform;
    * prompt generator: Linears truncated normal (std 0.02), zero biases, ``alpha`` = `prompt_alpha` everywhere;
      ``prompts_visual_ln`` 1 / 0 and ``prompts_visual_proj`` standard normal (``torch.randn``).

    Defaults are what the original main script builds (1 MIT layer, 2 prompt layers, alpha 0.1).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        weights: dict[str, torch.Tensor] = {}
        for index in range(vision_layers):
            prefix = f"visual.transformer.resblocks.{index}."
            weights.update(_prefixed(nn.Linear(vision_width, vision_width), prefix + "message_fc."))
            weights.update(_prefixed(nn.LayerNorm(vision_width), prefix + "message_ln."))
            attention = nn.MultiheadAttention(vision_width, heads_for_width(vision_width))
            weights.update(_prefixed(attention, prefix + "message_attn."))

        position = torch.empty(1, num_frames, projection_dim)
        nn.init.trunc_normal_(position, std=0.02)
        weights["mit.positional_embedding"] = position
        for index in range(mit_layers):
            block = _residual_block(projection_dim)
            _trunc_normal_linears(block)
            weights.update(_prefixed(block, f"mit.resblocks.{index}."))

        generator = nn.ModuleDict(
            {
                "norm": nn.LayerNorm(projection_dim),
                "decoder": nn.ModuleList([_prompt_layer(projection_dim) for _ in range(prompt_layers)]),
            }
        )
        _trunc_normal_linears(generator)
        weights.update(_prefixed(generator, "prompts_generator."))
        weights["prompts_generator.alpha"] = torch.full((projection_dim,), float(prompt_alpha))
        weights.update(_prefixed(nn.LayerNorm(vision_width), "prompts_visual_ln."))
        weights["prompts_visual_proj"] = torch.randn(vision_width, projection_dim)
    return weights


def _default_tokenizer_dir(source: Path) -> Path | None:
    if source.is_dir() and any((source / name).is_file() for name in ("tokenizer.json", "vocab.json")):
        return source
    return None


def _load_plain_clip(clip_path: Path) -> dict[str, torch.Tensor]:
    clip_weights = load_clip_state_dict(clip_path)
    family = detect_family(clip_weights)
    if family != "clip":
        raise ConversionError(
            f"{clip_path} is not a plain CLIP checkpoint (detected `{family}`); expected CLIP weights without "
            "X-CLIP's message tokens, MIT or prompt generator."
        )
    return clip_weights


def _source_file(clip_path: Path) -> tuple[str, str]:
    """How the model card names the CLIP weights (a file, or ``model.safetensors`` in a directory) and their
    sha256."""
    weights_file = clip_path if clip_path.is_file() else clip_path / "model.safetensors"
    sha256 = sha256_of(weights_file) if weights_file.is_file() else "(sharded directory)"
    source_name = clip_path.name if clip_path.is_file() else f"{clip_path.name}/{weights_file.name}"
    return source_name, sha256


def convert_clip_to_xclip(
    clip: str | Path,
    output_dir: str | Path,
    *,
    num_frames: int = 8,
    mit_layers: int = 1,
    prompt_layers: int = 2,
    prompt_alpha: float = 0.1,
    seed: int = 0,
    bpe_vocab: str | Path | None = None,
    tokenizer: str | Path | PreTrainedTokenizerBase | None = None,
    **options: Unpack[ExportOptions],
) -> ConversionResult:
    """Initialise an X-CLIP from CLIP weights (the starting point of X-CLIP training) and write it.

    Args:
        clip: transformers CLIP directory, OpenAI-format state dict or OpenAI TorchScript file.
        num_frames: T, the MIT position embedding length.
        mit_layers / prompt_layers / prompt_alpha: the new modules (defaults: the original main script's).
        seed: seed of the new modules' random initialisation.
        tokenizer: defaults to the tokenizer saved in a transformers CLIP directory.
        bpe_vocab / options: as for `convert_xclip_checkpoint`.
    """
    clip_path = Path(clip)
    check_output_dir(output_dir, options.get("overwrite", False))
    clip_weights = _load_plain_clip(clip_path)
    clip_sizes = infer_sizes(clip_weights)
    if num_frames < 1:
        raise ConversionError(f"num_frames must be positive, got {num_frames}.")
    weights = dict(clip_weights)
    weights.update(
        init_xclip_modules(
            clip_sizes.vision_width,
            clip_sizes.vision_layers,
            clip_sizes.projection_dim,
            num_frames=num_frames,
            mit_layers=mit_layers,
            prompt_layers=prompt_layers,
            prompt_alpha=prompt_alpha,
            seed=seed,
        )
    )
    sizes = infer_sizes(weights)
    config = build_config(sizes, prompt_alpha=prompt_alpha, logit_scale_init_value=float(weights["logit_scale"]))
    if tokenizer is None and bpe_vocab is None:
        tokenizer = _default_tokenizer_dir(clip_path)
    shipped_tokenizer = resolve_tokenizer(tokenizer, bpe_vocab, sizes.vocab_size)
    source_name, sha256 = _source_file(clip_path)
    card = dict(
        title=f"X-CLIP initialised from CLIP `{source_name}` ({num_frames} frames, {sizes.image_size} px)",
        summary="An untrained X-CLIP: CLIP's image and text encoders with X-CLIP's new modules (message tokens, "
        "multi-frame integration transformer, video-specific prompt generator) initialised as the original "
        "training code does. This is the starting point of X-CLIP training, not a video classifier yet.",
        license="mit",
        family="x-clip",
        notes=[
            f"new modules: {mit_layers} MIT layer(s), {prompt_layers} prompt layer(s), alpha {prompt_alpha}, seed {seed}"
        ],
    )
    return export_model(
        weights,
        config,
        output_dir,
        source_file=source_name,
        source_sha256=sha256,
        card=card,
        tokenizer=shipped_tokenizer,
        **options,
    )
