"""`hf-xclip app` latency: classifying a generated 4 s clip through the app (HTTP, Gradio's queue, the upload) against
the pipeline called directly, cold (first call after loading) and warm.

* direct: ``pipeline("zero-shot-video-classification", model=M)(clip, candidate_labels=labels)``;
* app (HTTP): the `/classify` endpoint of the app served on 127.0.0.1, called over Gradio's HTTP API as a browser
  or ``curl`` does: the file uploaded (``POST /gradio_api/upload``) on every call, then ``POST
  /gradio_api/call/classify`` and the result read from its event stream. The handler makes the same pipeline call;
* app (gradio_client): the same through `gradio_client.Client.predict` (its own threads and polling add a
  client-side cost of its own, listed as a separate row).

Cold = the first classification after the model is loaded (label encoding included), each side in a fresh
process; warm = median over ``--rounds`` calls, direct and app alternating in one process. Overhead = app / direct
- 1 (goal: <= 15 % warm).

    python bench/bench_app.py                       # the embedded default model (tiny: the overhead dominates)
    python bench/bench_app.py --model-size B/32     # a random ViT-B/32-shaped X-CLIP (8 frames, 224 px)
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LABELS = 8


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model-size",
        choices=("default", "B/32"),
        default="default",
        help="the embedded default model, or a random B/32-shaped X-CLIP (default: default)",
    )
    parser.add_argument("--rounds", type=int, default=20, help="warm calls per side (default 20)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--workdir", type=Path, help="where the clip and the model go (default: a temp dir)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("--cold-child", choices=("direct", "app"), help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--clip", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def make_inputs(workdir: Path, model_size: str) -> tuple[str, str, list[str]]:
    """(model, clip path, labels): a 4 s clip (32 frames at 8 fps, 128 px) and 8 captions, its own among them."""
    import numpy as np

    from hf_xclip.data import write_video
    from hf_xclip.data.synthetic import all_specs, render_video
    from hf_xclip.embedded_model import default_model_path

    specs = all_specs()
    chosen = [specs[i] for i in np.random.default_rng(0).choice(len(specs), LABELS, replace=False)]
    frames = render_video(chosen[0], num_frames=32, size=128, seed=0)
    clip = write_video(workdir / "clip_4s.mp4", frames, fps=8, crf=18)
    if model_size == "default":
        model = default_model_path()
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_pipeline import save_processor_files
        from common import SPECS, checkpoint_dir

        path = checkpoint_dir(SPECS["B/32"], 8, workdir)
        if not (path / "preprocessor_config.json").exists():
            save_processor_files(path, SPECS["B/32"].image_size)  # CLIP tokenizer + VideoMAE preprocessor config
        model = str(path)
    return model, str(clip), [spec.caption for spec in chosen]


def _server(model: str):
    from hf_xclip.app import server
    from hf_xclip.app.handlers import AppConfig, AppState

    state = AppState(AppConfig(model=model, port=0, demo_clips=0))
    state.warm_up()
    app, url = server.launch(state.config, state=state, block=False, quiet=True)
    from gradio_client import Client

    return app, url, Client(url, verbose=False, download_files=False)


def _http_call(session, url: str, clip: str, labels: list[str]) -> list[dict]:
    """Upload the clip and classify it over Gradio's HTTP API; the exact scores."""
    with open(clip, "rb") as handle:
        uploaded = session.post(f"{url}gradio_api/upload", files={"files": (Path(clip).name, handle)}).json()[0]
    video = {"path": uploaded, "orig_name": Path(clip).name, "meta": {"_type": "gradio.FileData"}}
    data = [video, None, ", ".join(labels), None, False, False, 0, 0]
    event = session.post(f"{url}gradio_api/call/classify", json={"data": data}).json()["event_id"]
    stream = session.get(f"{url}gradio_api/call/classify/{event}").text
    lines = stream.splitlines()
    for name, payload in itertools.pairwise(lines):
        if name == "event: complete":
            return json.loads(payload.removeprefix("data: "))[1]
        if name == "event: error":
            raise RuntimeError(f"the app answered an error: {payload}")
    raise RuntimeError(f"no result in the event stream: {stream[:500]}")


def _app_call(client, clip: str, labels: list[str]):
    from gradio_client import handle_file

    return client.predict(handle_file(clip), None, ", ".join(labels), None, False, False, 0, 0, api_name="/classify")


def cold_child(args: argparse.Namespace) -> None:
    """One cold first call in this (fresh) process; prints {"load": s, "first": s, "scores": [...]}."""
    labels = json.loads(os.environ["BENCH_APP_LABELS"])
    started = time.perf_counter()
    if args.cold_child == "direct":
        from transformers import pipeline

        import hf_xclip  # noqa: F401

        classifier = pipeline("zero-shot-video-classification", model=args.model)
        loaded = time.perf_counter()
        result = classifier(args.clip, candidate_labels=labels)
    else:
        import requests

        app, url, _ = _server(args.model)
        loaded = time.perf_counter()
        result = _http_call(requests.Session(), url, args.clip, labels)
        app.close()
    done = time.perf_counter()
    print(json.dumps({"load": loaded - started, "first": done - loaded, "scores": result}))


def run_cold(side: str, model: str, clip: str, labels: list[str], threads: int) -> dict:
    env = {**os.environ, "BENCH_APP_LABELS": json.dumps(labels), "PYTHONPATH": str(REPO)}
    command = [
        sys.executable,
        __file__,
        "--cold-child",
        side,
        "--model",
        model,
        "--clip",
        clip,
        "--threads",
        str(threads),
    ]
    done = subprocess.run(command, check=False, capture_output=True, text=True, env=env, timeout=1200)
    if done.returncode:
        raise RuntimeError(f"cold {side} run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_warm(model: str, clip: str, labels: list[str], rounds: int) -> dict:
    import requests
    from transformers import pipeline

    import hf_xclip  # noqa: F401

    direct = pipeline("zero-shot-video-classification", model=model)
    app, url, client = _server(model)
    session = requests.Session()
    calls = {
        "direct": lambda: direct(clip, candidate_labels=labels),
        "app": lambda: _http_call(session, url, clip, labels),
        "client": lambda: _app_call(client, clip, labels)[1],
    }
    try:
        expected = calls["direct"]()
        same = True
        for side in ("app", "client"):  # warms the app's label cache too
            shown = calls[side]()
            same = (
                same
                and [r["label"] for r in shown] == [r["label"] for r in expected]
                and all(abs(a["score"] - b["score"]) <= 1e-6 for a, b in zip(shown, expected))
            )
        times: dict[str, list[float]] = {side: [] for side in calls}
        order = list(calls)
        for round_ in range(rounds):
            for side in order if round_ % 2 == 0 else order[::-1]:
                tick = time.perf_counter()
                calls[side]()
                times[side].append(time.perf_counter() - tick)
    finally:
        app.close()
    return {"times": times, "same_scores": same}


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.cold_child:
        cold_child(args)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-app-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        model, clip, labels = make_inputs(workdir, args.model_size)
        cold = {side: run_cold(side, model, clip, labels, args.threads) for side in ("direct", "app")}
        warm = run_warm(model, clip, labels, args.rounds)
    med = {side: statistics.median(values) for side, values in warm["times"].items()}
    rows = [
        (
            "start: imports + model load (app: + page, server, one warm-up pass)",
            cold["direct"]["load"],
            cold["app"]["load"],
        ),
        ("first classify (cold)", cold["direct"]["first"], cold["app"]["first"]),
        (f"warm classify (median of {args.rounds})", med["direct"], med["app"]),
        (f"warm classify, app through gradio_client (median of {args.rounds})", med["direct"], med["client"]),
    ]
    load = os.getloadavg()
    print(
        f"model: {args.model_size} ({model}); clip: 4 s, 32 frames, 128 px; {LABELS} labels; torch threads "
        f"{torch.get_num_threads()}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print("| case | pipeline direct | through the app (HTTP API) | app overhead |")
    print("| --- | ---: | ---: | ---: |")
    for name, direct_s, app_s in rows:
        print(
            f"| {name} | {direct_s * 1000:.1f} ms | {app_s * 1000:.1f} ms | "
            f"{(app_s / direct_s - 1) * 100:+.0f} % ({(app_s - direct_s) * 1000:+.1f} ms) |"
        )
    same = warm["same_scores"] and cold["direct"]["scores"] == cold["app"]["scores"]
    print(
        f"same scores through the app as direct: {same}; warm overhead goal <= 15 %: "
        f"{'met' if med['app'] <= 1.15 * med['direct'] else 'NOT met'}"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "rows": rows,
                    "warm_times": warm["times"],
                    "load_average": load,
                    "model": args.model_size,
                    "same_scores": same,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
