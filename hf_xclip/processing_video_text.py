"""Video processing for the image-text and video-text families (`hf_xclip.modeling_video_text`): X-CLIP's decoding
and frame sampling (`XClipVideoProcessor`: only the sampled frames are decoded; clips, ``fps``, ``start_time`` /
``end_time`` work as for X-CLIP), then each family's own processor for resizing, cropping and normalising.

* image-text families (CLIP, MetaCLIP 2, SigLIP, SigLIP 2): every sampled frame goes through the model's image
  processor (``preprocessor_config.json``); transformers' fast image processors need torchvision, and without it
  transformers uses its PIL versions (same options);
* video-text families (VideoPrism): the clip goes through the model's video processor (transformers' video
  processors need torchvision: ``pip install 'hf_xclip[video-processors]'``). Without torchvision the same options
  (size, resample, rescale, normalisation) are applied frame by frame by transformers' PIL image processor, with a
  warning: its resize can differ slightly from torchvision's.

Output ``pixel_values``: (V, T, 3, S, S) per video (V views = temporal clips; one spatial crop, the family's), or
for SigLIP 2's NaFlex patches (V, T, P + 1, C): each frame's P patches and one row holding its patch grid
(height, width) (`hf_xclip.modeling_video_text.unpack_siglip2_patches` undoes it).

Shipped with the model code (relative imports only).
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import torch
from transformers.utils import logging

from .video_processing_xclip import XClipVideoProcessor

logger = logging.get_logger(__name__)

VIDEO_PROCESSOR_HINT = "pip install 'hf_xclip[video-processors]' (torchvision matching your torch)"


def has_torchvision() -> bool:
    return importlib.util.find_spec("torchvision") is not None


class FrameVideoProcessor(XClipVideoProcessor):
    """X-CLIP's decoding and sampling, then a family's image processor per frame (``frames="image"``) or its video
    processor per clip (``frames="video"``).

    Args:
        image_processor: a transformers image processor (per frame) or video processor (per clip).
        frames: ``"image"`` or ``"video"`` (what `image_processor` takes).
        patches: the processor returns SigLIP 2 NaFlex patches (packed as described in the module docstring).
        kwargs: `XClipVideoProcessor` options (``num_frames``, ``frame_sampling``, ``num_clips``, decoding);
            resizing, cropping and normalisation are the family processor's.
    """

    def __init__(
        self, image_processor: Any = None, frames: str = "image", patches: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if frames not in ("image", "video"):
            raise ValueError(f"frames must be 'image' or 'video', got {frames!r}.")
        self.image_processor = image_processor
        self.frames = frames
        self.patches = patches

    def to_dict(self) -> dict[str, Any]:
        output = super().to_dict()
        for key in ("image_processor", "frames", "patches"):
            output.pop(key, None)
        return output

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs):
        """Save the family's processor (what loading the model directory reads back)."""
        return self.image_processor.save_pretrained(save_directory)

    def _transform(self, frames: torch.Tensor, options: dict[str, Any]) -> torch.Tensor:
        """(V * T, H, W, 3) uint8 frames -> (V, T, ...) pixel values by the family's processor."""
        if int(options.get("num_crops") or 1) != 1:
            raise ValueError(
                "num_crops > 1 is X-CLIP's three-crop test; this model's own processor makes one crop: use num_crops=1."
            )
        clips = options["num_clips"] if options["do_sample_frames"] else 1
        arrays = [frame.numpy() for frame in frames]
        if self.frames == "video":
            per_clip = len(arrays) // clips
            videos = [frames[i * per_clip : (i + 1) * per_clip].numpy() for i in range(clips)]
            out = self.image_processor(videos=videos, return_tensors="pt", do_sample_frames=False)
            return out["pixel_values_videos"].float()
        out = self.image_processor(images=arrays, return_tensors="pt")
        pixels = out["pixel_values"].float()
        if self.patches:
            pixels = pack_siglip2_patches(pixels, out["spatial_shapes"])
        return pixels.reshape(clips, -1, *pixels.shape[1:]).contiguous()


class VideoTextProcessor:
    """A family's video processor and tokenizer together, with the attributes tools read from `XClipProcessor`
    (``video_processor``, ``tokenizer``, ``hypothesis_template``)."""

    def __init__(self, video_processor: Any, tokenizer: Any, hypothesis_template: str = "{}") -> None:
        self.video_processor = video_processor
        self.tokenizer = tokenizer
        self.hypothesis_template = hypothesis_template

    def __call__(self, text: Any = None, videos: Any = None, **kwargs: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if text is not None:
            out.update(self.tokenizer(text, padding=True, truncation=True, return_tensors="pt"))
        if videos is not None:
            out.update(self.video_processor(videos, **kwargs))
        return out

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> None:
        self.video_processor.save_pretrained(save_directory)
        self.tokenizer.save_pretrained(save_directory)


def pack_siglip2_patches(pixel_values: torch.Tensor, spatial_shapes: torch.Tensor) -> torch.Tensor:
    """(N, P, C) patches and (N, 2) grids -> (N, P + 1, C) with the grid in the last row."""
    extra = torch.zeros(pixel_values.shape[0], 1, pixel_values.shape[2], dtype=pixel_values.dtype)
    extra[:, 0, :2] = spatial_shapes.to(pixel_values.dtype)
    return torch.cat([pixel_values, extra], dim=1)


def load_family_video_processor(
    source: str | os.PathLike, family: Any, num_frames: int | None = None
) -> FrameVideoProcessor:
    """The video processor of a family's checkpoint at `source` (see the module docstring).

    Raises:
        ValueError: no processor config at `source`.
    """
    options: dict[str, Any] = {"num_frames": num_frames} if num_frames else {}
    if family.kind == "video":
        return (
            FrameVideoProcessor(_video_processor(source), frames="video", **options)
            if has_torchvision()
            else FrameVideoProcessor(_video_options_as_image_processor(source), **options)
        )
    from transformers import AutoImageProcessor

    try:
        image_processor = AutoImageProcessor.from_pretrained(os.fspath(source))
    except (OSError, ValueError) as err:
        raise ValueError(
            f"Cannot load the image processor of {os.fspath(source)!r} ({err}); pass `video_processor=`."
        ) from None
    return FrameVideoProcessor(image_processor, patches=family.name == "siglip2", **options)


def _video_processor(source: str | os.PathLike) -> Any:
    from transformers import AutoVideoProcessor

    return AutoVideoProcessor.from_pretrained(os.fspath(source))


def _video_options_as_image_processor(source: str | os.PathLike) -> Any:
    """A PIL image processor with the options of the video processor saved at `source` (no torchvision)."""
    import json

    from transformers import SiglipImageProcessorPil
    from transformers.utils import VIDEO_PROCESSOR_NAME, cached_file

    path = cached_file(os.fspath(source), VIDEO_PROCESSOR_NAME, _raise_exceptions_for_missing_entries=False)
    if path is None:
        raise ValueError(f"{os.fspath(source)!r} has no {VIDEO_PROCESSOR_NAME}; pass `video_processor=`.")
    with open(path, encoding="utf-8") as handle:
        config = json.load(handle)
    logger.warning_once(
        f"The video processor of {os.fspath(source)!r} needs torchvision, which is not installed: applying its options "
        f"frame by frame with transformers' PIL image processor (resizing may differ slightly). {VIDEO_PROCESSOR_HINT}"
    )
    keys = ("size", "resample", "do_resize", "do_rescale", "rescale_factor", "do_normalize", "image_mean", "image_std")
    return SiglipImageProcessorPil(**{key: config[key] for key in keys if config.get(key) is not None})


__all__ = [
    "FrameVideoProcessor",
    "VideoTextProcessor",
    "VIDEO_PROCESSOR_HINT",
    "has_torchvision",
    "load_family_video_processor",
    "pack_siglip2_patches",
]
