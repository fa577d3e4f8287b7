"""Speed and memory of hf_xclip's XClipModel against transformers' XCLIPModel on the same weights, in the same run.

Sections (the first six by default; pick with --sections, `all` adds compile):
  peak      fp32 (or --dtype) matmul peak of the machine, the yardstick for achieved FLOP/s
  video     video forward (`get_video_features`) for B/32 (4, 8, 16 frames) and B/16 (8, 16 frames)
  text      text encoding of N class names (Kinetics-400 names when ../shared/reference is present)
  zeroshot  model-level zero-shot classification, K labels x V videos: ours encodes the labels once and scores
            each video with `text_embeds`; transformers runs `forward(input_ids, pixel_values)` per video
            (and, at the largest K, both batched: one forward on all V videos)
  memory    peak memory of a video forward, a zero-shot forward and a training forward+backward, each in a fresh
            child process (peak RSS above the warmed-up model on CPU, `torch.cuda.max_memory_allocated` on GPU)
  train     training step (forward, loss, backward, AdamW) with and without gradient checkpointing
  compile   `torch.compile` of both video forwards with the same options, plain and with inductor freezing:
            cold compile times, compiled against compiled, and what compiling gains over our eager model

Every time is the median of several runs after a warm-up, ours and transformers' interleaved round by round;
the table adds the median of back-to-back ratios and, on CPU, the ratio of process CPU times.
Prints markdown tables and writes JSON to bench/results/ (and the plots with --plot DIR).

    python bench/bench_model.py                    # full run (about 12 minutes on a 2-core CPU)
    python bench/bench_model.py --quick            # B/32 only, fewer labels and runs (about 4 minutes)
    python bench/bench_model.py --sections compile # torch.compile (four cold compiles: about 5 minutes)
    python bench/bench_model.py --smoke            # tiny models: checks the script
    python bench/bench_model.py --device cuda --dtype bf16
"""

from __future__ import annotations

import argparse
import csv
import functools
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from common import (  # noqa: E402
    DTYPES,
    REFERENCE_DIR,
    RESULTS_DIR,
    SPECS,
    ModelSpec,
    Row,
    checkpoint_dir,
    count_flops,
    load_models,
    machine_info,
    markdown_table,
    matmul_peak,
    median,
    paired_ratio,
    quiet_transformers,
    reset_peak_rss,
    rss_mib,
    run_child,
    synchronize,
    time_interleaved,
    time_once,
    time_once_cpu,
    write_json,
)

SECTIONS = ("peak", "video", "text", "zeroshot", "memory", "train", "compile")
DEFAULT_SECTIONS = ("peak", "video", "text", "zeroshot", "memory", "train")


# ---------------------------------------------------------------------------------------------------------- inputs
def label_names(count: int) -> list[str]:
    """Kinetics-400 class names (repeated if more are asked for) or synthetic ones without the reference folder."""
    path = REFERENCE_DIR / "labels" / "kinetics_400_labels.csv"
    if path.exists():
        with path.open(newline="") as handle:
            names = [row["name"] for row in csv.DictReader(handle)]
    else:
        verbs = ["playing", "riding", "making", "cleaning", "throwing", "climbing", "washing", "cutting"]
        nouns = ["guitar", "a bike", "tea", "windows", "a ball", "a rope", "dishes", "the lawn", "a cake"]
        names = [f"{v} {n}" for v in verbs for n in nouns]
    return [names[i % len(names)] for i in range(count)]


@functools.lru_cache(maxsize=1)
def clip_tokenizer():
    """transformers' CLIP tokenizer built from the reference BPE files, or None without them."""
    tokenizer_dir = REFERENCE_DIR / "clip-tokenizer"
    if not (tokenizer_dir / "vocab.json").exists():
        return None
    from transformers import CLIPTokenizer

    return CLIPTokenizer(str(tokenizer_dir / "vocab.json"), str(tokenizer_dir / "merges.txt"))


def tokenize(names: list[str], vocab_size: int) -> dict[str, torch.Tensor]:
    """CLIP tokens padded to the longest name (what XClipProcessor does); random ids without the reference BPE."""
    tokenizer = clip_tokenizer()
    if tokenizer is not None and vocab_size >= len(tokenizer):
        encoded = tokenizer(names, padding=True, return_tensors="pt")
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
    generator = torch.Generator().manual_seed(0)
    lengths = [2 + len(name.split()) * 2 for name in names]
    width = max(lengths)
    ids = torch.zeros(len(names), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, length in enumerate(lengths):
        ids[row, :length] = torch.randint(1, vocab_size - 2, (length,), generator=generator)
        ids[row, 0], ids[row, length - 1] = vocab_size - 2, vocab_size - 1
        mask[row, :length] = 1
    return {"input_ids": ids, "attention_mask": mask}


def video_inputs(spec: ModelSpec, batch: int, frames: int, device: str, dtype: torch.dtype, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randn(batch, frames, 3, spec.image_size, spec.image_size, generator=generator)
    return pixels.to(device=device, dtype=dtype)


# ---------------------------------------------------------------------------------------------------------- context
class Bench:
    """Holds the options, the checkpoint folder and the rows collected so far."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.device = args.device
        self.dtype = DTYPES[args.dtype]
        self.workdir = Path(args.workdir or tempfile.mkdtemp(prefix="xclip-bench-"))
        self.rows: list[Row] = []
        self.series: dict[str, Any] = {}
        self.peak_gflops: dict[str, float] = {}

    def models(self, spec: ModelSpec, frames: int, which=("ours", "transformers")):
        return load_models(checkpoint_dir(spec, frames, self.workdir), self.device, self.dtype, which)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(
            f"  {row.section:9s} {row.case:55s} ours {row.ours:9.3f}{row.unit}  transformers "
            f"{row.transformers:9.3f}{row.unit}  ratio {row.ratio:5.2f}x",
            flush=True,
        )

    def sync(self) -> None:
        synchronize(self.device)


# ---------------------------------------------------------------------------------------------------------- sections
def section_peak(bench: Bench) -> None:
    bench.peak_gflops = matmul_peak(bench.device, bench.dtype)
    per_cpu = bench.peak_gflops.get("per_cpu_second")
    print(
        f"  matmul peak: {bench.peak_gflops['wall']:.1f} GFLOP/s wall ({bench.args.dtype})"
        + (f", {per_cpu:.1f} GFLOP per CPU-second" if per_cpu else ""),
        flush=True,
    )


def section_video(bench: Bench) -> None:
    args = bench.args
    points = []
    for spec_name in args.specs:
        spec = SPECS[spec_name]
        for frames in args.frames[spec_name]:
            models = bench.models(spec, frames)
            ours, theirs = models["ours"], models["transformers"]
            pixels = video_inputs(spec, args.video_batch, frames, bench.device, bench.dtype)
            repeats = args.repeats
            with torch.inference_mode():
                # The first call of each model is its warm-up: ours counts FLOPs, then the outputs are compared.
                flops, ours_out = count_flops(lambda: ours.get_video_features(pixels))  # noqa: F821 (deleted after use)
                theirs_out = theirs.get_video_features(pixel_values=pixels)
                check_close(ours_out.pooler_output, _features(theirs_out), bench.dtype)
                cpu: dict[str, list[float]] = {}
                times = time_interleaved(
                    {
                        "ours": lambda: ours.get_video_features(pixels),  # noqa: F821 (deleted after use)
                        "transformers": lambda: theirs.get_video_features(pixel_values=pixels),  # noqa: F821
                    },
                    repeats=repeats,
                    warmup=max(0, args.warmup - 1),
                    device=bench.device,
                    cpu_times=cpu,
                )
            ours_s, theirs_s = median(times["ours"]), median(times["transformers"])
            extra = {
                "GFLOP": float(f"{flops / 1e9:.3g}"),
                "ours GFLOP/s": round(flops / ours_s / 1e9, 1),
                "transformers GFLOP/s": round(flops / theirs_s / 1e9, 1),
                **timing_notes(times, cpu, bench.device),
            }
            if bench.peak_gflops:
                extra["ours % of matmul peak"] = round(100 * flops / ours_s / 1e9 / bench.peak_gflops["wall"], 1)
            if cpu.get("ours"):
                per_cpu = flops / median(cpu["ours"]) / 1e9
                extra["ours GFLOP per CPU-s"] = round(per_cpu, 1)
                if bench.peak_gflops.get("per_cpu_second"):
                    extra["ours % of matmul peak (CPU time)"] = round(
                        100 * per_cpu / bench.peak_gflops["per_cpu_second"], 1
                    )
            case = f"{spec.name}, {frames} frames, {args.video_batch} video(s)"
            bench.add(Row("video", case, ours_s, theirs_s, runs=repeats, extra=extra))
            points.append(
                {
                    "spec": spec.name,
                    "frames": frames,
                    "ours_videos_per_s": args.video_batch / ours_s,
                    "transformers_videos_per_s": args.video_batch / theirs_s,
                }
            )
            del models, ours, theirs
            gc.collect()
    bench.series["video_throughput_vs_frames"] = points


def section_text(bench: Bench) -> None:
    args = bench.args
    spec = SPECS[args.specs[0]]
    models = bench.models(spec, args.frames[spec.name][0])
    ours, theirs = models["ours"], models["transformers"]
    inputs = tokenize(label_names(args.text_labels), ours.config.text_config.vocab_size)
    inputs = {k: v.to(bench.device) for k, v in inputs.items()}
    with torch.inference_mode():
        check_close(
            ours.get_text_features(**inputs).pooler_output, _features(theirs.get_text_features(**inputs)), bench.dtype
        )
        cpu: dict[str, list[float]] = {}
        times = time_interleaved(
            {
                "ours": lambda: ours.get_text_features(**inputs),
                "transformers": lambda: theirs.get_text_features(**inputs),
            },
            repeats=args.repeats,
            warmup=args.warmup,
            device=bench.device,
            cpu_times=cpu,
        )
    case = f"{args.text_labels} labels, padded to {inputs['input_ids'].shape[1]} tokens"
    bench.add(
        Row(
            "text",
            case,
            median(times["ours"]),
            median(times["transformers"]),
            runs=args.repeats,
            extra=timing_notes(times, cpu, bench.device),
        )
    )


def cpu_time_notes(cpu: dict[str, list[float]], device: str) -> dict[str, Any]:
    """Median process CPU times and their ratio: less sensitive than wall time to other jobs on the machine."""
    if device != "cpu" or not cpu.get("ours") or not cpu.get("transformers"):
        return {}
    ours, theirs = median(cpu["ours"]), median(cpu["transformers"])
    return {"CPU-time ratio": f"{theirs / ours:.2f}x", "cpu_times": cpu}


def timing_notes(times: dict[str, list[float]], cpu: dict[str, list[float]], device: str) -> dict[str, Any]:
    """Paired and CPU-time ratios next to the raw times (the table's wall ratio compares the medians)."""
    return {"paired ratio": round(paired_ratio(times), 3), **cpu_time_notes(cpu, device), "times": times}


def check_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype) -> None:
    """Same weights, same inputs: the two implementations must agree before their speed is compared."""
    tol = 1e-4 if dtype == torch.float32 else 5e-2
    torch.testing.assert_close(actual.float(), expected.float(), atol=tol, rtol=tol)


def _features(output: Any) -> torch.Tensor:
    """transformers' get_*_features return a tensor in some versions and a ModelOutput in others."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def section_zeroshot(bench: Bench) -> None:
    args = bench.args
    spec = SPECS[args.specs[0]]
    frames = args.frames[spec.name][0]
    models = bench.models(spec, frames)
    ours, theirs = models["ours"], models["transformers"]
    videos = [video_inputs(spec, 1, frames, bench.device, bench.dtype, seed=i) for i in range(args.videos)]
    all_videos = torch.cat(videos)
    vocab = ours.config.text_config.vocab_size
    points = []
    with torch.inference_mode():
        for num_labels in args.labels:
            inputs = {k: v.to(bench.device) for k, v in tokenize(label_names(num_labels), vocab).items()}
            state: dict[str, Any] = {}

            def encode_labels() -> None:
                state["text_embeds"] = ours.get_text_features(**inputs).pooler_output

            # Untimed round at this label count (first calls at a new text shape pay one-off costs).
            encode_labels()
            ours(text_embeds=state["text_embeds"], pixel_values=videos[0])
            theirs(**inputs, pixel_values=videos[0])
            text_s, text_cpu = time_once_cpu(encode_labels, bench.device)
            per_video: dict[str, list[float]] = {"ours": [], "transformers": []}
            cpu: dict[str, list[float]] = {"ours": [], "transformers": []}
            logits: dict[str, list[torch.Tensor]] = {"ours": [], "transformers": []}
            for index, pixels in enumerate(videos):
                calls = {
                    "ours": lambda: ours(text_embeds=state["text_embeds"], pixel_values=pixels).logits_per_video,
                    "transformers": lambda: theirs(**inputs, pixel_values=pixels).logits_per_video,
                }
                for impl in calls if index % 2 == 0 else list(calls)[::-1]:
                    wall, cpu_s = time_once_cpu(lambda: logits[impl].append(calls[impl]()), bench.device)
                    per_video[impl].append(wall)
                    cpu[impl].append(cpu_s)
            ours_s = text_s + sum(per_video["ours"])
            theirs_s = sum(per_video["transformers"])
            diff = (torch.cat(logits["ours"]).float() - torch.cat(logits["transformers"]).float()).abs().max().item()
            case = f"{spec.name} {frames}f, {num_labels} labels x {args.videos} videos, one call per video"
            extra = {
                "ours: labels encoded once s": round(text_s, 2),
                "ours per video s": round(median(per_video["ours"]), 2),
                "transformers per video s": round(median(per_video["transformers"]), 2),
                "max abs logit diff": f"{diff:.1e}",
                "times": per_video,
            }
            if bench.device == "cpu":
                extra["CPU-time ratio"] = f"{sum(cpu['transformers']) / (text_cpu + sum(cpu['ours'])):.2f}x"
                extra["cpu_times"] = {**cpu, "ours_text": text_cpu}
            bench.add(Row("zero-shot", case, ours_s, theirs_s, runs=args.videos, extra=extra))
            points.append(
                {
                    "labels": num_labels,
                    "videos": args.videos,
                    "ours_videos_per_s": args.videos / ours_s,
                    "transformers_videos_per_s": args.videos / theirs_s,
                }
            )
        if args.zeroshot_batched:
            num_labels = max(args.labels)
            inputs = {k: v.to(bench.device) for k, v in tokenize(label_names(num_labels), vocab).items()}

            def ours_batched() -> torch.Tensor:
                text_embeds = ours.get_text_features(**inputs).pooler_output
                return ours(text_embeds=text_embeds, pixel_values=all_videos).logits_per_video

            cpu = {}
            times = time_interleaved(
                {"ours": ours_batched, "transformers": lambda: theirs(**inputs, pixel_values=all_videos)},
                repeats=args.batched_repeats,
                warmup=0,
                device=bench.device,
                cpu_times=cpu,
            )
            case = f"{spec.name} {frames}f, {num_labels} labels x {args.videos} videos, one batched call"
            bench.add(
                Row(
                    "zero-shot",
                    case,
                    median(times["ours"]),
                    median(times["transformers"]),
                    runs=args.batched_repeats,
                    extra=timing_notes(times, cpu, bench.device),
                )
            )
    bench.series["zeroshot_throughput_vs_labels"] = points


def section_memory(bench: Bench) -> None:
    args = bench.args
    script = Path(__file__).resolve()
    cases = []
    for spec_name in args.specs:
        frames = args.frames[spec_name][0]
        cases.append(("inference", spec_name, frames, {}))
    spec_name = args.specs[0]
    frames = args.frames[spec_name][0]
    cases.append(("zeroshot", spec_name, frames, {"labels": max(args.labels)}))
    cases.append(("train", spec_name, frames, {"checkpointing": False}))
    cases.append(("train", spec_name, frames, {"checkpointing": True}))
    for kind, spec_name, frames, options in cases:
        path = checkpoint_dir(SPECS[spec_name], frames, bench.workdir)
        results = {}
        for impl in ("ours", "transformers"):
            payload = {
                "task": "memory",
                "kind": kind,
                "impl": impl,
                "path": str(path),
                "spec": spec_name,
                "frames": frames,
                "device": bench.device,
                "dtype": args.dtype,
                "threads": torch.get_num_threads(),
                "train_batch": args.train_batch,
                "train_labels": args.train_labels,
                **options,
            }
            results[impl] = run_child(script, payload)
        label = {
            "inference": "video forward, 1 video",
            "zeroshot": f"zero-shot forward, {options.get('labels')} labels, 1 video (ours: text_embeds given)",
            "train": f"training forward+backward, batch {args.train_batch}"
            + (", gradient checkpointing" if options.get("checkpointing") else ""),
        }[kind]
        extra = {
            "total peak ours / transformers MiB": f"{results['ours']['total_peak_mib']:.0f} / "
            f"{results['transformers']['total_peak_mib']:.0f}",
            "measure": results["ours"]["measure"],
            "ours": results["ours"],
            "transformers": results["transformers"],
        }
        bench.add(
            Row(
                "memory",
                f"{spec_name} {frames}f, {label}",
                results["ours"]["peak_mib"],
                results["transformers"]["peak_mib"],
                unit="MiB",
                extra=extra,
            )
        )


def train_step_fn(model, impl: str, inputs: dict[str, torch.Tensor], labels: torch.Tensor, optimizer=None):
    """One training step: forward, loss, backward and, with an optimizer, zero_grad + AdamW step."""

    def step() -> float:
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
        if impl == "ours":
            loss = model(**inputs, labels=labels).loss
        else:
            loss = F.cross_entropy(model(**inputs).logits_per_video.float(), labels)
        loss.backward()
        if optimizer is not None:
            optimizer.step()
        return loss.item()

    return step


def prepare_training(model, checkpointing: bool):
    """Train mode, frozen text encoder (as in every original X-CLIP training run), optional checkpointing."""
    model.train()
    for module in (model.text_model, model.text_projection):
        module.requires_grad_(False)
    if checkpointing:
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, lr=1e-6, foreach=True)


def training_inputs(spec: ModelSpec, frames: int, batch: int, num_labels: int, device: str, dtype, vocab: int):
    inputs = {k: v.to(device) for k, v in tokenize(label_names(num_labels), vocab).items()}
    inputs["pixel_values"] = video_inputs(spec, batch, frames, device, dtype)
    labels = torch.arange(batch, device=device) % num_labels
    return inputs, labels


def section_train(bench: Bench) -> None:
    args = bench.args
    spec = SPECS[args.specs[0]]
    frames = args.frames[spec.name][0]
    for checkpointing in (False, True):
        models = bench.models(spec, frames)
        vocab = models["ours"].config.text_config.vocab_size
        inputs, labels = training_inputs(
            spec, frames, args.train_batch, args.train_labels, bench.device, bench.dtype, vocab
        )
        steps = {}
        for impl, model in models.items():
            optimizer = prepare_training(model, checkpointing)
            steps[impl] = train_step_fn(model, impl, inputs, labels, optimizer)
        cpu: dict[str, list[float]] = {}
        times = time_interleaved(steps, repeats=args.train_repeats, warmup=1, device=bench.device, cpu_times=cpu)
        case = f"{spec.name} {frames}f, batch {args.train_batch}, {args.train_labels} labels" + (
            ", gradient checkpointing" if checkpointing else ""
        )
        bench.add(
            Row(
                "train",
                case,
                median(times["ours"]),
                median(times["transformers"]),
                runs=args.train_repeats,
                extra=timing_notes(times, cpu, bench.device),
            )
        )
        del models, steps
        gc.collect()


COMPILE_VARIANTS = {
    "torch.compile": None,
    # Weights become constants of the graph (inductor prepacks them for the CPU GEMM kernels); inference only, and
    # the compiled function keeps the weights it saw (recompile after changing them).
    "torch.compile, freezing": {"freezing": True},
}
# A compiled forward takes about a second on CPU and the section's cost is the cold compiles: more runs are cheap.
COMPILE_MIN_REPEATS = 7


def section_compile(bench: Bench) -> None:
    """Both models compiled with the same options and timed against each other; our eager model runs in the same
    rounds, so the notes also say what compiling gains over eager on this machine."""
    args = bench.args
    spec = SPECS[args.specs[0]]
    frames = args.frames[spec.name][0]
    models = bench.models(spec, frames)
    ours, theirs = models["ours"], models["transformers"]
    pixels = video_inputs(spec, args.video_batch, frames, bench.device, bench.dtype)
    repeats = max(args.repeats, COMPILE_MIN_REPEATS) if not args.smoke else args.repeats
    # Cold compiles: no FX-graph cache from earlier runs (a warm cache brings the first call down to seconds).
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="xclip-inductor-")
    import torch._dynamo
    import torch._inductor.config as inductor_config

    inductor_config.fx_graph_cache = False
    torch.compile(lambda x: x * 2)(torch.ones(2, device=bench.device))  # one-off inductor start-up, paid by neither
    for name, options in COMPILE_VARIANTS.items():
        torch._dynamo.reset()
        compiled = {
            "ours": torch.compile(ours.get_video_features, options=options),
            "transformers": torch.compile(theirs.get_video_features, options=options),
        }
        with torch.no_grad():
            compile_s = {
                key: time_once(lambda fn=fn: fn(pixel_values=pixels), bench.device) for key, fn in compiled.items()
            }
            reference = ours.get_video_features(pixels).pooler_output
            check_close(compiled["ours"](pixel_values=pixels).pooler_output, reference, bench.dtype)
            check_close(_features(compiled["transformers"](pixel_values=pixels)), reference, bench.dtype)
            cpu: dict[str, list[float]] = {}
            times = time_interleaved(
                {
                    "ours": lambda: compiled["ours"](pixel_values=pixels),  # noqa: F821 (deleted after use)
                    "transformers": lambda: compiled["transformers"](pixel_values=pixels),  # noqa: F821
                    "eager": lambda: ours.get_video_features(pixels),
                },
                repeats=repeats,
                warmup=args.warmup,
                device=bench.device,
                cpu_times=cpu,
            )
        case = f"{spec.name} {frames}f, {name}, both compiled"
        extra = {
            "compile time s (ours / transformers)": f"{compile_s['ours']:.1f} / {compile_s['transformers']:.1f}",
            "ours eager s": round(median(times["eager"]), 3),
            "ours compiled vs ours eager (wall)": f"{median(times['eager']) / median(times['ours']):.2f}x",
        }
        if cpu:
            extra["ours compiled vs ours eager (CPU time)"] = f"{median(cpu['eager']) / median(cpu['ours']):.2f}x"
        extra.update(timing_notes(times, cpu, bench.device))
        extra["cpu_times"] = cpu
        bench.add(Row("compile", case, median(times["ours"]), median(times["transformers"]), runs=repeats, extra=extra))
        del compiled
    torch._dynamo.reset()


# ---------------------------------------------------------------------------------------------------------- child
def child_memory(payload: dict[str, Any]) -> dict[str, Any]:
    """One measurement in a fresh process: load the model, reset the peak mark, run once, read the peak."""
    quiet_transformers()
    torch.set_num_threads(payload["threads"])
    device, dtype = payload["device"], DTYPES[payload["dtype"]]
    spec, frames = SPECS[payload["spec"]], payload["frames"]
    model = load_models(Path(payload["path"]), device, dtype, (payload["impl"],))[payload["impl"]]
    impl, kind = payload["impl"], payload["kind"]
    vocab = model.config.text_config.vocab_size
    if kind == "inference":
        pixels = video_inputs(spec, 1, frames, device, dtype)

        def run():
            with torch.inference_mode():
                if impl == "ours":
                    return model.get_video_features(pixels)
                return model.get_video_features(pixel_values=pixels)
    elif kind == "zeroshot":
        pixels = video_inputs(spec, 1, frames, device, dtype)
        inputs = {k: v.to(device) for k, v in tokenize(label_names(payload["labels"]), vocab).items()}
        if impl == "ours":
            with torch.inference_mode():
                text_embeds = model.get_text_features(**inputs).pooler_output

        def run():
            with torch.inference_mode():
                if impl == "ours":
                    return model(text_embeds=text_embeds, pixel_values=pixels)
                return model(**inputs, pixel_values=pixels)
    else:
        inputs, labels = training_inputs(
            spec, frames, payload["train_batch"], payload["train_labels"], device, dtype, vocab
        )
        prepare_training(model, payload["checkpointing"])
        # Forward + backward only, gradients kept from the warm-up (accumulated, not freed): the peak above the
        # baseline is what the model needs for a step, activations and temporaries, the part gradient checkpointing
        # changes. The optimizer's own memory is the same for both implementations.
        run = train_step_fn(model, impl, inputs, labels)

    run()  # warm-up: pages in the (memory-mapped) weights, creates the optimizer state, one-off buffers
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 2**20
        run()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20
        return {
            "peak_mib": peak - base,
            "base_mib": base,
            "total_peak_mib": peak,
            "measure": "cuda max_memory_allocated above the loaded model",
        }
    base, _ = rss_mib()
    exact = reset_peak_rss()
    run()
    _, peak = rss_mib()
    measure = "peak RSS above the loaded, warmed-up model" if exact else "ru_maxrss (includes loading) above baseline"
    return {"peak_mib": max(peak - base, 0.0), "base_mib": base, "total_peak_mib": peak, "measure": measure}


# ---------------------------------------------------------------------------------------------------------- plots
def write_plots(series: dict[str, Any], folder: Path, device: str, dtype: str) -> list[Path]:
    """benchmarks_labels.png (zero-shot videos/s against label count) and benchmarks_frames.png (video forward
    videos/s against frame count) from the `series` of a run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

    def log_axis(ax, ticks: list[int], base: int = 10) -> None:
        ax.set_xscale("log", base=base)
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(ScalarFormatter())

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    labels = sorted(series.get("zeroshot_throughput_vs_labels") or [], key=lambda p: p["labels"])
    if labels:
        fig, ax = plt.subplots(figsize=(6, 4))
        xs = [p["labels"] for p in labels]
        ax.plot(xs, [p["ours_videos_per_s"] for p in labels], "o-", label="hf_xclip (labels encoded once)")
        ax.plot(xs, [p["transformers_videos_per_s"] for p in labels], "s--", label="transformers (forward per video)")
        log_axis(ax, xs)
        written.append(
            _finish_plot(
                plt,
                fig,
                ax,
                "number of labels",
                "videos / s",
                f"Zero-shot throughput, {labels[0]['videos']} videos ({device}, {dtype})",
                folder / "benchmarks_labels.png",
            )
        )
    frames = series.get("video_throughput_vs_frames")
    if frames:
        fig, ax = plt.subplots(figsize=(6, 4))
        for spec_name in dict.fromkeys(p["spec"] for p in frames):
            pts = sorted((p for p in frames if p["spec"] == spec_name), key=lambda p: p["frames"])
            xs = [p["frames"] for p in pts]
            ax.plot(xs, [p["ours_videos_per_s"] for p in pts], "o-", label=f"hf_xclip {spec_name}")
            ax.plot(xs, [p["transformers_videos_per_s"] for p in pts], "s--", label=f"transformers {spec_name}")
        log_axis(ax, sorted({p["frames"] for p in frames}), base=2)
        written.append(
            _finish_plot(
                plt,
                fig,
                ax,
                "frames per video",
                "videos / s (video forward)",
                f"Video forward throughput, 1 video per call ({device}, {dtype})",
                folder / "benchmarks_frames.png",
            )
        )
    return written


def _finish_plot(plt, fig, ax, xlabel: str, ylabel: str, title: str, path: Path) -> Path:
    """Axis labels, title, grid and legend of a throughput plot; saves it to `path` and closes the figure."""
    ax.set_ylim(bottom=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="B/32 only, fewer labels, frames and runs.")
    parser.add_argument("--smoke", action="store_true", help="Tiny random models: checks the script in seconds.")
    parser.add_argument(
        "--sections",
        default=",".join(DEFAULT_SECTIONS),
        help=f"Comma-separated subset of {SECTIONS} ('all' for every one; compile is not in the default).",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default=None, help="fp32 on CPU, bf16 on CUDA by default.")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's).")
    parser.add_argument("--repeats", type=int, default=None, help="Timed runs per case (median reported).")
    parser.add_argument("--warmup", type=int, default=1, help="Untimed warm-up rounds per case.")
    parser.add_argument("--videos", type=int, default=None, help="Videos of the zero-shot section.")
    parser.add_argument("--labels", default=None, help="Comma-separated label counts of the zero-shot section.")
    parser.add_argument("--workdir", default=None, help="Folder for the random checkpoints (kept; temp by default).")
    parser.add_argument("--json", default=None, help="Output JSON (default bench/results/bench_model[_quick].json).")
    parser.add_argument("--plot", default=None, help="Folder to write benchmarks_labels.png / benchmarks_frames.png.")
    parser.add_argument(
        "--replot", default=None, help="Only redraw the plots (into --plot, default docs/) from a JSON."
    )
    parser.add_argument(
        "--train-repeats",
        type=int,
        default=None,
        help="Timed runs per training case (default 3; 2 with --quick / --smoke).",
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child or args.replot:
        return args
    args.dtype = args.dtype or ("bf16" if args.device.startswith("cuda") else "fp32")
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    if args.sections == ["all"]:
        args.sections = list(SECTIONS)
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {SECTIONS}")
    if args.smoke:
        args.specs, args.frames = ["tiny"], {"tiny": [4, 8]}
        defaults = dict(
            repeats=3,
            videos=2,
            labels="8,32",
            text_labels=32,
            train_batch=2,
            train_labels=4,
            train_repeats=2,
            video_batch=1,
            zeroshot_batched=True,
            batched_repeats=2,
        )
    elif args.quick:
        args.specs, args.frames = ["B/32"], {"B/32": [8, 16]}
        defaults = dict(
            repeats=3,
            videos=2,
            labels="16,100",
            text_labels=64,
            train_batch=1,
            train_labels=8,
            train_repeats=2,
            video_batch=1,
            zeroshot_batched=False,
            batched_repeats=2,
        )
    else:
        args.specs, args.frames = ["B/32", "B/16"], {"B/32": [8, 4, 16], "B/16": [8, 16]}
        defaults = dict(
            repeats=3,
            videos=3,
            labels="8,32,100,400",
            text_labels=100,
            train_batch=2,
            train_labels=8,
            train_repeats=3,
            video_batch=1,
            zeroshot_batched=True,
            batched_repeats=3,
        )
    for key, value in defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    args.labels = [int(x) for x in str(args.labels).split(",")]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        payload = json.loads(args.child)
        print(json.dumps(child_memory(payload)))
        return 0
    if args.replot:
        saved = json.loads(Path(args.replot).read_text())
        device = saved["machine"].get("device", "cpu")
        dtype = saved.get("dtype") or ("bf16" if device.startswith("cuda") else "fp32")
        for plot in write_plots(saved["series"], Path(args.plot or "docs"), device, dtype):
            print(f"wrote {plot}")
        return 0
    quiet_transformers()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    bench = Bench(args)
    info = machine_info(args.device)
    print(
        f"# bench_model on {info['cpu_model']} ({info['cpu_count']} CPUs, {info['torch_threads']} torch threads), "
        f"torch {info['torch']}, transformers {info['transformers']}, {args.device} {args.dtype}",
        flush=True,
    )
    started = time.perf_counter()
    for section in SECTIONS:
        if section in args.sections:
            print(f"## {section}", flush=True)
            section_start = time.perf_counter()
            globals()[f"section_{section}"](bench)
            print(f"   ({time.perf_counter() - section_start:.0f} s)", flush=True)
    info["loadavg_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    info["total_s"] = round(time.perf_counter() - started, 1)
    table = markdown_table(bench.rows)
    print()
    print(table)
    command = "python bench/bench_model.py " + " ".join(sys.argv[1:] if argv is None else argv)
    name = "bench_model_smoke" if args.smoke else "bench_model_quick" if args.quick else "bench_model"
    path = Path(args.json) if args.json else RESULTS_DIR / f"{name}.json"
    payload = {
        "command": command.strip(),
        "dtype": args.dtype,
        "machine": info,
        "matmul_peak_gflops": bench.peak_gflops,
        "rows": [row.to_dict() for row in bench.rows],
        "series": bench.series,
        "table_markdown": table,
    }
    write_json(path, payload)
    print(f"\nwrote {path} ({info['total_s']} s)")
    if args.plot:
        for plot in write_plots(bench.series, Path(args.plot), args.device, args.dtype):
            print(f"wrote {plot}")
    slow = [row for row in bench.rows if row.unit == "s" and row.ratio < 0.95]
    if slow:
        print("rows where hf_xclip is slower than 0.95x transformers: " + "; ".join(r.case for r in slow))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
