"""Multi-label video classification on the synthetic multi-object set: mAP on base and novel labels of each way of
scoring labels independently (zero-shot), and after multi-label fine-tuning with each regularisation.

Everything runs through the command line (`hf-xclip evaluate / calibrate / finetune`, called in this process):

* data (`hf_xclip.data.synthetic` scenes, 2-3 objects per clip, each its own shape, colour and motion; labels are the
  objects' captions): a training set of scenes made of *base* combinations only (`train_specs`, the seen split of
  the default model), a few labelled calibration clips (base only), and a test set whose clips each hold at least
  one base and one novel object (`heldout_specs`, never trained on); candidate labels are all 204 captions;
* zero-shot rows: `evaluate --multi-label-method negative` ("not {}"), `background`, the model's own sigmoid head
  when it has one, and `calibrate` on the calibration clips followed by `evaluate` of the calibrated copy;
* fine-tuning rows: `finetune --train-annotations` (LoRA on the base labels) with `--regularization none / wise /
  distill / l2sp`, then `evaluate --adapter` on the test set.

Prints a table (mAP, base mAP, novel mAP, micro AP, F1 at 0.5) and writes `bench/results/multilabel.json`.

    python bench/bench_multilabel.py [--model DIR] [--epochs 10] [--lr 1e-3] [--sections zero-shot,finetune]
        [--runs lora:none,lora:wise,lora:distill,lora:l2sp,full:none,full:wise,lora:none:asl]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from hf_xclip.cli import main as cli  # noqa: E402
from hf_xclip.data.synthetic import (  # noqa: E402
    all_specs,
    heldout_specs,
    novel_labels,
    sample_scenes,
    train_specs,
    write_scene_videos,
)
from hf_xclip.embedded_model.location import default_model_path  # noqa: E402

RESULTS = REPO / "bench" / "results" / "multilabel.json"
REGULARIZATIONS = ("none", "wise", "distill", "l2sp")


def run_cli(argv: list) -> tuple[int, dict | None, str]:
    """Run `hf-xclip ARGV` here; (exit status, the JSON object of its last stdout line or None, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli([str(a) for a in argv])
    lines = out.getvalue().strip().splitlines()
    try:
        payload = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        payload = None
    return code, payload, err.getvalue()


def make_data(workdir: Path, args: argparse.Namespace) -> dict[str, Path]:
    """Write the three sets (skipped when already there) and the label files."""
    options = dict(num_frames=16, size=64)
    sets = {
        "train": (sample_scenes(args.train_scenes, seed=11, specs=train_specs()), 21),
        "calibration": (sample_scenes(args.calibration_scenes, seed=12, specs=train_specs()), 22),
        "test": (sample_scenes(args.test_scenes, seed=13, require=[train_specs(), heldout_specs()]), 23),
    }
    paths = {}
    for name, (scenes, seed) in sets.items():
        annotations = workdir / name / "annotations.jsonl"
        if not annotations.is_file() or len(annotations.read_text().splitlines()) != len(scenes):
            write_scene_videos(workdir / name, scenes, seed=seed, **options)
        paths[name] = annotations
    paths["labels"] = workdir / "all_labels.txt"
    paths["labels"].write_text("\n".join(spec.caption for spec in all_specs()) + "\n")
    paths["novel"] = workdir / "novel_labels.txt"
    paths["novel"].write_text("\n".join(novel_labels()) + "\n")
    return paths


def evaluate(model: str, data: dict[str, Path], method: str = "auto", adapter: Path | None = None) -> dict:
    argv = [
        "evaluate",
        "--model",
        model,
        "--annotations",
        data["test"],
        "--labels-file",
        data["labels"],
        "--novel-labels",
        data["novel"],
        "--multi-label-method",
        method,
        "--num-workers",
        0,
        "--no-progress",
        "--json",
    ]
    if adapter is not None:
        argv += ["--adapter", adapter]
    code, payload, err = run_cli(argv)
    if code != 0 or payload is None:
        raise RuntimeError(f"evaluate failed ({code}): {err[-2000:]}")
    return payload


def row(name: str, payload: dict, seconds: float, **extra) -> dict:
    keys = ("mAP", "base_mAP", "novel_mAP", "micro_AP", "f1", "precision", "recall", "method")
    return {"name": name, **{key: payload[key] for key in keys}, "seconds": round(seconds, 1), **extra}


def zero_shot_rows(model: str, data: dict[str, Path], workdir: Path) -> list[dict]:
    from hf_xclip import XClipModel
    from hf_xclip.multilabel import has_sigmoid_head

    rows = []
    for name, method in (('"not {}" (negative)', "negative"), ("background prompts", "background")):
        start = time.perf_counter()
        rows.append(row(name, evaluate(model, data, method), time.perf_counter() - start))
    if has_sigmoid_head(XClipModel.from_pretrained(model)):
        start = time.perf_counter()
        rows.append(row("the model's own sigmoid head", evaluate(model, data, "sigmoid"), time.perf_counter() - start))
    calibrated = workdir / "calibrated"
    if calibrated.exists():
        import shutil

        shutil.rmtree(calibrated)
    start = time.perf_counter()
    code, fit, err = run_cli(
        [
            "calibrate",
            "--model",
            model,
            "--annotations",
            data["calibration"],
            "--labels-file",
            data["labels"],
            "--output-dir",
            calibrated,
            "--no-progress",
            "--json",
        ]
    )
    if code != 0:
        raise RuntimeError(f"calibrate failed ({code}): {err[-2000:]}")
    payload = evaluate(str(calibrated), data, "sigmoid")
    rows.append(
        row(
            f"calibrate on {fit['num_videos']} clips",
            payload,
            time.perf_counter() - start,
            head={"scale": fit["scale"], "bias": fit["bias"]},
        )
    )
    return rows


def finetune_rows(model: str, data: dict[str, Path], workdir: Path, args: argparse.Namespace) -> list[dict]:
    """One `finetune` + `evaluate` per run; a run is METHOD:REGULARIZATION[:LOSS] (e.g. lora:wise, full:none:asl)."""
    rows = []
    for run in args.runs:
        method, regularization, loss = (run.split(":") + ["bce"])[:3]
        output = workdir / f"finetuned-{method}-{regularization}-{loss}"
        argv = [
            "finetune",
            "--model",
            model,
            "--train-annotations",
            data["train"],
            "--eval-fraction",
            0,
            "--method",
            method,
            "--epochs",
            args.epochs,
            "--lr",
            args.full_lr if method == "full" else args.lr,
            "--batch-size",
            16,
            "--num-workers",
            0,
            "--seed",
            0,
            "--regularization",
            regularization,
            "--loss",
            loss,
            "--output-dir",
            output,
            "--no-progress",
            "--json",
            *args.finetune_args,
        ]
        if method == "lora":
            argv += ["--lora-targets", args.lora_targets]
        start = time.perf_counter()
        code, summary, err = run_cli(argv)
        if code != 0 or summary is None:
            raise RuntimeError(f"finetune failed ({code}): {err[-2000:]}")
        payload = evaluate(model, data, "auto", adapter=output)
        name = f"{'LoRA' if method == 'lora' else method} fine-tuned, {regularization}" + (
            f", {loss}" if loss != "bce" else ""
        )
        rows.append(
            row(
                name,
                payload,
                time.perf_counter() - start,
                head=summary["sigmoid_head"],
                final_loss=summary["final_loss"],
                run=run,
            )
        )
    return rows


def format_table(rows: list[dict]) -> str:
    number = lambda value: "-" if value is None else f"{value:.3f}"  # noqa: E731
    lines = ["| scores | mAP | base mAP | novel mAP | micro AP | F1 @ 0.5 | seconds |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['name']} | {number(r['mAP'])} | {number(r['base_mAP'])} | {number(r['novel_mAP'])} | "
            f"{number(r['micro_AP'])} | {number(r['f1'])} | {r['seconds']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="model folder (default: the embedded default model)")
    parser.add_argument("--workdir", type=Path, default=REPO / "bench" / "results" / "multilabel_data")
    parser.add_argument("--train-scenes", type=int, default=600)
    parser.add_argument("--calibration-scenes", type=int, default=16)
    parser.add_argument("--test-scenes", type=int, default=600)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", default="1e-3")
    parser.add_argument("--lora-targets", default="vision,cross-frame")
    parser.add_argument(
        "--runs",
        default=",".join(f"lora:{r}" for r in REGULARIZATIONS),
        help="fine-tuning runs METHOD:REGULARIZATION[:LOSS], comma-separated",
    )
    parser.add_argument("--full-lr", default="1e-4", help="learning rate of --method full runs")
    parser.add_argument("--sections", default="zero-shot,finetune")
    parser.add_argument("--finetune-args", default="", help="more finetune options, space-separated")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.runs = [r for r in args.runs.split(",") if r]
    args.finetune_args = args.finetune_args.split()
    sections = set(args.sections.split(","))
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    model = args.model or default_model_path()
    args.workdir.mkdir(parents=True, exist_ok=True)
    data = make_data(args.workdir, args)
    load_before = os.getloadavg()
    rows = []
    if "zero-shot" in sections:
        rows += zero_shot_rows(model, data, args.workdir)
    if "finetune" in sections:
        rows += finetune_rows(model, data, args.workdir, args)
    table = format_table(rows)
    print(table)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    payload = {
        "rows": rows,
        "settings": settings,
        "model": str(model),
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "torch_threads": torch.get_num_threads(),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"load average before / after: {load_before} / {os.getloadavg()}; written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
