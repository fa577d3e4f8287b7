"""The video core: probing, decoding, frame sampling (by frame count or by time) and streaming windows, for the
processor, the pipeline and every command; also the inputs of the pipeline (URLs, names for messages).

Every name below is importable from here (``from hf_xclip.video_io import read_video``); each lives in one module,
in dependency order:

* `hf_xclip.video_sampling`: which frames to read. `sample_frame_indices` (by count, the original's TSN protocol:
  ``"middle"``, ``"random"``, ``"uniform"``), `sample_frame_indices_by_time` and `frame_indices_at` (by time, on
  the frames' real timestamps), `clip_frame_range`, `window_spans`; `SAMPLING_MODES`, `TAIL_MODES`,
  `TIME_TOLERANCE`.
* `hf_xclip.video_probe`: the inputs (`is_video_source`), the errors (`VideoDecodeError`, `VideoNotFoundError`) and
  `probe_video` (PyAV demuxes the packets without decoding: frame count as decord counts it, timestamps,
  keyframes, truncation) -> `VideoInfo` / `XClipVideoMetadata` (transformers' `VideoMetadata`).
* `hf_xclip.video_decoding`: the backends (PyAV, torchcodec, decord; ``"auto"`` tries `AUTO_ORDER`,
  `require_backend`, `torchcodec_status`), `read_frames` (frames at given indices) and `read_video` (probe, sample,
  decode) -> `DecodedVideo`.
* `hf_xclip.video_windows`: `iter_windows` -> `VideoWindows` of `VideoWindow`s, windows over a long video decoded in
  one front-to-back pass.

The constants are read where they are defined: to change the order ``"auto"`` tries, set
`hf_xclip.video_decoding.AUTO_ORDER`. Writing test videos is not part of the core (a saved model ships these
files): `write_video` is in `hf_xclip.data.video_writer` (``from hf_xclip.data import write_video``).
"""

from __future__ import annotations

import os
from typing import Any

from transformers.video_utils import VideoMetadata

from .video_decoding import (
    AUTO_ORDER,
    BACKENDS,
    TORCHCODEC_INSTALL,
    Backend,
    DecodeBackendUnavailableError,
    DecodedVideo,
    decord_available,
    read_frames,
    read_video,
    require_backend,
    scaled_size,
    torchcodec_available,
    torchcodec_status,
)
from .video_probe import (
    BROKEN_TAIL_MODES,
    BrokenTailMode,
    VideoDecodeError,
    VideoInfo,
    VideoNotFoundError,
    VideoSource,
    XClipVideoMetadata,
    is_video_source,
    probe_video,
)
from .video_sampling import (
    SAMPLING_MODES,
    TAIL_MODES,
    TIME_TOLERANCE,
    SamplingMode,
    TailMode,
    clip_frame_range,
    frame_indices_at,
    sample_frame_indices,
    sample_frame_indices_by_time,
    window_spans,
)
from .video_windows import VideoWindow, VideoWindows, iter_windows

__all__ = [
    "AUTO_ORDER",
    "BACKENDS",
    "BROKEN_TAIL_MODES",
    "SAMPLING_MODES",
    "TAIL_MODES",
    "TIME_TOLERANCE",
    "TORCHCODEC_INSTALL",
    "URL_PREFIXES",
    "Backend",
    "BrokenTailMode",
    "DecodeBackendUnavailableError",
    "DecodedVideo",
    "SamplingMode",
    "TailMode",
    "VideoDecodeError",
    "VideoInfo",
    "VideoNotFoundError",
    "VideoSource",
    "VideoWindow",
    "VideoWindows",
    "XClipVideoMetadata",
    "clip_frame_range",
    "decord_available",
    "fetch_video",
    "frame_indices_at",
    "is_loaded_video",
    "is_video_source",
    "iter_windows",
    "probe_video",
    "read_frames",
    "read_video",
    "require_backend",
    "sample_frame_indices",
    "sample_frame_indices_by_time",
    "scaled_size",
    "torchcodec_available",
    "torchcodec_status",
    "video_name",
    "window_spans",
]

# --------------------------------------------------------------------------------------------------------------
# Inputs: names for messages, URLs
# --------------------------------------------------------------------------------------------------------------

URL_PREFIXES = ("http://", "https://")


def is_loaded_video(obj: Any) -> bool:
    """Whether ``obj`` is what `transformers.video_utils.load_video` returns: a ``(frames, metadata)`` tuple with a
    `VideoMetadata` (or a mapping with ``fps``) second. One video, not a batch of two."""
    if not (isinstance(obj, tuple) and len(obj) == 2):
        return False
    metadata = obj[1]
    return isinstance(metadata, VideoMetadata) or (isinstance(metadata, dict) and "fps" in metadata)


def video_name(video: Any) -> str:
    """A short name of a video input for messages: its path, or a description of bytes / frames / objects."""
    if isinstance(video, (str, os.PathLike)):
        return os.fspath(video)
    if isinstance(video, (bytes, bytearray, memoryview)):
        return f"<{len(video)} bytes>"
    if hasattr(video, "shape") and hasattr(video, "ndim"):
        return f"<{type(video).__name__} of shape {tuple(video.shape)}>"
    if is_loaded_video(video):
        return f"<loaded video: {video_name(video[0])}>"
    return f"<{type(video).__name__}>"


def fetch_video(video: Any, timeout: float | None = None) -> Any:
    """Download URLs (http/https) to bytes; return other inputs as they are, after rejecting what is not one video
    (a 5-D array is a batch, a list means several videos).

    Raises:
        ValueError: naming the input, for a failed download or something that is not one video.
    """
    if isinstance(video, str) and video.startswith(URL_PREFIXES):
        return _download(video, timeout)
    if getattr(video, "ndim", None) == 5:
        raise ValueError(
            f"video frames {video_name(video)} look like a batch of videos; pass a list of (T, H, W, 3) arrays."
        )
    if isinstance(video, (list, dict, set)) or video is None:
        raise ValueError(
            f"Cannot read a video from {video_name(video)}: pass a path, URL, bytes, a binary file object or frames "
            "as an array of shape (T, H, W, 3) (a list means several videos)."
        )
    return video


def _download(url: str, timeout: float | None) -> bytes:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout if timeout is not None else 60) as response:
            data = response.read()
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise ValueError(f"Cannot download video {url!r}: {err}") from None
    if not data:
        raise ValueError(f"Cannot download video {url!r}: empty response.")
    return data


# Names that left the video core, and where they live now (not imported from here: the code save_pretrained ships
# cannot import the library's packages).
_MOVED = {"write_video": "hf_xclip.data (from hf_xclip.data import write_video)"}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        raise ImportError(f"hf_xclip.video_io.{name} moved to {_MOVED[name]}.")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
