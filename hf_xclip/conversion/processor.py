"""Processor files for a converted model: the video processor at the checkpoint's image size and frame count
(ImageNet normalisation, the original's test-time protocol) and, when there is one, the tokenizer."""

from __future__ import annotations

from pathlib import Path

from transformers import PreTrainedTokenizerBase

from ..configuration_xclip import XClipConfig
from ..labels import DEFAULT_HYPOTHESIS_TEMPLATE


def build_video_processor(config: XClipConfig):
    """`XClipVideoProcessor` for this model: T frames, S x S crops of a short side resized to int(256 / 224 * S)."""
    from ..video_processing_xclip import XClipVideoProcessor

    vision = config.vision_config
    return XClipVideoProcessor(num_frames=vision.num_frames, crop_size=vision.image_size)


def save_processor(
    directory: str | Path,
    config: XClipConfig,
    tokenizer: PreTrainedTokenizerBase | None,
    hypothesis_template: str = DEFAULT_HYPOTHESIS_TEMPLATE,
) -> None:
    """Write the processor (video processor + tokenizer, with the model's text template) or, without a tokenizer,
    the video processor alone (the template is then only stated by the model card)."""
    from ..processing_xclip import XClipProcessor

    video_processor = build_video_processor(config)
    if tokenizer is None:
        video_processor.save_pretrained(directory)
        return
    XClipProcessor(
        video_processor=video_processor, tokenizer=tokenizer, hypothesis_template=hypothesis_template
    ).save_pretrained(directory)
