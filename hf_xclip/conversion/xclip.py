"""Conversion of checkpoints written by the original X-CLIP training code (microsoft/VideoX)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from transformers import PreTrainedTokenizerBase

from ..configuration_xclip import XClipConfig
from .checkpoint import ConversionError, OriginalCheckpoint, read_original_checkpoint, sha256_of
from .export import ConversionResult, ExportOptions, export_model, resolve_tokenizer
from .hyperparameters import CLIP_REQUIRED, XCLIP_MARKERS, ArchitectureSizes, build_config, infer_sizes
from .output import check_output_dir
from .releases import RELEASED_CHECKPOINTS, ReleasedCheckpoint

if TYPE_CHECKING:
    from typing_extensions import Unpack

logger = logging.getLogger(__name__)


def detect_family(state_dict: dict[str, torch.Tensor]) -> str:
    """``"xclip"``, ``"vificlip"``, ``"clip"``, ``"hf"`` (already converted naming) or ``"unknown"``."""
    keys = set(state_dict)
    if any(key.startswith(("image_encoder.", "text_encoder.", "prompt_learner.")) for key in keys):
        return "vificlip"
    if any(key.startswith(("vision_model.", "text_model.")) for key in keys):
        return "hf"
    if any(marker in keys for marker in XCLIP_MARKERS):
        return "xclip"
    if all(key in keys for key in CLIP_REQUIRED):
        return "clip"
    return "unknown"


_WRONG_FAMILY = {
    "vificlip": "a ViFi-CLIP checkpoint (image_encoder / text_encoder keys): convert it with convert_vificlip "
    "(`hf-xclip convert --from vificlip`).",
    "clip": "a plain CLIP state dict (no message tokens, MIT or prompt generator): initialise an X-CLIP from it with "
    "convert_clip_to_xclip (`hf-xclip convert --from clip`).",
    "hf": "already in transformers / hf_xclip naming (vision_model..., text_model...): load it with "
    "XClipModel.from_pretrained instead of converting it.",
}


def check_xclip_state_dict(state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Raise `ConversionError` unless this is an original X-CLIP state dict with all of its parts."""
    family = detect_family(state_dict)
    if family in _WRONG_FAMILY:
        raise ConversionError(f"{source} is {_WRONG_FAMILY[family]}")
    if family == "unknown":
        sample = ", ".join(sorted(state_dict)[:6])
        raise ConversionError(
            f"{source} is not an X-CLIP checkpoint: expected keys such as `visual.transformer.resblocks.0.message_fc."
            f"weight`, `mit.positional_embedding` and `prompts_generator.*`, found {len(state_dict)} keys like "
            f"{sample}."
        )
    missing = [marker for marker in XCLIP_MARKERS if marker not in state_dict]
    if missing:
        raise ConversionError(f"{source} is an incomplete X-CLIP checkpoint: it lacks {', '.join(missing)}.")


def _check_training_config(checkpoint: OriginalCheckpoint, config: XClipConfig) -> list[str]:
    """Compare the yacs config saved in the checkpoint with what the weights say; return card notes."""
    notes = []
    vision = config.vision_config
    frames = checkpoint.config_value("DATA", "NUM_FRAMES")
    size = checkpoint.config_value("DATA", "INPUT_SIZE")
    if frames is not None and int(frames) != vision.num_frames:
        logger.warning(
            "the checkpoint's config says %s frames, its MIT position embedding has %s; using the weights.",
            frames,
            vision.num_frames,
        )
    if size is not None and int(size) != vision.image_size:
        logger.warning(
            "the checkpoint's config says input size %s, its position embedding implies %s; using the weights.",
            size,
            vision.image_size,
        )
    dataset = checkpoint.config_value("DATA", "DATASET")
    if dataset:
        clips, crops = checkpoint.config_value("TEST", "NUM_CLIP"), checkpoint.config_value("TEST", "NUM_CROP")
        notes.append(
            f"training config: dataset `{dataset}`, {frames} frames, {size} px, {clips} clips x {crops} "
            "crops at test time"
        )
    return notes


def _check_num_frames(num_frames: int | None, sizes: ArchitectureSizes) -> None:
    if num_frames is not None and num_frames != sizes.num_frames:
        raise ConversionError(
            f"--num-frames {num_frames} does not match the checkpoint: its MIT position embedding was trained for "
            f"{sizes.num_frames} frames (the converted model still accepts other frame counts at inference)."
        )


def _matching_release(checkpoint_path: Path, sizes: ArchitectureSizes) -> ReleasedCheckpoint | None:
    """The released checkpoint of this file name, if its shapes are the release's (its accuracy is then claimed)."""
    release = RELEASED_CHECKPOINTS.get(checkpoint_path.name)
    if release is not None and (release.patch_size, release.num_frames, release.image_size) != (
        sizes.patch_size,
        sizes.num_frames,
        sizes.image_size,
    ):
        logger.warning(
            "%s is named like a released checkpoint but its shapes differ; not claiming its accuracy.",
            checkpoint_path.name,
        )
        return None
    return release


def convert_xclip_checkpoint(
    checkpoint_path: str | Path,
    output_dir: str | Path,
    *,
    bpe_vocab: str | Path | None = None,
    tokenizer: str | Path | PreTrainedTokenizerBase | None = None,
    num_frames: int | None = None,
    **options: Unpack[ExportOptions],
) -> ConversionResult:
    """Convert an original X-CLIP checkpoint into an hf_xclip model directory.

    Args:
        checkpoint_path: the ``.pth`` the original training writes (``{"model", "config", ...}``), or a bare state
            dict, with or without a DDP ``module.`` prefix. Read without yacs and without unpickling code.
        output_dir: created (or replaced with ``overwrite``) only when everything succeeded.
        bpe_vocab: CLIP's ``bpe_simple_vocab_16e6.txt.gz`` to build the tokenizer from.
        tokenizer: alternatively a tokenizer directory / Hub name / object.
        num_frames: optional check: the frame count the MIT position embedding must have.
        options: `ExportOptions`: ``verify`` (against the reference forward of the original weights, default
            True), ``overwrite``, ``push_to_hub`` (a repo id), ``token``, ``private``.

    Returns:
        `ConversionResult`; every hyperparameter comes from the weights' shapes.
    """
    checkpoint_path = Path(checkpoint_path)
    check_output_dir(output_dir, options.get("overwrite", False))
    checkpoint = read_original_checkpoint(checkpoint_path)
    state_dict = checkpoint.state_dict
    check_xclip_state_dict(state_dict, str(checkpoint_path))
    sizes = infer_sizes(state_dict)
    _check_num_frames(num_frames, sizes)
    config = build_config(sizes, logit_scale_init_value=float(state_dict["logit_scale"]))
    shipped_tokenizer = resolve_tokenizer(tokenizer, bpe_vocab, sizes.vocab_size)
    notes = _check_training_config(checkpoint, config)
    if shipped_tokenizer is None:
        logger.warning("no tokenizer given (--bpe-vocab or --tokenizer): the output has no tokenizer files.")
        notes.append(
            f"no tokenizer was converted with this model; it needs one with {sizes.vocab_size} tokens "
            "(CLIP's BPE has 49,408)"
        )
    sha256 = sha256_of(checkpoint_path)
    release = _matching_release(checkpoint_path, sizes)
    if release is not None and release.hub_name:
        notes.append(f"the same weights as transformers' port `{release.hub_name}`")
    arch = release.arch if release else f"{sizes.vision_width}w/{sizes.patch_size}"
    card = dict(
        title=f"X-CLIP {arch}, {sizes.num_frames} frames, {sizes.image_size} px "
        f"(converted from `{checkpoint_path.name}`)",
        summary="X-CLIP (Ni et al., ECCV 2022): CLIP extended to video with cross-frame communication "
        "(message tokens), a multi-frame integration transformer and video-specific prompts. Converted from "
        "the original microsoft/VideoX checkpoint with hf_xclip; outputs match the original implementation.",
        license="mit",
        family="x-clip",
        release=release,
        notes=notes,
    )
    return export_model(
        state_dict,
        config,
        output_dir,
        source_file=checkpoint_path.name,
        source_sha256=sha256,
        card=card,
        tokenizer=shipped_tokenizer,
        **options,
    )
