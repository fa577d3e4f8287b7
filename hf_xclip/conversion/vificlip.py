"""Conversion of ViFi-CLIP checkpoints (muzairkhattak/ViFi-CLIP): CLIP applied per frame, mean of the projected
frame embeddings, no message tokens, MIT or prompt generator."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from ..configuration_xclip import XClipConfig
from .checkpoint import ConversionError, read_original_checkpoint, sha256_of
from .clip_weights import load_clip_state_dict
from .export import ConversionResult, export_model, resolve_tokenizer
from .hyperparameters import build_config, infer_sizes
from ..model_cards import VIFICLIP_URL, converted_model_card
from .output import check_output_dir
from .xclip import detect_family

logger = logging.getLogger(__name__)

VIFICLIP_TEMPLATE = "a photo of a {}."
# Renames from the ViFi-CLIP module tree to the original CLIP naming.
_VIFICLIP_PREFIXES = (("image_encoder.", "visual."), ("text_encoder.", ""))


def vificlip_to_clip_naming(
    state_dict: dict[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Split a ViFi-CLIP state dict (``module.`` already removed) into CLIP-named weights and the prompt learner's
    buffers. Raises for the prompting variants (learned context vectors or visual prompts), which hf_xclip's
    configuration cannot represent."""
    weights: dict[str, torch.Tensor] = {}
    prompt_learner: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith("prompt_learner."):
            prompt_learner[key[len("prompt_learner."):]] = value
            continue
        if "VPT" in key:
            raise ConversionError(
                f"`{key}`: this is ViFi-CLIP's prompting variant (visual prompt tokens); only the fine-tuned ViFi-CLIP "
                "(no learned prompts) converts to hf_xclip."
            )
        for old, new in _VIFICLIP_PREFIXES:
            if key.startswith(old):
                key = new + key[len(old):]
                break
        weights[key] = value
    if "ctx" in prompt_learner:
        raise ConversionError(
            "this is ViFi-CLIP's prompting variant (learned text context `prompt_learner.ctx`); only the fine-tuned "
            "ViFi-CLIP (no learned prompts) converts to hf_xclip."
        )
    return weights, prompt_learner


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


def convert_vificlip_checkpoint(
    checkpoint_path: str | Path,
    output_dir: str | Path,
    *,
    clip: str | Path,
    bpe_vocab: str | Path | None = None,
    tokenizer: str | Path | PreTrainedTokenizerBase | None = None,
    num_frames: int | None = None,
    verify: bool = True,
    overwrite: bool = False,
    push_to_hub: str | None = None,
    token: str | None = None,
    private: bool | None = None,
) -> ConversionResult:
    """Convert a ViFi-CLIP checkpoint into an hf_xclip model without message tokens, MIT or prompt generator.

    Args:
        checkpoint_path: the ViFi-CLIP ``.pth`` (DDP ``module.`` keys, yacs config inside).
        clip: CLIP weights the checkpoint was fine-tuned from (transformers CLIP directory, OpenAI state dict or
            TorchScript file); ViFi-CLIP does not save the token embedding, it is taken from here.
        num_frames: frames per video; read from the checkpoint's config (``DATA.NUM_FRAMES``) when not given.
    """
    checkpoint_path = Path(checkpoint_path)
    check_output_dir(output_dir, overwrite)
    checkpoint = read_original_checkpoint(checkpoint_path)
    if not any(key.startswith("image_encoder.") for key in checkpoint.state_dict):
        family = detect_family(checkpoint.state_dict)
        hint = {"xclip": " It is an original X-CLIP checkpoint: use --from xclip.",
                "clip": " It is a plain CLIP state dict: use --from clip."}.get(family, "")
        sample = ", ".join(sorted(checkpoint.state_dict)[:5])
        raise ConversionError(
            f"{checkpoint_path} is not a ViFi-CLIP checkpoint: expected `module.image_encoder.*` and "
            f"`module.text_encoder.*` keys, found keys like {sample}.{hint}"
        )
    weights, prompt_learner = vificlip_to_clip_naming(checkpoint.state_dict)
    clip_weights = load_clip_state_dict(clip)
    if "token_embedding.weight" not in clip_weights:
        raise ConversionError(f"{clip} has no token embedding (`token_embedding.weight`); expected full CLIP weights.")
    token_embedding = clip_weights["token_embedding.weight"]
    _check_token_embedding(token_embedding, prompt_learner, str(clip))
    weights["token_embedding.weight"] = token_embedding
    sizes = infer_sizes(weights)
    config_frames = checkpoint.config_value("DATA", "NUM_FRAMES")
    frames = num_frames or (int(config_frames) if config_frames else None)
    if frames is None:
        raise ConversionError(
            f"{checkpoint_path} has no DATA.NUM_FRAMES in its config: pass num_frames (--num-frames)."
        )
    if num_frames and config_frames and int(config_frames) != num_frames:
        logger.warning("using %s frames; the checkpoint was trained with %s.", num_frames, config_frames)
    config = build_config(sizes, num_frames=frames, logit_scale_init_value=float(weights["logit_scale"]))
    shipped_tokenizer = resolve_tokenizer(tokenizer, bpe_vocab, sizes.vocab_size)
    sha256 = sha256_of(checkpoint_path)

    def make_card(config: XClipConfig):
        return converted_model_card(
            title=f"ViFi-CLIP, {frames} frames, {sizes.image_size} px (converted from `{checkpoint_path.name}`)",
            summary="ViFi-CLIP (Rasheed et al., CVPR 2023): CLIP fine-tuned on video; every frame goes through the "
            "CLIP image encoder and the video embedding is the mean of the projected frame embeddings. Converted "
            f"with hf_xclip from the original checkpoint ({VIFICLIP_URL}); the token embedding comes from "
            f"`{Path(clip).name}`.",
            source_file=checkpoint_path.name,
            source_sha256=sha256,
            config=config,
            repo_id=push_to_hub,
            license="other",
            license_link=VIFICLIP_URL,
            family="vifi-clip",
            template=VIFICLIP_TEMPLATE,
        )

    return export_model(weights, config, output_dir, source_sha256=sha256, make_card=make_card,
                        tokenizer=shipped_tokenizer, verify=verify, overwrite=overwrite, push_to_hub=push_to_hub,
                        token=token, private=private)
