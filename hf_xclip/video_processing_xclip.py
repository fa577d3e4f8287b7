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
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from fractions import Fraction
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers.image_processing_utils import BatchFeature
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from transformers.processing_utils import Unpack, VideosKwargs
from transformers.utils import PROCESSOR_NAME, VIDEO_PROCESSOR_NAME, cached_file, logging
from transformers.video_processing_utils import VideoProcessorMixin

from .utils import check_positive_int
from .video_io import (
    BACKENDS,
    SAMPLING_MODES,
    VideoInfo,
    XClipVideoMetadata,
    is_loaded_video,
    is_video_source,
    read_video,
    sample_frame_indices,
)

logger = logging.get_logger(__name__)

# The original resizes the short side to 256 before a 224 crop and keeps that ratio for other input sizes.
RESIZE_RATIO = 256 / 224
_RESAMPLE_MODES = {0: "nearest", 2: "bilinear", 3: "bicubic"}
# Keys under which transformers' processors nest a sub-processor config in processor_config.json.
_NESTED_KEYS = ("video_processor", "image_processor", "feature_extractor")
_FOREIGN_TYPE_KEYS = ("feature_extractor_type", "image_processor_type")
_HUB_KWARGS = ("cache_dir", "force_download", "token", "local_files_only", "revision")


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
        if _is_foreign_config(kwargs):
            kwargs = _translate_foreign_config(kwargs)
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
                value = _normalise_option(name, value)
            if value is not None or hasattr(type(self), name):
                setattr(self, name, value)
        _check_options(self._options({}))

    # ----------------------------------------------------------------------------------------------------------
    # Loading foreign layouts
    # ----------------------------------------------------------------------------------------------------------

    @classmethod
    def get_video_processor_dict(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs):
        """The options of a folder / Hub repo in any layout (`_VIDEO_PROCESSOR_FILES`, read here rather than by
        transformers' resolution, which changes between releases), plus ``num_frames`` from the model's
        ``config.json`` when the processor file has none."""
        lookup = {key: kwargs.pop(key, None) for key in _HUB_KWARGS}
        lookup["subfolder"] = kwargs.pop("subfolder", "") or ""
        for key in ("proxies", "_from_pipeline", "_from_auto", "trust_remote_code"):
            kwargs.pop(key, None)
        processor_dict = _video_processor_dict(pretrained_model_name_or_path, lookup)
        if "num_frames" not in processor_dict:
            num_frames = _num_frames_from_model_config(pretrained_model_name_or_path, lookup)
            if num_frames is not None:
                processor_dict = {**processor_dict, "num_frames": num_frames}
        return processor_dict, kwargs

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
            total_frames, options["num_frames"], options["frame_sampling"], options["num_clips"], _rng(options)
        )

    def resize_short_side(self, num_crops: int | None = None) -> int | None:
        """Short side after resizing (``None`` when ``size`` gives an exact height and width)."""
        return _resize_short_side(self._options({"num_crops": num_crops}))

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
        _check_options(options)
        rng = _rng(options)
        items = _split_batch(videos)
        loaded = [is_loaded_video(item) for item in items]
        if any(loaded):  # `transformers.video_utils.load_video` output: (frames, VideoMetadata)
            if given_metadata is not None:
                raise ValueError("Give `video_metadata` or (frames, metadata) pairs from `load_video`, not both.")
            given_metadata = [item[1] if pair else None for item, pair in zip(items, loaded)]
            items = [item[0] if pair else item for item, pair in zip(items, loaded)]
        given_metadata = _per_video(given_metadata, len(items))
        views, metadata = [], []
        for position, item in enumerate(items):
            frames, meta = self._load(item, position, options, rng, given_metadata[position])
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
                options[name] = _normalise_option(name, value) if name in ("size", "crop_size") else value
        return options

    def _load(
        self, item: Any, position: int, options: dict[str, Any], rng, given: Any = None
    ) -> tuple[torch.Tensor, XClipVideoMetadata]:
        """Frames (V_clips * T, H, W, C) of one video, and its metadata."""
        sample = options["do_sample_frames"]
        how = dict(
            num_frames=options["num_frames"] if sample else None,
            mode=options["frame_sampling"],
            num_clips=options["num_clips"] if sample else 1,
            rng=rng,
            fps=options["fps"] if sample else None,
            start_time=options["start_time"],
            end_time=options["end_time"],
        )
        if is_video_source(item):
            video = read_video(
                item,
                sampling=how.pop("mode"),
                **how,
                backend=options["decode_backend"],
                short_side=options["decode_short_side"],
                num_threads=options["decode_threads"],
            )
            return torch.from_numpy(video.frames.reshape(-1, *video.frames.shape[2:])), video.metadata
        frames = _frames_tensor(item, position, options["do_convert_rgb"])
        info = VideoInfo(
            f"<array {position}>",
            frames.shape[0],
            frames.shape[1],
            frames.shape[2],
            fps=_given_fps(given, position),
            codec="",
            container="",
        )
        _given_frame_times(info, given, position)
        if info.fps is None and any(how[key] is not None for key in ("fps", "start_time", "end_time")):
            raise ValueError(
                f"Video {position} is an array without a frame rate: sampling by time (fps / start_time / end_time) "
                "needs a file, or `video_metadata={'fps': ...}` for the frames."
            )
        indices = info.sample_indices(**how)
        flat = indices.reshape(-1)
        if not np.array_equal(flat, np.arange(info.num_frames)):  # an array of exactly T frames needs no copy
            frames = frames.index_select(0, torch.from_numpy(flat))
        return frames, info.metadata(indices)

    def _transform(self, frames: torch.Tensor, options: dict[str, Any]) -> torch.Tensor:
        """(V_clips * T, H, W, 3) frames -> (num_crops * V_clips, T, 3, S, S) normalised pixel values."""
        clips = options["num_clips"] if options["do_sample_frames"] else 1
        if options["device"] is not None:
            frames = frames.to(options["device"])
        images = frames.permute(0, 3, 1, 2)  # a channels-last view: no copy
        size = tuple(images.shape[-2:])
        target = _resize_target(*size, options) if options["do_resize"] else size
        boxes = _crop_boxes(target, options)
        if target != size:  # resize only the part of the frame that the crops keep
            top, left = min(b[0] for b in boxes), min(b[1] for b in boxes)
            bottom, right = max(b[0] + b[2] for b in boxes), max(b[1] + b[3] for b in boxes)
            images = _resize(images, target, (top, bottom), (left, right), options)
            boxes = [(y - top, x - left, h, w) for y, x, h, w in boxes]
        pixels = torch.stack([images[..., y : y + h, x : x + w] for y, x, h, w in boxes])  # (crops, V*T, 3, S, S)
        pixels = _rescale_and_normalize(pixels, options)
        return pixels.reshape(len(boxes) * clips, -1, *pixels.shape[2:]).contiguous()


# --------------------------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------------------------


@contextmanager
def auto_map_left_in_files(*objects: Any) -> Iterator[None]:
    """Around `save_pretrained`: the `auto_map` it writes (where the shipped code lives) stays in the saved files
    but not on the objects, where transformers' saving leaves it. So `to_dict()` is the same before and after a
    save, and equal to that of the object `from_pretrained` gives back (which drops `auto_map`)."""
    previous = [(obj, obj.__dict__.get("auto_map")) for obj in objects]
    try:
        yield
    finally:
        for obj, value in previous:
            if value is None:
                obj.__dict__.pop("auto_map", None)
            else:
                obj.auto_map = value


def _normalise_option(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name == "crop_size":
        if isinstance(value, int):
            return {"height": value, "width": value}
        if isinstance(value, (list, tuple)) and len(value) == 2:
            return {"height": int(value[0]), "width": int(value[1])}
        value = dict(value)
        if "height" in value and "width" in value:
            return {"height": int(value["height"]), "width": int(value["width"])}
        if "shortest_edge" in value:
            return {"height": int(value["shortest_edge"]), "width": int(value["shortest_edge"])}
        raise ValueError(f"`crop_size` must be an int or {{'height', 'width'}}, got {value!r}.")
    if name == "size":
        if isinstance(value, int):
            return {"shortest_edge": value}
        if isinstance(value, (list, tuple)) and len(value) == 2:
            return {"height": int(value[0]), "width": int(value[1])}
        value = dict(value)
        if "shortest_edge" in value:
            return {"shortest_edge": int(value["shortest_edge"])}
        if "height" in value and "width" in value:
            return {"height": int(value["height"]), "width": int(value["width"])}
        raise ValueError(f"`size` must be an int, {{'shortest_edge'}} or {{'height', 'width'}}, got {value!r}.")
    if name in ("image_mean", "image_std"):
        return [float(v) for v in value] if isinstance(value, (list, tuple)) else float(value)
    return value


def _check_options(options: dict[str, Any]) -> None:
    check_positive_int(options["num_frames"], "num_frames")
    check_positive_int(options["num_clips"], "num_clips")
    if options["frame_sampling"] not in SAMPLING_MODES:
        raise ValueError(f"`frame_sampling` must be one of {SAMPLING_MODES}, got {options['frame_sampling']!r}.")
    if options["frame_sampling"] == "uniform" and options["num_clips"] != 1:
        raise ValueError("`frame_sampling='uniform'` gives one clip per video; set `num_clips=1`.")
    if options["num_crops"] not in (1, 3):
        raise ValueError(f"`num_crops` must be 1 or 3, got {options['num_crops']!r}.")
    crop = options["crop_size"]
    if crop is None or min(crop.values()) < 1:
        raise ValueError(f"`crop_size` must be positive, got {crop!r}.")
    if options["num_crops"] == 3 and crop["height"] != crop["width"]:
        raise ValueError(f"Three crops need a square `crop_size`, got {crop}.")
    if options["decode_backend"] not in BACKENDS:
        raise ValueError(f"`decode_backend` must be one of {BACKENDS}, got {options['decode_backend']!r}.")
    if int(options["resample"]) not in _RESAMPLE_MODES:
        raise ValueError(f"`resample` must be 0 (nearest), 2 (bilinear) or 3 (bicubic), got {options['resample']!r}.")
    short = options["decode_short_side"]
    if short is not None and (not isinstance(short, int) or short < 1):
        raise ValueError(f"`decode_short_side` must be a positive integer or None, got {short!r}.")
    _check_time_options(options)


def _check_time_options(options: dict[str, Any]) -> None:
    def seconds(name: str, low: float, strict: bool) -> None:
        value = options[name]
        if value is None:
            return
        number = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
        if not number or not np.isfinite(value) or value < low or (strict and value == low):
            raise ValueError(f"`{name}` must be a {'positive' if strict else 'non-negative'} number, got {value!r}.")

    seconds("fps", 0.0, True)
    seconds("start_time", 0.0, False)
    seconds("end_time", 0.0, True)
    start, end = options["start_time"], options["end_time"]
    if start is not None and end is not None and end <= start:
        raise ValueError(f"`end_time` ({end}) must be after `start_time` ({start}).")
    if options["fps"] is not None and (options["num_clips"] != 1 or options["frame_sampling"] == "uniform"):
        raise ValueError("Sampling at a rate (`fps`) gives one clip of 'middle' or 'random' frames.")


def _rng(options: dict[str, Any]) -> np.random.Generator | None:
    if options["frame_sampling"] != "random":
        return None
    seed = options.get("seed")
    if seed is None:  # follow torch's generator, so torch.manual_seed and DataLoader worker seeding apply
        seed = int(torch.randint(0, 2**62, (1,)).item())
    return np.random.default_rng(seed)


def _is_foreign_config(config: dict[str, Any]) -> bool:
    if any(key in config for key in _FOREIGN_TYPE_KEYS):
        return True
    kind = config.get("video_processor_type")
    return kind is not None and kind != "XClipVideoProcessor"


def _translate_foreign_config(config: dict[str, Any]) -> dict[str, Any]:
    """Read a VideoMAE / CLIP image-processor dict as X-CLIP's protocol at that config's input size."""
    crop = config.get("crop_size") if config.get("crop_size") is not None else config.get("size")
    crop = _normalise_option("crop_size", crop) if crop is not None else None
    kept = (
        "do_resize",
        "do_center_crop",
        "do_rescale",
        "rescale_factor",
        "do_normalize",
        "image_mean",
        "image_std",
        "resample",
        "do_convert_rgb",
        "num_frames",
    )
    translated = {key: config[key] for key in kept if config.get(key) is not None}
    if crop is not None:
        translated["crop_size"] = crop
    kind = next((config[k] for k in (*_FOREIGN_TYPE_KEYS, "video_processor_type") if config.get(k)), "unknown")
    logger.info(
        f"Read a {kind} config as X-CLIP's test protocol: crop {crop}, short side resized by 256/224 "
        "(the original X-CLIP evaluation), ImageNet statistics from the file."
    )
    return translated


# Where each layout keeps the video processor's options, in the order they are looked for: a processor_config.json
# nesting it (ours, transformers' 5.x X-CLIP), then transformers' video processor file, then the 2022 feature
# extractor file of the Hub's X-CLIP repos. Read here, not through transformers' resolution (it changes between
# releases).
_VIDEO_PROCESSOR_FILES = (PROCESSOR_NAME, VIDEO_PROCESSOR_NAME, "preprocessor_config.json")


def _video_processor_dict(path: str | os.PathLike, lookup: dict[str, Any]) -> dict[str, Any]:
    """The video processor's options from a JSON file or a folder / Hub repo in any known layout."""
    if os.path.isfile(path):
        return _read_json(path)
    for name in _VIDEO_PROCESSOR_FILES:
        try:
            resolved = cached_file(path, name, _raise_exceptions_for_missing_entries=False, **lookup)
        except OSError:
            if name == _VIDEO_PROCESSOR_FILES[-1]:
                raise
            continue
        if resolved is None:
            continue
        config = _read_json(resolved)
        if name != PROCESSOR_NAME:
            return config
        nested = next((config[key] for key in _NESTED_KEYS if isinstance(config.get(key), dict)), None)
        if nested is not None:
            return dict(nested)
    raise OSError(
        f"Can't load a video processor from {os.fspath(path)!r}: none of {', '.join(_VIDEO_PROCESSOR_FILES)} holds "
        "one. Save one with `XClipVideoProcessor.save_pretrained`, or give `crop_size` / `num_frames` directly."
    )


def _read_json(path: str | os.PathLike) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise OSError(f"{os.fspath(path)} is not valid JSON: {err}. Fix or delete the file.") from None
    if not isinstance(config, dict):
        raise OSError(f"{os.fspath(path)} must hold a JSON object, got {type(config).__name__}.")
    return config


def _num_frames_from_model_config(path: str | os.PathLike, lookup: dict[str, Any]) -> int | None:
    if os.path.isfile(path):
        return None
    try:
        resolved = cached_file(path, "config.json", _raise_exceptions_for_missing_entries=False, **lookup)
    except OSError:
        return None
    if resolved is None:
        return None
    try:
        with open(resolved, encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, json.JSONDecodeError):
        return None
    vision = config.get("vision_config") or {}
    num_frames = vision.get("num_frames", config.get("num_frames"))
    return int(num_frames) if isinstance(num_frames, int) and num_frames > 0 else None


# --------------------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------------------


def _is_frame(obj: Any) -> bool:
    if _is_pil(obj):
        return True
    if isinstance(obj, (np.ndarray, torch.Tensor)):
        return obj.ndim == 2 or (obj.ndim == 3 and obj.shape[-1] in (1, 3, 4))
    return False


def _is_pil(obj: Any) -> bool:
    return type(obj).__module__.startswith("PIL.") and hasattr(obj, "convert")


def _split_batch(videos: Any) -> list[Any]:
    """One list entry per video."""
    if is_video_source(videos) or is_loaded_video(videos):
        return [videos]
    if isinstance(videos, (np.ndarray, torch.Tensor)):
        if videos.ndim == 5:
            return list(videos)
        if videos.ndim in (3, 4):
            return [videos]
        raise ValueError(f"A video array must have 3 to 5 dimensions, got shape {tuple(videos.shape)}.")
    if isinstance(videos, Sequence) and not isinstance(videos, (str, bytes)):
        if len(videos) == 0:
            raise ValueError("No video given (empty list).")
        if all(_is_frame(frame) for frame in videos):
            return [list(videos)]
        return list(videos)
    raise TypeError(f"Unsupported video input of type {type(videos).__name__}.")


def _frames_tensor(video: Any, position: int, convert_rgb: bool) -> torch.Tensor:
    """(N, H, W, C) tensor (uint8 or float) from an array / tensor video or a list of frames."""
    if isinstance(video, Sequence) and not isinstance(video, (str, bytes)):
        if len(video) == 0:
            raise ValueError(f"Video {position} has no frames.")
        frames = [_frame_array(frame, position) for frame in video]
        if len({f.shape for f in frames}) > 1:
            raise ValueError(f"Frames of video {position} differ in shape: {sorted({f.shape for f in frames})}.")
        array = torch.from_numpy(np.stack(frames))
    elif isinstance(video, (np.ndarray, torch.Tensor)):
        array = torch.as_tensor(video)
    else:
        raise TypeError(f"Video {position}: unsupported input of type {type(video).__name__}.")
    if array.ndim == 3:
        array = array[..., None]
    elif array.ndim == 4 and array.shape[1] in (1, 3) and array.shape[-1] not in (1, 3, 4):
        array = array.permute(0, 2, 3, 1)  # (T, C, H, W)
    if array.ndim != 4 or array.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"Video {position}: expected (T, H, W, 3), (T, H, W, 1), (T, 3, H, W) or (T, H, W) frames, "
            f"got shape {tuple(array.shape)}."
        )
    if array.shape[0] == 0 or array.shape[1] == 0 or array.shape[2] == 0:
        raise ValueError(f"Video {position} is empty (shape {tuple(array.shape)}).")
    if array.dtype == torch.bool or array.is_complex():
        raise ValueError(f"Video {position}: unsupported dtype {array.dtype}.")
    if array.dtype != torch.uint8 and not array.is_floating_point():
        array = array.float()
    if array.shape[-1] == 1:
        array = array.expand(-1, -1, -1, 3) if convert_rgb else array
    elif array.shape[-1] == 4:
        array = array[..., :3]
    if array.shape[-1] != 3:
        raise ValueError(f"Video {position}: grayscale input needs `do_convert_rgb=True`.")
    return array


def _frame_array(frame: Any, position: int) -> np.ndarray:
    if _is_pil(frame):
        return np.asarray(frame.convert("RGB"))
    array = frame.detach().cpu().numpy() if isinstance(frame, torch.Tensor) else np.asarray(frame)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3:
        raise ValueError(f"Video {position}: a frame must be (H, W, 3) or (H, W), got shape {array.shape}.")
    return array


def _per_video(metadata: Any, count: int) -> list[Any]:
    """transformers' ``video_metadata`` option as one entry (or ``None``) per video."""
    if metadata is None:
        return [None] * count
    if isinstance(metadata, (list, tuple)):
        if len(metadata) != count:
            raise ValueError(f"`video_metadata` has {len(metadata)} entries for {count} videos.")
        return list(metadata)
    if count != 1:
        raise ValueError(f"Give `video_metadata` as a list (one entry per video) for {count} videos.")
    return [metadata]


def _given_frame_times(info: VideoInfo, metadata: Any, position: int) -> None:
    """Frames already sampled from a video (`load_video`'s ``frames_indices``, one per given frame): their times are
    ``index / fps``, so sampling by time and the returned timestamps refer to the original video."""
    indices = (
        None
        if metadata is None
        else (metadata.get("frames_indices") if hasattr(metadata, "get") else getattr(metadata, "frames_indices", None))
    )
    if indices is None or info.fps is None:
        return
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    if indices.size != info.num_frames:
        raise ValueError(
            f"`video_metadata` of video {position}: {indices.size} frames_indices for {info.num_frames} frames."
        )
    if np.any(np.diff(indices) <= 0):
        raise ValueError(f"`video_metadata` of video {position}: frames_indices must increase.")
    info.frame_pts = indices
    info.time_base = Fraction(1) / Fraction(info.fps).limit_denominator(1_000_000)


def _given_fps(metadata: Any, position: int) -> float | None:
    if metadata is None:
        return None
    fps = metadata.get("fps") if hasattr(metadata, "get") else getattr(metadata, "fps", None)
    if fps is not None and (isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps < float("inf")):
        raise ValueError(f"`video_metadata` of video {position}: `fps` must be a positive number, got {fps!r}.")
    return None if fps is None else float(fps)


# --------------------------------------------------------------------------------------------------------------
# Geometry and normalisation
# --------------------------------------------------------------------------------------------------------------


def _resize_short_side(options: dict[str, Any]) -> int | None:
    size = options["size"]
    if size is not None:
        return size.get("shortest_edge")
    crop = min(options["crop_size"].values())
    return crop if options["num_crops"] == 3 else int(RESIZE_RATIO * crop)


def _resize_target(height: int, width: int, options: dict[str, Any]) -> tuple[int, int]:
    """Size after resizing, rounded as mmcv's ``rescale_size`` (``int(x * scale + 0.5)``)."""
    short = _resize_short_side(options)
    if short is None:
        return options["size"]["height"], options["size"]["width"]
    scale = short / min(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def _crop_boxes(size: tuple[int, int], options: dict[str, Any]) -> list[tuple[int, int, int, int]]:
    """(top, left, height, width) of each crop: three along the long side (left / right / middle, the original's
    order), or the centre crop with offsets rounded down (mmaction's ``CenterCrop``), or the whole frame."""
    height, width = size
    if options["num_crops"] == 3:
        side = options["crop_size"]["height"]
        if min(height, width) != side:
            raise ValueError(f"Three crops need the short side ({min(height, width)}) equal to the crop size ({side}).")
        step = (max(height, width) - side) // 2
        if width >= height:
            return [(0, x, side, side) for x in (0, 2 * step, step)]
        return [(y, 0, side, side) for y in (0, 2 * step, step)]
    if not options["do_center_crop"]:
        return [(0, 0, height, width)]
    crop_h, crop_w = options["crop_size"]["height"], options["crop_size"]["width"]
    if crop_h > height or crop_w > width:
        raise ValueError(f"Cannot crop {crop_h}x{crop_w} from frames of {height}x{width}; resize first.")
    return [((height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w)]


def _resize(
    images: torch.Tensor,
    target: tuple[int, int],
    rows: tuple[int, int],
    cols: tuple[int, int],
    options: dict[str, Any],
) -> torch.Tensor:
    """Rows ``rows[0]:rows[1]`` and columns ``cols[0]:cols[1]`` of (N, 3, H, W) images resized to ``target``.

    uint8 bilinear without antialiasing (the default) reproduces OpenCV's ``cv2.resize(INTER_LINEAR)`` bit for bit,
    which is what the original's ``mmcv.imresize`` runs; other settings use ``torch.nn.functional.interpolate``.
    """
    mode = _RESAMPLE_MODES[int(options["resample"])]
    antialias = bool(options["antialias"]) and mode != "nearest"
    if images.dtype == torch.uint8 and mode == "bilinear" and not antialias:
        return _resize_like_opencv(images, target, rows, cols)
    kwargs = {} if mode == "nearest" else {"align_corners": False, "antialias": antialias}
    resized = F.interpolate(images.float(), size=target, mode=mode, **kwargs)
    resized = resized[..., rows[0] : rows[1], cols[0] : cols[1]]
    if images.dtype == torch.uint8:
        return resized.round_().clamp_(0, 255).to(torch.uint8)
    return resized


_COEF_BITS = 11  # OpenCV's INTER_RESIZE_COEF_BITS


def _linear_taps(source: int, target: int, clamp_edges: bool, device) -> tuple[torch.Tensor, ...]:
    """OpenCV's bilinear taps: first / second source index and their 11-bit fixed-point weights.

    Positions are computed in float32 as OpenCV does. Horizontally OpenCV clamps the position at the borders,
    vertically it clamps only the row indices (``clamp_edges`` False).
    """
    scale = 1.0 / (target / source)
    position = ((torch.arange(target, dtype=torch.float64) + 0.5) * scale - 0.5).to(torch.float32)
    first = torch.floor(position)
    fraction = position - first
    first = first.long()
    if clamp_edges:
        low, high = first < 0, first >= source - 1
        fraction[low | high] = 0
        first = torch.where(low, 0, torch.where(high, source - 1, first))
    one = float(1 << _COEF_BITS)
    w0 = torch.round((1 - fraction) * one).to(torch.int32)
    w1 = torch.round(fraction * one).to(torch.int32)
    i0, i1 = first.clamp(0, source - 1), (first + 1).clamp(0, source - 1)
    return tuple(t.to(device) for t in (i0, i1, w0, w1))


def _resize_like_opencv(
    images: torch.Tensor, target: tuple[int, int], rows: tuple[int, int], cols: tuple[int, int]
) -> torch.Tensor:
    """Bit-exact ``cv2.resize(..., interpolation=INTER_LINEAR)`` of uint8 (N, C, H, W) images, for a window of
    the output: horizontal pass in 32-bit integers, then OpenCV's vectorised vertical pass
    ``(((a >> 4) * b0 >> 16) + ((c >> 4) * b1 >> 16) + 2) >> 2``. Only the source rows and columns that the window
    reads are touched."""
    frames = images.permute(0, 2, 3, 1)  # (N, H, W, C): the decoded frames' own memory layout
    num, height, width, channels = frames.shape
    x0, x1, a0, a1 = (t[cols[0] : cols[1]] for t in _linear_taps(width, target[1], True, images.device))
    y0, y1, b0, b1 = (t[rows[0] : rows[1]] for t in _linear_taps(height, target[0], False, images.device))
    source_rows, row_of = torch.unique(torch.cat([y0, y1]), return_inverse=True)
    source = frames.index_select(1, source_rows).reshape(num * len(source_rows), width * channels)
    channel = torch.arange(channels, device=images.device)
    left, right = (x0[:, None] * channels + channel).reshape(-1), (x1[:, None] * channels + channel).reshape(-1)
    horizontal = source.index_select(1, left).to(torch.int32) * a0.repeat_interleave(channels)
    horizontal += source.index_select(1, right).to(torch.int32) * a1.repeat_interleave(channels)
    horizontal = (horizontal >> 4).view(num, len(source_rows), -1)
    out = (horizontal.index_select(1, row_of[: len(y0)]) * b0[:, None]) >> 16
    out += (horizontal.index_select(1, row_of[len(y0) :]) * b1[:, None]) >> 16
    out = ((out + 2) >> 2).clamp_(0, 255).to(torch.uint8)
    return out.view(num, len(y0), len(x0), channels).permute(0, 3, 1, 2)


def _rescale_and_normalize(pixels: torch.Tensor, options: dict[str, Any]) -> torch.Tensor:
    pixels = pixels.float()
    channels = pixels.shape[-3]
    scale = torch.ones(channels, device=pixels.device)
    shift = torch.zeros(channels, device=pixels.device)
    if options["do_rescale"]:
        scale = scale * options["rescale_factor"]
    if options["do_normalize"]:
        mean = torch.as_tensor(options["image_mean"], dtype=torch.float64).expand(channels)
        std = torch.as_tensor(options["image_std"], dtype=torch.float64).expand(channels)
        scale = (scale.double() / std).float()
        shift = (-mean / std).float()
    return pixels * scale.view(-1, 1, 1) + shift.view(-1, 1, 1)


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
