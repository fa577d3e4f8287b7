"""The steps every conversion shares: write config + safetensors, load them back strictly, compare with the
reference forward of the original weights, add processor, tokenizer and model card, move into place, push."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import torch
from safetensors.torch import save_file
from transformers import PreTrainedTokenizerBase

from ..configuration_xclip import XClipConfig
from ..hub.model_cards import converted_model_card
from ..hub.push import has_pipeline_files, push_model
from ..labels import DEFAULT_HYPOTHESIS_TEMPLATE
from .checkpoint import ConversionError
from .key_mapping import original_to_hf
from .output import check_output_dir, staged_output_dir
from .reference import original_forward
from .tokenizer import check_tokenizer_matches, load_tokenizer

logger = logging.getLogger(__name__)

WEIGHTS_NAME = "model.safetensors"


class ExportOptions(TypedDict, total=False):
    """Keyword arguments of every ``convert_*`` function: how the result is checked, written and shared.

    Attributes:
        verify: compare the converted model with the reference forward of the original weights (default True).
        overwrite: replace a non-empty `output_dir` (default False).
        push_to_hub: repo id to upload the directory to.
        token / private: for the upload.
    """

    verify: bool
    overwrite: bool
    push_to_hub: str | None
    token: str | None
    private: bool | None


@dataclass
class ConversionResult:
    """What a conversion wrote.

    Attributes:
        output_dir: the directory with config, weights, processor, tokenizer (if any) and README.md.
        config: the model's configuration.
        source_sha256: sha256 of the converted file.
        max_abs_errors: largest absolute difference to the reference forward, per output (empty when not verified).
        hub_url: commit URL when pushed.
    """

    output_dir: Path
    config: XClipConfig
    source_sha256: str
    max_abs_errors: dict[str, float] = field(default_factory=dict)
    hub_url: str | None = None


def resolve_tokenizer(
    tokenizer: str | Path | PreTrainedTokenizerBase | None, bpe_vocab: str | Path | None, vocab_size: int
) -> PreTrainedTokenizerBase | None:
    """The tokenizer to ship (from a BPE file, a directory / Hub name, or an object), checked against the model."""
    if tokenizer is not None and bpe_vocab is not None:
        raise ConversionError("pass either a BPE vocabulary file (--bpe-vocab) or a tokenizer (--tokenizer), not both.")
    source = bpe_vocab if bpe_vocab is not None else tokenizer
    if source is None:
        return None
    if isinstance(source, PreTrainedTokenizerBase):
        loaded, name = source, "tokenizer"
    else:
        loaded, name = load_tokenizer(source), f"tokenizer from {source}"
    check_tokenizer_matches(loaded, vocab_size, source=name)
    return loaded


def load_strict(directory: Path):
    """Load the written model with hf_xclip's `XClipModel` and fail on any missing, unexpected or mismatched key."""
    from ..modeling_xclip import XClipModel

    try:
        model, info = XClipModel.from_pretrained(directory, output_loading_info=True)
    except Exception as error:
        raise ConversionError(f"the converted weights do not load into XClipModel: {error}") from error
    problems = {name: sorted(info.get(name) or []) for name in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    problems = {name: keys for name, keys in problems.items() if keys}
    if problems:
        details = "; ".join(f"{name}: {', '.join(map(str, keys[:8]))}" for name, keys in problems.items())
        raise ConversionError(f"the converted state dict does not match XClipModel exactly ({details}).")
    return model.eval()


def verification_inputs(config: XClipConfig, num_videos: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random videos (num_videos, T, 3, S, S) and three CLIP-style id rows (SOT, tokens, EOT, zero padding)."""
    generator = torch.Generator().manual_seed(seed)
    vision, text = config.vision_config, config.text_config
    size = vision.image_size
    pixel_values = torch.randn(num_videos, vision.num_frames, 3, size, size, generator=generator)
    length = text.max_position_embeddings
    input_ids = torch.zeros(3, length, dtype=torch.long)
    for row, count in enumerate((1, 4, min(9, length - 2))):
        tokens = torch.randint(1, text.vocab_size - 2, (count,), generator=generator)
        sot, eot = torch.tensor([text.vocab_size - 2]), torch.tensor([text.vocab_size - 1])
        input_ids[row, : count + 2] = torch.cat([sot, tokens, eot])
    return pixel_values, input_ids


@torch.no_grad()
def verify_against_reference(
    model, original_state_dict: dict[str, torch.Tensor], config: XClipConfig
) -> dict[str, float]:
    """`torch.testing.assert_close` of the converted model against the functional original forward on random input.
    Returns the largest absolute error per output."""
    pixel_values, input_ids = verification_inputs(config)
    expected = original_forward(original_state_dict, pixel_values, input_ids)
    outputs = model(input_ids=input_ids, pixel_values=pixel_values)
    actual = {
        "logits_per_video": outputs.logits_per_video,
        "video_features": model.get_video_features(pixel_values).pooler_output,
        "text_features_before_prompts": model.get_text_features(input_ids=input_ids).pooler_output,
    }
    errors = {}
    for name, value in actual.items():
        errors[name] = (value - expected[name]).abs().max().item()
        # logits are cosines times exp(logit_scale) (~100): compare them at that scale
        atol = 1e-3 if name == "logits_per_video" else 1e-4
        try:
            torch.testing.assert_close(value, expected[name], rtol=1e-4, atol=atol)
        except AssertionError as error:
            raise ConversionError(f"the converted model's {name} differs from the original forward: {error}") from None
    return errors


def export_model(
    original_state_dict: dict[str, torch.Tensor],
    config: XClipConfig,
    output_dir: str | Path,
    *,
    source_file: str,
    source_sha256: str,
    card: dict[str, Any],
    tokenizer: PreTrainedTokenizerBase | None = None,
    hypothesis_template: str = DEFAULT_HYPOTHESIS_TEMPLATE,
    verify: bool = True,
    overwrite: bool = False,
    push_to_hub: str | None = None,
    token: str | None = None,
    private: bool | None = None,
) -> ConversionResult:
    """Write a complete model directory for `original_state_dict` (original naming) or change nothing; the
    processor records `hypothesis_template`, the text template the model was trained with, and the model card is
    `converted_model_card` of `source_file` (its sha256, the written config, the repo pushed to) with the other
    fields in `card` (title, summary, license, ...)."""
    from .processor import save_processor

    original_state_dict = {
        key: value.float() if value.is_floating_point() else value for key, value in original_state_dict.items()
    }
    converted = original_to_hf(original_state_dict)
    config.architectures = ["XClipModel"]
    result = ConversionResult(output_dir=Path(output_dir), config=config, source_sha256=source_sha256)
    with staged_output_dir(output_dir, overwrite) as staging:
        # The converted tensors are written as they are, loaded back strictly and checked; the model then saves
        # itself, so the directory has the same layout (auto_map, code for trust_remote_code) as any hf_xclip save.
        unverified = staging / ".unverified"
        config.save_pretrained(unverified)
        save_file(converted, str(unverified / WEIGHTS_NAME), metadata={"format": "pt"})
        model = load_strict(unverified)
        if verify:
            result.max_abs_errors = verify_against_reference(model, original_state_dict, config)
            logger.info("converted model matches the original forward: %s", result.max_abs_errors)
        model.save_pretrained(staging)
        del model
        shutil.rmtree(unverified)
        save_processor(staging, config, tokenizer, hypothesis_template)
        converted_model_card(
            source_file=source_file, source_sha256=source_sha256, config=config, repo_id=push_to_hub, **card
        ).save(staging / "README.md")
    if push_to_hub:
        result.hub_url = push_converted(result.output_dir, push_to_hub, token=token, private=private)
    return result


def push_converted(folder: str | Path, repo_id: str, *, token: str | None = None, private: bool | None = None) -> str:
    """Upload a converted directory with `hf_xclip.hub.push.push_model` and return the commit URL.

    The upload is the one every hf_xclip push makes: the model code is shipped for ``trust_remote_code=True`` (and
    the zero-shot pipeline too when the directory has a tokenizer), the card gains a section on loading without
    hf_xclip, and the card is checked before anything is sent. `folder` itself is not modified.
    """
    info = push_model(
        folder,
        repo_id,
        token=token,
        private=private,
        commit_message="Upload X-CLIP converted with hf_xclip",
        pipeline=has_pipeline_files(folder),
    )
    return str(getattr(info, "commit_url", info))


__all__ = [
    "ConversionResult",
    "ExportOptions",
    "check_output_dir",
    "export_model",
    "load_strict",
    "push_converted",
    "resolve_tokenizer",
    "verify_against_reference",
]
