"""One GPU check of hf_xclip, ready to run first time on an H100 / H200 (about 3-5 minutes there), with a CPU smoke
form so that the GPU run cannot fail on a typo.

Sections, each isolated (an exception becomes an `error` row with its message; the other sections still run) and
each started only while the time budget allows:

  environment  torch / CUDA / GPU facts, bf16 support
  parity       float32 logits on the device against the CPU (TF32 off): the embedded model and a random B/32;
               must be within 1e-4
  autocast     bf16 and fp16 autocast against float32 on the device: top-1 agreement and largest probability
               difference, on the embedded model's synthetic clips (real predictions) and on a random B/32
  attention    sdpa against eager attention (float32 and bf16): logit difference and forward time
  lora         `train_few_shot` with a LoRA adapter, bf16 mixed precision, gradient checkpointing and accelerate
               on synthetic mp4 clips: losses finite, adapter trained, base weights untouched, time, peak memory
  ray          `hf-xclip classify --engine ray` with one Ray worker holding the GPU (`hf_xclip.distributed`) against
               the pipeline on the device, on synthetic mp4 clips: same scores (1e-4), clips/s of both
  bench_model  `bench/bench_model.py --device cuda --dtype bf16 --quick` against transformers' X-CLIP
               (clips/s and memory), in a child process with the remaining time as its limit

    python bench/gpu_check.py                   # CUDA (exit status 1 when a check fails or a section errors)
    python bench/gpu_check.py --device cpu      # smoke run: tiny models, every section, about a minute
    python bench/gpu_check.py --budget-s 300 --sections parity,autocast

Prints one markdown table and writes JSON to bench/results/gpu_check[_cpu].json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import (  # noqa: E402
    REPO,
    RESULTS_DIR,
    SPECS,
    median,
    original_init_checkpoint_dir,
    quiet_transformers,
    synchronize,
    write_json,
)

SECTIONS = ("environment", "parity", "autocast", "attention", "lora", "ray", "bench_model")
PARITY_TOLERANCE = 1e-4
# The least time (s) a section needs on the GPU; it is skipped when less of the budget is left.
MIN_SECONDS = {
    "environment": 0,
    "parity": 20,
    "autocast": 20,
    "attention": 20,
    "lora": 40,
    "ray": 60,
    "bench_model": 60,
}


@dataclass
class Check:
    """One row of the table: a measured value and whether it passed (ok / FAIL / info / error / skipped)."""

    section: str
    check: str
    result: str
    status: str = "ok"
    seconds: float | None = None
    data: dict[str, Any] = field(default_factory=dict)


class Run:
    """Options, the time budget, the models shared by sections and the rows collected so far."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.device = args.device
        self.smoke = args.device == "cpu"
        self.start = time.perf_counter()
        self.workdir = Path(args.workdir or tempfile.mkdtemp(prefix="xclip-gpu-check-"))
        self.rows: list[Check] = []
        self.spec = SPECS["tiny" if self.smoke else "B/32"]
        self.frames = 4 if self.smoke else 8

    def remaining(self) -> float:
        return self.args.budget_s - (time.perf_counter() - self.start)

    def add(self, section: str, check: str, result: str, status: str = "ok", **data: Any) -> None:
        self.rows.append(Check(section, check, result, status, data=data))
        print(f"  [{status:7s}] {section:11s} {check:55s} {result}", flush=True)

    def big_model(self, attn: str = "sdpa"):
        """Our XClipModel of `self.spec` (random weights, the original's initialisation), float32 CPU, eval mode."""
        from hf_xclip import XClipModel

        path = original_init_checkpoint_dir(self.spec, self.frames, self.workdir)
        return XClipModel.from_pretrained(path, attn_implementation=attn).eval()


# ---------------------------------------------------------------------------------------------------------- helpers
def texts(model, count: int, seed: int = 0) -> torch.Tensor:
    text = model.config.text_config
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, text.vocab_size - 1, (count, 12), generator=generator)
    ids[:, -1] = text.eos_token_id if text.eos_token_id is not None else text.vocab_size - 1
    return ids


def videos(model, count: int, frames: int, seed: int = 0) -> torch.Tensor:
    size = model.config.vision_config.image_size
    return torch.randn(count, frames, 3, size, size, generator=torch.Generator().manual_seed(seed))


def agreement(reference: torch.Tensor, other: torch.Tensor) -> tuple[float, float]:
    """(top-1 agreement, largest softmax probability difference) of two (N, K) logit tensors."""
    reference, other = reference.float().cpu(), other.float().cpu()
    top1 = (reference.argmax(-1) == other.argmax(-1)).float().mean().item()
    probs = (reference.softmax(-1) - other.softmax(-1)).abs().max().item()
    return top1, probs


def timed(fn: Callable[[], Any], device: str, repeats: int) -> float:
    """Median seconds of `repeats` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return median(times)


def synthetic_clips(count: int):
    """(tokens of all 204 captions, pixel values of `count` clips, truth indices) for the embedded model."""
    from hf_xclip import XClipProcessor, default_model_path
    from hf_xclip.data.synthetic import SyntheticVideoDataset, all_specs
    from hf_xclip.embedded_model.training import frames_to_pixel_values

    processor = XClipProcessor.from_pretrained(default_model_path())
    specs = all_specs()
    tokens = processor.tokenizer([spec.caption for spec in specs], padding=True, return_tensors="pt")
    video_processor = processor.video_processor
    data = SyntheticVideoDataset(
        specs=specs,
        num_videos=count,
        seed=12345,
        num_frames=video_processor.num_frames,
        size=video_processor.crop_size["height"],
    )
    pixels = frames_to_pixel_values(np.stack([data.frames(i) for i in range(len(data))]), video_processor)
    return tokens, pixels, torch.as_tensor(data.labels)


# ---------------------------------------------------------------------------------------------------------- sections
def section_environment(run: Run) -> None:
    run.add(
        "environment",
        "torch / CUDA",
        f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}",
        "info",
    )
    if run.device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda but torch.cuda.is_available() is False (a CPU build of torch?)")
        props = torch.cuda.get_device_properties(run.device)
        run.add(
            "environment",
            "GPU",
            f"{props.name}, {props.total_memory / 2**30:.0f} GiB, capability "
            f"{props.major}.{props.minor}, bf16 {torch.cuda.is_bf16_supported()}",
            "info",
        )
    else:
        run.add("environment", "device", f"{run.device} (smoke run: tiny models)", "info")


@torch.inference_mode()
def section_parity(run: Run) -> None:
    from hf_xclip import XClipModel, default_model_path

    # Exact float32 on the GPU: no TF32 in matmuls or convolutions (the patch embedding).
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    cases = {"embedded": XClipModel.from_pretrained(default_model_path()).eval(), run.spec.name: run.big_model()}
    for name, cpu_model in cases.items():
        frames = cpu_model.config.vision_config.num_frames
        ids, pixels = texts(cpu_model, 16), videos(cpu_model, 4, frames)
        expected = cpu_model(input_ids=ids, pixel_values=pixels)
        model = cpu_model.to(run.device)
        actual = model(input_ids=ids.to(run.device), pixel_values=pixels.to(run.device))
        diff = (actual.logits_per_video.cpu() - expected.logits_per_video).abs().max().item()
        video = (actual.video_embeds.cpu() - expected.video_embeds).abs().max().item()
        status = "ok" if diff <= PARITY_TOLERANCE else "FAIL"
        run.add(
            "parity",
            f"{name}: fp32 {run.device} vs CPU, 4 videos x {frames} frames, 16 labels",
            f"max abs logit diff {diff:.1e} (video embeds {video:.1e}; limit {PARITY_TOLERANCE:.0e})",
            status,
            logit_diff=diff,
            video_embed_diff=video,
        )
        cpu_model.to("cpu")


@torch.inference_mode()
def section_autocast(run: Run) -> None:
    from hf_xclip import XClipModel, default_model_path

    device_type = "cuda" if run.device.startswith("cuda") else "cpu"
    embedded = XClipModel.from_pretrained(default_model_path()).eval().to(run.device)
    tokens, pixels, truth = synthetic_clips(24 if run.smoke else 204)
    tokens = {k: v.to(run.device) for k, v in tokens.items()}
    big = run.big_model().to(run.device)
    ids, big_pixels = texts(big, 100).to(run.device), videos(big, 8, run.frames).to(run.device)
    cases = {
        f"embedded, {len(truth)} synthetic clips x 204 captions": (
            embedded,
            dict(**tokens, pixel_values=pixels.to(run.device)),
        ),
        f"{run.spec.name} random, 8 videos x {run.frames} frames x 100 labels": (
            big,
            dict(input_ids=ids, pixel_values=big_pixels),
        ),
    }
    for case, (model, inputs) in cases.items():
        reference = model(**inputs).logits_per_video.float()
        for dtype in (torch.bfloat16, torch.float16):
            with torch.autocast(device_type, dtype=dtype):
                logits = model(**inputs).logits_per_video.float()
            top1, probs = agreement(reference, logits)
            finite = bool(torch.isfinite(logits).all())
            status = "FAIL" if not finite else "ok" if top1 >= 0.9 else "check"
            name = "bf16" if dtype == torch.bfloat16 else "fp16"
            extra = ""
            if case.startswith("embedded"):
                accuracy = (logits.argmax(-1).cpu() == truth).float().mean().item()
                base = (reference.argmax(-1).cpu() == truth).float().mean().item()
                extra = f"; accuracy {accuracy:.1%} (fp32 {base:.1%})"
            run.add(
                "autocast",
                f"{name} autocast vs fp32: {case}",
                f"top-1 agreement {top1:.1%}, max prob diff {probs:.3g}{extra}",
                status,
                top1_agreement=top1,
                max_prob_diff=probs,
                finite=finite,
            )
    del embedded, big


@torch.inference_mode()
def section_attention(run: Run) -> None:
    dtypes = [torch.float32] + ([torch.bfloat16] if run.device.startswith("cuda") else [])
    batch = 1 if run.smoke else 8
    for dtype in dtypes:
        models = {attn: run.big_model(attn).to(device=run.device, dtype=dtype) for attn in ("sdpa", "eager")}
        ids = texts(models["sdpa"], 32).to(run.device)
        pixels = videos(models["sdpa"], batch, run.frames).to(device=run.device, dtype=dtype)
        logits = {attn: m(input_ids=ids, pixel_values=pixels).logits_per_video.float() for attn, m in models.items()}
        diff = (logits["sdpa"] - logits["eager"]).abs().max().item()
        seconds = {
            attn: timed(lambda m=m: m.get_video_features(pixels), run.device, 3 if run.smoke else 10)
            for attn, m in models.items()
        }
        limit = PARITY_TOLERANCE if dtype == torch.float32 else 0.5
        name = "fp32" if dtype == torch.float32 else "bf16"
        run.add(
            "attention",
            f"sdpa vs eager, {name}, {run.spec.name} {batch} x {run.frames} frames",
            f"max abs logit diff {diff:.1e}; video forward sdpa {seconds['sdpa'] * 1e3:.1f} ms, eager "
            f"{seconds['eager'] * 1e3:.1f} ms ({seconds['eager'] / seconds['sdpa']:.2f}x)",
            "ok" if diff <= limit else "FAIL",
            logit_diff=diff,
            seconds=seconds,
        )
        del models


def section_lora(run: Run) -> None:
    from hf_xclip import XClipAdapterConfig, XClipProcessor, XClipVideoProcessor, default_model_path
    from hf_xclip.data.folders import scan_video_folder
    from hf_xclip.data.synthetic import all_specs, write_video_folder
    from hf_xclip.finetuning.training import FewShotTrainingArguments, train_few_shot

    model = run.big_model()
    size = model.config.vision_config.image_size
    # The embedded model's word-level tokenizer: its ids fit any vocabulary and its EOT is its largest id.
    tokenizer = XClipProcessor.from_pretrained(default_model_path()).tokenizer
    video_processor = XClipVideoProcessor(num_frames=run.frames, crop_size=size, size={"shortest_edge": size})
    processor = XClipProcessor(video_processor=video_processor, tokenizer=tokenizer)
    root = run.workdir / "lora-clips"
    if not root.exists():
        write_video_folder(root, 4, specs=all_specs()[:2], num_frames=run.frames, size=64)
    folder = scan_video_folder(root)
    before = {name: p.detach().to("cpu", copy=True) for name, p in model.named_parameters()}
    args = FewShotTrainingArguments(
        epochs=1,
        batch_size=2 if run.smoke else 4,
        mixed_precision="bf16",
        gradient_checkpointing=True,
        show_progress=False,
        learning_rate=1e-3,
        warmup_ratio=0.0,
    )
    if run.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result = train_few_shot(
        model, processor, folder, adapter_config=XClipAdapterConfig.for_method("lora"), args=args, evaluate_before=False
    )
    seconds = time.perf_counter() - start
    trained = result.model
    # Inert by construction: at layer 0 every frame's CLS token is the same (class + position embedding), so the
    # message tokens are identical, attention among them is uniform whatever q and k are, and their gradient is 0.
    inert = ("layers.0.message_attn.q_proj.", "layers.0.message_attn.k_proj.")
    lora_b = [p for n, p in trained.named_parameters() if "lora_B" in n and not any(i in n for i in inert)]
    moved = sum(int(p.detach().abs().sum().item() > 0) for p in lora_b)
    frozen = [(_plain_name(n), p) for n, p in trained.named_parameters() if not p.requires_grad]
    frozen = [(n, p) for n, p in frozen if n in before]
    base_same = bool(frozen) and all(torch.equal(p.detach().cpu(), before[n]) for n, p in frozen)
    finite = all(np.isfinite(result.step_losses))
    memory = f", peak {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB" if run.device.startswith("cuda") else ""
    status = "ok" if finite and moved == len(lora_b) and lora_b and base_same else "FAIL"
    run.add(
        "lora",
        f"LoRA bf16 + checkpointing + accelerate, {run.spec.name}, {len(folder)} clips x {run.frames} frames",
        f"{len(result.step_losses)} steps in {seconds:.1f} s, losses {[round(x, 3) for x in result.step_losses]}, "
        f"{moved}/{len(lora_b)} LoRA B trained (layer 0 message q/k aside), {len(frozen)} base weights unchanged {base_same}, precision {result.mixed_precision}{memory}",
        status,
        losses=result.step_losses,
        seconds=seconds,
        trainable=result.trainable_parameters,
    )


def _plain_name(name: str) -> str:
    """A peft model's parameter name as in the plain model (wrapper prefix and `base_layer` level removed)."""
    return name.removeprefix("base_model.model.").replace(".base_layer.", ".")


def section_ray(run: Run) -> None:
    """One Ray worker (1 GPU on cuda) classifying clips through `run_job`, against the pipeline on the device."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        run.add("ray", "(section)", "ray not installed: pip install 'hf_xclip[ray]'", "info")
        return
    import ray
    from transformers import pipeline

    from hf_xclip import default_model_path
    from hf_xclip.data.synthetic import all_specs, write_video_folder
    from hf_xclip.distributed.jobs import EngineOptions, read_predictions, run_job

    specs = all_specs()[:8]
    count = 1 if run.smoke else 8  # clips per caption
    written = write_video_folder(run.workdir / "ray-clips", count, specs=specs, num_frames=16, size=64, seed=2)
    clips = sorted(str(p) for paths in written.values() for p in paths)
    labels = [spec.caption for spec in specs]
    classifier = pipeline("zero-shot-video-classification", model=default_model_path(), device=run.device)
    classifier(clips[:2], candidate_labels=labels)  # warm
    start = time.perf_counter()
    reference = classifier(clips, candidate_labels=labels, batch_size=8, num_workers=2)
    local_s = time.perf_counter() - start
    gpus = 1 if run.device.startswith("cuda") else 0
    if not ray.is_initialized():
        ray.init(num_cpus=2, num_gpus=gpus, include_dashboard=False, log_to_driver=False)
    try:
        start = time.perf_counter()
        result = run_job(
            clips,
            run.workdir / "ray-results.parquet",
            {"mode": "classify", "labels": labels, "device": run.device, "batch_size": 8},
            EngineOptions(engine="ray", num_workers=1, num_gpus_per_worker=gpus, videos_per_call=8),
        )
        ray_s = time.perf_counter() - start
    finally:
        ray.shutdown()
    rows = {row["path"]: row for row in read_predictions(run.workdir / "ray-results.parquet").to_pylist()}
    worst = max(
        abs(dict(zip(rows[c]["labels"], rows[c]["scores"]))[r["label"]] - r["score"])
        for c, out in zip(clips, reference)
        for r in out
    )
    status = "ok" if worst <= 1e-4 and not result.failed and len(rows) == len(clips) else "FAIL"
    run.add(
        "ray",
        f"1 {'GPU' if gpus else 'CPU'} worker, {len(clips)} clips: scores vs the pipeline",
        f"max |diff| {worst:.1e} (<= 1e-4)",
        status,
        max_abs_diff=worst,
    )
    run.add(
        "ray",
        "throughput (worker start-up and model load included)",
        f"ray {len(clips) / ray_s:.1f} clips/s ({ray_s:.1f} s), pipeline {len(clips) / local_s:.1f} clips/s",
        "info",
        ray_s=ray_s,
        pipeline_s=local_s,
    )


def section_bench_model(run: Run) -> None:
    out = run.workdir / "bench_model.json"
    if run.smoke:
        options = ["--smoke", "--device", "cpu", "--dtype", "fp32", "--sections", "video", "--repeats", "2"]
    else:
        options = ["--quick", "--device", run.device, "--dtype", "bf16", "--sections", "peak,video,zeroshot,memory"]
    command = [
        sys.executable,
        str(REPO / "bench" / "bench_model.py"),
        *options,
        "--json",
        str(out),
        "--workdir",
        str(run.workdir / "bench-model"),
    ]
    timeout = max(30.0, run.remaining() - 5)
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"bench_model.py exited {proc.returncode}: {proc.stderr[-1500:]}")
    rows = json.loads(out.read_text())["rows"]
    for row in rows:
        if row["section"] == "video":  # one video per call
            result = (
                f"hf_xclip {1 / row['ours']:.1f} clips/s, transformers {1 / row['transformers']:.1f} clips/s "
                f"({row['ratio']:.2f}x)"
            )
        elif row["unit"] == "s":
            result = f"hf_xclip {row['ours']:.3f} s, transformers {row['transformers']:.3f} s ({row['ratio']:.2f}x)"
        else:
            result = f"hf_xclip {row['ours']:.0f} MiB, transformers {row['transformers']:.0f} MiB ({row['ratio']:.2f}x)"
        run.add("bench_model", f"{row['section']}: {row['case']}", result, "info", row=row)


# ---------------------------------------------------------------------------------------------------------- main
def table(rows: list[Check]) -> str:
    lines = ["| section | check | result | status |", "| --- | --- | --- | --- |"]
    lines += [f"| {r.section} | {r.check} | {r.result.replace('|', '/')} | {r.status} |" for r in rows]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (the check) or cpu (smoke run with tiny models)")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="time budget; sections that would start past it are skipped (default 330 s, 600 on CPU)",
    )
    parser.add_argument("--workdir", default=None, help="folder for checkpoints and clips (temporary by default)")
    parser.add_argument("--json", default=None, help="output JSON (default bench/results/gpu_check[_cpu].json)")
    args = parser.parse_args(argv)
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {SECTIONS}")
    if args.budget_s is None:
        args.budget_s = 600.0 if args.device == "cpu" else 330.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_transformers()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    run = Run(args)
    print(
        f"# gpu_check on {args.device}, budget {args.budget_s:.0f} s, sections {', '.join(args.sections)}", flush=True
    )
    for section in SECTIONS:
        if section not in args.sections:
            continue
        needed = 0 if run.smoke else MIN_SECONDS[section]
        if run.remaining() <= 0 or run.remaining() < needed:
            run.rows.append(
                Check(
                    section,
                    "(section)",
                    f"skipped: {run.remaining():.0f} s of the budget left, needs about {needed} s",
                    "skipped",
                )
            )
            print(f"  [skipped] {section}", flush=True)
            continue
        start = time.perf_counter()
        try:
            globals()[f"section_{section}"](run)
        except Exception as err:  # one failing section must not hide the others
            run.rows.append(
                Check(
                    section,
                    "(section)",
                    f"{type(err).__name__}: {str(err)[:300]}",
                    "error",
                    data={"traceback": traceback.format_exc()},
                )
            )
            print(traceback.format_exc(), file=sys.stderr, flush=True)
        finally:
            if run.device.startswith("cuda") and torch.cuda.is_available():
                torch.cuda.empty_cache()
        elapsed = time.perf_counter() - start
        for row in run.rows:
            if row.section == section and row.seconds is None:
                row.seconds = round(elapsed, 1)
        print(f"  ({section}: {elapsed:.0f} s, {run.remaining():.0f} s of the budget left)", flush=True)
    total = time.perf_counter() - run.start
    markdown = table(run.rows)
    print()
    print(markdown)
    failed = [r for r in run.rows if r.status in ("FAIL", "error")]
    print(f"\ntotal {total:.0f} s of a {args.budget_s:.0f} s budget; {len(failed)} failed check(s) or section error(s)")
    path = Path(args.json) if args.json else RESULTS_DIR / ("gpu_check_cpu.json" if run.smoke else "gpu_check.json")
    write_json(
        path,
        {
            "command": "python bench/gpu_check.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "device": args.device,
            "total_s": round(total, 1),
            "budget_s": args.budget_s,
            "rows": [r.__dict__ for r in run.rows],
            "table_markdown": markdown,
        },
    )
    print(f"wrote {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
