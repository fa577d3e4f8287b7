"""Conversion of ViFi-CLIP checkpoints (muzairkhattak/ViFi-CLIP): CLIP applied per frame, mean of the projected
frame embeddings, no message tokens, MIT or prompt generator.

Both kinds of release convert: the fine-tuned ViFi-CLIP and its "bridge and prompt" variant (independent vision and
language prompting on top of a fine-tuned ViFi-CLIP, the few-shot and base-to-novel prompting releases). The learned
prompts keep the names of ViFi-CLIP's prompted CLIP (`visual.VPT`, `...resblocks.N.VPT_shallow`,
`prompt_learner.ctx`) until `key_mapping.original_to_hf` gives them their hf_xclip names.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from transformers import PreTrainedTokenizerBase

from ..hub.model_cards import VIFICLIP_URL
from .checkpoint import ConversionError, OriginalCheckpoint, read_original_checkpoint, sha256_of
from .clip_weights import load_clip_state_dict
from .export import ConversionResult, ExportOptions, export_model, resolve_tokenizer
from .hyperparameters import ArchitectureSizes, build_config, infer_sizes
from .output import check_output_dir
from .xclip import detect_family

if TYPE_CHECKING:
    from typing_extensions import Unpack

logger = logging.getLogger(__name__)

VIFICLIP_TEMPLATE = "a photo of a {}."
# The prompted model's texts: "X X ... X {name}." with the X's replaced by the learned context (inserted by hf_xclip).
PROMPTED_TEMPLATE = "{}."
# ViFi-CLIP's default `TRAINER.ViFi_CLIP.CTX_INIT`: with at most 4 context vectors its words are the prompt prefix.
_DEFAULT_CTX_INIT = "a photo of a"
_MAX_CTX_FOR_INIT_WORDS = 4
# Renames from the ViFi-CLIP module tree to the original CLIP naming (the learned context keeps its name).
_VIFICLIP_PREFIXES = (
    ("image_encoder.", "visual."),
    ("text_encoder.", ""),
    ("prompt_learner.ctx", "prompt_learner.ctx"),
)
# Prompt learner buffers: token embeddings of the training prompts, only used to check the CLIP given.
_PROMPT_LEARNER_BUFFERS = ("complete_text_embeddings", "token_prefix", "token_suffix")


def vificlip_to_clip_naming(
    state_dict: dict[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Split a ViFi-CLIP state dict (``module.`` already removed) into CLIP-named weights (with the learned prompts,
    if any) and the prompt learner's buffers."""
    weights: dict[str, torch.Tensor] = {}
    buffers: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        name = key.removeprefix("prompt_learner.")
        if name in _PROMPT_LEARNER_BUFFERS:
            buffers[name] = value
            continue
        for old, new in _VIFICLIP_PREFIXES:
            if key.startswith(old):
                key = new + key[len(old) :]
                break
        else:
            if key != "logit_scale":
                raise ConversionError(
                    f"`{key}` is not part of a ViFi-CLIP model (expected `image_encoder.*`, `text_encoder.*`, "
                    "`prompt_learner.*` and `logit_scale`)."
                )
        weights[key] = value
    return weights, buffers


def round_prompts_like_original(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The original forward casts the vision prompts (`VPT`) and every deep prompt (`VPT_shallow`) with `.half()`
    before using them (the text context is used as it is); storing them fp16-rounded makes the converted model
    compute what the original computes (without it the logits move by ~1e-4 to 1e-3)."""
    return {
        key: value.half().to(value.dtype) if key.endswith(("VPT", "VPT_shallow")) else value
        for key, value in weights.items()
    }


def prompted_template(checkpoint: OriginalCheckpoint, num_context: int) -> str:
    """The text template of a prompted ViFi-CLIP: its prompts are `<prefix> {name}.` where the first `num_context`
    tokens of the prefix are replaced by the learned context. The prefix is "X" * n, or `CTX_INIT` when n <= 4 (one
    token per word of `CTX_INIT`); words beyond the context stay in the template."""
    ctx_init = checkpoint.config_value("TRAINER", "ViFi_CLIP", "CTX_INIT", default=_DEFAULT_CTX_INIT)
    if not ctx_init or num_context > _MAX_CTX_FOR_INIT_WORDS:
        return PROMPTED_TEMPLATE
    words = ctx_init.replace("_", " ").split()
    if len(words) < num_context:
        raise ConversionError(
            f"TRAINER.ViFi_CLIP.CTX_INIT {ctx_init!r} has fewer words than the {num_context} context vectors: the "
            "original would have replaced the end-of-text token, which hf_xclip cannot represent."
        )
    return " ".join([*words[num_context:], PROMPTED_TEMPLATE])


def _check_token_embedding(
    token_embedding: torch.Tensor, prompt_learner: dict[str, torch.Tensor], clip_source: str
) -> None:
    """The prompt learner stored token embeddings of its prompts (row 0 = <|startoftext|>); they must come from the
    same CLIP token embedding we take."""
    stored = prompt_learner.get("complete_text_embeddings", prompt_learner.get("token_prefix"))
    if stored is None:
        return
    if stored.shape[-1] != token_embedding.shape[1]:
        raise ConversionError(
            f"the CLIP in {clip_source} has text width {token_embedding.shape[1]}, the ViFi-CLIP checkpoint "
            f"{stored.shape[-1]}: pass the CLIP the checkpoint was trained from."
        )
    sot = token_embedding[token_embedding.shape[0] - 2].float()
    # the prompt learner computed them in CLIP's fp16
    if not torch.allclose(stored[0, 0].float(), sot, atol=2e-3, rtol=2e-3):
        raise ConversionError(
            f"the token embedding of the CLIP in {clip_source} differs from the one this ViFi-CLIP checkpoint was "
            "trained with (its stored <|startoftext|> embedding does not match): pass that CLIP (e.g. ViT-B/16)."
        )


def _check_vificlip_keys(checkpoint: OriginalCheckpoint, checkpoint_path: Path) -> None:
    if not any(key.startswith("image_encoder.") for key in checkpoint.state_dict):
        family = detect_family(checkpoint.state_dict)
        hint = {
            "xclip": " It is an original X-CLIP checkpoint: use --from xclip.",
            "clip": " It is a plain CLIP state dict: use --from clip.",
        }.get(family, "")
        sample = ", ".join(sorted(checkpoint.state_dict)[:5])
        raise ConversionError(
            f"{checkpoint_path} is not a ViFi-CLIP checkpoint: expected `module.image_encoder.*` and "
            f"`module.text_encoder.*` keys, found keys like {sample}.{hint}"
        )


def _add_token_embedding(
    weights: dict[str, torch.Tensor], prompt_learner: dict[str, torch.Tensor], clip: str | Path
) -> None:
    """ViFi-CLIP does not save the token embedding: take it from the CLIP it was fine-tuned from (checked against
    the prompt learner's stored embeddings)."""
    clip_weights = load_clip_state_dict(clip)
    if "token_embedding.weight" not in clip_weights:
        raise ConversionError(f"{clip} has no token embedding (`token_embedding.weight`); expected full CLIP weights.")
    token_embedding = clip_weights["token_embedding.weight"]
    _check_token_embedding(token_embedding, prompt_learner, str(clip))
    weights["token_embedding.weight"] = token_embedding


def _frame_count(checkpoint: OriginalCheckpoint, num_frames: int | None, checkpoint_path: Path) -> int:
    """`num_frames`, else the checkpoint's ``DATA.NUM_FRAMES``."""
    config_frames = checkpoint.config_value("DATA", "NUM_FRAMES")
    frames = num_frames or (int(config_frames) if config_frames else None)
    if frames is None:
        raise ConversionError(
            f"{checkpoint_path} has no DATA.NUM_FRAMES in its config: pass num_frames (--num-frames)."
        )
    if num_frames and config_frames and int(config_frames) != num_frames:
        logger.warning("using %s frames; the checkpoint was trained with %s.", num_frames, config_frames)
    return frames


def _prompts_summary(sizes: ArchitectureSizes) -> str:
    """The model card's sentence on the learned prompts of a prompted ViFi-CLIP."""
    return (
        f" Learned prompts (vision-language prompting on top of the fine-tuned model, the paper's \"bridge and "
        f'prompt"): {sizes.text_prompt_tokens} text context vectors after the start token in {sizes.text_prompt_depth} '
        f"text layer(s), {sizes.vision_prompt_tokens} vision prompt tokens in {sizes.vision_prompt_depth} vision "
        "layer(s)."
    )


def convert_vificlip_checkpoint(
    checkpoint_path: str | Path,
    output_dir: str | Path,
    *,
    clip: str | Path,
    bpe_vocab: str | Path | None = None,
    tokenizer: str | Path | PreTrainedTokenizerBase | None = None,
    num_frames: int | None = None,
    **options: Unpack[ExportOptions],
) -> ConversionResult:
    """Convert a ViFi-CLIP checkpoint into an hf_xclip model without message tokens, MIT or prompt generator.

    A prompted ViFi-CLIP ("bridge and prompt": `prompt_learner.ctx`, `image_encoder.VPT`, `VPT_shallow` keys)
    converts with its learned prompts as `text_config` / `vision_config` `num_prompt_tokens` and `prompt_depth`,
    and the processor's template becomes "{}." (the context vectors take the place of the prompt prefix).

    Args:
        checkpoint_path: the ViFi-CLIP ``.pth`` (DDP ``module.`` keys, yacs config inside).
        clip: CLIP weights the checkpoint was fine-tuned from (transformers CLIP directory, OpenAI state dict or
            TorchScript file); ViFi-CLIP does not save the token embedding, it is taken from here.
        num_frames: frames per video; read from the checkpoint's config (``DATA.NUM_FRAMES``) when not given.
        bpe_vocab / tokenizer / options: as for `convert_xclip_checkpoint`.
    """
    checkpoint_path = Path(checkpoint_path)
    check_output_dir(output_dir, options.get("overwrite", False))
    checkpoint = read_original_checkpoint(checkpoint_path)
    _check_vificlip_keys(checkpoint, checkpoint_path)
    weights, prompt_learner = vificlip_to_clip_naming(checkpoint.state_dict)
    weights = round_prompts_like_original(weights)
    _add_token_embedding(weights, prompt_learner, clip)
    sizes = infer_sizes(weights)
    frames = _frame_count(checkpoint, num_frames, checkpoint_path)
    config = build_config(sizes, num_frames=frames, logit_scale_init_value=float(weights["logit_scale"]))
    prompted = sizes.text_prompt_tokens > 0 or sizes.vision_prompt_tokens > 0
    template = (
        prompted_template(checkpoint, sizes.text_prompt_tokens) if sizes.text_prompt_tokens else VIFICLIP_TEMPLATE
    )
    shipped_tokenizer = resolve_tokenizer(tokenizer, bpe_vocab, sizes.vocab_size)
    card = dict(
        title=f"ViFi-CLIP{' (prompted)' if prompted else ''}, {frames} frames, {sizes.image_size} px "
        f"(converted from `{checkpoint_path.name}`)",
        summary="ViFi-CLIP (Rasheed et al., CVPR 2023): CLIP fine-tuned on video; every frame goes through the "
        "CLIP image encoder and the video embedding is the mean of the projected frame embeddings."
        + (_prompts_summary(sizes) if prompted else "")
        + f" Converted with hf_xclip from the original checkpoint ({VIFICLIP_URL}); the token embedding comes "
        f"from `{Path(clip).name}`.",
        license="other",
        license_link=VIFICLIP_URL,
        family="vifi-clip",
        template=template,
    )
    return export_model(
        weights,
        config,
        output_dir,
        source_file=checkpoint_path.name,
        source_sha256=sha256_of(checkpoint_path),
        card=card,
        tokenizer=shipped_tokenizer,
        hypothesis_template=template,
        **options,
    )
