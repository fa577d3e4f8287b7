"""Windows over a long video: `iter_windows` (one front-to-back decode) against `read_frames` once per window.

Both give the same frames (checked bit for bit in the run). Methods:

* ``iter_windows``: probe once, decode the file once from front to back, each needed frame converted once, frames
  dropped after their last window.
* ``read_frames per window`` (the reference): for each window, probe and seek-decode its T frames, what a caller
  without the iterator would do; overlapping windows decode their shared frames again, and every window seeks
  back to a keyframe and decodes up to its frames.
* ``read_frames per window, one probe``: the same with the probe result reused (``info=``).

Reported: wall and CPU time (medians of interleaved rounds; CPU time of all threads of the process is the robust
number on a busy machine), frames converted to RGB, and peak traced memory (numpy included) of a run that drops
each window's frames after use. Ratios are against the reference in the same run.

Run: ``python bench/bench_windows.py`` (``--help`` for sizes); prints a table and writes
``bench/results/bench_windows.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_decode import make_video  # noqa: E402

from hf_xclip import video_probe  # noqa: E402
from hf_xclip.video_io import iter_windows, probe_video, read_frames  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
REFERENCE = "read_frames per window"


def by_iterator(path: Path, args, keep: bool = True) -> tuple[list[np.ndarray], int]:
    windows = iter_windows(path, window=args.window, stride=args.stride, num_frames=args.num_frames)
    frames = [window.frames for window in windows if keep]
    return frames, windows.frames_converted


def by_read_frames(path: Path, args, reuse_probe: bool, keep: bool = True) -> tuple[list[np.ndarray], int]:
    plan = iter_windows(path, window=args.window, stride=args.stride, num_frames=args.num_frames)  # the same windows
    info = plan.info if reuse_probe else None
    frames = []
    for indices in plan.indices:
        window = read_frames(path, indices, info=info)[0]
        if keep:
            frames.append(window)
    return frames, int(plan.indices.size)


def measure(methods: dict, repeats: int) -> dict[str, dict]:
    """Interleaved timing (each round runs every method once, so load changes hit all alike), then the peak
    traced memory of one run that drops each window after use, and the frames of one run that keeps them."""
    walls = {label: [] for label in methods}
    cpus = {label: [] for label in methods}
    for fn in methods.values():
        fn(keep=False)  # warm-up: page cache, lazy imports
    for _ in range(repeats):
        for label, fn in methods.items():
            wall, cpu = time.perf_counter(), time.process_time()
            fn(keep=False)
            cpus[label].append(time.process_time() - cpu)
            walls[label].append(time.perf_counter() - wall)
    rows = {}
    for label, fn in methods.items():
        tracemalloc.start()
        try:
            _, converted = fn(keep=False)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        rows[label] = {
            "wall_s": statistics.median(walls[label]),
            "cpu_s": statistics.median(cpus[label]),
            "frames_converted": converted,
            "peak_traced_mb": peak / 2**20,
            "frames": fn(keep=True)[0],
        }
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="video length")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--gop", type=int, default=250, help="keyframe interval (frames)")
    parser.add_argument("--window", type=float, default=4.0, help="window length (s)")
    parser.add_argument("--stride", type=float, default=2.0, help="seconds between window starts")
    parser.add_argument("--num-frames", type=int, default=8, help="frames per window (T)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--video", type=Path, default=None, help="benchmark this file instead of a generated one")
    parser.add_argument("--output", type=Path, default=RESULTS / "bench_windows.json")
    args = parser.parse_args(argv)

    path = args.video or make_video(
        RESULTS / "videos" / f"windows_{args.width}x{args.height}_{args.seconds:g}s_gop{args.gop}.mp4",
        args.seconds,
        args.fps,
        args.height,
        args.width,
        args.gop,
    )
    info = probe_video(path)
    methods = {
        "iter_windows": lambda keep: by_iterator(path, args, keep),
        REFERENCE: lambda keep: by_read_frames(path, args, reuse_probe=False, keep=keep),
        "read_frames per window, one probe": lambda keep: by_read_frames(path, args, reuse_probe=True, keep=keep),
    }
    rows = measure(methods, args.repeats)
    reference = np.concatenate(rows[REFERENCE]["frames"])
    for label, row in rows.items():
        row["identical_frames"] = bool(np.array_equal(np.concatenate(row.pop("frames")), reference))
    base = rows[REFERENCE]

    windows = len(iter_windows(path, window=args.window, stride=args.stride, num_frames=args.num_frames))
    print(
        f"video: {path.name} ({info.num_frames} frames, {info.width}x{info.height}, {info.codec}, keyframe every "
        f"{args.gop}), {windows} windows of {args.window:g} s every {args.stride:g} s, T={args.num_frames}; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    header = f"{'method':36s} {'wall s':>7s} {'CPU s':>7s} {'x CPU':>6s} {'frames':>7s} {'peak MB':>8s} {'same':>5s}"
    print(header)
    print("-" * len(header))
    for label, row in rows.items():
        row["cpu_speedup_vs_reference"] = base["cpu_s"] / row["cpu_s"]
        print(
            f"{label:36s} {row['wall_s']:7.2f} {row['cpu_s']:7.2f} {row['cpu_speedup_vs_reference']:5.2f}x "
            f"{row['frames_converted']:7d} {row['peak_traced_mb']:8.1f} {str(row['identical_frames']):>5s}"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "video": {
            "file": path.name,
            "frames": info.num_frames,
            "width": info.width,
            "height": info.height,
            "codec": info.codec,
            "gop": args.gop,
        },
        "windows": {"count": windows, "window_s": args.window, "stride_s": args.stride, "num_frames": args.num_frames},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_average": os.getloadavg()},
        "pyav": getattr(video_probe._import_av(), "__version__", None),
        "results": rows,
    }
    args.output.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
