"""Writing frames to a video file with PyAV, for tests, benchmarks, demos and synthetic data sets (not shipped with a
saved model: the shipped video core only reads)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..video_probe import _import_av

__all__ = ["write_video"]


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray | Sequence[Any] | Iterable[np.ndarray],
    fps: int = 25,
    *,
    codec: str = "libx264",
    pix_fmt: str | None = None,
    gop_size: int | None = None,
    crf: int | None = None,
    bit_rate: int | None = None,
    faststart: bool = False,
    encoder_options: dict[str, str] | None = None,
) -> Path:
    """Write frames to a video file with PyAV (for tests and benchmarks).

    Args:
        path: output file; the container follows the extension (``.mp4``, ``.mkv``, ``.avi``, ...).
        frames: (T, H, W, 3) or (T, H, W) uint8 array, or a sequence of such frames (arrays or PIL images), or an
            iterator of (H, W, 3) / (H, W) uint8 frames, encoded as they come (a long video never in memory).
        fps: frame rate.
        codec: ``"libx264"`` (H.264, alias ``"h264"``), ``"mpeg4"`` or any encoder PyAV has.
        pix_fmt: pixel format; default ``yuv420p``, or ``yuv444p`` for H.264 with odd sizes.
        gop_size: keyframe interval (frames).
        crf: H.264 constant rate factor (quality; lower is better, 0 is lossless).
        bit_rate: target bit rate in bit/s (for codecs without ``crf`` such as ``mpeg4``).
        faststart: put the mp4 index at the front of the file.
        encoder_options: further encoder options, e.g. ``{"preset": "ultrafast"}`` for libx264.

    Returns:
        The path written.
    """
    av = _import_av()
    if isinstance(frames, (np.ndarray, Sequence)):
        array = _frames_to_array(frames)
        images: Iterable[np.ndarray] = array
    else:
        iterator = iter(frames)
        first = next(iterator, None)
        array = _frames_to_array(np.zeros((0,)) if first is None else np.asarray(first)[None])
        images = itertools.chain(array, (_frames_to_array(np.asarray(image)[None])[0] for image in iterator))
    _, height, width, _ = array.shape
    codec = "libx264" if codec == "h264" else codec
    odd = height % 2 or width % 2
    if pix_fmt is None:
        pix_fmt = "yuv444p" if (odd and codec.startswith("libx264")) else "yuv420p"
    path = Path(path)
    container_options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), mode="w", options=container_options) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if gop_size is not None:
            stream.codec_context.gop_size = gop_size
        options = dict(encoder_options or {})
        if crf is not None:
            options["crf"] = str(crf)
        if options:
            stream.options = {**stream.options, **options}
        if bit_rate is not None:
            stream.bit_rate = bit_rate
        for image in images:
            if image.shape != (height, width, 3):
                raise ValueError(f"Frames of a video must share one shape: {image.shape} after {(height, width, 3)}.")
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _frames_to_array(frames: np.ndarray | Sequence[Any]) -> np.ndarray:
    if not isinstance(frames, np.ndarray):
        frames = np.stack([np.asarray(frame) for frame in frames]) if len(frames) else np.zeros((0,))
    if frames.ndim == 3:
        frames = np.repeat(frames[..., None], 3, axis=-1)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"Expected frames of shape (T, H, W, 3) or (T, H, W) with T >= 1, got {frames.shape}.")
    if frames.dtype != np.uint8:
        raise ValueError(f"Expected uint8 frames, got {frames.dtype}.")
    return np.ascontiguousarray(frames)
