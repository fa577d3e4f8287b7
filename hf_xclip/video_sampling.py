"""Frame sampling of the video core (`hf_xclip.video_io`): which frames of a video to read, by frame count or by
time, and the windows `hf_xclip.video_windows.iter_windows` covers a video with. Pure arithmetic on frame counts and
timestamps: nothing here opens a file.

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

Windows (`window_spans`): ``window`` seconds every ``stride`` seconds, with a last window for an uncovered tail.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

from .utils import is_positive_number

SAMPLING_MODES = ("middle", "random", "uniform")
TAIL_MODES = ("shift", "partial")
# Times closer than this (seconds) count as equal: a frame shown at t is still "the frame at t" after rounding.
TIME_TOLERANCE = 1e-6

SamplingMode = Literal["middle", "random", "uniform"]
TailMode = Literal["shift", "partial"]


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
