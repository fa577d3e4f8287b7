"""Opening and probing videos for the video core (`hf_xclip.video_io`): the inputs it reads (a path, bytes or a
binary file object), the errors it raises, and what the probe learns about a file (`VideoInfo`: frame count,
timestamps, keyframes, duration) and reports in transformers' form (`XClipVideoMetadata`).

The frame count is the number of video packets (what decord's ``len(VideoReader)`` reports, as in the original X-CLIP
data pipeline), and frames are addressed in presentation order. Every file is probed with PyAV first (container
opens, has a video stream, its packets demux without corruption and as many as the header announces), so decord
never sees the broken inputs it can abort or hang on. Anything unreadable raises `VideoDecodeError` (a
`ValueError`) naming the file and the reason.
"""

from __future__ import annotations

import io
import os
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, BinaryIO, Literal, Union

import numpy as np
from transformers.video_utils import VideoMetadata

from .video_sampling import SamplingMode, _time_range, sample_frame_indices, sample_frame_indices_by_time

BROKEN_TAIL_MODES = ("error", "keep")

BrokenTailMode = Literal["error", "keep"]
VideoSource = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO]  # noqa: UP007 (a runtime alias)


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
