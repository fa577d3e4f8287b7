"""The torchcodec backend and the ``auto`` choice of `hf_xclip.video_io`: same frames and timestamps as PyAV, a
silent fallback under ``auto`` when torchcodec does not load / cannot decode / cannot open a file, one clear message
when it is asked for by name, and ``--decode-backend`` on the command line.

``auto`` tries PyAV, then torchcodec, then decord (`hf_xclip.video_decoding.AUTO_ORDER`). The tests that decode with
torchcodec for real skip where it does not work (the PyPI wheels are CUDA builds that
do not load next to the CPU build of torch; see docs/videos.md for a venv where they run)."""

from __future__ import annotations

import sys
from pathlib import Path

import av
import numpy as np
import pytest
from testing_utils import coded_frames, numbers, write_vfr

from hf_xclip import XClipVideoProcessor, video_decoding
from hf_xclip.data import write_video
from hf_xclip.video_io import (
    DecodeBackendUnavailableError,
    VideoDecodeError,
    iter_windows,
    read_frames,
    read_video,
    require_backend,
    torchcodec_available,
    torchcodec_status,
)

VFR_STEPS_MS = [40, 40, 80, 20, 100, 40, 60, 30] * 8  # 64 frames, 20 to 100 ms apart
needs_torchcodec = pytest.mark.skipif(
    not torchcodec_available(), reason=f"torchcodec does not work here: {torchcodec_status()}"
)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("backends")
    frames = coded_frames(64)
    paths = {
        "cfr": write_video(root / "cfr.mp4", frames, fps=25, gop_size=16, crf=0),
        "vfr": write_vfr(root / "vfr.mp4", frames, VFR_STEPS_MS),
        "mkv": write_video(root / "cfr.mkv", frames, fps=30, gop_size=16, crf=0),
        "raw_h264": root / "stream.h264",
    }
    with av.open(str(paths["raw_h264"]), "w", format="h264") as container:  # no container: no timestamps
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for image in frames[:32]:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    data = paths["cfr"].read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 2])
    paths["truncated"] = root / "truncated.mp4"
    return paths


@pytest.fixture()
def torchcodec_broken(monkeypatch, tmp_path):
    """A torchcodec package whose import fails as the PyPI wheel does next to the CPU torch (its native library does
    not load); the per-process status is recomputed."""
    package = tmp_path / "fake_torchcodec" / "torchcodec"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        "raise OSError('Could not load this library: .../torchcodec/libtorchcodec_core8.so')\n"
    )
    monkeypatch.syspath_prepend(str(package.parent))
    for name in [m for m in sys.modules if m == "torchcodec" or m.startswith("torchcodec.")]:
        monkeypatch.delitem(sys.modules, name)
    torchcodec_status.cache_clear()
    yield
    torchcodec_status.cache_clear()


@pytest.fixture()
def torchcodec_without_ffmpeg(monkeypatch, tmp_path):
    """A torchcodec that imports but cannot decode: what FFmpeg's libraries missing at decode time look like."""
    package = tmp_path / "fake_torchcodec" / "torchcodec"
    (package / "decoders").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "decoders" / "__init__.py").write_text(
        "class VideoDecoder:\n"
        "    def __init__(self, *args, **kwargs):\n"
        "        raise RuntimeError('libavcodec.so.61: cannot open shared object file: No such file or directory')\n"
    )
    monkeypatch.syspath_prepend(str(package.parent))
    for name in [m for m in sys.modules if m == "torchcodec" or m.startswith("torchcodec.")]:
        monkeypatch.delitem(sys.modules, name)
    torchcodec_status.cache_clear()
    yield
    torchcodec_status.cache_clear()


# ------------------------------------------------------------------------------------------------ fallback, errors
@pytest.mark.parametrize("broken", ["torchcodec_broken", "torchcodec_without_ffmpeg"])
def test_auto_falls_back_to_pyav_silently_and_by_name_is_one_clear_error(files, broken, request, caplog):
    request.getfixturevalue(broken)
    assert not torchcodec_available()
    reason = "does not load" if broken == "torchcodec_broken" else "cannot decode a probe video"
    assert reason in torchcodec_status()
    video = read_video(files["cfr"], 8)  # auto
    assert video.backend == "pyav" and numbers(video.frames[0]) == video.indices[0].tolist()
    windows = iter_windows(files["cfr"], window=1, stride=1, num_frames=4)
    assert [numbers(w.frames) for w in windows] == windows.indices.tolist() and windows.backend == "pyav"
    assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]
    for call in (
        lambda: read_video(files["cfr"], 8, backend="torchcodec"),
        lambda: iter_windows(files["cfr"], window=1, stride=1, backend="torchcodec"),
        lambda: XClipVideoProcessor(crop_size=32, decode_backend="torchcodec")(str(files["cfr"])),
    ):
        with pytest.raises(DecodeBackendUnavailableError) as caught:
            call()
        message = str(caught.value)
        assert reason in message and "hf_xclip[torchcodec]" in message and "apt-get install ffmpeg" in message
        assert isinstance(caught.value, ImportError)


def test_probe_result_is_cached_per_process(monkeypatch, torchcodec_broken):
    assert torchcodec_status() is not None
    calls = []
    monkeypatch.setattr(video_decoding, "_probe_clip", lambda: calls.append(1) or b"")
    for _ in range(3):
        torchcodec_available()
    assert calls == []  # the first answer is kept


def test_auto_order_moves_on_only_when_a_backend_cannot_decode_the_file(files, monkeypatch, caplog):
    """``auto``: PyAV; torchcodec when PyAV has no decoder for the codec; decord when torchcodec cannot open the
    file either (a file torchcodec cannot open but another can). By name, no fallback: the error names the file."""
    monkeypatch.setattr(video_decoding, "torchcodec_status", lambda: None)  # pretend torchcodec works here
    opened = []

    def cannot_open(src, *args, **kwargs):
        opened.append(src.name)
        raise VideoDecodeError(src.name, "torchcodec cannot open it (unsupported stream)")

    def no_decoder(src, *args, **kwargs):
        raise video_decoding._NoDecoderError(src.name, "PyAV has no decoder for 'h264'")

    monkeypatch.setattr(video_decoding, "_open_torchcodec", cannot_open)
    frames, used = read_frames(files["cfr"], [9, 2, 9])
    assert used == "pyav" and numbers(frames) == [9, 2, 9] and opened == []  # PyAV first: torchcodec not tried
    monkeypatch.setattr(video_decoding, "_read_pyav", no_decoder)
    monkeypatch.setattr(video_decoding, "_stream_pyav", no_decoder)
    if video_decoding.decord_available():
        frames, used = read_frames(files["cfr"], [9, 2, 9])
        assert used == "decord" and numbers(frames) == [9, 2, 9] and len(opened) == 1
        windows = iter_windows(files["cfr"], window=1, stride=1, num_frames=4)
        assert [numbers(w.frames) for w in windows] == windows.indices.tolist() and windows.backend == "decord"
    monkeypatch.setattr(video_decoding, "decord_available", lambda: False)
    with pytest.raises(VideoDecodeError, match="torchcodec cannot open it"):  # the last one's error
        read_frames(files["cfr"], [1])
    with pytest.raises(VideoDecodeError, match=r"cfr\.mp4.*torchcodec cannot open it"):
        read_frames(files["cfr"], [1], backend="torchcodec")
    monkeypatch.setattr(video_decoding, "AUTO_ORDER", ("torchcodec", "pyav", "decord"))  # the order is one constant
    with pytest.raises(VideoDecodeError, match="no decoder"):
        read_frames(files["cfr"], [1])


def test_unknown_backend_and_decord_by_name(monkeypatch):
    with pytest.raises(ValueError, match="torchcodec"):
        require_backend("ffmpeg")
    monkeypatch.setattr(video_decoding, "decord_available", lambda: False)
    with pytest.raises(DecodeBackendUnavailableError, match="pip install decord"):
        require_backend("decord")


def test_corrupt_file_is_a_clear_error_with_every_backend(files):
    for backend in ("auto", "pyav", *(("torchcodec",) if torchcodec_available() else ())):
        with pytest.raises(VideoDecodeError, match="truncated"):
            read_video(files["truncated"], 8, backend=backend)


@pytest.mark.parametrize("command", ["classify", "timeline"])
def test_cli_decode_backend_unavailable_is_one_line_exit_2(files, tmp_path, capsys, torchcodec_broken, command):
    from hf_xclip.cli import EXIT_USAGE, main

    out = tmp_path / "out.json"
    argv = [command, str(files["cfr"]), "--labels", "a,b", "--decode-backend", "torchcodec"]
    argv += ["--json", str(out)]
    assert main(argv) == EXIT_USAGE
    stderr = capsys.readouterr().err
    err = [line for line in stderr.splitlines() if line.startswith("hf-xclip")]  # (not transformers' progress bars)
    assert len(err) == 1 and err[0].startswith(f"hf-xclip {command}: error: decode_backend='torchcodec'")
    assert "apt-get install ffmpeg" in err[0] and "Traceback" not in stderr
    assert not out.exists()


def test_every_decoding_command_has_the_option():
    from hf_xclip.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name in ("classify", "timeline", "index", "evaluate", "calibrate", "finetune", "demo"):
        options = {o for a in subparsers.choices[name]._actions for o in a.option_strings}
        assert "--decode-backend" in options, name
    for name in ("search", "export", "convert", "labels"):  # they decode nothing
        options = {o for a in subparsers.choices[name]._actions for o in a.option_strings}
        assert "--decode-backend" not in options, name


# ------------------------------------------------------------------------------------------------ torchcodec for real
@needs_torchcodec
@pytest.mark.parametrize("name", ["cfr", "vfr", "mkv"])
def test_torchcodec_reads_the_frames_pyav_reads(files, name):
    """Same indices, timestamps and pixels (bit for bit at the video's own size) as PyAV, by count and by time."""
    path = files[name]
    for sampling in (
        dict(num_frames=8),
        dict(num_frames=8, num_clips=2),
        dict(num_frames=None, fps=7.0),
        dict(num_frames=6, start_time=0.5, end_time=1.7),
    ):
        a = read_video(path, backend="pyav", **sampling)
        b = read_video(path, backend="torchcodec", **sampling)
        assert b.backend == "torchcodec"
        assert np.array_equal(a.indices, b.indices) and np.array_equal(a.timestamps, b.timestamps)
        assert numbers(b.frames.reshape(-1, *b.frames.shape[2:])) == b.indices.reshape(-1).tolist()
        diff = np.abs(a.frames.astype(int) - b.frames).max()
        assert np.array_equal(a.frames, b.frames), f"{name} {sampling}: max diff {diff}"
        assert b.metadata.video_backend == "torchcodec" and b.metadata.timestamps == a.metadata.timestamps


@needs_torchcodec
def test_windows_match_and_auto_uses_torchcodec_for_codecs_pyav_lacks(files, monkeypatch):
    pyav = list(iter_windows(files["vfr"], window=0.8, stride=0.5, num_frames=4, backend="pyav"))
    windows = iter_windows(files["vfr"], window=0.8, stride=0.5, num_frames=4, backend="torchcodec")
    got = list(windows)
    assert windows.backend == "torchcodec" and len(got) == len(pyav)
    for a, b in zip(pyav, got):
        assert np.array_equal(a.indices, b.indices) and np.array_equal(a.frames, b.frames)
    assert read_video(files["cfr"], 4).backend == "pyav"  # auto: PyAV first (less CPU, docs/videos.md)

    def no_decoder(src, *args, **kwargs):
        raise video_decoding._NoDecoderError(src.name, "PyAV has no decoder for 'h264'")

    monkeypatch.setattr(video_decoding, "_read_pyav", no_decoder)
    monkeypatch.setattr(video_decoding, "_stream_pyav", no_decoder)
    video = read_video(files["vfr"], 6)
    assert video.backend == "torchcodec" and numbers(video.frames[0]) == video.indices[0].tolist()
    windows = iter_windows(files["vfr"], window=0.8, stride=0.5, num_frames=4)
    assert [numbers(w.frames) for w in windows] == windows.indices.tolist() and windows.backend == "torchcodec"


@needs_torchcodec
def test_torchcodec_downscaling_stays_close_to_pyav(files):
    a = read_video(files["cfr"], 8, backend="pyav", short_side=24).frames.astype(np.int16)
    b = read_video(files["cfr"], 8, backend="torchcodec", short_side=24).frames.astype(np.int16)
    assert a.shape == b.shape == (1, 8, 24, 32, 3)
    assert np.abs(a - b).mean() < 16  # two scalers on a noise texture (see docs/videos.md)


@needs_torchcodec
def test_file_torchcodec_cannot_open_but_pyav_can(files):
    """A raw H.264 stream (no container, no timestamps): torchcodec's exact-seek scan refuses it (``auto`` never
    offers it such a stream) and PyAV reads it; by name the error names the file."""
    video = read_video(files["raw_h264"], 4)
    assert video.backend == "pyav" and numbers(video.frames[0]) == video.indices[0].tolist()
    with pytest.raises(VideoDecodeError, match=r"stream\.h264.*torchcodec"):
        read_video(files["raw_h264"], 4, backend="torchcodec")


@needs_torchcodec
def test_processor_pixels_equal_across_backends(files):
    processor = XClipVideoProcessor(crop_size=32, num_frames=4)
    a = processor(str(files["vfr"]), decode_backend="pyav", return_metadata=True)
    b = processor(str(files["vfr"]), decode_backend="torchcodec", return_metadata=True)
    assert b["video_metadata"][0].video_backend == "torchcodec"
    assert np.array_equal(a["pixel_values"].numpy(), b["pixel_values"].numpy())
