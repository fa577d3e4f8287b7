"""Decode + preprocess one 8-frame X-CLIP clip from a 720p H.264 file: hf_xclip against full decoding.

Methods (each ends with ``pixel_values`` of shape (1, T, 3, 224, 224)):

* ``hf_xclip decord`` / ``hf_xclip pyav``: `XClipVideoProcessor` (probe, seek to the sampled frames, X-CLIP protocol).
* ``... + decode downscale``: the same, frames scaled to a 256 short side by the decoder.
* ``pyav full decode``: decode every frame with PyAV, take the sampled ones, same preprocessing (the baseline).
* ``transformers recipe``: transformers' X-CLIP documentation recipe: PyAV decodes from the start up to the last
  sampled frame, then ``VideoMAEImageProcessor`` (what the Hub's X-CLIP processors load) preprocesses. Note that
  transformers' port resizes the short side to 224 (the original: 256), so its pixel values differ by design.

Wall time is reported, but CPU time (all threads of the process) is the robust number on a shared machine. Full
decoding also holds every frame in memory (300 frames of 720p RGB = 830 MB) where the seek paths hold T frames.
``max|diff|`` / ``mean|diff|`` compare ``pixel_values`` with the first row (0 = identical frames).

Run: ``python bench/bench_decode.py`` (``--help`` for sizes); prints a table per video and writes
``bench/results/bench_decode.json``.

Backends: ``python bench/bench_decode.py --backends`` decodes the same files with torchcodec, PyAV and decord through
`hf_xclip.video_io` (a 10 s 720p clip, a 10-minute 640x360 video, a 120 s 1080p video; H.264, keyframe every 250
frames, B-frames): 8 frames sampled by count (the X-CLIP protocol), frames at 1 fps (sampling by time), and
windows of 4 s every 2 s with 8 frames each (`iter_windows`, what `hf-xclip timeline` / `index --window` read).
Frames/s is frames returned per wall second; CPU s counts every thread of the process. Every backend must return
the same frame indices (checked) and, at the video's own size, the same pixels (max |diff| against PyAV).
Writes ``bench/results/bench_decode_backends.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hf_xclip.data import write_video  # noqa: E402
from hf_xclip.video_io import (  # noqa: E402
    decord_available,
    iter_windows,
    probe_video,
    read_video,
    sample_frame_indices,
    torchcodec_status,
)
from hf_xclip.video_processing_xclip import XClipVideoProcessor  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
BASELINE = "pyav full decode + same preprocessing"


def make_video(path: Path, seconds: float, fps: int, height: int, width: int, gop: int) -> Path:
    """Smooth moving gradients and boxes (compresses like camera footage, unlike noise)."""
    if path.exists():
        return path
    num = int(seconds * fps)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = np.empty((num, height, width, 3), np.uint8)
    for k in range(num):
        phase = 2 * np.pi * k / fps
        frames[k, ..., 0] = 127 + 120 * np.sin(xs / 90 + phase)
        frames[k, ..., 1] = 127 + 120 * np.sin(ys / 70 - phase / 2)
        frames[k, ..., 2] = (xs + ys + 4 * k) % 256
        x0, y0 = (37 * k) % (width - 200), (23 * k) % (height - 150)
        frames[k, y0 : y0 + 150, x0 : x0 + 200] = (255 - 3 * k % 256, 40, 200)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_video(path, frames, fps=fps, gop_size=gop, encoder_options={"preset": "veryfast"})


def pyav_full_decode(path: Path, indices: np.ndarray) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    return np.stack([frames[i] for i in indices])


def transformers_recipe(path: Path, indices: np.ndarray, image_processor) -> torch.Tensor:
    """transformers' X-CLIP docs: decode from the start up to the last wanted frame, then the image processor."""
    import av

    wanted, frames = set(int(i) for i in indices), {}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for position, frame in enumerate(container.decode(stream)):
            if position > max(wanted):
                break
            if position in wanted:
                frames[position] = frame.to_ndarray(format="rgb24")
    video = [frames[int(i)] for i in indices]
    return image_processor(video, return_tensors="pt")["pixel_values"]


def timed(fn, repeats: int) -> tuple[list[float], list[float], object]:
    """Wall times, CPU times (all threads of the process: robust on a busy machine) and the result."""
    result = fn()  # warm-up (page cache, lazy imports)
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return walls, cpus, result


def bench_one(path: Path, gop: int, args) -> dict:
    info = probe_video(path)
    indices = sample_frame_indices(info.num_frames, args.num_frames)[0]
    processor = XClipVideoProcessor(num_frames=args.num_frames)
    short = processor.resize_short_side()

    methods = {}
    methods["hf_xclip (auto = pyav seeks)"] = lambda: processor(path)["pixel_values"]
    methods["hf_xclip pyav + decode downscale"] = lambda: processor(
        path, decode_backend="pyav", decode_short_side=short
    )["pixel_values"]
    if decord_available():
        methods["hf_xclip decord (get_batch)"] = lambda: processor(path, decode_backend="decord")["pixel_values"]
        methods["hf_xclip decord + decode downscale"] = lambda: processor(
            path, decode_backend="decord", decode_short_side=short
        )["pixel_values"]
    methods[BASELINE] = lambda: processor(pyav_full_decode(path, indices), do_sample_frames=False)["pixel_values"]
    try:
        from transformers.utils import is_torchvision_available

        if is_torchvision_available():
            from transformers import VideoMAEImageProcessor
        else:  # the same processor on PIL, what transformers falls back to without torchvision
            from transformers import VideoMAEImageProcessorPil as VideoMAEImageProcessor

        image_processor = VideoMAEImageProcessor(
            image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]
        )  # the Hub's X-CLIP preprocessor_config.json
        methods["transformers recipe (PyAV + VideoMAE processor)"] = lambda: transformers_recipe(
            path, indices, image_processor
        )
    except Exception as err:  # pragma: no cover - depends on the installed transformers
        print(f"transformers recipe skipped: {err}")

    rows, reference = [], None
    for label, fn in methods.items():
        walls, cpus, pixels = timed(fn, args.repeats)
        if reference is None:
            reference = pixels
        same_shape = tuple(pixels.shape) == tuple(reference.shape)
        diff = (pixels - reference).abs() if same_shape else None
        rows.append(
            {
                "method": label,
                "wall_median_ms": 1000 * statistics.median(walls),
                "wall_min_ms": 1000 * min(walls),
                "cpu_median_ms": 1000 * statistics.median(cpus),
                "max_abs_diff_vs_first": float(diff.max()) if diff is not None else None,
                "mean_abs_diff_vs_first": float(diff.mean()) if diff is not None else None,
            }
        )
    base = next(r for r in rows if r["method"] == BASELINE)
    for row in rows:
        row["wall_speedup_vs_full_decode"] = base["wall_median_ms"] / row["wall_median_ms"]
        row["cpu_speedup_vs_full_decode"] = base["cpu_median_ms"] / row["cpu_median_ms"]

    print(
        f"\nvideo: {path.name} ({info.num_frames} frames, {info.width}x{info.height}, {info.codec}, keyframe every "
        f"{gop}), T={args.num_frames}, indices {indices.tolist()}, load average {os.getloadavg()[0]:.1f}"
    )
    header = (
        f"{'method':50s} {'wall ms':>8s} {'min ms':>8s} {'CPU ms':>8s} {'x wall':>7s} {'x CPU':>6s} "
        f"{'max|diff|':>9s} {'mean|diff|':>10s}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        top, mean = row["max_abs_diff_vs_first"], row["mean_abs_diff_vs_first"]
        diffs = "        -          -" if top is None else f"{top:9.4f} {mean:10.4f}"
        print(
            f"{row['method']:50s} {row['wall_median_ms']:8.1f} {row['wall_min_ms']:8.1f} "
            f"{row['cpu_median_ms']:8.1f} {row['wall_speedup_vs_full_decode']:6.2f}x "
            f"{row['cpu_speedup_vs_full_decode']:5.2f}x {diffs}"
        )
    return {
        "file": path.name,
        "frames": info.num_frames,
        "height": info.height,
        "width": info.width,
        "fps": info.fps,
        "codec": info.codec,
        "gop": gop,
        "indices": indices.tolist(),
        "results": rows,
    }


BACKEND_VIDEOS = {  # name: (seconds, height, width)
    "short clip 720p 10 s": (10, 720, 1280),
    "10 min 640x360": (600, 360, 640),
    "1080p 120 s": (120, 1080, 1920),
}


def streamed_frames(seconds: float, fps: int, height: int, width: int):
    """The frames of `make_video`, generated one at a time (a 10-minute video never in memory)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    box_h, box_w = height // 5, width // 6
    for k in range(int(seconds * fps)):
        phase = 2 * np.pi * k / fps
        frame = np.empty((height, width, 3), np.uint8)
        frame[..., 0] = 127 + 120 * np.sin(xs / 90 + phase)
        frame[..., 1] = 127 + 120 * np.sin(ys / 70 - phase / 2)
        frame[..., 2] = (xs + ys + 4 * k) % 256
        x0, y0 = (37 * k) % (width - box_w), (23 * k) % (height - box_h)
        frame[y0 : y0 + box_h, x0 : x0 + box_w] = (255 - 3 * k % 256, 40, 200)
        yield frame


def backend_video(name: str, fps: int) -> Path:
    """The benchmark file: FFmpeg's ``testsrc2`` pattern (moving, textured) encoded by the ``ffmpeg`` command when
    it is installed (fast), else the frames of `streamed_frames` written with PyAV; H.264 (x264 veryfast, B-frames),
    keyframe every 250 frames, yuv420p."""
    seconds, height, width = BACKEND_VIDEOS[name]
    ffmpeg = shutil.which("ffmpeg")
    source = "testsrc2" if ffmpeg else "gradients"
    path = RESULTS / "videos" / f"h264_{source}_{width}x{height}_{seconds}s_{fps}fps_gop250.mp4"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        print(f"writing {path.name} ...", flush=True)
        tmp = path.with_suffix(".partial.mp4")
        if ffmpeg:
            subprocess.run(
                [
                    ffmpeg,
                    "-v",
                    "error",
                    "-y",
                    "-f",
                    "lavfi",
                    "-i",
                    f"testsrc2=size={width}x{height}:rate={fps}",
                    "-t",
                    str(seconds),
                    "-c:v",
                    "libx264",
                    "-preset",
                    "veryfast",
                    "-g",
                    "250",
                    "-pix_fmt",
                    "yuv420p",
                    str(tmp),
                ],
                check=True,
            )
        else:
            write_video(
                tmp,
                streamed_frames(seconds, fps, height, width),
                fps=fps,
                gop_size=250,
                encoder_options={"preset": "veryfast"},
            )
        tmp.rename(path)
    return path


def _windows(path: Path, backend: str):
    with iter_windows(path, window=4, stride=2, num_frames=8, backend=backend) as windows:
        out = [(w.indices, w.frames[::7]) for w in windows]
    return np.concatenate([i for i, _ in out]), np.concatenate([f for _, f in out])


def bench_backends(args) -> int:
    """torchcodec vs PyAV vs decord on the same files and sampling; one table."""
    backends = ["torchcodec", "pyav", *(["decord"] if decord_available() else [])]
    status = torchcodec_status()
    if status is not None:
        print(f"torchcodec not measured: {status}")
        backends.remove("torchcodec")
    modes = {
        "8 frames (count)": lambda path, b: _read(path, b, num_frames=8),
        "1 fps (time)": lambda path, b: _read(path, b, num_frames=None, fps=1.0),
        "windows 4 s / 2 s x 8": _windows,
    }
    rows = []
    print(f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}")
    header = (
        f"{'video':22s} {'sampling':22s} {'backend':11s} {'frames':>6s} {'wall s':>7s} {'CPU s':>7s} "
        f"{'frames/s':>9s} {'max|diff|':>9s}"
    )
    print(header)
    print("-" * len(header))
    for name in args.backend_videos:
        path = backend_video(name, args.fps)
        for mode, fn in modes.items():
            reference = None
            for backend in backends:
                repeats = args.repeats if BACKEND_VIDEOS[name][0] <= 10 else 1
                walls, cpus, (indices, frames) = timed(lambda: fn(path, backend), repeats)
                if reference is None:
                    reference = (indices, frames)
                if not np.array_equal(indices, reference[0]):
                    raise AssertionError(f"{backend} sampled other frames than {backends[0]} on {name}, {mode}")
                diff = int(np.abs(frames.astype(np.int16) - reference[1]).max())
                wall, cpu = statistics.median(walls), statistics.median(cpus)
                row = dict(
                    video=name,
                    sampling=mode,
                    backend=backend,
                    frames=int(indices.size),
                    wall_s=wall,
                    cpu_s=cpu,
                    frames_per_s=indices.size / wall,
                    max_abs_diff_vs_first=diff,
                )
                rows.append(row)
                print(
                    f"{name:22s} {mode:22s} {backend:11s} {indices.size:6d} {wall:7.2f} {cpu:7.2f} "
                    f"{indices.size / wall:9.1f} {diff:9d}",
                    flush=True,
                )
    out = RESULTS / "bench_decode_backends.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "command": " ".join(sys.argv),
                "load_average_end": os.getloadavg(),
                "torch": torch.__version__,
                "rows": rows,
            },
            indent=2,
        )
    )
    print(f"wrote {out}")
    return 0


def _read(path: Path, backend: str, **sampling):
    video = read_video(path, backend=backend, **sampling)
    if video.backend != backend:
        raise AssertionError(f"asked for {backend}, decoded with {video.backend}")
    frames = video.frames.reshape(-1, *video.frames.shape[2:])
    return video.indices.reshape(-1), frames[:: max(1, len(frames) // 16)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backends", action="store_true", help="compare the decoding backends (torchcodec, PyAV, decord) instead"
    )
    parser.add_argument(
        "--backend-videos",
        nargs="+",
        default=list(BACKEND_VIDEOS),
        choices=list(BACKEND_VIDEOS),
        help="with --backends: which videos",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="video length")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--gop", type=int, nargs="+", default=[60, 250], help="keyframe intervals (one video each)")
    parser.add_argument("--num-frames", type=int, default=8, help="frames per clip (T)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--video", type=Path, default=None, help="benchmark this file instead of a generated one")
    parser.add_argument("--output", type=Path, default=RESULTS / "bench_decode.json")
    args = parser.parse_args(argv)
    if args.backends:
        args.fps = 25 if "--fps" not in (argv or sys.argv) else args.fps
        return bench_backends(args)

    reports = []
    for gop in args.gop:
        name = f"h264_{args.height}p_{args.seconds:g}s_{args.fps}fps_gop{gop}.mp4"
        size = (args.seconds, args.fps, args.height, args.width, gop)
        path = args.video or make_video(RESULTS / "videos" / name, *size)
        reports.append(bench_one(path, gop, args))
        if args.video:
            break

    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "command": " ".join(sys.argv),
        "num_frames": args.num_frames,
        "repeats": args.repeats,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "videos": reports,
    }
    args.output.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
