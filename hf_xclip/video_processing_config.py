"""The options of `XClipVideoProcessor` (`hf_xclip.video_processing_xclip`): normalising and checking them, and
reading them from a saved processor in any layout.

Layouts read: ours and transformers' 5.x X-CLIP (the options nested in ``processor_config.json``), transformers'
video processor file (``video_preprocessor_config.json``), and the 2022 ``VideoMAEFeatureExtractor``
``preprocessor_config.json`` of the Hub's X-CLIP repos; a foreign config (VideoMAE / CLIP image processor) is read
as X-CLIP's test protocol at its crop size ([`translate_foreign_config`]). The files are read here rather than
through transformers' resolution, which changes between releases.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from transformers.utils import PROCESSOR_NAME, VIDEO_PROCESSOR_NAME, cached_file, logging

from .utils import check_positive_int
from .video_io import BACKENDS, SAMPLING_MODES

logger = logging.get_logger(__name__)

RESAMPLE_MODES = {0: "nearest", 2: "bilinear", 3: "bicubic"}
# Keys under which transformers' processors nest a sub-processor config in processor_config.json.
_NESTED_KEYS = ("video_processor", "image_processor", "feature_extractor")
_FOREIGN_TYPE_KEYS = ("feature_extractor_type", "image_processor_type")
_HUB_KWARGS = ("cache_dir", "force_download", "token", "local_files_only", "revision")


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


def normalise_option(name: str, value: Any) -> Any:
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


def check_options(options: dict[str, Any]) -> None:
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
    if int(options["resample"]) not in RESAMPLE_MODES:
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


def sampling_rng(options: dict[str, Any]) -> np.random.Generator | None:
    if options["frame_sampling"] != "random":
        return None
    seed = options.get("seed")
    if seed is None:  # follow torch's generator, so torch.manual_seed and DataLoader worker seeding apply
        seed = int(torch.randint(0, 2**62, (1,)).item())
    return np.random.default_rng(seed)


def is_foreign_config(config: dict[str, Any]) -> bool:
    if any(key in config for key in _FOREIGN_TYPE_KEYS):
        return True
    kind = config.get("video_processor_type")
    return kind is not None and kind != "XClipVideoProcessor"


def translate_foreign_config(config: dict[str, Any]) -> dict[str, Any]:
    """Read a VideoMAE / CLIP image-processor dict as X-CLIP's protocol at that config's input size."""
    crop = config.get("crop_size") if config.get("crop_size") is not None else config.get("size")
    crop = normalise_option("crop_size", crop) if crop is not None else None
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
VIDEO_PROCESSOR_FILES = (PROCESSOR_NAME, VIDEO_PROCESSOR_NAME, "preprocessor_config.json")


def read_video_processor_dict(
    pretrained_model_name_or_path: str | os.PathLike, kwargs: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """What `XClipVideoProcessor.get_video_processor_dict` returns: the options of a folder / Hub repo in any layout
    ([`VIDEO_PROCESSOR_FILES`]), plus ``num_frames`` from the model's ``config.json`` when the processor file has
    none, and the keyword arguments left once the Hub's are taken out."""
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


def _video_processor_dict(path: str | os.PathLike, lookup: dict[str, Any]) -> dict[str, Any]:
    """The video processor's options from a JSON file or a folder / Hub repo in any known layout."""
    if os.path.isfile(path):
        return _read_json(path)
    for name in VIDEO_PROCESSOR_FILES:
        try:
            resolved = cached_file(path, name, _raise_exceptions_for_missing_entries=False, **lookup)
        except OSError:
            if name == VIDEO_PROCESSOR_FILES[-1]:
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
        f"Can't load a video processor from {os.fspath(path)!r}: none of {', '.join(VIDEO_PROCESSOR_FILES)} holds "
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


__all__ = [
    "RESAMPLE_MODES",
    "VIDEO_PROCESSOR_FILES",
    "auto_map_left_in_files",
    "check_options",
    "is_foreign_config",
    "normalise_option",
    "read_video_processor_dict",
    "sampling_rng",
    "translate_foreign_config",
]
