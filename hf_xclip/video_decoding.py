"""Decoding for the video core (`hf_xclip.video_io`): the backends, the frames at given indices (`read_frames`), and
a probed, sampled and decoded video (`read_video`).

Only the sampled frames are read. The backends decode identical pixels at the video's own size (tested bit for bit
on H.264 and MPEG-4 Part 2); with decode-time downscaling (``short_side``) their scalers differ (a few levels out of
255 on average on 4:2:0 video, more at sharp edges):

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

Streaming (`_open_stream`): the sorted frames a caller needs, from one front-to-back pass, for
`hf_xclip.video_windows.iter_windows`.
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from transformers.utils import logging

from .video_probe import (
    VideoDecodeError,
    VideoInfo,
    VideoSource,
    XClipVideoMetadata,
    _as_source,
    _ffmpeg_reason,
    _import_av,
    _open_container,
    _probe,
    _Source,
)
from .video_sampling import TIME_TOLERANCE, SamplingMode

logger = logging.get_logger(__name__)

BACKENDS = ("auto", "torchcodec", "pyav", "decord")

Backend = Literal["auto", "torchcodec", "pyav", "decord"]

_DECORD_PREFIX = re.compile(r"\[\d\d:\d\d:\d\d\] \S+:\d+: ")


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


def _decode_size(info: VideoInfo, short_side: int | None) -> tuple[int, int] | None:
    """(height, width) to scale to while decoding, ``None`` for the video's own size."""
    size = scaled_size(info.height, info.width, short_side) if short_side else None
    return None if size == (info.height, info.width) else size


def _open_stream(
    name: str,
    src: _Source,
    info: VideoInfo,
    needed: np.ndarray,
    size: tuple[int, int] | None,
    threads: int,
    stats: _DecodeStats,
    batch_ends: np.ndarray,
) -> tuple[tuple[int, np.ndarray] | None, Iterator]:
    """``(first frame or None, the other frames)`` of the sorted, unique ``needed`` indices from backend ``name``,
    raising when it cannot open the file. PyAV decodes them in one front-to-back pass (`_stream_pyav`); torchcodec
    and decord read them in batches, one up to each of ``batch_ends``."""
    if name == "pyav":
        stream = _stream_pyav(src, info, needed, size, threads, stats)
        return next(stream, None), stream
    if name == "torchcodec":
        decoder = _open_torchcodec(src, info, size, threads)
        return None, _frames_batched(
            needed, batch_ends, stats, lambda chunk: _torchcodec_frames(decoder, src, info, chunk)
        )
    if not decord_available():
        raise DecodeBackendUnavailableError("decode_backend='decord' needs decord: `pip install decord`.")
    return None, _frames_batched(
        needed, batch_ends, stats, lambda chunk: _read_with_decord(src, info, chunk, size, threads)
    )


def _frames_batched(
    needed: np.ndarray, batch_ends: np.ndarray, stats: _DecodeStats, read
) -> Iterator[tuple[int, np.ndarray]]:
    """decord and torchcodec have no streaming decode here: read the not yet read frames up to each of
    ``batch_ends`` (a window's last frame) in one batch (``read(indices)``)."""
    done = 0
    for last in batch_ends:
        stop = int(np.searchsorted(needed, last, side="right"))
        if stop > done:
            chunk = needed[done:stop]
            frames = read(chunk)
            stats.decoded += len(chunk)
            stats.converted += len(chunk)
            yield from zip((int(i) for i in chunk), frames)
            done = stop
