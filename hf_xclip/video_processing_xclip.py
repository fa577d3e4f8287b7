"""Video processor of X-CLIP: video in (file, bytes, array, frames), ``pixel_values`` (B, T, 3, S, S) out.

Defaults reproduce the original X-CLIP test-time protocol (microsoft/VideoX ``datasets/build.py``):

1. TSN sampling: T segments, the middle frame of each (``index_k = int((k + 0.5) * N / T)``); decoding reads only
   those frames (see `hf_xclip.video_io`).
2. Resize the short side to ``int(256 / 224 * S)`` (256 for S = 224), bilinear without antialiasing, sizes rounded
   as mmcv does; uint8 frames are resized bit for bit as OpenCV's ``cv2.resize(INTER_LINEAR)`` (the original's
   ``mmcv.imresize``), computing only the pixels the crop keeps.
3. Centre crop S x S (offsets ``(H - S) // 2``, ``(W - S) // 2``).
4. ``(x / 255 - mean) / std`` with ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225).

Multi-view testing: ``num_clips`` temporal clips x ``num_crops`` (1 or 3) spatial crops per video. The output is then
``pixel_values`` of shape (B * V, T, 3, S, S) with V = num_crops * num_clips, the V views of a video adjacent
(video-major; inside a video crop-major, clip-minor, the original's order), plus ``num_views`` = V. Average the
per-view softmax over groups of V consecutive rows, e.g. ``probs.view(B, V, -1).mean(1)``.

The processor is four flat modules, in dependency order: `hf_xclip.video_processing_config` (options: normalising,
checking, reading them from any saved layout), `hf_xclip.video_processing_inputs` (inputs -> frames, decoded and
sampled through `hf_xclip.video_io`), `hf_xclip.video_processing_transforms` (frames -> pixel values: resize, crop,
normalise), and this one (`XClipVideoProcessor`, transformers' API).
"""

from __future__ import annotations

import os
from typing import Any, cast

import numpy as np
import torch
from transformers.image_processing_utils import BatchFeature
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from transformers.processing_utils import Unpack, VideosKwargs
from transformers.utils import logging
from transformers.video_processing_utils import VideoProcessorMixin

from .video_decoding import Backend
from .video_io import VideoWindows, iter_windows, sample_frame_indices
from .video_processing_config import (
    auto_map_left_in_files,
    check_options,
    is_foreign_config,
    normalise_option,
    read_video_processor_dict,
    sampling_rng,
    translate_foreign_config,
)
from .video_processing_inputs import load_frames, split_videos
from .video_processing_transforms import RESIZE_RATIO, resized_short_side, transform_frames

logger = logging.get_logger(__name__)


class XClipVideoProcessorKwargs(VideosKwargs, total=False):
    """Call-time options of `XClipVideoProcessor` beyond transformers' `VideosKwargs`.

    Attributes:
        frame_sampling: ``"middle"`` (test-time TSN, default), ``"random"`` (training TSN) or ``"uniform"``.
        num_clips: temporal clips (views) per video.
        num_crops: 1 (centre crop) or 3 (three crops along the long side after resizing the short side to S).
        antialias: antialias when downscaling (the original does not).
        decode_backend: ``"auto"`` (PyAV seeks; torchcodec, then decord, if PyAV lacks the codec), ``"torchcodec"``,
            ``"pyav"`` or ``"decord"``; they decode identical pixels (see `hf_xclip.video_io`).
        decode_short_side: downscale while decoding so the short side has this many pixels (faster; frames then
            differ slightly from the original's resize, and between the two backends' scalers).
        decode_threads: decoder threads (0 = automatic).
        seed: seed of ``"random"`` sampling (otherwise drawn from torch's generator).
        fps: (transformers' option) sample frames at this rate, ``1 / fps`` seconds apart, instead of
            ``num_frames`` per clip; the frame count then follows the video's duration.
        start_time / end_time: sample only inside ``[start_time, end_time)`` seconds of each video.
        video_metadata: (transformers' option, at call time) for array inputs, ``{"fps": ...}`` (or a list, one
            per video) so that time-based sampling and the returned metadata know their frame rate.

    With ``fps``, ``start_time`` or ``end_time`` frames are sampled by time (`hf_xclip.video_io.
    sample_frame_indices_by_time`, using the frames' real timestamps); otherwise by frame count as the original.
    A ``num_frames`` given at call time overrides a configured ``fps``; giving both in one call is an error.
    """

    frame_sampling: str | None
    num_clips: int | None
    num_crops: int | None
    antialias: bool | None
    decode_backend: str | None
    decode_short_side: int | None
    decode_threads: int | None
    seed: int | None
    start_time: float | None
    end_time: float | None


class XClipVideoProcessor(VideoProcessorMixin):
    r"""Turns videos into X-CLIP's ``pixel_values`` with the original's test-time protocol.

    Args:
        num_frames: frames per clip (T).
        frame_sampling: ``"middle"`` (TSN test, the original's), ``"random"`` (TSN training) or ``"uniform"``.
        num_clips: temporal clips per video (views).
        num_crops: spatial crops per clip: 1 (centre) or 3 (left, right, middle along the long side).
        do_resize: resize before cropping.
        size: resize target; ``{"shortest_edge": R}`` keeps the aspect ratio, ``{"height", "width"}`` does not.
            ``None`` (default) follows the original: short side ``int(256 / 224 * S)`` with one crop, ``S`` with
            three crops.
        resample: 2 (bilinear, the original's), 3 (bicubic) or 0 (nearest).
        antialias: antialias when downscaling (off, like OpenCV in the original).
        do_center_crop: crop S x S (``crop_size``).
        crop_size: model input size S (int or ``{"height": S, "width": S}``).
        do_rescale / rescale_factor: multiply pixel values by ``rescale_factor`` (1/255).
        do_normalize / image_mean / image_std: ImageNet normalisation.
        do_convert_rgb: convert grayscale / RGBA inputs to RGB.
        do_sample_frames: sample T frames per clip; ``False`` keeps every frame of array inputs (and decodes every
            frame of files).
        decode_backend / decode_short_side / decode_threads: see `hf_xclip.video_io.read_video`.
        fps: sample frames at this rate (frames per second) instead of ``num_frames`` per clip.
        start_time / end_time: sample only inside this part of each video (seconds).

    Foreign configs (a 2022 ``VideoMAEFeatureExtractor`` ``preprocessor_config.json`` of the Hub's X-CLIP repos, or
    a ``VideoMAEImageProcessor`` / ``CLIPImageProcessor`` dict) are read as the original protocol at their crop
    size: their ``size`` is the model input size S (``crop_size`` when present), their mean / std / resample are
    kept, and the resize follows the 256/224 rule above (transformers' port resized to S instead).

    Example:

    ```python
    >>> import numpy as np
    >>> from hf_xclip import XClipVideoProcessor
    >>> processor = XClipVideoProcessor(crop_size=32)
    >>> video = np.zeros((20, 48, 64, 3), dtype=np.uint8)  # (frames, height, width, RGB)
    >>> processor(video)["pixel_values"].shape
    torch.Size([1, 8, 3, 32, 32])
    ```
    """

    valid_kwargs = XClipVideoProcessorKwargs
    model_input_names = ["pixel_values"]

    num_frames = 8
    frame_sampling = "middle"
    num_clips = 1
    num_crops = 1
    do_resize = True
    size = None
    resample = 2
    antialias = False
    do_center_crop = True
    crop_size = {"height": 224, "width": 224}
    do_rescale = True
    rescale_factor = 1 / 255
    do_normalize = True
    image_mean = IMAGENET_DEFAULT_MEAN
    image_std = IMAGENET_DEFAULT_STD
    do_convert_rgb = True
    do_sample_frames = True
    default_to_square = False
    decode_backend = "auto"
    decode_short_side = None
    decode_threads = 0
    fps = None
    start_time = None
    end_time = None

    def __init__(self, **kwargs: Unpack[XClipVideoProcessorKwargs]) -> None:
        if is_foreign_config(kwargs):
            kwargs = translate_foreign_config(kwargs)
        for key in ("video_processor_type", "processor_class", "auto_map", "_processor_class"):
            kwargs.pop(key, None)
        unknown = sorted(set(kwargs) - set(self.valid_kwargs.__annotations__))
        if unknown:
            logger.warning(f"XClipVideoProcessor ignores unknown options {unknown}.")
        super().__init__()
        for name in self.valid_kwargs.__annotations__:
            value = kwargs.get(name)
            if value is None:
                value = getattr(type(self), name, None)
            if name in ("size", "crop_size", "image_mean", "image_std"):
                value = normalise_option(name, value)
            if value is not None or hasattr(type(self), name):
                setattr(self, name, value)
        check_options(self._options({}))

    # ----------------------------------------------------------------------------------------------------------
    # Loading foreign layouts
    # ----------------------------------------------------------------------------------------------------------

    @classmethod
    def get_video_processor_dict(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs):
        """The options of a folder / Hub repo in any layout (`hf_xclip.video_processing_config.VIDEO_PROCESSOR_FILES`,
        read there rather than by transformers' resolution, which changes between releases), plus ``num_frames`` from
        the model's ``config.json`` when the processor file has none."""
        return read_video_processor_dict(pretrained_model_name_or_path, kwargs)

    def to_dict(self) -> dict[str, Any]:
        output = super().to_dict()
        for key in ("_processor_class", "processor_class", "image_processor_type"):
            output.pop(key, None)
        output["resample"] = int(output.get("resample", 2))
        return output

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs):
        with auto_map_left_in_files(self):
            return super().save_pretrained(save_directory, *args, **kwargs)

    # ----------------------------------------------------------------------------------------------------------
    # Processing
    # ----------------------------------------------------------------------------------------------------------

    def sample_frames(self, total_frames: int, num_frames: int | None = None, **kwargs) -> np.ndarray:
        """Indices ``(num_clips, num_frames)`` this processor samples from a video of ``total_frames`` frames."""
        options = self._options({"num_frames": num_frames, **kwargs})
        return sample_frame_indices(
            total_frames, options["num_frames"], options["frame_sampling"], options["num_clips"], sampling_rng(options)
        )

    def iter_windows(self, video: Any, **options: Any) -> VideoWindows:
        """`hf_xclip.video_io.iter_windows` over ``video``, decoding as this processor decodes (its
        ``decode_backend`` and ``decode_threads``); ``options`` are `iter_windows`' window options."""
        backend = cast(Backend, self.decode_backend)  # checked when the processor was made
        return iter_windows(video, backend=backend, num_threads=self.decode_threads, **options)

    def resize_short_side(self, num_crops: int | None = None) -> int | None:
        """Short side after resizing (``None`` when ``size`` gives an exact height and width)."""
        return resized_short_side(self._options({"num_crops": num_crops}))

    def preprocess(self, videos: Any, **kwargs: Unpack[XClipVideoProcessorKwargs]) -> BatchFeature:
        """Decode, sample, resize, crop and normalise a video or a batch of videos.

        Args:
            videos: one video or a list of videos. A video is a path (str / Path), bytes, a binary file object, an
                array / tensor (T, H, W, 3), (T, H, W, 1), (T, 3, H, W) or grayscale (T, H, W), or a list of frames
                (PIL images or (H, W, 3) / (H, W) arrays). A 5-D array is a batch.
            kwargs: any option of the constructor for this call only, ``seed`` for random sampling,
                ``return_tensors`` (``"pt"`` default or ``"np"``), ``return_metadata``, ``device``.

        Returns:
            `BatchFeature` with ``pixel_values`` (B * V, T, 3, S, S) float32; ``num_views`` (= V) when V > 1;
            ``video_metadata`` with ``return_metadata=True``: one `hf_xclip.video_io.XClipVideoMetadata` per video
            (transformers' `VideoMetadata` plus ``timestamps`` of the sampled frames, ``source``, ``frame_indices``
            per clip).
        """
        unknown = sorted(set(kwargs) - set(self.valid_kwargs.__annotations__))
        if unknown:
            raise TypeError(f"XClipVideoProcessor got unexpected options {unknown}.")
        return_tensors = kwargs.pop("return_tensors", None) or "pt"
        return_metadata = kwargs.pop("return_metadata", False)
        given_metadata = kwargs.pop("video_metadata", None)
        options = self._options(kwargs)
        if kwargs.get("num_frames") is not None:
            if kwargs.get("fps") is not None:
                raise ValueError("Give either `num_frames` or `fps` (frames per second), not both.")
            options["fps"] = None  # a frame count given for this call overrides a configured rate
        check_options(options)
        rng = sampling_rng(options)
        items, given_metadata = split_videos(videos, given_metadata)
        views, metadata = [], []
        for position, item in enumerate(items):
            frames, meta = load_frames(item, position, options, rng, given_metadata[position])
            views.append(self._transform(frames, options))
            metadata.append(meta)
        shapes = {tuple(v.shape[1:]) for v in views}
        if len(shapes) > 1:
            raise ValueError(f"Videos of a batch must give the same shape, got {sorted(shapes)} (set num_frames).")
        pixel_values = torch.cat(views)
        data: dict[str, Any] = {"pixel_values": pixel_values}
        num_views = views[0].shape[0]
        if num_views > 1:
            data["num_views"] = num_views
        if return_metadata:
            data["video_metadata"] = metadata
        if return_tensors == "np":
            data["pixel_values"] = pixel_values.cpu().numpy()
        elif return_tensors != "pt":
            raise ValueError(f"`return_tensors` must be 'pt' or 'np', got {return_tensors!r}.")
        return BatchFeature(data=data, skip_tensor_conversion=["num_views", "video_metadata"])

    def _options(self, overrides: dict[str, Any]) -> dict[str, Any]:
        options = {name: getattr(self, name, None) for name in self.valid_kwargs.__annotations__}
        for name, value in overrides.items():
            if value is not None:
                options[name] = normalise_option(name, value) if name in ("size", "crop_size") else value
        return options

    def _transform(self, frames: torch.Tensor, options: dict[str, Any]) -> torch.Tensor:
        """(V_clips * T, H, W, 3) frames -> (num_crops * V_clips, T, 3, S, S) normalised pixel values (a family's
        processor, `hf_xclip.processing_video_text.FrameVideoProcessor`, replaces this step)."""
        return transform_frames(frames, options)


def as_xclip_video_processor(processor: Any) -> XClipVideoProcessor:
    """An `XClipVideoProcessor`: ``None`` gives the default one, an `XClipVideoProcessor` is returned as it is, and
    transformers' image processors (VideoMAE, CLIP) are read as X-CLIP's test protocol at the same crop size and
    statistics (with a warning), so that pixel_values keep the (B, T, 3, S, S) layout.

    Raises:
        TypeError: `processor` is not a processor.
    """
    if processor is None:
        return XClipVideoProcessor()
    if isinstance(processor, XClipVideoProcessor):
        return processor
    if hasattr(processor, "to_dict"):
        config = processor.to_dict()
        config.setdefault("image_processor_type", type(processor).__name__)
        logger.warning(
            f"Converting the given {type(processor).__name__} into an XClipVideoProcessor (X-CLIP's test protocol at "
            "the same crop size and statistics) so that pixel_values keep the (B, T, 3, S, S) layout."
        )
        return XClipVideoProcessor(**config)
    raise TypeError(
        f"`video_processor` must be a video processor (XClipVideoProcessor), got {type(processor).__name__}."
    )


__all__ = ["RESIZE_RATIO", "XClipVideoProcessor", "XClipVideoProcessorKwargs", "as_xclip_video_processor"]
