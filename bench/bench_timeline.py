"""Timelines of long videos (`hf_xclip.timeline.video_timeline`): segment accuracy on generated actions, and cost
against video length.

Two parts (``--part accuracy|scaling|all``):

* **accuracy** (embedded default model, offline): generated videos of six actions one after another (each action
  a different colour, random shape and motion, 4-8 s each, 16 fps, 64 px; `hf_xclip.data.synthetic.render_sequence`)
  with known boundaries. For each window / stride setting: the fraction of true segments whose most-covering
  predicted label is right, the fraction of time labelled right, and the distance from each true boundary to the
  nearest predicted one (`hf_xclip.timeline.evaluate_segments`). Reference in the same run: the same model
  classifying each true segment as one clip, boundaries given (what the model can do at best on these actions).
* **scaling** (random model of X-CLIP B/32 size: ViT-B/32 at 224 px, 8 frames, 12 + 12 layers, so that the model's
  forward dominates as it does with a real checkpoint; the embedded model is so small that decoding would
  dominate): 1, 5 and 10-minute 640x360 H.264 videos, windows of 8 s every 4 s, each length in a fresh process.
  Reported per length: windows, wall time of the timeline, the model's forward time inside that run (the sum of its
  ``score_clips`` calls) and the **ratio** of the two (target <= 1.1: everything but the model, decoding included,
  costs at most 10 %); the per-window forward time measured separately in the same process (random clips, before
  and after the timeline, median) with the ratios ``wall / (windows x it)`` in wall and in CPU time (the CPU time
  includes the decoding thread; both move with the machine's load); the time decoding alone takes (the windows
  iterated without the model); peak RSS during the timeline (kernel high-water mark, reset after loading and
  warming up) and of the whole process; frames: distinct frames the windows need, frames converted to RGB (must
  equal them), frames the decoder returned, frames in the file.

Run: ``python bench/bench_timeline.py`` (17 min on a shared 2-core machine at load 4-6, 4 of them writing the 5 and
10-minute videos, which are kept in ``bench/results/timeline``; ``--quick``: 0.5, 1 and 2 minutes, 2 accuracy
videos). Prints markdown tables and writes ``bench/results/bench_timeline.json`` (``--report-only`` prints its
tables again).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from common import (  # noqa: E402
    RESULTS_DIR,
    SPECS,
    checkpoint_dir,
    quiet_transformers,
    reset_peak_rss,
    rss_mib,
    run_child,
)

SETTINGS = ((1.0, 0.5), (2.0, 1.0), (4.0, 2.0))  # accuracy part: (window, stride) seconds
RESIZE_SETTING = (2.0, 1.0)  # where decode-time scaling is compared with the processor's own resize


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("accuracy", "scaling", "all"), default="all")
    parser.add_argument("--quick", action="store_true", help="0.5 / 1 / 2-minute videos, 2 accuracy videos")
    parser.add_argument("--minutes", type=float, nargs="+", help="video lengths (default 1 5 10)")
    parser.add_argument("--window", type=float, default=8.0, help="scaling: window seconds (default 8)")
    parser.add_argument("--stride", type=float, default=4.0, help="scaling: stride seconds (default 4)")
    parser.add_argument("--batch-size", type=int, default=4, help="scaling: windows per forward pass (default 4)")
    parser.add_argument(
        "--threads", type=int, default=1, help="scaling: torch threads (default 1; decoding runs in another thread)"
    )
    parser.add_argument("--labels", type=int, default=20, help="scaling: number of (Kinetics) labels (default 20)")
    parser.add_argument("--spec", default="B/32", choices=sorted(SPECS), help="scaling: model size (default B/32)")
    parser.add_argument("--videos", type=int, help="accuracy: generated videos (default 5, quick 2)")
    parser.add_argument(
        "--workdir", type=Path, default=RESULTS_DIR / "timeline", help="checkpoint and long videos, kept between runs"
    )
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "bench_timeline.json")
    parser.add_argument("--report-only", action="store_true", help="print the tables of --output again, no run")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ---------------------------------------------------------------------------------------------------------- accuracy
def action_sequence(seed: int, fps: int = 16, size: int = 64):
    """Six actions, one per colour, random shape and motion, 4-8 s each."""
    from hf_xclip.data.synthetic import distinct_colour_specs, render_sequence

    specs = distinct_colour_specs(6, seed)
    durations = np.random.default_rng(seed).uniform(4, 8, len(specs)).round(1)
    frames, truth = render_sequence(specs, durations, fps=fps, size=size, seed=seed)
    return specs, frames, truth


def whole_segment_predictions(classifier, path: Path, labels: list[str], truth, short_side: int | None):
    """The reference: each true segment classified as one clip (frames sampled by time inside it)."""
    processor = classifier.video_processor
    saved = processor.start_time, processor.end_time, processor.decode_short_side
    try:
        processor.decode_short_side = short_side
        out = []
        for label, start, end in truth:
            processor.start_time, processor.end_time = start, end
            out.append((classifier(str(path), candidate_labels=labels, top_k=1)[0]["label"], start, end))
        return out
    finally:
        processor.start_time, processor.end_time, processor.decode_short_side = saved


def run_accuracy(args) -> dict[str, Any]:
    from transformers import pipeline

    import hf_xclip
    from hf_xclip.data import write_video
    from hf_xclip.timeline import evaluate_segments, video_timeline

    classifier = pipeline("zero-shot-video-classification", model=hf_xclip.default_model_path())
    short_side = classifier.video_processor.resize_short_side(num_crops=1)
    count = args.videos or (2 if args.quick else 5)
    folder = args.workdir / "actions"
    folder.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[dict]] = {}
    resize: list[dict] = []
    for seed in range(count):
        specs, frames, truth = action_sequence(seed)
        path = write_video(folder / f"actions_{seed}.mp4", frames, fps=16, crf=12)
        labels = [spec.caption for spec in specs]
        for window, stride in SETTINGS:
            timeline = video_timeline(classifier, path, labels, window=window, stride=stride)
            rows.setdefault(f"window {window:g} s, stride {stride:g} s", []).append(
                {**evaluate_segments(timeline.segments, truth), "windows": len(timeline.spans)}
            )
            if (window, stride) == RESIZE_SETTING:  # decode-time scaling against decoding full frames
                exact = video_timeline(classifier, path, labels, window=window, stride=stride, decode_resize=False)
                difference = np.abs(timeline.scores - exact.scores)
                resize.append(
                    {
                        "mean_abs_difference": float(difference.mean()),
                        "max_abs_difference": float(difference.max()),
                        "same_best_label": float((timeline.scores.argmax(1) == exact.scores.argmax(1)).mean()),
                        "time_accuracy": evaluate_segments(timeline.segments, truth)["time_accuracy"],
                        "time_accuracy_exact": evaluate_segments(exact.segments, truth)["time_accuracy"],
                    }
                )
        guess = whole_segment_predictions(classifier, path, labels, truth, short_side)
        rows.setdefault("reference: each true segment as one clip", []).append(
            {**evaluate_segments(guess, truth), "windows": len(truth)}
        )
    table = {}
    for name, results in rows.items():
        right = sum(r["segment_accuracy"] * r["num_truth"] for r in results)
        total = sum(r["num_truth"] for r in results)
        errors = [e for r in results for e in r["boundary_errors"]]
        table[name] = {
            "videos": len(results),
            "segments": total,
            "windows": sum(r["windows"] for r in results),
            "segment_accuracy": right / total,
            "time_accuracy": statistics.mean(r["time_accuracy"] for r in results),
            "mean_boundary_error_s": statistics.mean(errors),
            "median_boundary_error_s": statistics.median(errors),
            "max_boundary_error_s": max(errors),
            "predicted_segments": sum(r["num_predicted"] for r in results),
        }
    return {"videos": count, "rows": table, "decode_resize": resize}


def print_accuracy(report: dict[str, Any]) -> None:
    print(
        f"\naccuracy: {report['videos']} generated videos x 6 actions (4-8 s each, 16 fps), embedded default model, "
        "labels = the 6 captions of each video; default segmentation (no smoothing, gaps up to one stride merged)\n"
    )
    print(
        "| setting | windows | segment accuracy | time accuracy | boundary error mean / median / max (s) "
        "| predicted / true segments |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, row in report["rows"].items():
        errors = (
            f"{row['mean_boundary_error_s']:.2f} / {row['median_boundary_error_s']:.2f} / "
            f"{row['max_boundary_error_s']:.2f}"
        )
        print(
            f"| {name} | {row['windows']} | {row['segment_accuracy']:.1%} | {row['time_accuracy']:.1%} | {errors} "
            f"| {row['predicted_segments']} / {row['segments']} |"
        )
    resize = report.get("decode_resize") or []
    if resize:
        print(
            f"\ndecode-time scaling (default) against full frames resized by the processor (decode_resize=False), "
            f"window {RESIZE_SETTING[0]:g} s, stride {RESIZE_SETTING[1]:g} s, per video:\n"
        )
        print("| video | mean / max abs score difference | same best label | time accuracy: scaled / exact |")
        print("| ---: | ---: | ---: | ---: |")
        for seed, row in enumerate(resize):
            print(
                f"| {seed} | {row['mean_abs_difference']:.4f} / {row['max_abs_difference']:.3f} "
                f"| {row['same_best_label']:.1%} | {row['time_accuracy']:.1%} / {row['time_accuracy_exact']:.1%} |"
            )


# ---------------------------------------------------------------------------------------------------------- scaling
def long_video(path: Path, seconds: float, fps: int = 25, height: int = 360, width: int = 640) -> Path:
    """Moving texture and a moving box, streamed to the encoder (the video is never held in memory)."""
    from hf_xclip.data import write_video

    if path.exists():
        return path
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:height, 0 : 2 * width].astype(np.float32)
    texture = np.stack([127 + 100 * np.sin(xs / 40), 127 + 100 * np.sin(ys / 30), (xs + ys) % 256], -1)
    texture = (texture + rng.normal(0, 6, texture.shape)).clip(0, 255).astype(np.uint8)

    def frames():
        for k in range(int(seconds * fps)):
            shift = (3 * k) % width
            frame = texture[:, shift : shift + width].copy()
            x0, y0 = (11 * k) % (width - 120), (7 * k) % (height - 90)
            frame[y0 : y0 + 90, x0 : x0 + 120] = ((37 * (k // fps)) % 256, 60, 200)
            yield frame

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial.mp4")
    write_video(partial, frames(), fps=fps, gop_size=250, encoder_options={"preset": "veryfast"})
    os.replace(partial, path)
    return path


def scaling_child(payload: dict[str, Any]) -> dict[str, Any]:
    """One video length in a fresh process: per-window forward reference, decoding alone, then the timeline."""
    import resource

    import torch

    quiet_transformers()
    torch.set_num_threads(payload["threads"])
    from transformers import pipeline

    import hf_xclip  # noqa: F401
    from hf_xclip.timeline import video_timeline
    from hf_xclip.video_io import iter_windows

    classifier = pipeline("zero-shot-video-classification", model=payload["model"], device="cpu")
    labels = payload["labels"]
    start = time.perf_counter()
    prepared = classifier.prepare_labels(labels)
    label_s = time.perf_counter() - start
    num_frames = classifier.model.config.vision_config.num_frames
    size = classifier.video_processor.crop_size["height"]
    batch = payload["batch_size"]
    clips = torch.randn(batch, num_frames, 3, size, size)
    classifier.score_clips(clips, prepared)  # warm-up

    def reference(repeats: int) -> list[tuple[float, float]]:
        """(wall, process CPU) seconds of one batch through score_clips, `repeats` times."""
        out = []
        for _ in range(repeats):
            tick, cpu = time.perf_counter(), time.process_time()
            classifier.score_clips(clips, prepared)
            out.append((time.perf_counter() - tick, time.process_time() - cpu))
        return out

    forward = reference(payload["repeats"])  # before the timeline ...
    options = dict(window=payload["window"], stride=payload["stride"])
    short_side = classifier.video_processor.resize_short_side(num_crops=1)
    tick, cpu = time.perf_counter(), time.process_time()
    for _ in iter_windows(payload["video"], num_frames=num_frames, short_side=short_side, **options):
        pass
    decode_s, decode_cpu = time.perf_counter() - tick, time.process_time() - cpu
    rss_before, _ = rss_mib()
    reset = reset_peak_rss()
    tick, cpu = time.perf_counter(), time.process_time()
    timeline = video_timeline(classifier, payload["video"], labels, batch_size=batch, **options)
    wall, wall_cpu = time.perf_counter() - tick, time.process_time() - cpu
    _, peak = rss_mib()
    forward += reference(payload["repeats"])  # ... and after it, so that load drifts hit both alike
    per_window = statistics.median(w for w, _ in forward) / batch
    per_window_cpu = statistics.median(c for _, c in forward) / batch
    windows = len(timeline.spans)
    return {
        "minutes": payload["minutes"],
        "windows": windows,
        "wall_s": wall,
        "cpu_s": wall_cpu,
        "per_window_forward_s": per_window,
        "per_window_forward_cpu_s": per_window_cpu,
        "forward_reference_s": windows * per_window,
        "ratio": wall / (windows * per_window),
        "ratio_cpu": wall_cpu / (windows * per_window_cpu),
        "forward_in_timeline_s": timeline.stats["forward_seconds"],
        "ratio_in_run": wall / timeline.stats["forward_seconds"],
        "decode_only_s": decode_s,
        "decode_only_cpu_s": decode_cpu,
        "label_encoding_s": label_s,
        "rss_before_mb": rss_before,
        "peak_rss_timeline_mb": peak if reset else None,
        "peak_rss_process_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "frames_needed": timeline.stats["frames_needed"],
        "frames_converted": timeline.stats["frames_converted"],
        "frames_decoded": timeline.stats["frames_decoded"],
        "frames_in_video": timeline.stats["frames_in_video"],
        "duration_s": timeline.duration,
        "segments": len(timeline.segments),
        "forward_repeats": forward,
    }


def run_scaling(args) -> dict[str, Any]:
    from bench_pipeline import load_labels, save_processor_files

    minutes = args.minutes or ([0.5, 1, 2] if args.quick else [1, 5, 10])
    spec = SPECS[args.spec]
    model_dir = checkpoint_dir(spec, 8, args.workdir)
    tokenizer = save_processor_files(model_dir, spec.image_size)
    labels, label_source = load_labels(args.labels)
    rows = []
    for length in minutes:
        tick = time.perf_counter()
        video = long_video(args.workdir / "videos" / f"long_{length:g}min_640x360.mp4", 60 * length)
        made = time.perf_counter() - tick
        payload = dict(
            model=str(model_dir),
            video=str(video),
            labels=labels,
            window=args.window,
            stride=args.stride,
            batch_size=args.batch_size,
            threads=args.threads,
            minutes=length,
            repeats=3,
        )
        row = run_child(Path(__file__), payload, timeout=3600)
        row["load_average"] = os.getloadavg()
        row["video_written_s"] = made
        rows.append(row)
        print(
            f"  {length:g} min: {row['windows']} windows, ratio {row['ratio_in_run']:.3f} "
            f"(load {row['load_average'][0]:.1f})",
            flush=True,
        )
    peaks = [row["peak_rss_timeline_mb"] for row in rows if row["peak_rss_timeline_mb"] is not None]
    summary = {
        "max_ratio_in_run": max(row["ratio_in_run"] for row in rows),
        "max_ratio_separate": max(row["ratio"] for row in rows),
        "max_ratio_cpu": max(row["ratio_cpu"] for row in rows),
        "peak_rss_spread_mb": (max(peaks) - min(peaks)) if peaks else None,
        "frames_converted_equal_needed": all(row["frames_converted"] == row["frames_needed"] for row in rows),
    }
    return {
        "rows": rows,
        "summary": summary,
        "model": spec.name,
        "layers": [spec.vision_layers, spec.text_layers],
        "image_size": spec.image_size,
        "labels": len(labels),
        "label_source": label_source,
        "tokenizer": tokenizer,
        "window": args.window,
        "stride": args.stride,
        "batch_size": args.batch_size,
        "threads": args.threads,
    }


def print_scaling(report: dict[str, Any]) -> None:
    print(
        f"\nscaling: random X-CLIP {report['model']} ({report['layers'][0]}+{report['layers'][1]} layers, "
        f"{report['image_size']} px, 8 frames), {report['labels']} labels ({report['label_source']}), tokenizer "
        f"{report['tokenizer']}; 640x360 25 fps H.264; windows of {report['window']:g} s every "
        f"{report['stride']:g} s, batches of {report['batch_size']}, {report['threads']} torch thread(s) + a "
        "decoding thread; each length in a fresh process\n"
    )
    print(
        "| video | windows | wall | model time in the run | **ratio** | forward / window, separate | ratio, separate "
        "| CPU ratio, separate | decoding alone | peak RSS MB: before / timeline / process "
        "| frames needed / converted / decoded / in file | load |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in report["rows"]:
        peak = (
            f"{row['rss_before_mb']:.0f} / {row['peak_rss_timeline_mb'] or float('nan'):.0f} / "
            f"{row['peak_rss_process_mb']:.0f}"
        )
        frames = (
            f"{row['frames_needed']} / {row['frames_converted']} / {row['frames_decoded']} / {row['frames_in_video']}"
        )
        print(
            f"| {row['minutes']:g} min | {row['windows']} | {row['wall_s']:.1f} s "
            f"| {row['forward_in_timeline_s']:.1f} s | **{row['ratio_in_run']:.3f}** "
            f"| {row['per_window_forward_s']:.3f} s | {row['ratio']:.3f} | {row['ratio_cpu']:.3f} "
            f"| {row['decode_only_s']:.1f} s | {peak} | {frames} | {row['load_average'][0]:.1f} |"
        )
    summary = report["summary"]
    print(
        "\nratio = wall / the model's forward time inside the same timeline run (windows x per-window forward); "
        "separate: the per-window forward measured in the same process before and after the timeline on random "
        "clips (load drifts move it); CPU ratio: the same in process CPU time (includes the decoding thread)"
    )
    print(
        f"max ratio {summary['max_ratio_in_run']:.3f} (target <= 1.1), separate {summary['max_ratio_separate']:.3f}, "
        f"CPU {summary['max_ratio_cpu']:.3f}; peak RSS spread across lengths {summary['peak_rss_spread_mb']:.0f} MB "
        f"(target <= 100); frames converted == needed: {summary['frames_converted_equal_needed']}"
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(scaling_child(json.loads(args.child))))
        return 0
    if args.report_only:
        report = json.loads(args.output.read_text())
    else:
        report = run(args)
    print(f"load average at the start {report['load_average_start']}, {report['cpus']} CPUs")
    if "accuracy" in report:
        print_accuracy(report["accuracy"])
    if "scaling" in report:
        print_scaling(report["scaling"])
    print(f"load average at the end {report['load_average_end']}")
    return 0


def run(args) -> dict[str, Any]:
    quiet_transformers()
    import torch

    print(f"load average {os.getloadavg()}, {os.cpu_count()} CPUs, torch {torch.__version__}", flush=True)
    report: dict[str, Any] = {"load_average_start": os.getloadavg(), "cpus": os.cpu_count(), "quick": args.quick}
    if args.part in ("accuracy", "all"):
        torch.set_num_threads(1)
        report["accuracy"] = run_accuracy(args)
    if args.part in ("scaling", "all"):
        report["scaling"] = run_scaling(args)
    report["load_average_end"] = os.getloadavg()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=str))
    return report


if __name__ == "__main__":
    raise SystemExit(main())
