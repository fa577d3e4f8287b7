"""Sampling by time, frame timestamps and streaming windows of `hf_xclip.video_io`.

The test videos carry their frame index as a row of black / white 8x8 blocks (binary), which survives lossy H.264
with B-frames, so a decoded frame says which frame it is (`testing_utils.coded_frames`).
"""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
from testing_utils import coded_frames, numbers, write_vfr
from transformers.video_utils import VideoMetadata

from hf_xclip import video_decoding
from hf_xclip.data import write_video
from hf_xclip.video_io import (
    VideoDecodeError,
    XClipVideoMetadata,
    decord_available,
    frame_indices_at,
    iter_windows,
    probe_video,
    read_frames,
    read_video,
    sample_frame_indices,
    sample_frame_indices_by_time,
    window_spans,
)

FPS = 25
NUM = 60  # 2.4 s at 25 fps
VFR_STEPS_MS = [40] * 30 + [100] * 30  # 25 fps for 1.2 s, then 10 fps


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("windows")
    frames = coded_frames(NUM)
    paths = {ext: write_video(root / f"cfr.{ext}", frames, fps=FPS, gop_size=12) for ext in ("mp4", "mkv", "ts", "avi")}
    paths["h264"] = write_video(root / "raw.h264", frames, fps=FPS, gop_size=12)  # elementary stream: no timestamps
    paths["vfr"] = write_vfr(root / "vfr.mp4", frames, VFR_STEPS_MS)
    paths["short"] = write_video(root / "short.mp4", coded_frames(5), fps=FPS)  # 0.2 s
    faststart = write_video(root / "faststart.mp4", frames, fps=FPS, gop_size=12, faststart=True)
    paths["truncated"] = root / "truncated.mp4"
    paths["truncated"].write_bytes(faststart.read_bytes()[: int(faststart.stat().st_size * 0.6)])
    return paths


# ------------------------------------------------------------------------------------------------------------------
# Sampling by time


def test_frame_indices_at_gives_the_frame_on_screen():
    stamps = np.arange(10) / 25  # 0, 0.04, ...
    times = [-1.0, 0.0, 0.039, 0.04, 0.04 - 1e-9, 0.1, 0.36, 5.0]
    assert frame_indices_at(stamps, times).tolist() == [0, 0, 0, 1, 1, 2, 9, 9]
    assert frame_indices_at([0.0, 0.5, 0.6], [[0.55, 0.7]]).tolist() == [[1, 2]]


@pytest.mark.parametrize("fps", [25, 29.97, 30, 1000 / 3])
def test_middle_by_time_equals_the_original_sampling_at_a_constant_rate(fps):
    for total in (1, 3, 8, 16, 31, 60, 250, 1001):  # 16 / 8: segment middles fall exactly on frames
        stamps = np.arange(total) / fps
        for num_frames in (1, 4, 8, 16):
            for num_clips in (1, 2, 3):
                by_time = sample_frame_indices_by_time(stamps, total / fps, num_frames, num_clips=num_clips)
                by_count = sample_frame_indices(total, num_frames, num_clips=num_clips)
                assert by_time.tolist() == by_count.tolist(), (total, num_frames, num_clips)


def test_middle_by_time_follows_the_timestamps_not_the_count():
    stamps = np.cumsum([0] + VFR_STEPS_MS[:-1]) / 1000  # 30 frames in 1.2 s, then 30 in 3 s
    duration = 4.2
    by_time = sample_frame_indices_by_time(stamps, duration, 4)
    # middles of 1.05 s segments: 0.525, 1.575, 2.625, 3.675 s -> frames shown then
    assert by_time.tolist() == [[13, 33, 44, 54]]
    assert sample_frame_indices(60, 4).tolist() == [[7, 22, 37, 52]]  # by count: half the frames in 1.2 s


def test_sampling_at_a_rate():
    stamps = np.arange(NUM) / FPS  # 2.4 s
    indices = sample_frame_indices_by_time(stamps, 2.4, fps=5)
    assert indices.tolist() == [[2, 7, 12, 17, 22, 27, 32, 37, 42, 47, 52, 57]]  # every 0.2 s from 0.1 s
    assert sample_frame_indices_by_time(stamps, 2.4, fps=1).tolist() == [[12, 37]]  # 0.5 s, 1.5 s (2.5 s is past)
    assert sample_frame_indices_by_time(stamps, 2.4, fps=1, start_time=1.0, end_time=1.6).tolist() == [[37]]
    assert sample_frame_indices_by_time(stamps, 2.4, fps=1, start_time=1.0, end_time=1.4).tolist() == [[30]]  # middle
    assert sample_frame_indices_by_time(stamps, 2.4, 99, fps=5).shape == (1, 12)  # fps wins over num_frames


def test_random_by_time_draws_one_frame_per_time_segment():
    stamps = np.arange(NUM) / FPS
    rng = np.random.default_rng(0)
    kwargs = dict(start_time=0.4, end_time=2.0)
    indices = sample_frame_indices_by_time(stamps, 2.4, 4, "random", num_clips=50, rng=rng, **kwargs)
    assert np.all((indices - 10) // 10 == np.arange(4))  # four 0.4 s segments from 0.4 s = 10 frames each
    assert len(np.unique(indices[:, 0])) > 5
    again = sample_frame_indices_by_time(stamps, 2.4, 4, "random", 50, np.random.default_rng(0), **kwargs)
    assert np.array_equal(indices, again)


def test_uniform_and_all_frames_of_a_range():
    stamps = np.arange(NUM) / FPS
    uniform = sample_frame_indices_by_time(stamps, 2.4, 3, "uniform", start_time=0.4, end_time=0.8)
    assert uniform.tolist() == [[10, 15, 19]]  # first and last frame of [0.4, 0.8) and the middle one
    every = sample_frame_indices_by_time(stamps, 2.4, None, start_time=0.4, end_time=0.6)
    assert every.tolist() == [[10, 11, 12, 13, 14]]
    assert sample_frame_indices_by_time(stamps, 2.4, None, start_time=0.41, end_time=0.42).tolist() == [[10]]
    assert sample_frame_indices_by_time(stamps, 2.4, None, end_time=100).shape == (1, NUM)  # end cut to the video


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(start_time=2.4), "at or past the end"),
        (dict(start_time=-1), "non-negative"),
        (dict(start_time=1.0, end_time=1.0), "after `start_time`"),
        (dict(end_time=float("nan")), "after `start_time`"),
        (dict(fps=0), "`fps` must be a positive"),
        (dict(fps=2, mode="uniform"), "one clip"),
        (dict(fps=2, num_clips=2), "one clip"),
        (dict(num_frames=0), "`num_frames` must be positive"),
        (dict(mode="dense"), "Unknown frame sampling"),
    ],
)
def test_sampling_by_time_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sample_frame_indices_by_time(np.arange(NUM) / FPS, 2.4, **kwargs)


# ------------------------------------------------------------------------------------------------------------------
# Window spans


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        ((10, 4, 2), {}, [[0, 4], [2, 6], [4, 8], [6, 10]]),
        ((10, 4, 3), {}, [[0, 4], [3, 7], [6, 10]]),
        ((10, 4, 4), {}, [[0, 4], [4, 8], [6, 10]]),  # tail shifted to end at the end
        ((10, 4, 4), {"tail": "partial"}, [[0, 4], [4, 8], [8, 10]]),
        ((10, 2, 4), {}, [[0, 2], [4, 6], [8, 10]]),  # gaps; the grid fits exactly
        ((9, 2, 4), {}, [[0, 2], [4, 6], [7, 9]]),  # with gaps too, a window that does not fit ends at the end
        ((2.5, 4, 2), {}, [[0, 2.5]]),  # shorter than one window: one window over all of it
        ((4, 4, 1), {}, [[0, 4]]),
        ((10, 4, 2), {"start_time": 3, "end_time": 9}, [[3, 7], [5, 9]]),
        ((10, 4, 2), {"start_time": 8}, [[8, 10]]),
        (
            (1.0, 0.3, 0.1),
            {},
            [[0, 0.3], [0.1, 0.4], [0.2, 0.5], [0.3, 0.6], [0.4, 0.7], [0.5, 0.8], [0.6, 0.9], [0.7, 1.0]],
        ),
    ],
)
def test_window_spans(args, kwargs, expected):
    spans = window_spans(*args, **kwargs)
    assert spans.tolist() == expected  # exact: rounded to microseconds, no 0.30000000000000004


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(window=0, stride=1), "`window` must be a positive"),
        (dict(window=2, stride=-1), "`stride` must be a positive"),
        (dict(window=float("inf"), stride=1), "`window` must be a positive"),
        (dict(window=2, stride=True), "`stride` must be a positive"),
        (dict(window=2, stride=1, tail="drop"), "`tail` must be one of"),
        (dict(window=2, stride=1, start_time=10), "at or past the end"),
    ],
)
def test_window_spans_reject_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        window_spans(10, **kwargs)


# ------------------------------------------------------------------------------------------------------------------
# Timestamps, duration and metadata from the probe


def test_constant_rate_timestamps_and_duration(videos):
    for name in ("mp4", "mkv", "ts", "avi"):
        info = probe_video(videos[name])
        np.testing.assert_allclose(info.timestamps, np.arange(NUM) / FPS, atol=1e-9, err_msg=name)
        assert info.duration == pytest.approx(2.4, abs=1e-9), name


def test_variable_rate_timestamps_and_duration_come_from_the_frames(videos):
    av = pytest.importorskip("av")
    info = probe_video(videos["vfr"])
    np.testing.assert_allclose(info.timestamps, np.cumsum([0] + VFR_STEPS_MS[:-1]) / 1000, atol=1e-9)
    assert info.duration == pytest.approx(4.2)  # last frame at 4.1 s, shown for the last interval (0.1 s)
    with av.open(str(videos["vfr"])) as container:
        header = container.duration / 1e6
    assert header < 4.1  # the header ends before the last frame starts (B-frame delay + variable rate)
    assert info.num_frames / info.fps != pytest.approx(4.2, abs=0.1)  # and count / average rate is wrong too


def test_stream_without_timestamps_or_duration(videos):
    av = pytest.importorskip("av")
    with av.open(str(videos["h264"])) as container:
        stream = container.streams.video[0]
        assert container.duration is None and stream.duration is None and not stream.frames
    info = probe_video(videos["h264"])
    assert info.frame_pts is None and info.num_frames == NUM
    np.testing.assert_allclose(info.timestamps, np.arange(NUM) / FPS)  # index / rate
    assert info.duration == pytest.approx(2.4)


def test_metadata_is_transformers_video_metadata_with_real_timestamps(videos):
    video = read_video(videos["vfr"], 4, num_clips=2)
    meta = video.metadata
    assert isinstance(meta, VideoMetadata) and isinstance(meta, XClipVideoMetadata)
    assert (meta.total_num_frames, meta.width, meta.height, meta.video_backend) == (NUM, 64, 48, "pyav")
    assert meta.duration == pytest.approx(4.2)
    assert meta.frames_indices == video.indices.reshape(-1).tolist()
    assert meta["frame_indices"] == video.indices.tolist() and meta["source"] == str(videos["vfr"])
    expected = (np.cumsum([0] + VFR_STEPS_MS[:-1]) / 1000)[video.indices.reshape(-1)]
    np.testing.assert_allclose(meta.timestamps, expected)
    np.testing.assert_allclose(video.timestamps.reshape(-1), expected)
    assert meta.timestamps != [i / meta.fps for i in meta.frames_indices]  # what index / average fps would say


def test_read_video_by_time(videos):
    video = read_video(videos["mp4"], fps=5, start_time=1.0)
    assert video.indices.tolist() == [[27, 32, 37, 42, 47, 52, 57]]
    assert numbers(video.frames[0]) == video.indices[0].tolist()
    with pytest.raises(ValueError, match="cfr.mp4.*2.400 s"):
        read_video(videos["mp4"], start_time=3)


# ------------------------------------------------------------------------------------------------------------------
# Decoding where seeking or timestamps cannot be trusted


@pytest.mark.parametrize("name", ["mp4", "mkv", "ts", "avi", "h264", "vfr"])
def test_read_frames_returns_the_requested_frames_with_b_frames(videos, name):
    # MPEG-TS: seeks can land after the wanted frame; AVI: packets carry decode-order stamps. Both used to return
    # neighbouring frames with a warning; they are now decoded front to back.
    wanted = [0, 5, 13, 59, 30, 12, 47, 1, 59]
    frames, used = read_frames(videos[name], wanted, backend="pyav")
    assert used == "pyav" and numbers(frames) == wanted


# ------------------------------------------------------------------------------------------------------------------
# Windows


def collect(windows) -> list:
    return [window for window in windows]


@pytest.mark.parametrize("name", ["mp4", "mkv", "ts", "avi", "h264", "vfr"])
@pytest.mark.parametrize(("window", "stride"), [(0.8, 0.3), (0.5, 0.5), (0.3, 0.7)])
def test_windows_hold_the_sampled_frames(videos, name, window, stride):
    windows = iter_windows(videos[name], window=window, stride=stride, num_frames=5)
    info = windows.info
    got = collect(windows)
    assert len(got) == len(windows) == len(windows.spans) and windows.backend == "pyav"
    for k, item in enumerate(got):
        assert item.index == k and (item.start, item.end) == tuple(windows.spans[k])
        expected = sample_frame_indices_by_time(
            info.timestamps, info.duration, 5, start_time=item.start, end_time=item.end
        )[0]
        assert item.indices.tolist() == expected.tolist()
        np.testing.assert_allclose(item.timestamps, info.timestamps[expected])
        assert item.frames.shape == (5, 48, 64, 3) and item.frames.dtype == np.uint8
        assert numbers(item.frames) == expected.tolist()
    if stride <= window:  # no gaps: the windows cover the video up to its end
        assert got[-1].end == pytest.approx(info.duration, abs=1e-6)


def test_windows_equal_read_frames_bit_for_bit(videos):
    for name in ("mp4", "vfr", "avi"):
        windows = collect(iter_windows(videos[name], window=0.8, stride=0.3, num_frames=6))
        indices = np.concatenate([w.indices for w in windows])
        reference, _ = read_frames(videos[name], indices, backend="pyav")
        assert np.array_equal(np.concatenate([w.frames for w in windows]), reference), name
    scaled = collect(iter_windows(videos["mp4"], window=1, stride=1, num_frames=4, short_side=24))
    reference, _ = read_frames(videos["mp4"], np.concatenate([w.indices for w in scaled]), short_side=24)
    assert scaled[0].frames.shape == (4, 24, 32, 3)
    assert np.array_equal(np.concatenate([w.frames for w in scaled]), reference)


@pytest.mark.parametrize("name", ["mp4", "avi", "h264"])
def test_each_needed_frame_is_decoded_once(videos, name, monkeypatch):
    converted, decoded = [], []
    to_array, decode_forward = video_decoding._frame_to_array, video_decoding._decode_forward

    def counting_to_array(frame, size):
        converted.append(frame.pts)
        return to_array(frame, size)

    def counting_decode(*args):
        for frame in decode_forward(*args):
            decoded.append(frame.pts)
            yield frame

    monkeypatch.setattr(video_decoding, "_frame_to_array", counting_to_array)
    monkeypatch.setattr(video_decoding, "_decode_forward", counting_decode)
    windows = iter_windows(videos[name], window=0.8, stride=0.2, num_frames=8)  # each frame in up to 4 windows
    got = collect(windows)
    needed = np.unique(windows.indices)
    assert sum(len(w.indices) for w in got) >= 3 * len(needed)  # the windows share most frames
    assert len(converted) == windows.frames_converted == len(needed)
    if video_decoding._pts_reliable(windows.info):  # decoded by timestamp: each frame of the file at most once
        assert len(decoded) == windows.frames_decoded and len(set(decoded)) == len(decoded)
        assert sorted(converted) == windows.info.frame_pts[needed].tolist()
        assert windows.frames_decoded < needed.max() + 1  # unneeded B-frames were skipped
    else:  # AVI, raw streams: decoded in order, from the start, once
        assert windows.frames_decoded == needed.max() + 1


def test_start_time_seeks_instead_of_decoding_the_beginning(videos):
    windows = iter_windows(videos["mp4"], window=0.4, stride=0.4, num_frames=4, start_time=1.7)
    got = collect(windows)
    assert [(w.start, w.end) for w in got] == [(1.7, 2.1), (2.0, 2.4)]
    assert all(numbers(w.frames) == w.indices.tolist() for w in got)
    first_keyframe = 36  # keyframes every 12 frames; the first needed frame is 43
    assert windows.indices.min() == 43 and windows.frames_decoded <= NUM - first_keyframe


def test_video_shorter_than_one_window(videos):
    windows = iter_windows(videos["short"], window=4, stride=2, num_frames=8)
    (only,) = collect(windows)
    assert (only.start, only.end) == (0.0, pytest.approx(0.2))
    assert only.indices.tolist() == [0, 0, 1, 2, 2, 3, 4, 4] and numbers(only.frames) == only.indices.tolist()


def test_early_stop_keeps_yielded_windows(videos):
    with iter_windows(videos["mp4"], window=0.4, stride=0.4, num_frames=4) as windows:
        first = next(windows)
    assert numbers(first.frames) == first.indices.tolist()
    with pytest.raises(StopIteration):
        next(windows)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(window=0, stride=1), "`window` must be a positive"),
        (dict(window=1, stride=0), "`stride` must be a positive"),
        (dict(window=1, stride=1, num_frames=0), "`num_frames` must be a positive integer"),
        (dict(window=1, stride=1, tail="drop"), "`tail`"),
        (dict(window=1, stride=1, backend="opencv"), "backend"),
        (dict(window=1, stride=1, start_time=5), r"cfr\.mp4.*2\.400 s"),
    ],
)
def test_windows_reject_bad_arguments(videos, kwargs, message):
    with pytest.raises(ValueError, match=message):
        iter_windows(videos["mp4"], **kwargs)


def test_truncated_file_fails_before_the_first_window(videos):
    with pytest.raises(VideoDecodeError, match="truncated") as caught:
        iter_windows(videos["truncated"], window=1, stride=1)
    assert str(videos["truncated"]) in str(caught.value)


@pytest.mark.parametrize("ext", ["mp4", "avi"])
def test_broken_tail_keep_gives_the_frames_before_the_break(videos, tmp_path, ext):
    """A download or recording cut short: with broken_tail="keep" the windows cover the frames before the break,
    decoded exactly as in the intact file."""
    intact = write_video(tmp_path / f"intact.{ext}", coded_frames(NUM), fps=FPS, gop_size=12, faststart=True)
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(intact.read_bytes()[: int(intact.stat().st_size * 0.6)])
    with pytest.raises(VideoDecodeError, match="truncated"):
        probe_video(cut)
    info = probe_video(cut, broken_tail="keep")
    assert 0 < info.num_frames < NUM and info.truncated and f"{NUM} frames" in info.truncated
    # packets are cut in decode order: with B-frames a few frames before the last one shown can be missing
    assert info.timestamps[-1] < info.duration <= info.timestamps[-1] + 3 / FPS
    assert 0 <= info.duration - info.num_frames / FPS <= 3 / FPS
    windows = iter_windows(cut, window=0.4, stride=0.2, num_frames=4, broken_tail="keep")
    got = collect(windows)
    assert windows.info.truncated and got[-1].end == pytest.approx(info.duration)
    original = [np.round(w.timestamps * FPS).astype(int) for w in got]  # frame numbers in the intact file
    assert all(numbers(w.frames) == shown.tolist() for w, shown in zip(got, original))
    reference = read_frames(intact, np.concatenate(original))[0]
    assert np.array_equal(np.concatenate([w.frames for w in got]), reference)
    assert probe_video(intact, broken_tail="keep").truncated is None
    with pytest.raises(ValueError, match="broken_tail"):
        probe_video(intact, broken_tail="ignore")


def test_header_duration_reveals_a_silently_cut_container(videos, tmp_path):
    assert probe_video(videos["mp4"]).header_duration == pytest.approx(NUM / FPS)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(videos["mkv"].read_bytes()[: int(videos["mkv"].stat().st_size * 0.6)])
    info = probe_video(cut)  # Matroska ends cleanly where the data stops: no error, fewer frames
    assert info.truncated is None and info.duration < 0.7 * NUM / FPS
    assert info.header_duration == pytest.approx(NUM / FPS)


def test_write_video_streams_an_iterator_of_frames(tmp_path):
    frames = coded_frames(30)
    path = write_video(tmp_path / "streamed.mp4", (frame for frame in frames), fps=FPS, crf=0)
    assert numbers(read_video(path, num_frames=None).frames[0]) == list(range(30))
    with pytest.raises(ValueError, match="share one shape"):
        write_video(tmp_path / "bad.mp4", iter([frames[0], frames[0][:8]]), fps=FPS)
    with pytest.raises(ValueError, match="T >= 1"):
        write_video(tmp_path / "empty.mp4", iter([]), fps=FPS)


def test_decode_error_mid_file_names_the_file_and_time(videos, monkeypatch):
    av = pytest.importorskip("av")
    decode_forward = video_decoding._decode_forward

    def failing(*args):
        for count, frame in enumerate(decode_forward(*args)):
            if frame.pts >= 36 * 512:  # frame 36 (time base 1/12800)
                raise av.error.InvalidDataError(1094995529, "Invalid data found when processing input")
            yield frame

    monkeypatch.setattr(video_decoding, "_decode_forward", failing)
    windows = iter_windows(videos["mp4"], window=0.4, stride=0.4, num_frames=4)
    got = []
    with pytest.raises(VideoDecodeError, match=r"decoding failed after frame 3\d at 1\.\d+ s") as caught:
        for window in windows:
            got.append(window)
    assert str(videos["mp4"]) in str(caught.value)
    assert [w.end for w in got] == [0.4, 0.8, 1.2] and all(numbers(w.frames) == w.indices.tolist() for w in got)


def test_stream_ending_early_is_an_error_naming_the_time(videos, monkeypatch):
    decode_forward = video_decoding._decode_forward

    def ends_at_frame_50(*args):
        for frame in decode_forward(*args):
            if frame.pts >= 50 * 512:
                return
            yield frame

    monkeypatch.setattr(video_decoding, "_decode_forward", ends_at_frame_50)
    windows = iter_windows(videos["mp4"], window=0.4, stride=0.4, num_frames=4)
    with pytest.raises(VideoDecodeError, match=r"frames from 2\.\d+ s on could not be decoded") as caught:
        collect(windows)
    assert str(videos["mp4"]) in str(caught.value)


def test_decord_fallback_when_pyav_has_no_decoder(videos, monkeypatch):
    if not decord_available():
        pytest.skip("decord is not installed")
    reference = collect(iter_windows(videos["mp4"], window=0.8, stride=0.3, num_frames=5))

    def no_decoder(src, *args, **kwargs):
        raise video_decoding._NoDecoderError(src.name, "PyAV has no decoder for 'h264'")
        yield  # a generator, as the real one

    monkeypatch.setattr(video_decoding, "_stream_pyav", no_decoder)
    monkeypatch.setattr(video_decoding, "torchcodec_status", lambda: "not here")  # decord comes after torchcodec
    windows = iter_windows(videos["mp4"], window=0.8, stride=0.3, num_frames=5)
    fallback = collect(windows)
    assert windows.backend == "decord" and windows.frames_converted == len(np.unique(windows.indices))
    for a, b in zip(reference, fallback):
        assert np.array_equal(a.frames, b.frames)  # same pixels at the video's own size
    with pytest.raises(VideoDecodeError, match="no decoder"):
        collect(iter_windows(videos["mp4"], window=0.8, stride=0.3, backend="pyav"))


def _smooth_video(path, seconds: int, fps: int = 10, height: int = 96, width: int = 128):
    ys, xs = np.mgrid[0:height, 0:width]
    base = np.repeat(((xs + ys) % 256).astype(np.uint8)[..., None], 3, axis=-1)
    frames = np.stack([np.roll(base, k, axis=1) for k in range(seconds * fps)])
    return write_video(path, frames, fps=fps, encoder_options={"preset": "ultrafast"})


def _peaks(path) -> tuple[int, int]:
    """Peak traced memory (numpy arrays included) of probing, and of iterating all windows."""
    tracemalloc.start()
    try:
        probe_video(path)
        probe_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        for _ in iter_windows(path, window=2, stride=1, num_frames=8):
            pass
        return probe_peak, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_video_length(tmp_path):
    short = _smooth_video(tmp_path / "short.mp4", 30)  # 300 frames
    long = _smooth_video(tmp_path / "long.mp4", 120)  # 1200 frames
    frame_bytes, extra_frames = 96 * 128 * 3, 900
    _peaks(short)  # warm-up: first-use allocations of PyAV and numpy
    probe_short, windows_short = _peaks(short)
    probe_long, windows_long = _peaks(long)
    # held: at most the frames of the windows overlapping the current one (8 * ceil(2 / 1)) plus one stacked window
    assert windows_long < (8 * math.ceil(2 / 1) + 8) * frame_bytes
    assert windows_long - windows_short < 128 * extra_frames  # only the plan (timestamps, indices) grows
    assert probe_long - probe_short < 64 * extra_frames  # the probe keeps 8-byte timestamps per frame
    assert extra_frames * frame_bytes > 100 * (windows_long - windows_short)  # holding the frames would show
