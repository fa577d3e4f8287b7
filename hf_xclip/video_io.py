"""Video decoding, X-CLIP frame sampling and a writer for synthetic test videos.

Reading follows the original X-CLIP data pipeline (decord): the frame count is the number of video packets (what
decord's ``len(VideoReader)`` reports), frames are addressed in presentation order, and only the sampled frames are
read. Two backends give the same pixels:

* PyAV (``"auto"``, the default): seek to the keyframe before each wanted frame and decode forward, skipping the
  unwanted non-reference frames (``skip_frame = NONREF``); about 40 % less CPU than decord on H.264
  (``bench/bench_decode.py``).
* decord (``"decord"``, the original's decoder): ``VideoReader.get_batch``. ``"auto"`` also falls back to it when
  PyAV's FFmpeg has no decoder for the codec.

Every file is probed with PyAV first (container opens, has a video stream, its packets demux without corruption
and as many as the header announces), so decord never sees the broken inputs it can abort or hang on. Anything
unreadable raises `VideoDecodeError` (a `ValueError`) naming the file and the reason.

Sampling (`sample_frame_indices`):

* ``"middle"`` (X-CLIP / TSN test protocol): T equal segments, the middle frame of each,
  ``index_k = int((k + 0.5) * N / T)``; clip ``v`` of ``V`` uses offset ``(v + 0.5) / V`` inside each segment.
* ``"random"`` (TSN training protocol of the original): a random frame in each of T segments of
  ``N // T`` frames; the original's multi-clip testing draws ``V`` such random clips.
* ``"uniform"``: T frames evenly spaced from the first to the last frame.
"""

from __future__ import annotations

import io
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal, Union

import numpy as np

from transformers.utils import logging

logger = logging.get_logger(__name__)

SAMPLING_MODES = ("middle", "random", "uniform")
BACKENDS = ("auto", "decord", "pyav")

SamplingMode = Literal["middle", "random", "uniform"]
Backend = Literal["auto", "decord", "pyav"]
VideoSource = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO]

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
class VideoInfo:
    """What the probe learnt about a video.

    ``num_frames`` counts video packets (the frame count decord and the original X-CLIP use); ``frame_pts`` are
    their presentation timestamps in stream time base, sorted (``None`` when the container has none);
    ``keyframe_pts`` the subset that are keyframes.
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

    @property
    def duration(self) -> float | None:
        return self.num_frames / self.fps if self.fps else None


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


def probe_video(source: VideoSource) -> VideoInfo:
    """Open ``source`` with PyAV and check that it holds a readable, complete video stream.

    Demuxes the video packets (no decoding) to count frames, collect timestamps and detect truncation.

    Raises:
        VideoNotFoundError: the path does not exist.
        VideoDecodeError: empty, not a video, no video stream, no frames, or truncated / corrupt packets.
    """
    return _probe(_as_source(source))


def _probe(src: _Source) -> VideoInfo:
    av = _import_av()
    container = _open_container(src)
    try:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        if not ctx.width or not ctx.height:
            raise VideoDecodeError(src.name, "the video stream has no frame size (broken header)")
        pts, key_pts, corrupt, has_none = [], [], 0, False
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                corrupt += bool(packet.is_corrupt)
                stamp = packet.pts if packet.pts is not None else packet.dts
                has_none |= stamp is None
                pts.append(stamp)
                if packet.is_keyframe:
                    key_pts.append(stamp)
        except av.error.FFmpegError as err:
            raise VideoDecodeError(src.name, f"truncated or corrupt data ({_ffmpeg_reason(err)})") from None
        if not pts:
            raise VideoDecodeError(src.name, "the video stream has no frames")
        if corrupt:
            raise VideoDecodeError(src.name, f"truncated or corrupt data ({corrupt} damaged packet(s))")
        announced = stream.frames or 0
        if announced > len(pts):
            raise VideoDecodeError(src.name, f"truncated: the header announces {announced} frames, {len(pts)} present")
        rate = stream.average_rate or stream.guessed_rate
        frame_pts = key = None
        if not has_none:
            frame_pts = np.sort(np.asarray(pts, dtype=np.int64))
            key = np.sort(np.asarray(key_pts, dtype=np.int64))
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
        )
    finally:
        container.close()


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
    """Decode the frames at ``indices`` (sorted, unique): seek to the keyframe before each, decode forward."""
    av = _import_av()
    container = _open_container(src)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO" if threads != 1 else "SLICE"
        stream.codec_context.thread_count = max(threads, 0)
        wanted = [int(i) for i in indices]
        try:
            if info.frame_pts is None:
                return _decode_in_order(container, stream, wanted, size, src.name)
            return _decode_with_seeks(container, stream, info, wanted, size, src.name)
        except av.error.DecoderNotFoundError as err:
            raise _NoDecoderError(src.name, f"PyAV has no decoder for {stream.codec_context.name!r}") from err
        except av.error.FFmpegError as err:
            raise VideoDecodeError(src.name, f"decoding failed ({_ffmpeg_reason(err)})") from None
    finally:
        container.close()


class _NoDecoderError(VideoDecodeError):
    """PyAV's FFmpeg build cannot decode this codec (decord's bundled FFmpeg may)."""


def _decode_in_order(container, stream, wanted: list[int], size, name: str) -> np.ndarray:
    """Fallback for streams without usable timestamps: decode from the start, count frames."""
    targets, out, last = set(wanted), {}, max(wanted)
    for position, frame in enumerate(container.decode(stream)):
        if position in targets:
            out[position] = _frame_to_array(frame, size)
        if position >= last:
            break
    missing = [i for i in wanted if i not in out]
    if missing:
        raise VideoDecodeError(name, f"frames {missing[:5]} could not be decoded")
    return np.stack([out[i] for i in wanted])


def _decode_with_seeks(container, stream, info: VideoInfo, wanted: list[int], size, name: str) -> np.ndarray:
    frame_pts, key_pts = info.frame_pts, info.keyframe_pts
    wanted_pts = {int(frame_pts[i]) for i in wanted}
    out: dict[int, np.ndarray] = {}
    frames_iter, position = None, None  # `position` = pts of the last decoded frame
    for index in wanted:
        target = int(frame_pts[index])
        before = key_pts[key_pts <= target]
        keyframe = int(before[-1]) if len(before) else int(frame_pts[0])
        if frames_iter is None or position is None or target <= position or keyframe > position:
            container.seek(keyframe, stream=stream, backward=True, any_frame=False)
            frames_iter, position = _decode_forward(container, stream, wanted_pts), None
        for frame in frames_iter:
            stamp = frame.pts if frame.pts is not None else frame.dts
            if stamp is None:
                continue
            position = stamp
            if stamp >= target:
                if stamp > target:
                    logger.warning_once(f"{name}: frame at pts {target} not found after seeking, using pts {stamp}.")
                out[index] = _frame_to_array(frame, size)
                break
        else:
            raise VideoDecodeError(name, f"frame {index} (pts {target}) could not be decoded")
    return np.stack([out[i] for i in wanted])


def _decode_forward(container, stream, wanted_pts: set[int]):
    """Frames from the current position on. Unwanted frames that no other frame references (e.g. most B-frames)
    are not decoded at all (FFmpeg's ``skip_frame = NONREF``), which saves about a third of the decoding."""
    context = stream.codec_context
    for packet in container.demux(stream):
        stamp = packet.pts if packet.pts is not None else packet.dts
        context.skip_frame = "DEFAULT" if stamp is None or stamp in wanted_pts else "NONREF"
        yield from context.decode(packet)


@dataclass
class DecodedVideo:
    """Frames of ``V`` clips of ``T`` frames: ``frames`` (V, T, H, W, 3) uint8, ``indices`` (V, T), ``info``."""

    frames: np.ndarray
    indices: np.ndarray
    info: VideoInfo
    backend: str


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
        backend: ``"pyav"``, ``"decord"`` or ``"auto"`` (PyAV; decord when PyAV has no decoder for the codec).
        short_side: decode-time downscaling so that the short side has this many pixels (aspect kept).
        num_threads: decoder threads (0 = automatic).
        info: result of `probe_video` for this source, to skip probing again.

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
    size = scaled_size(info.height, info.width, short_side) if short_side else None
    if size == (info.height, info.width):
        size = None
    if backend == "decord":
        return _read_with_decord(src, info, unique, size, threads)[inverse.reshape(-1)], "decord"
    try:
        return _read_pyav(src, info, unique, size, threads)[inverse.reshape(-1)], "pyav"
    except _NoDecoderError:
        if backend == "pyav" or not decord_available():
            raise
        logger.info(f"PyAV cannot decode {src.name!r}; using decord.")
        return _read_with_decord(src, info, unique, size, threads)[inverse.reshape(-1)], "decord"


def _read_with_decord(src: _Source, info: VideoInfo, indices: np.ndarray, size, threads: int) -> np.ndarray:
    if not decord_available():
        raise ImportError("decode_backend='decord' needs decord: `pip install decord`.")
    try:
        return _read_decord(src, info, indices, size, threads)
    except Exception as err:  # decord raises bare DECORDError / RuntimeError
        raise VideoDecodeError(src.name, f"decord failed ({_decord_reason(err)})") from None


def read_video(
    source: VideoSource,
    num_frames: int = 8,
    *,
    sampling: SamplingMode = "middle",
    num_clips: int = 1,
    backend: Backend = "auto",
    short_side: int | None = None,
    num_threads: int = 0,
    rng: np.random.Generator | None = None,
) -> DecodedVideo:
    """Probe a video, sample ``num_clips`` clips of ``num_frames`` frames and decode only those frames.

    Example:

    ```python
    >>> video = read_video("video.mp4", num_frames=8)  # doctest: +SKIP
    >>> video.frames.shape  # (clips, T, H, W, 3)  # doctest: +SKIP
    (1, 8, 720, 1280, 3)
    ```
    """
    src = _as_source(source)
    info = _probe(src)
    indices = sample_frame_indices(info.num_frames, num_frames, sampling, num_clips, rng)
    frames, used = _read_frames(src, info, indices.reshape(-1), backend, short_side, num_threads)
    frames = frames.reshape(*indices.shape, *frames.shape[1:])
    return DecodedVideo(frames=frames, indices=indices, info=info, backend=used)


# --------------------------------------------------------------------------------------------------------------
# Inputs: names for messages, URLs
# --------------------------------------------------------------------------------------------------------------

URL_PREFIXES = ("http://", "https://")


def video_name(video: Any) -> str:
    """A short name of a video input for messages: its path, or a description of bytes / frames / objects."""
    if isinstance(video, (str, os.PathLike)):
        return os.fspath(video)
    if isinstance(video, (bytes, bytearray, memoryview)):
        return f"<{len(video)} bytes>"
    if hasattr(video, "shape") and hasattr(video, "ndim"):
        return f"<{type(video).__name__} of shape {tuple(video.shape)}>"
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
        raise ValueError(f"video frames {video_name(video)} look like a batch of videos; pass a list of (T, H, W, 3) arrays.")
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
    frames: np.ndarray | Sequence[Any],
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
        frames: (T, H, W, 3) or (T, H, W) uint8 array, or a sequence of such frames (arrays or PIL images).
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
    array = _frames_to_array(frames)
    num, height, width, _ = array.shape
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
        for image in array:
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
