"""The pixel side of `XClipVideoProcessor` (`hf_xclip.video_processing_xclip`): frames -> normalised pixel values, as
the original's test-time protocol: resize the short side (``int(256 / 224 * S)``; uint8 bilinear bit for bit as
OpenCV's ``cv2.resize(INTER_LINEAR)``, computing only the pixels the crops keep), crop (centre, or three along the
long side), ``(x / 255 - mean) / std``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .video_processing_config import RESAMPLE_MODES

# The original resizes the short side to 256 before a 224 crop and keeps that ratio for other input sizes.
RESIZE_RATIO = 256 / 224


def transform_frames(frames: torch.Tensor, options: dict[str, Any]) -> torch.Tensor:
    """(V_clips * T, H, W, 3) frames -> (num_crops * V_clips, T, 3, S, S) normalised pixel values."""
    clips = options["num_clips"] if options["do_sample_frames"] else 1
    if options["device"] is not None:
        frames = frames.to(options["device"])
    images = frames.permute(0, 3, 1, 2)  # a channels-last view: no copy
    size = (images.shape[-2], images.shape[-1])
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


def resized_short_side(options: dict[str, Any]) -> int | None:
    """Short side after resizing (``None`` when ``size`` gives an exact height and width)."""
    size = options["size"]
    if size is not None:
        return size.get("shortest_edge")
    crop = min(options["crop_size"].values())
    return crop if options["num_crops"] == 3 else int(RESIZE_RATIO * crop)


def _resize_target(height: int, width: int, options: dict[str, Any]) -> tuple[int, int]:
    """Size after resizing, rounded as mmcv's ``rescale_size`` (``int(x * scale + 0.5)``)."""
    short = resized_short_side(options)
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
    mode = RESAMPLE_MODES[int(options["resample"])]
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


__all__ = ["RESIZE_RATIO", "resized_short_side", "transform_frames"]
