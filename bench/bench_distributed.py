"""`--engine ray` against the local pipeline: throughput on the same short videos, and peak RSS per Ray worker.

Rows (each classifies the same videos against the same labels with the embedded default model; results checked
equal):

* **pipeline**: ``pipeline("zero-shot-video-classification")`` called on the list (torch with ``--cpus`` threads,
  ``--cpus`` decode threads);
* **local engine**: `hf_xclip.distributed.jobs.run_job(..., EngineOptions(engine="local"))` (the same predictor Ray
  runs, in this process, writing Parquet parts);
* **ray, N workers**: `run_job` on a local Ray (``ray.init(num_cpus=--cpus)``), N actors of 1 CPU each (Ray sets
  their torch threads to 1), started once per job: their start-up (import, model load) is part of the time, and
  part of each Ray row (ray.init is not).

Equal CPU: the pipeline and the local engine get ``--cpus`` threads, Ray ``--cpus`` CPUs. Peak RSS per worker is
sampled from the actor processes (psutil) while the job runs. The machine is shared: the load average is printed.

    python bench/bench_distributed.py                  # 40 videos, 1 and 2 workers
    python bench/bench_distributed.py --videos 12      # quicker
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS_DIR, machine_info, quiet_transformers, write_json  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=40, help="videos (default 40: 2 s, 64 px)")
    parser.add_argument("--workers", default="1,2", help="Ray worker counts (default 1,2)")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs for every engine (default 2)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda: Ray workers then get 1 GPU each")
    parser.add_argument("--out", type=Path, help="JSON output (default bench/results/distributed_<time>.json)")
    return parser.parse_args(argv)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


class WorkerRss:
    """Peak RSS of each Ray actor process running XClipPredictor, sampled every 0.1 s."""

    def __init__(self) -> None:
        self.peaks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            for proc in psutil.process_iter(["pid", "cmdline"]):
                try:
                    if "XClipPredictor" in " ".join(proc.info["cmdline"] or []):
                        rss = proc.memory_info().rss
                        self.peaks[proc.pid] = max(self.peaks.get(proc.pid, 0), rss)
                except (psutil.Error, OSError):
                    continue
            self._stop.wait(0.1)


def main(argv=None) -> dict:
    args = parse_args(argv)
    quiet_transformers()
    import torch

    torch.set_num_threads(args.cpus)
    import ray
    from transformers import pipeline

    import hf_xclip
    from hf_xclip.data.synthetic import all_specs, write_video_folder
    from hf_xclip.distributed.jobs import EngineOptions, read_predictions, run_job

    workdir = Path(tempfile.mkdtemp(prefix="bench_distributed_"))
    specs = all_specs()
    per_spec = -(-args.videos // 10)
    written = write_video_folder(workdir / "videos", per_spec, specs=specs[:10], num_frames=16, size=64, seed=1)
    videos = sorted(str(p) for paths in written.values() for p in paths)[: args.videos]
    labels = [spec.caption for spec in specs[:10]]
    device = None if args.device == "cpu" else args.device
    predictor = {
        "mode": "classify",
        "labels": labels,
        "batch_size": 4,
        "decode_threads": args.cpus,
        "device": args.device,
    }
    rows: list[dict] = []
    report = [
        f"load average at start: {load()} ({os.cpu_count()} CPUs); {len(videos)} videos (2 s, 64 px), "
        f"{len(labels)} labels, embedded default model, {args.cpus} CPUs per engine",
        "",
    ]

    start = time.perf_counter()
    classifier = pipeline("zero-shot-video-classification", model=hf_xclip.default_model_path(), device=device)
    classifier(videos[:2], candidate_labels=labels)  # warm
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    reference = classifier(videos, candidate_labels=labels, batch_size=4, num_workers=args.cpus)
    seconds = time.perf_counter() - start
    rows.append(
        {
            "engine": "pipeline",
            "workers": 0,
            "seconds": seconds + load_s,
            "startup_s": load_s,
            "steady_videos_per_s": len(videos) / seconds,
        }
    )
    reference = {v: {r["label"]: r["score"] for r in out} for v, out in zip(videos, reference)}

    def check(output) -> float:
        table = read_predictions(output) if isinstance(output, Path) else output
        worst = 0.0
        for row in table.to_pylist():
            got = dict(zip(row["labels"], row["scores"]))
            worst = max(worst, max(abs(got[k] - v) for k, v in reference[os.path.abspath(row["path"])].items()))
        return worst

    def timed_stream(options: EngineOptions) -> dict:
        """Seconds in all, until the first batch (start-up: workers, model load), and videos/s after it."""
        import pyarrow as pa

        start = time.perf_counter()
        first, tables = None, []
        for table in predictions(videos, predictor_kwargs(**predictor), options):
            if first is None:
                first, first_rows = time.perf_counter() - start, table.num_rows
            tables.append(table)
        seconds = time.perf_counter() - start
        rest = len(videos) - first_rows
        return {
            "seconds": seconds,
            "startup_s": first,
            "steady_videos_per_s": rest / max(seconds - first, 1e-9),
            "max_abs_diff": check(pa.concat_tables(tables)),
        }

    from hf_xclip.distributed.jobs import predictions, predictor_kwargs

    out = workdir / "local.parquet"
    start = time.perf_counter()
    run_job(videos, out, predictor, EngineOptions(videos_per_call=4))
    rows.append(
        {
            "engine": "local engine (run_job, Parquet)",
            "workers": 0,
            "seconds": time.perf_counter() - start,
            "max_abs_diff": check(out),
        }
    )
    rows.append({"engine": "local engine (stream)", "workers": 0, **timed_stream(EngineOptions(videos_per_call=4))})

    start = time.perf_counter()
    ray.init(num_cpus=args.cpus, num_gpus=None if device is None else 1, include_dashboard=False, log_to_driver=False)
    ray_init_s = time.perf_counter() - start
    for workers in [int(w) for w in args.workers.split(",")]:
        options = EngineOptions(
            engine="ray",
            num_workers=workers,
            videos_per_call=4,
            num_gpus_per_worker=0 if device is None else 1 / workers,
        )
        with WorkerRss() as rss:
            measured = timed_stream(options)
        rows.append(
            {
                "engine": "ray",
                "workers": workers,
                **measured,
                "peak_rss_per_worker_mib": sorted(v / 2**20 for v in rss.peaks.values()),
            }
        )
    ray.shutdown()

    base = rows[0]["steady_videos_per_s"]
    report += [
        f"ray.init: {ray_init_s:.1f} s (once per session, not in the rows)",
        "",
        "| engine | workers | seconds in all | start-up (first batch out) | videos/s after it | vs pipeline | "
        "peak RSS per worker | max score diff |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for row in rows:
        rss = ", ".join(f"{m:.0f} MiB" for m in row.get("peak_rss_per_worker_mib", [])) or "-"
        diff = f"{row['max_abs_diff']:.1e}" if "max_abs_diff" in row else "(reference)"
        startup = f"{row['startup_s']:.1f} s" if "startup_s" in row else "-"
        steady = row.get("steady_videos_per_s")
        ratio = f"{steady / base:.2f}x" if steady else "-"
        report.append(
            f"| {row['engine']} | {row['workers'] or '-'} | {row['seconds']:.1f} | {startup} | "
            f"{steady or len(videos) / row['seconds']:.1f} | {ratio} | {rss} | {diff} |"
        )
    report.append("")
    report.append(f"load average at end: {load()}")
    print("\n".join(report))
    results = {
        "machine": machine_info(args.device),
        "command": " ".join(sys.argv),
        "videos": len(videos),
        "ray_init_s": ray_init_s,
        "rows": rows,
        "report": report,
    }
    write_json(args.out or RESULTS_DIR / f"distributed_{time.strftime('%Y%m%d-%H%M%S')}.json", results)
    shutil.rmtree(workdir, ignore_errors=True)
    return results


if __name__ == "__main__":
    main()
