"""Decoding and frame sampling of `hf_xclip.video_io`, and the synthetic-video writer `hf_xclip.data.write_video`."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest

from hf_xclip import video_decoding
from hf_xclip.data import write_video
from hf_xclip.video_io import (
    VideoDecodeError,
    VideoNotFoundError,
    decord_available,
    probe_video,
    read_frames,
    read_video,
    sample_frame_indices,
    torchcodec_available,
)

# every backend that runs here (torchcodec only where it loads and decodes: see tests/test_decode_backends.py)
BACKENDS = ["pyav", *(["decord"] if decord_available() else []), *(["torchcodec"] if torchcodec_available() else [])]
NUM_FRAMES = 60
LEVEL_STEP = 4  # frame k carries gray level 4 * k in its top-left block, so decoded frames identify themselves


def _indexed_frames(num: int, height: int = 64, width: int = 80, seed: int = 0) -> np.ndarray:
    """Textured frames with motion (so the encoder uses P/B frames), frame index coded in a 16x16 block."""
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 256, (height, 2 * width, 3), dtype=np.uint8)
    frames = np.stack([texture[:, k % width : k % width + width] for k in range(num)]).copy()
    for k in range(num):
        frames[k, :16, :16] = LEVEL_STEP * k
    return frames


def _decoded_index(frame: np.ndarray) -> int:
    return int(round(float(frame[4:12, 4:12].mean()) / LEVEL_STEP))


@pytest.fixture(scope="session")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    paths = {}
    paths["gop"] = write_video(root / "gop.mp4", _indexed_frames(NUM_FRAMES), fps=25, gop_size=12, crf=0)
    paths["mkv"] = write_video(root / "gop.mkv", _indexed_frames(NUM_FRAMES), fps=25, gop_size=12, crf=0)
    paths["mpeg4"] = write_video(root / "mpeg4.avi", _indexed_frames(NUM_FRAMES), codec="mpeg4", bit_rate=20_000_000)
    paths["one"] = write_video(root / "one.mp4", _indexed_frames(1))
    paths["three"] = write_video(root / "three.mp4", _indexed_frames(3), crf=0)
    paths["odd"] = write_video(root / "odd.mp4", _indexed_frames(5, height=63, width=81))
    faststart = write_video(root / "faststart.mp4", _indexed_frames(NUM_FRAMES), gop_size=12, faststart=True)
    data = paths["gop"].read_bytes()
    broken = {
        "zero.mp4": b"",
        "text.mp4": b"this is not a video\n" * 20,
        "random.mp4": np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "truncated.mp4": data[: len(data) // 2],
        "header_only.mp4": data[:64],
        "truncated_faststart.mp4": faststart.read_bytes()[: int(faststart.stat().st_size * 0.6)],
        "truncated.avi": paths["mpeg4"].read_bytes()[: paths["mpeg4"].stat().st_size // 2],
    }
    for name, content in broken.items():
        (root / name).write_bytes(content)
        paths[name] = root / name
    corrupt = bytearray(faststart.read_bytes())
    middle = len(corrupt) // 2
    corrupt[middle : middle + 1500] = bytes((7 * b + 3) % 256 for b in corrupt[middle : middle + 1500])
    (root / "corrupt_middle.mp4").write_bytes(bytes(corrupt))
    paths["corrupt_middle.mp4"] = root / "corrupt_middle.mp4"
    paths["root"] = root
    return paths


# ------------------------------------------------------------------------------------------------------------------
# Sampling


@pytest.mark.parametrize(
    ("total", "num_frames", "expected"),
    [
        (60, 8, [3, 11, 18, 26, 33, 41, 48, 56]),  # int((k + 0.5) * 7.5)
        (8, 8, [0, 1, 2, 3, 4, 5, 6, 7]),
        (3, 8, [0, 0, 0, 1, 1, 2, 2, 2]),  # short videos still give T indices
        (1, 4, [0, 0, 0, 0]),
        (300, 16, [9, 28, 46, 65, 84, 103, 121, 140, 159, 178, 196, 215, 234, 253, 271, 290]),
        (10, 1, [5]),
    ],
)
def test_middle_sampling_pinned(total, num_frames, expected):
    assert sample_frame_indices(total, num_frames).tolist() == [expected]


@pytest.mark.parametrize("total", [1, 2, 7, 8, 9, 31, 32, 33, 250, 1001])
@pytest.mark.parametrize("num_frames", [1, 4, 8, 16, 32])
def test_middle_sampling_formula(total, num_frames):
    expected = [int((k + 0.5) * total / num_frames) for k in range(num_frames)]
    indices = sample_frame_indices(total, num_frames)
    assert indices.shape == (1, num_frames) and indices.tolist() == [expected]


def test_middle_sampling_clips_shift_inside_segments():
    indices = sample_frame_indices(60, 8, num_clips=2)
    assert indices.tolist() == [[1, 9, 16, 24, 31, 39, 46, 54], [5, 13, 20, 28, 35, 43, 50, 58]]
    segments = np.arange(8) * 7.5
    assert np.all((indices >= np.floor(segments)) & (indices < segments + 7.5))


def test_random_sampling_one_frame_per_segment():
    rng = np.random.default_rng(0)
    indices = sample_frame_indices(100, 8, "random", num_clips=50, rng=rng)
    segment = 100 // 8
    assert indices.shape == (50, 8)
    assert np.all(indices // segment == np.arange(8))  # the original never samples past 8 * 12 = 96
    assert len(np.unique(indices[:, 0])) > 5  # really random
    again = sample_frame_indices(100, 8, "random", num_clips=50, rng=np.random.default_rng(0))
    assert np.array_equal(indices, again)


def test_random_sampling_short_video_matches_original_rounding():
    # fewer frames than T: np.around(arange(T) * N / T), numpy's half-to-even (2.5 -> 2) as in the original
    assert sample_frame_indices(5, 8, "random").tolist() == [[0, 1, 1, 2, 2, 3, 4, 4]]


def test_uniform_sampling_covers_first_and_last():
    assert sample_frame_indices(60, 8, "uniform").tolist() == [[0, 8, 17, 25, 34, 42, 51, 59]]
    assert sample_frame_indices(3, 5, "uniform").tolist() == [[0, 1, 1, 2, 2]]


@pytest.mark.parametrize(
    "kwargs",
    [dict(total_frames=0), dict(total_frames=10, num_frames=0), dict(total_frames=10, mode="dense")],
)
def test_sampling_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        sample_frame_indices(**kwargs)


def test_uniform_sampling_rejects_several_clips():
    with pytest.raises(ValueError, match="one clip"):
        sample_frame_indices(10, 4, "uniform", num_clips=2)


# ------------------------------------------------------------------------------------------------------------------
# Decoding


def test_probe_counts_frames_and_keyframes(videos):
    info = probe_video(videos["gop"])
    assert (info.num_frames, info.height, info.width, info.fps) == (NUM_FRAMES, 64, 80, 25.0)
    assert len(info.keyframe_pts) == NUM_FRAMES // 12
    assert info.codec == "h264"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["gop", "mkv", "mpeg4"])
def test_read_frames_returns_the_requested_frames(videos, backend, name):
    wanted = [0, 5, 13, 59, 30, 12, 12, 47, 1]  # unsorted, repeated, across GOP boundaries
    frames, used = read_frames(videos[name], wanted, backend=backend)
    assert used == backend
    assert frames.shape == (len(wanted), 64, 80, 3) and frames.dtype == np.uint8
    assert [_decoded_index(frame) for frame in frames] == wanted


def test_decord_and_pyav_decode_identical_pixels(videos, tmp_path):
    # The module docstring's claim: identical at the video's own size, scalers differ with decode-time downscaling.
    if not decord_available():
        pytest.skip("decord is not installed")
    lossy = write_video(tmp_path / "lossy.mp4", _indexed_frames(NUM_FRAMES), gop_size=12)  # B-frames, 4:2:0
    for name, path in [*((name, videos[name]) for name in ("gop", "mkv", "mpeg4", "odd")), ("lossy", lossy)]:
        every = np.arange(probe_video(path).num_frames)
        a, _ = read_frames(path, every, backend="decord")
        b, _ = read_frames(path, every, backend="pyav")
        assert np.array_equal(a, b), name
        small_a, _ = read_frames(path, every, backend="decord", short_side=32)
        small_b, _ = read_frames(path, every, backend="pyav", short_side=32)
        assert small_a.shape == small_b.shape, name
        assert np.abs(small_a.astype(np.int16) - small_b).mean() < 4, name  # measured: 0 to 2.5 on these videos


@pytest.mark.parametrize("backend", BACKENDS)
def test_read_video_samples_then_decodes(videos, backend):
    video = read_video(videos["gop"], 8, num_clips=2, backend=backend)
    assert video.frames.shape == (2, 8, 64, 80, 3)
    assert video.indices.tolist() == sample_frame_indices(NUM_FRAMES, 8, num_clips=2).tolist()
    decoded = [[_decoded_index(f) for f in clip] for clip in video.frames]
    assert decoded == video.indices.tolist()


@pytest.mark.parametrize("backend", BACKENDS)
def test_decode_time_downscaling(videos, backend):
    frames, _ = read_frames(videos["gop"], [10, 20], backend=backend, short_side=32)
    assert frames.shape == (2, 32, 40, 3)
    # the 16x16 index block is 8x8 after halving; read its inside
    assert [int(round(float(f[2:6, 2:6].mean()) / LEVEL_STEP)) for f in frames] == [10, 20]


def test_sources_path_bytes_and_file_object(videos):
    path = videos["gop"]
    reference = read_video(path, 4).frames
    assert np.array_equal(read_video(str(path), 4).frames, reference)
    assert np.array_equal(read_video(path.read_bytes(), 4).frames, reference)
    with open(path, "rb") as handle:
        assert np.array_equal(read_video(handle, 4).frames, reference)
    assert np.array_equal(read_video(io.BytesIO(path.read_bytes()), 4).frames, reference)


@pytest.mark.parametrize("backend", BACKENDS)
def test_short_and_odd_videos_work(videos, backend):
    one = read_video(videos["one"], 8, backend=backend)
    assert one.frames.shape == (1, 8, 64, 80, 3) and one.indices.tolist() == [[0] * 8]
    three = read_video(videos["three"], 8, backend=backend)
    assert [_decoded_index(f) for f in three.frames[0]] == [0, 0, 0, 1, 1, 2, 2, 2]
    odd = read_video(videos["odd"], 8, backend=backend)
    assert odd.frames.shape == (1, 8, 63, 81, 3)


BROKEN = {
    "zero.mp4": "empty",
    "text.mp4": "not a readable video container",
    "random.mp4": "not a readable video container",
    "truncated.mp4": "not a readable video container",
    "header_only.mp4": "not a readable video container",
    "truncated_faststart.mp4": "truncated",
    "truncated.avi": "truncated",
}


@pytest.mark.parametrize("backend", ["auto", *BACKENDS])
@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_files_raise_a_clear_error(videos, name, backend):
    path = videos[name]
    with pytest.raises(VideoDecodeError, match=BROKEN[name]) as caught:
        read_video(path, 8, backend=backend)
    assert caught.value.source == str(path) and str(path) in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("backend", ["auto", *BACKENDS])
def test_corrupt_bitstream_never_crashes(videos, backend):
    # Damaged slices inside an intact container: FFmpeg either refuses the packet (clear error) or conceals the
    # damage, as players and the original decord pipeline do; never a crash or a hang.
    path = videos["corrupt_middle.mp4"]
    try:
        video = read_video(path, 8, backend=backend)
    except VideoDecodeError as err:
        assert str(path) in str(err)
    else:
        assert video.frames.shape == (1, 8, 64, 80, 3)


def test_broken_bytes_name_the_input(videos):
    with pytest.raises(VideoDecodeError, match="<bytes>"):
        read_video(videos["text.mp4"].read_bytes())
    with pytest.raises(VideoDecodeError, match="empty"):
        read_video(b"")


def test_missing_path_and_directory(videos):
    missing = videos["root"] / "missing.mp4"
    with pytest.raises(VideoNotFoundError, match="file not found") as caught:
        read_video(missing)
    assert isinstance(caught.value, FileNotFoundError) and isinstance(caught.value, ValueError)
    assert str(missing) in str(caught.value)
    with pytest.raises(VideoDecodeError, match="not a regular file"):
        read_video(videos["root"])


def test_audio_only_file_has_no_video_stream(tmp_path):
    av = pytest.importorskip("av")
    path = tmp_path / "audio.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for i in range(4):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with pytest.raises(VideoDecodeError, match="no video stream"):
        read_video(path)


def test_out_of_range_indices_and_unknown_backend(videos):
    with pytest.raises(ValueError, match=r"\[0, 60\)"):
        read_frames(videos["gop"], [60])
    with pytest.raises(ValueError, match="backend"):
        read_frames(videos["gop"], [0], backend="opencv")


def test_error_pickles():
    import pickle

    error = pickle.loads(pickle.dumps(VideoDecodeError("a.mp4", "broken")))
    assert (error.source, error.reason) == ("a.mp4", "broken")


# ------------------------------------------------------------------------------------------------------------------
# Writing


def test_write_video_round_trip(tmp_path):
    frames = _indexed_frames(10)
    path = write_video(tmp_path / "clip.mp4", frames, fps=10, crf=0, pix_fmt="yuv444p")
    video = read_video(path, 10, backend="pyav")
    assert video.info.num_frames == 10 and video.info.fps == 10.0
    assert [_decoded_index(f) for f in video.frames[0]] == list(range(10))
    assert np.abs(video.frames[0].astype(int) - frames).mean() < 3


def test_write_video_grayscale_list_and_mpeg4(tmp_path):
    gray = [np.full((32, 48), 128, np.uint8) for _ in range(6)]
    path = write_video(tmp_path / "gray.avi", gray, codec="mpeg4")
    frames = read_video(path, 3).frames
    assert frames.shape == (1, 3, 32, 48, 3)
    assert abs(float(frames.mean()) - 128) < 3


@pytest.mark.parametrize(
    "frames",
    [np.zeros((0, 8, 8, 3), np.uint8), np.zeros((2, 8, 8, 4), np.uint8), np.zeros((2, 8, 8, 3), np.float32)],
)
def test_write_video_rejects_bad_frames(tmp_path, frames):
    with pytest.raises(ValueError):
        write_video(tmp_path / "bad.mp4", frames)


def test_importing_hf_xclip_loads_no_decoder():
    """The decoders (PyAV, decord) are imported on first use, not by `import hf_xclip.video_io` (checked in a fresh
    interpreter, where nothing else could have imported them)."""
    decoders = "('av', 'decord', 'torchcodec')"
    probe = f"import sys, hf_xclip.video_io; print(sorted(m for m in {decoders} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def test_auto_falls_back_to_decord_when_pyav_lacks_the_codec(videos, monkeypatch):
    if not decord_available():
        pytest.skip("decord is not installed")

    def no_decoder(src, *args, **kwargs):
        raise video_decoding._NoDecoderError(src.name, "PyAV has no decoder for 'h264'")

    monkeypatch.setattr(video_decoding, "_read_pyav", no_decoder)
    monkeypatch.setattr(video_decoding, "torchcodec_status", lambda: "not here")  # decord comes after torchcodec
    frames, used = read_frames(videos["gop"], [7, 3], backend="auto")
    assert used == "decord" and [_decoded_index(f) for f in frames] == [7, 3]
    with pytest.raises(VideoDecodeError, match="no decoder"):
        read_frames(videos["gop"], [7], backend="pyav")


def test_the_writer_left_the_video_core_and_says_where_it_went():
    """`write_video` is not shipped with models any more: the old import names its new home."""
    with pytest.raises(ImportError, match=r"hf_xclip\.data"):
        from hf_xclip.video_io import write_video as _  # noqa: F401
    import hf_xclip.video_io

    assert not hasattr(hf_xclip.video_io, "no_such_name")
