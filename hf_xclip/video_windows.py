"""Windows over a long video for the video core (`hf_xclip.video_io`): `iter_windows` reads windows of ``window``
seconds every ``stride`` seconds (`hf_xclip.video_sampling.window_spans`), T frames sampled by time inside each,
decoded in one pass from front to back, each needed frame once, holding only the frames of windows not yet yielded.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass, field

import numpy as np
from transformers.utils import logging

from .utils import check_positive_int
from .video_decoding import (
    BACKENDS,
    Backend,
    _candidates,
    _decode_size,
    _DecodeStats,
    _falls_through,
    _open_stream,
    require_backend,
)
from .video_probe import BrokenTailMode, VideoDecodeError, VideoInfo, VideoSource, _as_source, _probe, _Source
from .video_sampling import TailMode, _time_range, sample_frame_indices_by_time, window_spans

logger = logging.get_logger(__name__)


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
        self._windows: Generator[VideoWindow, None, None] | None = None

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

    def _assemble(self) -> Generator[VideoWindow, None, None]:
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
                first, rest = _open_stream(
                    name, self._src, self.info, needed, self._size, self._threads, self._stats, self.indices.max(axis=1)
                )
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
    >>> from hf_xclip.data import write_video
    >>> from hf_xclip.video_io import iter_windows
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
    _check_window_arguments(backend, num_frames)
    src = _as_source(source)
    info = _probe(src, broken_tail)
    spans, indices = _plan_windows(info, src.name, window, stride, num_frames, start_time, end_time, tail)
    return VideoWindows(src, info, spans, indices, backend, _decode_size(info, short_side), num_threads)


def _check_window_arguments(backend: str, num_frames: int) -> None:
    """The arguments `iter_windows` checks at the call, before probing: the backend (asked for by name: that it can
    run here, not on the first window) and the frame count.

    Raises:
        ValueError: an unknown backend or a frame count that is not a positive integer.
        DecodeBackendUnavailableError: a backend asked for by name cannot run here.
    """
    if backend not in BACKENDS:
        raise ValueError(f"Unknown video backend {backend!r}; expected one of {BACKENDS}.")
    if backend != "auto":
        require_backend(backend)  # at the call, not on the first window
    check_positive_int(num_frames, "num_frames")


def _plan_windows(
    info: VideoInfo,
    name: str,
    window: float,
    stride: float,
    num_frames: int,
    start_time: float | None,
    end_time: float | None,
    tail: TailMode,
) -> tuple[np.ndarray, np.ndarray]:
    """The plan of `iter_windows` for the probed video ``name``: ``(spans, indices)``, the windows' ``(W, 2)``
    seconds (`window_spans` over the checked range) and the ``(W, T)`` frames sampled by time inside each. A file
    with a broken tail (probed with ``broken_tail="keep"``) is covered up to the tail, with a warning."""
    if info.truncated:
        logger.warning(f"{name}: broken tail ({info.truncated}); using the first {info.duration:.3f} s.")
    duration = info.duration
    start, end = _time_range(duration, start_time, end_time, name=repr(name))
    spans = window_spans(duration, window, stride, start_time=start, end_time=end, tail=tail)
    stamps = info.timestamps
    indices = np.concatenate(
        [sample_frame_indices_by_time(stamps, duration, num_frames, start_time=a, end_time=b) for a, b in spans]
    )
    return spans, indices
