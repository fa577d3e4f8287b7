"""Video decoding, frame sampling (by frame count or by time), streaming windows, and a writer for test videos.

Reading follows the original X-CLIP data pipeline (decord): the frame count is the number of video packets (what
decord's ``len(VideoReader)`` reports), frames are addressed in presentation order, and only the sampled frames are
read. The backends decode identical pixels at the video's own size (tested bit for bit on H.264 and MPEG-4 Part 2);
with decode-time downscaling (``short_side``) their scalers differ (a few levels out of 255 on average on 4:2:0
video, more at sharp edges):

* ``"auto"`` (the default) tries the backends in `AUTO_ORDER` (PyAV, torchcodec, decord), moving to the next only
  when one cannot decode the file; torchcodec only when it imports *and* decodes a probe video in this process
  (`torchcodec_status`, computed once), never on AVI or streams without reliable timestamps. PyAV comes first
  because it reads the same frames with 24 to 42 % less CPU (``bench/bench_decode.py --backends``).
* torchcodec (``"torchcodec"``): ``VideoDecoder(seek_mode="exact").get_frames_at``, the decoder of transformers 5.x,
  ``datasets`` and vLLM. It needs FFmpeg's shared libraries (``apt-get install ffmpeg``) and a build matching the
  installed torch; asked for by name where it cannot run, `DecodeBackendUnavailableError` says what to install.
  Its frame count and every returned timestamp are checked against the probe (a disagreement is a
  `VideoDecodeError`, and ``"auto"`` moves on).
* PyAV (``"pyav"``): seek to the keyframe before each wanted frame and decode forward, skipping the
  unwanted non-reference frames (``skip_frame = NONREF``); about 40 % less CPU than decord on H.264
  (``bench/bench_decode.py``). Where seeking is unreliable (AVI, whose packets carry decode-order stamps; a seek
  that lands after the wanted frame, as in some MPEG-TS files) it decodes from the start instead.
* decord (``"decord"``, the original's decoder): ``VideoReader.get_batch``; last in ``"auto"``'s order.

Every file is probed with PyAV first (container opens, has a video stream, its packets demux without corruption
and as many as the header announces), so decord never sees the broken inputs it can abort or hang on. Anything
unreadable raises `VideoDecodeError` (a `ValueError`) naming the file and the reason.

Sampling by frame count (`sample_frame_indices`, the original's protocol):

* ``"middle"`` (X-CLIP / TSN test protocol): T equal segments, the middle frame of each,
  ``index_k = int((k + 0.5) * N / T)``; clip ``v`` of ``V`` uses offset ``(v + 0.5) / V`` inside each segment.
* ``"random"`` (TSN training protocol of the original): a random frame in each of T segments of
  ``N // T`` frames; the original's multi-clip testing draws ``V`` such random clips.
* ``"uniform"``: T frames evenly spaced from the first to the last frame.

Sampling by time (`sample_frame_indices_by_time`): the same modes on seconds inside ``[start_time, end_time)``, or
frames at a fixed rate (``fps=``); a time maps to the frame on screen then (`frame_indices_at`), using the frames'
real presentation timestamps (`VideoInfo.timestamps`, exact for variable frame rate). For a constant frame rate,
``"middle"`` over the whole video picks the same frames as `sample_frame_indices`.

Windows (`iter_windows`): windows of ``window`` seconds every ``stride`` seconds (`window_spans`), T frames
sampled by time inside each, decoded in one pass from front to back, each needed frame once, holding only the
frames of windows not yet yielded.
"""

from __future__ import annotations

import functools
import io
import itertools
import math
import os
import re
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO, Literal, Union

import numpy as np
from transformers.utils import logging
from transformers.video_utils import VideoMetadata

from .utils import is_positive_number

logger = logging.get_logger(__name__)

SAMPLING_MODES = ("middle", "random", "uniform")
BACKENDS = ("auto", "torchcodec", "pyav", "decord")
TAIL_MODES = ("shift", "partial")
BROKEN_TAIL_MODES = ("error", "keep")
# Times closer than this (seconds) count as equal: a frame shown at t is still "the frame at t" after rounding.
TIME_TOLERANCE = 1e-6

SamplingMode = Literal["middle", "random", "uniform"]
Backend = Literal["auto", "torchcodec", "pyav", "decord"]
TailMode = Literal["shift", "partial"]
BrokenTailMode = Literal["error", "keep"]
VideoSource = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO]  # noqa: UP007 (a runtime alias)

_DECORD_PREFIX = re.compile(r"\[\d\d:\d\d:\d\d\] \S+:\d+: ")


class VideoDecodeError(ValueError):
    """A video could not be read. ``source`` names the file (or ``<bytes>``), ``reason`` says why."""

    def __init__(self, source: str, reason: str):
        self.source = source
        self.reason = reason
        super().__init__(f"Cannot decode video {source!r}: {reason}")

    def __reduce__(self):
        return (type(self), (self.source, self.reason))


class VideoNotFoundError(VideoDecodeError, FileNotFoundError):
    """The video path does not exist (also a `FileNotFoundError`)."""

    def __str__(self) -> str:
        return f"Cannot decode video {self.source!r}: {self.reason}"


# --------------------------------------------------------------------------------------------------------------
# Frame sampling
# --------------------------------------------------------------------------------------------------------------


def sample_frame_indices(
    total_frames: int,
    num_frames: int = 8,
    mode: SamplingMode = "middle",
    num_clips: int = 1,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Frame indices of ``num_clips`` clips of ``num_frames`` frames from a video of ``total_frames`` frames.

    Args:
        total_frames: frames in the video (N).
        num_frames: frames per clip (T).
        mode: ``"middle"`` (test-time TSN, the X-CLIP default), ``"random"`` (training TSN) or ``"uniform"``.
        num_clips: temporal clips (views) per video (V).
        rng: random generator for ``"random"`` (a fresh one when ``None``).

    Returns:
        ``int64`` array of shape ``(num_clips, num_frames)`` with values in ``[0, total_frames)``. Videos shorter
        than T still give T indices (frames repeat).
    """
    if total_frames < 1:
        raise ValueError(f"Cannot sample frames from a video with {total_frames} frames.")
    if num_frames < 1 or num_clips < 1:
        raise ValueError(f"`num_frames` and `num_clips` must be positive, got {num_frames} and {num_clips}.")
    if mode == "middle":
        k = np.arange(num_frames, dtype=np.float64)[None, :]
        shift = (np.arange(num_clips, dtype=np.float64)[:, None] + 0.5) / num_clips
        indices = ((k + shift) * total_frames / num_frames).astype(np.int64)
    elif mode == "random":
        rng = rng if rng is not None else np.random.default_rng()
        indices = np.stack([_random_segment_offsets(total_frames, num_frames, rng) for _ in range(num_clips)])
    elif mode == "uniform":
        if num_clips != 1:
            raise ValueError("`uniform` sampling spans the whole video and gives one clip; use `num_clips=1`.")
        if num_frames == 1:
            indices = np.array([[(total_frames - 1) // 2]], dtype=np.int64)
        else:
            positions = np.arange(num_frames) * (total_frames - 1) / (num_frames - 1)
            indices = np.floor(positions + 0.5).astype(np.int64)[None, :]
    else:
        raise ValueError(f"Unknown frame sampling {mode!r}; expected one of {SAMPLING_MODES}.")
    return np.minimum(indices, total_frames - 1).astype(np.int64)


def clip_frame_range(total_frames: int, fps: float | None, start: float | None, end: float | None) -> tuple[int, int]:
    """``(first, stop)``: the frames of a video shown between ``start`` and ``end`` seconds (frame ``i`` is shown at
    ``i / fps``); ``None`` bounds mean the beginning / the end. A window shorter than one frame gives the frame
    shown at ``start``; a window running past the end is cut there.

    Raises:
        ValueError: the video has no frame rate, or the window starts after the video ends.
    """
    if start is None and end is None:
        return 0, total_frames
    if not fps:
        raise ValueError("the video has no frame rate, so a start / end time cannot be located")
    first = math.ceil((start or 0.0) * fps - 1e-6)
    stop = total_frames if end is None else min(total_frames, math.ceil(end * fps - 1e-6))
    if first >= total_frames:
        raise ValueError(
            f"the clip starts at {start:g} s, after the end of the video ({total_frames / fps:.3g} s, "
            f"{total_frames} frames)"
        )
    return first, max(stop, first + 1)


def _random_segment_offsets(total_frames: int, num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """One training clip exactly as the original's ``SampleFrames`` (clip_len 1, interval 1) draws it."""
    segment = total_frames // num_frames
    if segment > 0:
        offsets = np.arange(num_frames) * segment + rng.integers(segment, size=num_frames)
    else:  # fewer frames than T: evenly spread, numpy's round-half-to-even as in the original
        offsets = np.around(np.arange(num_frames) * (total_frames / num_frames))
    return np.mod(offsets.astype(np.int64), total_frames)


# --------------------------------------------------------------------------------------------------------------
# Sampling by time
# --------------------------------------------------------------------------------------------------------------


def frame_indices_at(timestamps: np.ndarray | Sequence[float], times: np.ndarray | Sequence[float]) -> np.ndarray:
    """Index of the frame on screen at each of ``times``: the last frame whose timestamp is ``<= t``.

    Args:
        timestamps: presentation times of the frames in seconds, sorted (`VideoInfo.timestamps`).
        times: seconds, any shape.

    Returns:
        ``int64`` array of the shape of ``times``, values in ``[0, len(timestamps))`` (times before the first frame
        give 0, after the last give the last). Times within `TIME_TOLERANCE` before a frame count as that frame.
    """
    stamps = np.asarray(timestamps, dtype=np.float64)
    if stamps.ndim != 1 or stamps.size == 0:
        raise ValueError(f"`timestamps` must be a non-empty 1-D sequence, got shape {stamps.shape}.")
    times = np.asarray(times, dtype=np.float64)
    indices = np.searchsorted(stamps, times + TIME_TOLERANCE, side="right") - 1
    return np.clip(indices, 0, stamps.size - 1).astype(np.int64)


def sample_frame_indices_by_time(
    timestamps: np.ndarray | Sequence[float],
    duration: float,
    num_frames: int | None = 8,
    mode: SamplingMode = "middle",
    num_clips: int = 1,
    rng: np.random.Generator | None = None,
    *,
    fps: float | None = None,
    start_time: float | None = None,
    end_time: float | None = None,
) -> np.ndarray:
    """Frame indices sampled by time inside ``[start_time, end_time)`` of a video.

    ``"middle"``: the frame on screen at the middle of each of ``num_frames`` equal time segments (clip ``v`` of
    ``V`` at offset ``(v + 0.5) / V``); ``"random"``: at a random time in each segment; ``"uniform"``:
    ``num_frames`` frames evenly spaced from the first to the last frame of the range. With ``fps`` the segments
    are ``1 / fps`` seconds long, starting at ``start_time`` (a frame every ``1 / fps`` s, at
    ``start_time + (k + 0.5) / fps``), as many as fit, at least one; ``num_frames`` is then ignored. With neither
    ``num_frames`` nor ``fps``: every frame whose timestamp lies in the range (at least the one on screen at
    ``start_time``), one clip.

    Args:
        timestamps: presentation times of the frames in seconds, sorted (`VideoInfo.timestamps`).
        duration: length of the video in seconds (`VideoInfo.duration`).
        num_frames: frames per clip (T), unless ``fps`` is given; ``None`` without ``fps``: every frame.
        mode: ``"middle"``, ``"random"`` or ``"uniform"`` (not with ``fps``).
        num_clips: clips (V); 1 with ``fps`` or ``"uniform"``.
        rng: random generator for ``"random"`` (a fresh one when ``None``).
        fps: sampling rate in frames per second instead of a frame count.
        start_time: start of the range in seconds (default 0).
        end_time: end of the range in seconds (default and at most ``duration``).

    Returns:
        ``int64`` array of shape ``(num_clips, T)``.

    Raises:
        ValueError: invalid range, counts or rate.
    """
    start, end = _time_range(duration, start_time, end_time)
    if mode not in SAMPLING_MODES:
        raise ValueError(f"Unknown frame sampling {mode!r}; expected one of {SAMPLING_MODES}.")
    if num_clips < 1:
        raise ValueError(f"`num_clips` must be positive, got {num_clips}.")
    if fps is not None:
        if not is_positive_number(fps):
            raise ValueError(f"`fps` must be a positive number, got {fps!r}.")
        if mode == "uniform" or num_clips != 1:
            raise ValueError("Sampling at a rate (`fps`) gives one clip of 'middle' or 'random' frames.")
    elif num_frames is not None and num_frames < 1:
        raise ValueError(f"`num_frames` must be positive (or give `fps`), got {num_frames}.")
    if (num_frames is None and fps is None) or mode == "uniform":
        if num_clips != 1:
            raise ValueError("All frames or `uniform` sampling of a range give one clip; use `num_clips=1`.")
        stamps = np.asarray(timestamps, dtype=np.float64)
        first = int(np.searchsorted(stamps, start - TIME_TOLERANCE, side="left"))
        last = int(np.searchsorted(stamps, end - TIME_TOLERANCE, side="left")) - 1
        if last < first:  # no frame starts inside the range: the one on screen
            first = last = int(frame_indices_at(stamps, start))
        if num_frames is None:
            return np.arange(first, last + 1, dtype=np.int64)[None, :]
        return first + sample_frame_indices(last - first + 1, num_frames, "uniform")
    return frame_indices_at(timestamps, _sample_times(start, end, num_frames, fps, mode, num_clips, rng))


def _sample_times(start: float, end: float, num_frames, fps, mode: str, num_clips: int, rng) -> np.ndarray:
    """(V, T) sampling times in seconds: segment starts plus an offset (middle, clip offsets, or random)."""
    span = end - start
    if fps is not None:
        count = max(1, math.ceil(span * fps - 0.5 - 1e-9))
        segment = 1.0 / fps if span * fps >= 0.5 else span
    else:
        count, segment = num_frames, span / num_frames
    k = np.arange(count, dtype=np.float64)[None, :]
    if mode == "random":
        rng = rng if rng is not None else np.random.default_rng()
        offsets = rng.random((num_clips, count))
    else:
        offsets = ((np.arange(num_clips, dtype=np.float64) + 0.5) / num_clips)[:, None]
    return np.minimum(start + (k + offsets) * segment, np.nextafter(end, -np.inf))


def _time_range(
    duration: float, start_time: float | None = None, end_time: float | None = None, name: str = "the video"
) -> tuple[float, float]:
    """``(start, end)`` seconds of a range of a video: defaults 0 and ``duration``; ``end_time`` past the end is cut
    to ``duration``.

    Raises:
        ValueError: naming ``name``: negative or non-finite times, ``start_time`` at or past the end,
            ``end_time <= start_time``, or a video without duration.
    """
    if not is_positive_number(duration):
        raise ValueError(f"Cannot sample by time from {name}: its duration is {duration!r} s.")
    start = 0.0 if start_time is None else start_time
    if not isinstance(start, (int, float, np.number)) or not math.isfinite(start) or start < 0:
        raise ValueError(f"`start_time` must be a non-negative number of seconds, got {start_time!r}.")
    if start >= duration:
        raise ValueError(f"`start_time` {start:g} s is at or past the end of {name} ({duration:.3f} s).")
    end = float(duration) if end_time is None else end_time
    if not isinstance(end, (int, float, np.number)) or math.isnan(end) or end <= start:
        raise ValueError(f"`end_time` must be a number of seconds after `start_time` ({start:g}), got {end_time!r}.")
    return float(start), float(min(end, duration))


def window_spans(
    duration: float,
    window: float,
    stride: float,
    *,
    start_time: float | None = None,
    end_time: float | None = None,
    tail: TailMode = "shift",
) -> np.ndarray:
    """``(start, end)`` seconds of the windows `iter_windows` reads: ``window`` seconds every ``stride`` seconds
    from ``start_time``, as many as fit before ``end_time`` (default: the end of the video).

    When the grid leaves the end uncovered (the next window would start before the end but not fit), one more
    window is added: ``tail="shift"`` (default) ends it at the end, ``[end - window, end)``, so that every window
    has the same length; ``tail="partial"`` keeps the grid, ``[next start, end)``. A range shorter than one window
    gives one window covering it. ``stride > window`` leaves gaps between windows.

    Returns:
        float64 array of shape ``(num_windows, 2)``, starts non-decreasing, rounded to microseconds.

    Raises:
        ValueError: non-positive ``window`` / ``stride``, an unknown ``tail``, or an invalid range.

    Example:

    ```python
    >>> window_spans(10.0, window=4, stride=3).tolist()
    [[0.0, 4.0], [3.0, 7.0], [6.0, 10.0]]
    >>> window_spans(10.0, window=4, stride=4).tolist()  # the tail [8, 10) becomes [6, 10)
    [[0.0, 4.0], [4.0, 8.0], [6.0, 10.0]]
    >>> window_spans(10.0, window=4, stride=4, tail="partial").tolist()
    [[0.0, 4.0], [4.0, 8.0], [8.0, 10.0]]
    >>> window_spans(2.5, window=4, stride=2).tolist()  # shorter than one window
    [[0.0, 2.5]]
    ```
    """
    for name, value in (("window", window), ("stride", stride)):
        if not is_positive_number(value):
            raise ValueError(f"`{name}` must be a positive, finite number of seconds, got {value!r}.")
    if tail not in TAIL_MODES:
        raise ValueError(f"`tail` must be one of {TAIL_MODES}, got {tail!r}.")
    start, end = _time_range(duration, start_time, end_time)
    spans = [np.array([[start, end]])]
    if end - start > window + TIME_TOLERANCE:
        count = int(math.floor((end - start - window) / stride + TIME_TOLERANCE)) + 1
        starts = start + stride * np.arange(count, dtype=np.float64)
        spans = [np.stack([starts, starts + window], axis=1)]
        next_start = start + stride * count
        if starts[-1] + window < end - TIME_TOLERANCE and next_start < end - TIME_TOLERANCE:
            spans.append(np.array([[end - window, end] if tail == "shift" else [next_start, end]]))
    return np.round(np.concatenate(spans), 6)  # microseconds: 1.2, not 1.2000000000000002


# --------------------------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------------------------


@dataclass
class _Source:
    """A path or in-memory bytes, with a name for messages."""

    name: str
    path: str | None = None
    data: bytes | None = None

    def open_buffer(self) -> str | io.BytesIO:
        return self.path if self.path is not None else io.BytesIO(self.data)


def is_video_source(obj: Any) -> bool:
    """Whether ``obj`` is something `read_video` decodes (a path, bytes or a binary file object)."""
    return isinstance(obj, (str, os.PathLike, bytes, bytearray, memoryview)) or (
        hasattr(obj, "read") and callable(obj.read)
    )


def _as_source(source: VideoSource) -> _Source:
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.exists(path):
            raise VideoNotFoundError(path, "file not found")
        if not os.path.isfile(path):
            raise VideoDecodeError(path, "not a regular file")
        if os.path.getsize(path) == 0:
            raise VideoDecodeError(path, "empty file (0 bytes)")
        return _Source(name=path, path=path)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        name = "<bytes>"
    elif hasattr(source, "read"):
        name = str(getattr(source, "name", "<file object>"))
        data = source.read()
        if not isinstance(data, (bytes, bytearray)):
            raise VideoDecodeError(name, f"file object returned {type(data).__name__}, open it in binary mode")
        data = bytes(data)
    else:
        raise TypeError(f"Unsupported video source of type {type(source).__name__}.")
    if len(data) == 0:
        raise VideoDecodeError(name, "empty input (0 bytes)")
    return _Source(name=name, data=data)


# --------------------------------------------------------------------------------------------------------------
# Probing (PyAV)
# --------------------------------------------------------------------------------------------------------------


@dataclass
class XClipVideoMetadata(VideoMetadata):
    """transformers' `VideoMetadata` (also a mapping: ``meta["fps"]``) with the sampled frames' real timestamps.

    transformers' fields: ``total_num_frames``, ``fps`` (average rate), ``width``, ``height``, ``duration``
    (seconds), ``video_backend``, ``frames_indices`` (sampled indices, clips concatenated). Added:

    * ``timestamps``: seconds of the sampled frames from their presentation timestamps, so exact for a variable
      frame rate (transformers computes ``index / fps``); ``None`` for frames given without a frame rate;
    * ``source``: the path, ``<bytes>`` or ``<array k>``;
    * ``num_clips``: clips in ``frames_indices``; ``frame_indices`` gives them per clip, ``(num_clips, T)``;
      ``backend`` is ``video_backend``.
    """

    source: str | None = None
    timestamps: list[float] | None = None
    num_clips: int = 1

    @property
    def frame_indices(self) -> list[list[int]] | None:
        """Sampled indices per clip, ``(num_clips, T)``."""
        if self.frames_indices is None:
            return None
        return np.asarray(self.frames_indices, dtype=np.int64).reshape(self.num_clips, -1).tolist()

    @property
    def backend(self) -> str | None:
        return self.video_backend


@dataclass
class VideoInfo:
    """What the probe learnt about a video.

    ``num_frames`` counts video packets (the frame count decord and the original X-CLIP use); ``frame_pts`` are
    their presentation timestamps in stream time base, sorted (``None`` when the container has none);
    ``keyframe_pts`` the subset that are keyframes; ``fps`` is the stream's average rate. ``header_duration`` is
    the duration the header announces (seconds; ``None`` when absent), for comparison with `duration`, which comes
    from the frames. ``truncated`` says why the readable part ends early when the probe kept the frames before a
    broken tail (``broken_tail="keep"``); ``None`` for an intact file.
    """

    name: str
    num_frames: int
    height: int
    width: int
    fps: float | None
    codec: str
    container: str
    time_base: Any = None
    frame_pts: np.ndarray | None = field(default=None, repr=False)
    keyframe_pts: np.ndarray | None = field(default=None, repr=False)
    header_duration: float | None = None
    truncated: str | None = None

    @cached_property
    def timestamps(self) -> np.ndarray:
        """Seconds of each frame (presentation order) from the first frame: ``(pts - first pts) * time_base``,
        so exact for a variable frame rate; ``index / fps`` for streams without timestamps (raw H.264).

        Raises:
            VideoDecodeError: the stream has neither timestamps nor a frame rate.
        """
        if self.frame_pts is not None and self.time_base:
            ticks = (self.frame_pts - self.frame_pts[0]).astype(np.float64)
            return ticks * self.time_base.numerator / self.time_base.denominator
        if not self.fps:
            raise VideoDecodeError(self.name, "the video stream has neither frame timestamps nor a frame rate")
        return np.arange(self.num_frames, dtype=np.float64) / self.fps

    @property
    def duration(self) -> float | None:
        """Seconds from the first frame to the end of the last: its timestamp plus the interval before it (one
        frame at the stream's rate for a single frame). Read from the frames, not the header (which can be absent
        or, with B-frames or a variable rate, shorter than the last timestamp). ``None`` when unknown."""
        try:
            stamps = self.timestamps
        except VideoDecodeError:
            return None
        if len(stamps) > 1:
            return float(stamps[-1] + (stamps[-1] - stamps[-2]))
        return 1.0 / self.fps if self.fps else None

    def sample_indices(
        self,
        num_frames: int | None = 8,
        mode: SamplingMode = "middle",
        num_clips: int = 1,
        rng: np.random.Generator | None = None,
        *,
        fps: float | None = None,
        start_time: float | None = None,
        end_time: float | None = None,
    ) -> np.ndarray:
        """``(V, T)`` frame indices of this video: by count over the whole video (`sample_frame_indices`, the
        original's protocol), or by time when ``fps``, ``start_time`` or ``end_time`` is given
        (`sample_frame_indices_by_time`). ``num_frames=None`` (without ``fps``): every frame (of the range).

        Raises:
            ValueError: invalid arguments or time range, naming the video.
        """
        if fps is None and start_time is None and end_time is None:
            if num_frames is None:
                return np.arange(self.num_frames, dtype=np.int64)[None, :]
            return sample_frame_indices(self.num_frames, num_frames, mode, num_clips, rng)
        start, end = _time_range(self.duration, start_time, end_time, name=repr(self.name))
        return sample_frame_indices_by_time(
            self.timestamps, self.duration, num_frames, mode, num_clips, rng, fps=fps, start_time=start, end_time=end
        )

    def metadata(
        self, indices: np.ndarray | Sequence[int] | None = None, backend: str | None = None
    ) -> XClipVideoMetadata:
        """transformers-style metadata of this video and of the sampled ``indices`` (``(T,)`` or ``(V, T)``)."""
        sampled = None if indices is None else np.asarray(indices, dtype=np.int64)
        stamps = None
        if sampled is not None and self.duration is not None:
            stamps = self.timestamps[sampled.reshape(-1)].tolist()
        return XClipVideoMetadata(
            total_num_frames=self.num_frames,
            fps=self.fps,
            width=self.width,
            height=self.height,
            duration=self.duration,
            video_backend=backend,
            frames_indices=None if sampled is None else sampled.reshape(-1).tolist(),
            source=self.name,
            timestamps=stamps,
            num_clips=1 if sampled is None or sampled.ndim < 2 else sampled.shape[0],
        )


def _import_av():
    try:
        import av
    except ImportError as err:  # pragma: no cover - av is a dependency
        raise ImportError("Reading videos needs PyAV: `pip install av`.") from err
    return av


def _open_container(src: _Source):
    av = _import_av()
    try:
        container = av.open(src.open_buffer(), mode="r", metadata_errors="ignore")
    except av.error.FFmpegError as err:
        raise VideoDecodeError(src.name, f"not a readable video container ({_ffmpeg_reason(err)})") from None
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(src.name, "the container has no video stream")
    return container


def _ffmpeg_reason(err: Exception) -> str:
    text = getattr(err, "strerror", None) or str(err)
    return text.split(":")[0].strip() if text else type(err).__name__


def probe_video(source: VideoSource, *, broken_tail: BrokenTailMode = "error") -> VideoInfo:
    """Open ``source`` with PyAV and check that it holds a readable, complete video stream.

    Demuxes the video packets (no decoding) to count frames, collect timestamps and detect truncation.

    Args:
        source: path, bytes or binary file object.
        broken_tail: ``"error"`` (default): truncated or corrupt packets raise. ``"keep"``: keep the frames before
            the first damaged packet (a recording or download cut short) and say why in ``VideoInfo.truncated``;
            a file without any readable frame still raises.

    Raises:
        VideoNotFoundError: the path does not exist.
        VideoDecodeError: empty, not a video, no video stream, no frames, or truncated / corrupt packets.
    """
    return _probe(_as_source(source), broken_tail)


def _probe(src: _Source, broken_tail: BrokenTailMode = "error") -> VideoInfo:
    av = _import_av()
    container = _open_container(src)
    try:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        if not ctx.width or not ctx.height:
            raise VideoDecodeError(src.name, "the video stream has no frame size (broken header)")
        if broken_tail not in BROKEN_TAIL_MODES:
            raise ValueError(f"`broken_tail` must be one of {BROKEN_TAIL_MODES}, got {broken_tail!r}.")
        keep = broken_tail == "keep"
        pts, key_pts, corrupt, has_none = array("q"), array("q"), 0, False  # 8 bytes per frame
        truncated = None
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                if packet.is_corrupt and keep:
                    truncated = f"damaged packet after {len(pts)} frames"
                    break
                corrupt += bool(packet.is_corrupt)
                stamp = packet.pts if packet.pts is not None else packet.dts
                has_none |= stamp is None
                pts.append(stamp if stamp is not None else 0)
                if packet.is_keyframe:
                    key_pts.append(stamp if stamp is not None else 0)
        except av.error.FFmpegError as err:
            if not (keep and pts):
                raise VideoDecodeError(src.name, f"truncated or corrupt data ({_ffmpeg_reason(err)})") from None
            truncated = f"unreadable data after {len(pts)} frames ({_ffmpeg_reason(err)})"
        if not pts:
            raise VideoDecodeError(src.name, "the video stream has no frames")
        if corrupt:
            raise VideoDecodeError(src.name, f"truncated or corrupt data ({corrupt} damaged packet(s))")
        announced = stream.frames or 0
        if announced > len(pts):
            missing = f"the header announces {announced} frames, {len(pts)} present"
            if not keep:
                raise VideoDecodeError(src.name, f"truncated: {missing}")
            truncated = missing if truncated is None else f"{truncated}; {missing}"
        rate = stream.average_rate or stream.guessed_rate
        frame_pts = key = None
        if not has_none:
            frame_pts = np.sort(np.frombuffer(pts, dtype=np.int64))
            key = np.sort(np.frombuffer(key_pts, dtype=np.int64))
            if len(np.unique(frame_pts)) != len(frame_pts):
                frame_pts = key = None  # duplicated timestamps: fall back to decoding in order
        return VideoInfo(
            name=src.name,
            num_frames=len(pts),
            height=ctx.height,
            width=ctx.width,
            fps=float(rate) if rate else None,
            codec=ctx.name,
            container=container.format.name,
            time_base=stream.time_base,
            frame_pts=frame_pts,
            keyframe_pts=key,
            header_duration=_header_duration(container, stream),
            truncated=truncated,
        )
    finally:
        container.close()


def _header_duration(container, stream) -> float | None:
    """Seconds the header announces for the video stream (the container's duration when the stream has none)."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return None


# --------------------------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------------------------


def scaled_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """(height, width) after scaling the short side to ``short_side``, rounded as the original (mmcv) does."""
    scale = short_side / min(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def decord_available() -> bool:
    try:
        import decord  # noqa: F401
    except Exception:  # ImportError, or a broken native library
        return False
    return True


# --------------------------------------------------------------------------------------------------------------
# torchcodec
# --------------------------------------------------------------------------------------------------------------

TORCHCODEC_INSTALL = (
    "`pip install 'hf_xclip[torchcodec]'` (a torchcodec built for the installed torch: the PyPI wheels link the CUDA "
    "build of torch) and FFmpeg's shared libraries (`apt-get install ffmpeg`, or the libavcodec / libavformat / "
    "libavutil / libswscale packages of FFmpeg 4 to 8)"
)


class DecodeBackendUnavailableError(ImportError):
    """A decoding backend asked for by name cannot run here (not installed, or its native libraries do not load).
    The message says why and what to install."""


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:300]


@functools.lru_cache(maxsize=1)
def _probe_clip() -> bytes:
    """A 2-frame 16x16 MPEG-4 video in memory: what `torchcodec_status` decodes."""
    av = _import_av()
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        for value in (0, 255):
            frame = av.VideoFrame.from_ndarray(np.full((16, 16, 3), value, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


@functools.lru_cache(maxsize=1)
def torchcodec_status() -> str | None:
    """``None`` when torchcodec works here: it imports (its native libraries, FFmpeg's included, load next to this
    torch) and decodes a probe video to the right frames. Otherwise the reason it does not. Computed once per
    process (``torchcodec_status.cache_clear()`` to look again)."""
    try:
        from torchcodec.decoders import VideoDecoder
    except Exception as err:  # ImportError, OSError / RuntimeError from the native libraries
        return f"torchcodec does not load ({_first_line(err)})"
    try:
        decoder = VideoDecoder(_probe_clip(), seek_mode="exact", dimension_order="NHWC")
        frames = decoder.get_frames_at([0, 1]).data.numpy()
    except Exception as err:
        return f"torchcodec cannot decode a probe video ({_first_line(err)})"
    if frames.shape != (2, 16, 16, 3) or not (frames[0].mean() < 40 < 215 < frames[1].mean()):
        return f"torchcodec decoded a probe video wrongly (shape {frames.shape})"
    return None


def torchcodec_available() -> bool:
    """Whether the ``"torchcodec"`` backend works in this process (see `torchcodec_status`)."""
    return torchcodec_status() is None


def require_backend(backend: str) -> None:
    """Check that a backend asked for by name can run here.

    Raises:
        ValueError: an unknown backend.
        DecodeBackendUnavailableError: ``"torchcodec"`` or ``"decord"`` cannot run; the message names what to install.
    """
    if backend not in BACKENDS:
        raise ValueError(f"Unknown video backend {backend!r}; expected one of {BACKENDS}.")
    if backend == "torchcodec" and not torchcodec_available():
        raise DecodeBackendUnavailableError(
            f"decode_backend='torchcodec' cannot run here: {torchcodec_status()}. It needs {TORCHCODEC_INSTALL}; "
            "or use decode_backend='auto' (PyAV, then torchcodec or decord for what PyAV cannot decode) or 'pyav'."
        )
    if backend == "decord" and not decord_available():
        raise DecodeBackendUnavailableError(
            "decode_backend='decord' needs decord: `pip install decord`; or use 'auto'."
        )


# What ``"auto"`` tries, in order, for a file: the next one only when the previous cannot decode it (PyAV has no
# decoder for the codec; torchcodec cannot open the file or disagrees with the probe). PyAV first because it decodes
# the same frames with 24 to 42 % less CPU than torchcodec (it skips the non-reference frames it does not need):
# `bench/bench_decode.py --backends`, docs/videos.md. Put "torchcodec" first to prefer it.
AUTO_ORDER = ("pyav", "torchcodec", "decord")


def _candidates(backend: str, info: VideoInfo) -> list[str]:
    """The backends to try for ``backend`` on this file: the one asked for by name (checked to run here), or the
    usable ones of `AUTO_ORDER` (torchcodec only where it works in this process and frames are identified by
    timestamps: not AVI, whose packets carry decode-order stamps; decord only when installed)."""
    if backend != "auto":
        require_backend(backend)
        return [backend]
    usable = {
        "pyav": True,
        "torchcodec": _pts_reliable(info) and torchcodec_available(),
        "decord": decord_available(),
    }
    return [name for name in AUTO_ORDER if usable[name]]


def _falls_through(name: str, err: Exception, last: bool) -> bool:
    """Whether ``auto`` moves on from backend ``name`` after ``err``: PyAV without a decoder for the codec, or
    torchcodec failing on the file (its errors are about the file as it sees it); never for the last one."""
    if last:
        return False
    return isinstance(err, _NoDecoderError) if name == "pyav" else name == "torchcodec"


def _open_torchcodec(src: _Source, info: VideoInfo, size: tuple[int, int] | None, threads: int):
    """A torchcodec ``VideoDecoder`` (exact seeking, NHWC) that agrees with the probe on the frame count.

    Raises:
        VideoDecodeError: torchcodec cannot open the file, or counts other frames than the probe.
    """
    try:  # inside `try`: code shipped for trust_remote_code must not make transformers require torchcodec
        from torchcodec.decoders import VideoDecoder

        transforms = None
        if size is not None:
            from torchcodec.transforms import Resize

            transforms = [Resize(size=size)]
    except ImportError as err:
        raise DecodeBackendUnavailableError(
            f"torchcodec cannot be imported here ({err}); it needs {TORCHCODEC_INSTALL}"
        )
    try:
        decoder = VideoDecoder(
            src.path if src.path is not None else src.data,
            seek_mode="exact",
            dimension_order="NHWC",
            num_ffmpeg_threads=max(threads, 0),
            transforms=transforms,
        )
    except Exception as err:
        raise VideoDecodeError(src.name, f"torchcodec cannot open it ({_first_line(err)})") from None
    count = decoder.metadata.num_frames
    if count != info.num_frames:
        raise VideoDecodeError(src.name, f"torchcodec counts {count} frames, the probe {info.num_frames}")
    return decoder


def _torchcodec_frames(decoder, src: _Source, info: VideoInfo, indices: np.ndarray) -> np.ndarray:
    """Frames at the sorted, unique ``indices``; each one's timestamp must be the probe's for that index.

    Raises:
        VideoDecodeError: decoding fails, or a frame comes back with another timestamp than the probe's.
    """
    try:
        batch = decoder.get_frames_at([int(i) for i in indices])
    except Exception as err:
        raise VideoDecodeError(src.name, f"torchcodec failed ({_first_line(err)})") from None
    if info.frame_pts is not None and info.time_base:
        expected = info.frame_pts[indices].astype(np.float64) * float(info.time_base)
        got = batch.pts_seconds.double().numpy()
        tolerance = 0.5 * float(info.time_base) + TIME_TOLERANCE
        wrong = np.flatnonzero(np.abs(got - expected) > tolerance)
        if wrong.size:
            k = int(wrong[0])
            raise VideoDecodeError(
                src.name,
                f"torchcodec returned frame {int(indices[k])} at {got[k]:.6f} s, "
                f"the probe has it at {expected[k]:.6f} s",
            )
    return batch.data.numpy()


def _read_with_torchcodec(src: _Source, info: VideoInfo, indices: np.ndarray, size, threads: int) -> np.ndarray:
    return _torchcodec_frames(_open_torchcodec(src, info, size, threads), src, info, indices)


def _read_decord(src: _Source, info: VideoInfo, indices: np.ndarray, size: tuple[int, int] | None, threads: int):
    try:  # inside `try` so that trust_remote_code's import check does not require decord (optional on some platforms)
        import decord
    except ImportError as err:
        raise ImportError("The decord backend needs decord (`pip install decord`); use backend='pyav'.") from err

    height, width = size if size is not None else (-1, -1)
    reader = decord.VideoReader(src.open_buffer(), ctx=decord.cpu(0), width=width, height=height, num_threads=threads)
    if len(reader) != info.num_frames:
        raise RuntimeError(f"decord counts {len(reader)} frames, the probe {info.num_frames}")
    frames = reader.get_batch([int(i) for i in indices]).asnumpy()
    del reader
    return frames


def _frame_to_array(frame, size: tuple[int, int] | None) -> np.ndarray:
    if size is None:
        return frame.to_ndarray(format="rgb24")
    return frame.to_ndarray(format="rgb24", height=size[0], width=size[1], interpolation="BILINEAR")


def _read_pyav(src: _Source, info: VideoInfo, indices: np.ndarray, size: tuple[int, int] | None, threads: int):
    """Decode the frames at ``indices`` (sorted, unique): seek to the keyframe before each, decode forward; decode
    front to back instead where seeking cannot be trusted."""
    if _pts_reliable(info):
        av = _import_av()
        container = _open_container(src)
        try:
            stream = _configure_threads(container.streams.video[0], threads)
            try:
                return _decode_with_seeks(container, stream, info, [int(i) for i in indices], size, src.name)
            except av.error.DecoderNotFoundError as err:
                raise _NoDecoderError(src.name, f"PyAV has no decoder for {stream.codec_context.name!r}") from err
            except av.error.FFmpegError as err:
                raise VideoDecodeError(src.name, f"decoding failed ({_ffmpeg_reason(err)})") from None
        except _SeekMissed as missed:
            logger.info(f"{src.name}: {missed}; decoding from the start instead.")
        finally:
            container.close()
    return np.stack([frame for _, frame in _stream_pyav(src, info, indices, size, threads, seek=False)])


class _NoDecoderError(VideoDecodeError):
    """PyAV's FFmpeg build cannot decode this codec (decord's bundled FFmpeg may)."""


class _SeekMissed(Exception):
    """A seek landed after the wanted frame (inexact seeking, e.g. in some MPEG-TS files)."""


def _pts_reliable(info: VideoInfo) -> bool:
    """Whether frames can be identified by their timestamps (and so found by seeking): the stream has unique
    timestamps and is not in AVI, whose packets carry decode-order stamps (wrong for B-frames)."""
    return info.frame_pts is not None and info.container != "avi"


def _configure_threads(stream, threads: int):
    stream.thread_type = "AUTO" if threads != 1 else "SLICE"
    stream.codec_context.thread_count = max(threads, 0)
    return stream


def _keyframe_before(info: VideoInfo, index: int) -> int:
    """pts of the last keyframe at or before frame ``index`` (the first frame's pts when there is none)."""
    target = int(info.frame_pts[index])
    before = info.keyframe_pts[info.keyframe_pts <= target]
    return int(before[-1]) if len(before) else int(info.frame_pts[0])


def _decode_with_seeks(container, stream, info: VideoInfo, wanted: list[int], size, name: str) -> np.ndarray:
    frame_pts = info.frame_pts
    wanted_pts = {int(frame_pts[i]) for i in wanted}
    out: dict[int, np.ndarray] = {}
    frames_iter, position = None, None  # `position` = pts of the last decoded frame
    for index in wanted:
        target = int(frame_pts[index])
        keyframe = _keyframe_before(info, index)
        if frames_iter is None or position is None or target <= position or keyframe > position:
            container.seek(keyframe, stream=stream, backward=True, any_frame=False)
            frames_iter, position = _decode_forward(container, stream, wanted_pts, info.truncated is not None), None
        for frame in frames_iter:
            stamp = frame.pts if frame.pts is not None else frame.dts
            if stamp is None:
                continue
            if position is None and stamp > target:
                raise _SeekMissed(f"seeking to pts {keyframe} for frame {index} landed at pts {stamp}")
            position = stamp
            if stamp >= target:
                if stamp > target:
                    logger.warning_once(f"{name}: frame at pts {target} not found after seeking, using pts {stamp}.")
                out[index] = _frame_to_array(frame, size)
                break
        else:
            raise VideoDecodeError(name, f"frame {index} (pts {target}) could not be decoded")
    return np.stack([out[i] for i in wanted])


def _decode_forward(container, stream, wanted_pts: set[int] | None, stop_at_damage: bool = False):
    """Frames from the current position on. Unwanted frames that no other frame references (e.g. most B-frames)
    are not decoded at all (FFmpeg's ``skip_frame = NONREF``), which saves about a third of the decoding;
    ``wanted_pts=None`` decodes every frame. ``stop_at_damage`` (a file probed with ``broken_tail="keep"``): end at
    the first damaged packet or unreadable data and flush the frames the decoder still holds."""
    av = _import_av()
    context = stream.codec_context
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.error.FFmpegError:
            if not stop_at_damage:
                raise
            break
        if stop_at_damage and packet.is_corrupt:
            break
        if wanted_pts is not None:
            stamp = packet.pts if packet.pts is not None else packet.dts
            context.skip_frame = "DEFAULT" if stamp is None or stamp in wanted_pts else "NONREF"
        yield from context.decode(packet)
    context.skip_frame = "DEFAULT"
    yield from context.decode(None)  # flush


@dataclass
class _DecodeStats:
    """Counters of a streaming decode: frames the decoder returned, frames converted to RGB arrays."""

    decoded: int = 0
    converted: int = 0


def _stream_pyav(
    src: _Source,
    info: VideoInfo,
    needed: np.ndarray,
    size: tuple[int, int] | None,
    threads: int,
    stats: _DecodeStats | None = None,
    seek: bool = True,
) -> Iterator[tuple[int, np.ndarray]]:
    """``(index, frame)`` for the sorted, unique ``needed`` indices, in that order, from one front-to-back decode.

    Starts at the keyframe before the first needed frame (``seek``, where timestamps are reliable; from the start
    if the seek lands too late) and stops after the last. Each decoded frame is converted to RGB at most once;
    unneeded non-reference frames are skipped by the decoder. Frames are identified by timestamp, or by position
    in presentation order where timestamps cannot be trusted (then every frame from the start is decoded). A needed
    frame the decoder never returns is replaced by the next one returned (with a warning, as `read_frames` does).

    Raises:
        VideoDecodeError: decoding fails, or the stream ends before the last needed frame (naming the time).
    """
    av = _import_av()
    stats = stats if stats is not None else _DecodeStats()
    by_pts = _pts_reliable(info)
    first = int(needed[0])
    seeking = seek and by_pts and first > 0 and _keyframe_before(info, first) > int(info.frame_pts[0])
    cursor, last_index = 0, -1
    while True:
        container = _open_container(src)
        missed = False
        try:
            stream = _configure_threads(container.streams.video[0], threads)
            if seeking:
                container.seek(_keyframe_before(info, first), stream=stream, backward=True, any_frame=False)
            wanted_pts = {int(p) for p in info.frame_pts[needed]} if by_pts else set()
            frames = _decode_forward(container, stream, wanted_pts if by_pts else None, info.truncated is not None)
            for position, frame in enumerate(frames):
                stats.decoded += 1
                index = _frame_index(info, frame) if by_pts else position
                if index is None or index >= info.num_frames:
                    continue
                if seeking and last_index < 0 and index > first:
                    missed = True
                    break
                last_index, array = index, None
                while cursor < len(needed) and needed[cursor] <= index:
                    if needed[cursor] < index:
                        logger.warning_once(f"{src.name}: frame {needed[cursor]} was not decoded, using frame {index}.")
                    if array is None:
                        array = _frame_to_array(frame, size)
                        stats.converted += 1
                    yield int(needed[cursor]), array
                    cursor += 1
                if cursor == len(needed):
                    return
        except av.error.DecoderNotFoundError as err:
            raise _NoDecoderError(src.name, f"PyAV has no decoder for {info.codec!r}") from err
        except av.error.FFmpegError as err:
            reason = f"decoding failed {_after(info, last_index)} ({_ffmpeg_reason(err)})"
            raise VideoDecodeError(src.name, reason) from None
        finally:
            container.close()
        if not missed:
            break
        logger.info(f"{src.name}: seeking landed after frame {first}; decoding from the start instead.")
        seeking = False
    when = float(info.timestamps[int(needed[cursor])])
    raise VideoDecodeError(
        src.name,
        f"frames from {when:.3f} s on could not be decoded (decoding stopped {_after(info, last_index)}; "
        "truncated or corrupt data)",
    )


def _frame_index(info: VideoInfo, frame) -> int | None:
    """Index of a decoded frame from its timestamp (``None`` when it has none or an unknown one)."""
    stamp = frame.pts if frame.pts is not None else frame.dts
    if stamp is None:
        return None
    index = int(np.searchsorted(info.frame_pts, stamp))
    return index if index < len(info.frame_pts) and info.frame_pts[index] == stamp else None


def _after(info: VideoInfo, index: int) -> str:
    """Where decoding stopped, for messages."""
    if index < 0:
        return "before the first frame"
    return f"after frame {index} at {float(info.timestamps[index]):.3f} s"


@dataclass
class DecodedVideo:
    """Frames of ``V`` clips of ``T`` frames: ``frames`` (V, T, H, W, 3) uint8, ``indices`` (V, T), ``info``;
    ``timestamps`` (V, T) seconds of the frames; ``metadata`` in transformers' form."""

    frames: np.ndarray
    indices: np.ndarray
    info: VideoInfo
    backend: str

    @property
    def timestamps(self) -> np.ndarray:
        return self.info.timestamps[self.indices]

    @property
    def metadata(self) -> XClipVideoMetadata:
        return self.info.metadata(self.indices, self.backend)


def read_frames(
    source: VideoSource,
    indices: Sequence[int] | np.ndarray,
    *,
    backend: Backend = "auto",
    short_side: int | None = None,
    num_threads: int = 0,
    info: VideoInfo | None = None,
) -> tuple[np.ndarray, str]:
    """Decode the frames at ``indices`` (any order, repeats allowed) of a video.

    Args:
        source: path, bytes or binary file object.
        indices: frame indices in presentation order.
        backend: ``"auto"`` (`AUTO_ORDER`: PyAV; torchcodec, then decord, when PyAV has no decoder for the codec),
            ``"torchcodec"``, ``"pyav"`` or ``"decord"``.
        short_side: decode-time downscaling so that the short side has this many pixels (aspect kept).
        num_threads: decoder threads (0 = automatic).
        info: result of `probe_video` for this source, to skip probing again.

    Raises:
        DecodeBackendUnavailableError: ``"torchcodec"`` / ``"decord"`` asked for by name cannot run here.

    Returns:
        ``(frames, backend_used)`` with frames (len(indices), H, W, 3) uint8 RGB.
    """
    src = _as_source(source)
    info = info if info is not None else _probe(src)
    return _read_frames(src, info, np.asarray(indices, dtype=np.int64), backend, short_side, num_threads)


def _decord_reason(err: Exception) -> str:
    """decord's messages nest ``[hh:mm:ss] file.cc:line:`` prefixes; keep the last message."""
    text = _DECORD_PREFIX.sub("", str(err).splitlines()[0] if str(err) else type(err).__name__)
    return text.strip()[:200] or type(err).__name__


def _read_frames(src: _Source, info: VideoInfo, indices: np.ndarray, backend: str, short_side, threads: int):
    if backend not in BACKENDS:
        raise ValueError(f"Unknown video backend {backend!r}; expected one of {BACKENDS}.")
    if indices.size == 0:
        raise ValueError("No frame indices to read.")
    if indices.min() < 0 or indices.max() >= info.num_frames:
        raise ValueError(f"Frame indices must lie in [0, {info.num_frames}) for {src.name!r}, got {indices.tolist()}.")
    unique, inverse = np.unique(indices, return_inverse=True)
    size = _decode_size(info, short_side)
    readers = {"pyav": _read_pyav, "torchcodec": _read_with_torchcodec, "decord": _read_with_decord}
    candidates = _candidates(backend, info)
    for position, name in enumerate(candidates):
        try:
            return readers[name](src, info, unique, size, threads)[inverse.reshape(-1)], name
        except VideoDecodeError as err:
            if not _falls_through(name, err, position == len(candidates) - 1):
                raise
            logger.info(f"{name} cannot read {src.name!r} ({err.reason}); trying {candidates[position + 1]}.")
    raise AssertionError("unreachable")  # pragma: no cover


def _read_with_decord(src: _Source, info: VideoInfo, indices: np.ndarray, size, threads: int) -> np.ndarray:
    if not decord_available():
        raise ImportError("decode_backend='decord' needs decord: `pip install decord`.")
    try:
        return _read_decord(src, info, indices, size, threads)
    except Exception as err:  # decord raises bare DECORDError / RuntimeError
        raise VideoDecodeError(src.name, f"decord failed ({_decord_reason(err)})") from None


def read_video(
    source: VideoSource,
    num_frames: int | None = 8,
    *,
    sampling: SamplingMode = "middle",
    num_clips: int = 1,
    fps: float | None = None,
    start_time: float | None = None,
    end_time: float | None = None,
    backend: Backend = "auto",
    short_side: int | None = None,
    num_threads: int = 0,
    rng: np.random.Generator | None = None,
) -> DecodedVideo:
    """Probe a video, sample ``num_clips`` clips of ``num_frames`` frames and decode only those frames.

    Without time options the frames are sampled by count over the whole video (`sample_frame_indices`, the
    original's protocol). With ``fps`` (frames at that rate instead of ``num_frames``), ``start_time`` or
    ``end_time`` (seconds) they are sampled by time inside that range (`sample_frame_indices_by_time`).
    ``num_frames=None`` reads every frame (of the range). See `VideoInfo.sample_indices`.

    Example:

    ```python
    >>> video = read_video("video.mp4", num_frames=8)  # doctest: +SKIP
    >>> video.frames.shape  # (clips, T, H, W, 3)  # doctest: +SKIP
    (1, 8, 720, 1280, 3)
    ```
    """
    src = _as_source(source)
    info = _probe(src)
    indices = info.sample_indices(
        num_frames, sampling, num_clips, rng, fps=fps, start_time=start_time, end_time=end_time
    )
    frames, used = _read_frames(src, info, indices.reshape(-1), backend, short_side, num_threads)
    frames = frames.reshape(*indices.shape, *frames.shape[1:])
    return DecodedVideo(frames=frames, indices=indices, info=info, backend=used)


# --------------------------------------------------------------------------------------------------------------
# Windows: one streaming pass over a video
# --------------------------------------------------------------------------------------------------------------


@dataclass
class VideoWindow:
    """One window of `iter_windows`.

    Attributes:
        index: position of the window (0, 1, ...).
        start / end: the window in seconds, ``[start, end)``.
        indices: ``(T,)`` indices of the sampled frames (repeats where the window holds fewer than T frames).
        timestamps: ``(T,)`` seconds of those frames (their presentation timestamps).
        frames: ``(T, H, W, 3)`` uint8 RGB, the window's own array (later windows do not change it).
    """

    index: int
    start: float
    end: float
    indices: np.ndarray
    timestamps: np.ndarray
    frames: np.ndarray = field(repr=False)


class VideoWindows:
    """The iterator `iter_windows` returns: `VideoWindow` objects in order, from one front-to-back decode.

    Before iterating it knows the plan: ``info`` (`VideoInfo`), ``spans`` ``(W, 2)`` seconds, ``indices`` and
    ``timestamps`` ``(W, T)``, ``len()`` = W. While iterating it counts ``frames_decoded`` (frames the decoder
    returned; each frame of the file at most once) and ``frames_converted`` (frames turned into RGB arrays: each
    distinct needed frame once), and ``backend`` says which decoder runs. Iterate once; `close` (or leaving a
    ``with`` block) stops decoding early.
    """

    def __init__(
        self,
        src: _Source,
        info: VideoInfo,
        spans: np.ndarray,
        indices: np.ndarray,
        backend: str,
        size: tuple[int, int] | None,
        threads: int,
    ):
        self.info, self.spans, self.indices = info, spans, indices
        self.timestamps = info.timestamps[indices]
        self.backend: str | None = None
        self._src, self._requested, self._size, self._threads = src, backend, size, threads
        self._stats = _DecodeStats()
        self._windows: Iterator[VideoWindow] | None = None

    @property
    def frames_decoded(self) -> int:
        return self._stats.decoded

    @property
    def frames_converted(self) -> int:
        return self._stats.converted

    def __len__(self) -> int:
        return len(self.spans)

    def __iter__(self) -> VideoWindows:
        return self

    def __next__(self) -> VideoWindow:
        if self._windows is None:
            self._windows = self._assemble()
        return next(self._windows)

    def close(self) -> None:
        """Stop decoding and release the file."""
        if self._windows is not None:
            self._windows.close()

    def __enter__(self) -> VideoWindows:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _assemble(self) -> Iterator[VideoWindow]:
        """Yield each window as soon as its last frame is decoded; drop a frame after the last window using it."""
        needed, inverse = np.unique(self.indices, return_inverse=True)
        inverse = inverse.reshape(self.indices.shape)
        last_use = np.zeros(len(needed), dtype=np.int64)
        np.maximum.at(last_use, inverse, np.arange(len(self.spans))[:, None])
        complete_at = self.indices.max(axis=1)
        held: dict[int, np.ndarray] = {}
        window = 0
        for index, frame in self._frames(needed):
            held[index] = frame
            while window < len(self.spans) and complete_at[window] <= index:
                yield VideoWindow(
                    index=window,
                    start=float(self.spans[window, 0]),
                    end=float(self.spans[window, 1]),
                    indices=self.indices[window].copy(),
                    timestamps=self.timestamps[window].copy(),
                    frames=np.stack([held[int(i)] for i in self.indices[window]]),
                )
                for i in [i for i in held if last_use[np.searchsorted(needed, i)] <= window]:
                    del held[i]
                window += 1

    def _frames(self, needed: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """Frames from the first backend of `_candidates` that opens the file (PyAV: its decoder opens on the first
        packet; torchcodec: the decoder and its frame count); errors after that are the file's."""
        candidates = _candidates(self._requested, self.info)
        for position, name in enumerate(candidates):
            try:
                first, rest = self._open(name, needed)
            except VideoDecodeError as err:
                if not _falls_through(name, err, position == len(candidates) - 1):
                    raise
                logger.info(f"{name} cannot read {self._src.name!r} ({err.reason}); trying {candidates[position + 1]}.")
                continue
            self.backend = name
            if first is not None:
                yield first
            yield from rest
            return

    def _open(self, name: str, needed: np.ndarray) -> tuple[tuple[int, np.ndarray] | None, Iterator]:
        """``(first frame or None, the other frames)`` of backend ``name``, raising when it cannot open the file."""
        src, info, size, threads = self._src, self.info, self._size, self._threads
        if name == "pyav":
            stream = _stream_pyav(src, info, needed, size, threads, self._stats)
            return next(stream, None), stream
        if name == "torchcodec":
            decoder = _open_torchcodec(src, info, size, threads)
            return None, self._frames_batched(needed, lambda chunk: _torchcodec_frames(decoder, src, info, chunk))
        if not decord_available():
            raise DecodeBackendUnavailableError("decode_backend='decord' needs decord: `pip install decord`.")
        return None, self._frames_batched(needed, lambda chunk: _read_with_decord(src, info, chunk, size, threads))

    def _frames_batched(self, needed: np.ndarray, read) -> Iterator[tuple[int, np.ndarray]]:
        """decord and torchcodec have no streaming decode here: read each window's not yet read frames in one
        batch (``read(indices)``)."""
        done = 0
        for last in self.indices.max(axis=1):
            stop = int(np.searchsorted(needed, last, side="right"))
            if stop > done:
                chunk = needed[done:stop]
                frames = read(chunk)
                self._stats.decoded += len(chunk)
                self._stats.converted += len(chunk)
                yield from zip((int(i) for i in chunk), frames)
                done = stop


def iter_windows(
    source: VideoSource,
    *,
    window: float,
    stride: float,
    num_frames: int = 8,
    start_time: float | None = None,
    end_time: float | None = None,
    tail: TailMode = "shift",
    short_side: int | None = None,
    backend: Backend = "auto",
    num_threads: int = 0,
    broken_tail: BrokenTailMode = "error",
) -> VideoWindows:
    """Windows of ``window`` seconds every ``stride`` seconds over a video, ``num_frames`` frames in each, decoded
    in one pass.

    Windows follow `window_spans` (the tail: a last window ending at the end of the video, or ``tail="partial"``;
    a video shorter than one window: one window over all of it). Inside each window the frames are sampled by
    time as the X-CLIP test protocol samples a clip: the frame on screen at the middle of each of T equal segments
    (`sample_frame_indices_by_time`, using the frames' real timestamps).

    Decoding: the file is probed (packets demuxed, not decoded), then decoded once from front to back with PyAV,
    starting at the keyframe before the first needed frame (``start_time > 0`` seeks) and stopping after the last.
    Each frame that any window needs is converted to RGB exactly once, even when windows overlap; unneeded
    non-reference frames are not decoded at all. A window is yielded as soon as its last frame is decoded, and a
    frame is dropped after the last window that uses it, so memory holds at most the frames of the windows that
    overlap the current one (about ``T * ceil(window / stride)`` frames), whatever the length of the video. The
    plan (timestamps and indices) costs a few bytes per frame. torchcodec and decord (asked for by name, or when
    PyAV has no decoder for the codec) read each window's new frames in one batch.

    Args:
        source: path, bytes or binary file object.
        window: window length in seconds.
        stride: seconds between window starts (``< window``: overlapping windows; ``> window``: gaps).
        num_frames: frames per window (T), e.g. the model's ``config.vision_config.num_frames``.
        start_time / end_time: the part of the video to cover, in seconds (default: all of it).
        tail: ``"shift"`` or ``"partial"``, see `window_spans`.
        short_side: decode-time downscaling so that the short side has this many pixels.
        backend: ``"auto"`` (`AUTO_ORDER`: PyAV; torchcodec, then decord, when PyAV lacks the codec),
            ``"torchcodec"``, ``"pyav"`` or ``"decord"``.
        num_threads: decoder threads (0 = automatic).
        broken_tail: ``"error"`` (default): a truncated or corrupt file raises at the call. ``"keep"``: the windows
            cover the frames before the first damaged packet (`probe_video`); ``info.truncated`` says what was
            cut, and a warning is logged.

    Returns:
        A `VideoWindows` iterator of `VideoWindow` (``start``, ``end``, ``indices``, ``timestamps``, ``frames``),
        which also exposes the plan (``spans``, ``indices``, ``info``) before decoding.

    Raises:
        VideoNotFoundError / VideoDecodeError: at the call, for a missing or unreadable file (the probe); while
            iterating, for data that fails to decode, naming the file and the time (windows already yielded stay
            valid).
        ValueError: invalid ``window``, ``stride``, ``num_frames``, ``tail`` or time range (naming the file).

    Example:

    ```python
    >>> import numpy as np
    >>> from hf_xclip.video_io import iter_windows, write_video
    >>> path = write_video("ten_seconds.mp4", np.zeros((250, 32, 32, 3), np.uint8), fps=25)
    >>> windows = iter_windows(path, window=4, stride=2, num_frames=8)
    >>> windows.spans.tolist()
    [[0.0, 4.0], [2.0, 6.0], [4.0, 8.0], [6.0, 10.0]]
    >>> [(w.start, w.end, w.frames.shape) for w in windows][:2]
    [(0.0, 4.0, (8, 32, 32, 3)), (2.0, 6.0, (8, 32, 32, 3))]
    >>> windows.frames_converted  # 4 windows x 8 frames, overlapping halves share theirs: 8 + 3 x 4 decoded
    20
    ```
    """
    if backend not in BACKENDS:
        raise ValueError(f"Unknown video backend {backend!r}; expected one of {BACKENDS}.")
    if backend != "auto":
        require_backend(backend)  # at the call, not on the first window
    if not isinstance(num_frames, (int, np.integer)) or isinstance(num_frames, bool) or num_frames < 1:
        raise ValueError(f"`num_frames` must be a positive integer, got {num_frames!r}.")
    src = _as_source(source)
    info = _probe(src, broken_tail)
    if info.truncated:
        logger.warning(f"{src.name}: broken tail ({info.truncated}); using the first {info.duration:.3f} s.")
    duration = info.duration
    start, end = _time_range(duration, start_time, end_time, name=repr(src.name))
    spans = window_spans(duration, window, stride, start_time=start, end_time=end, tail=tail)
    stamps = info.timestamps
    indices = np.concatenate(
        [sample_frame_indices_by_time(stamps, duration, num_frames, start_time=a, end_time=b) for a, b in spans]
    )
    return VideoWindows(src, info, spans, indices, backend, _decode_size(info, short_side), num_threads)


def _decode_size(info: VideoInfo, short_side: int | None) -> tuple[int, int] | None:
    """(height, width) to scale to while decoding, ``None`` for the video's own size."""
    size = scaled_size(info.height, info.width, short_side) if short_side else None
    return None if size == (info.height, info.width) else size


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


# --------------------------------------------------------------------------------------------------------------
# Writing synthetic videos
# --------------------------------------------------------------------------------------------------------------


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
