"""onnxruntime (float32 and int8) against torch eager on this CPU, in the same run: parity, speed and agreement.

Sections:
  parity     logits of the exported float32 graphs against the torch model: the embedded default model and a
             random B/32 (8 and 16 frames, several videos, 100 labels); the int8 differences next to them
  speed      B/32 video forward (`get_video_features(..., output_prompt_features=True)`, what the pipeline runs
             per video) and the text encoder (100 labels): torch eager (sdpa), ORT float32 and ORT int8
             interleaved round by round; medians of wall and process CPU time, ratios against torch
  agreement  the embedded model's synthetic evaluation (`hf_xclip.embedded_model.training.evaluate_zero_shot`'s
             clips: every one of the 204 combinations, among all captions and among the captions of its shape):
             top-1 agreement of ORT int8 (and float32) with torch float32, the largest probability difference,
             and the accuracies of all three

    python bench/bench_onnx.py --workdir /tmp/onnx-bench             # everything (25 minutes on a busy 2-core CPU,
                                                                     # 10 of them exporting the B/32)
    python bench/bench_onnx.py --workdir /tmp/onnx-bench --quick     # fewer runs and clips; reuses the exports
    python bench/bench_onnx.py --threads 1 --sections speed --quick  # one thread each: steadier on a busy machine
    python bench/bench_onnx.py --smoke                               # tiny models: checks the script

Prints markdown tables and writes JSON to bench/results/bench_onnx[_quick|_smoke].json.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import (  # noqa: E402
    RESULTS_DIR,
    SPECS,
    machine_info,
    median,
    original_init_checkpoint_dir,
    quiet_transformers,
    time_interleaved,
    write_json,
)

VARIANTS = ("torch eager", "ORT float32", "ORT int8")


# ---------------------------------------------------------------------------------------------------------- models
def exported(model, directory: Path, name: str) -> dict[str, Any]:
    """Export `model` with int8 graphs (reused from an earlier run in the same --workdir when the manifest names
    the same weights); the torch model and both ORT models, with export and load times."""
    from hf_xclip.export.onnx_export import export_onnx
    from hf_xclip.fingerprint import model_fingerprint
    from hf_xclip.modeling_ort import XClipOrtModel, is_onnx_model_dir, read_manifest

    target = directory / name
    export_s, check = None, None
    if is_onnx_model_dir(target):
        manifest = read_manifest(target)
        same = manifest["source"]["fingerprint"].get("all") == model_fingerprint(model)
        if not same or manifest.get("default_quantization") != "int8":
            export_s = "stale"
        check = manifest.get("verification")
    if export_s is not None or check is None:
        start = time.perf_counter()
        check = export_onnx(model, target, quantize="int8", overwrite=True).max_abs_diff
        export_s = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    fp32 = XClipOrtModel.from_pretrained(target, quantize="none")
    load_s = time.perf_counter() - start
    sizes = {p.name: round(p.stat().st_size / 2**20, 1) for p in sorted(target.glob("*.onnx"))}
    return {
        "torch eager": model,
        "ORT float32": fp32,
        "ORT int8": XClipOrtModel.from_pretrained(target, quantize="int8"),
        "export_s": export_s if export_s is not None else "reused",
        "load_s": round(load_s, 2),
        "sizes_mib": sizes,
        "export_check": check,
    }


def b32(frames: int, workdir: Path, smoke: bool):
    """A random B/32 (tiny with --smoke) initialised as the original X-CLIP (see `original_init_checkpoint_dir`)."""
    from hf_xclip import XClipModel

    spec = SPECS["tiny" if smoke else "B/32"]
    return spec, XClipModel.from_pretrained(original_init_checkpoint_dir(spec, frames, workdir)).eval()


def random_inputs(model, videos: int, frames: int, labels: int, seed: int = 0):
    text, vision = model.config.text_config, model.config.vision_config
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, text.vocab_size - 2, (labels, 12), generator=generator)
    ids[:, -1] = text.eos_token_id if text.eos_token_id is not None else text.vocab_size - 1
    size = vision.image_size
    return ids, torch.randn(videos, frames, 3, size, size, generator=generator)


# ---------------------------------------------------------------------------------------------------------- sections
@torch.inference_mode()
def section_parity(args, rows: list[dict], models: dict[str, dict]) -> None:
    """ORT against torch float32, with torch float32 against float64 as the noise floor of the model itself."""
    import copy

    for name, bundle in models.items():
        torch_model = bundle["torch eager"]
        float64 = copy.deepcopy(torch_model).double()
        for frames in args.parity_frames:
            ids, pixels = random_inputs(torch_model, args.parity_videos, frames, args.parity_labels, seed=frames)
            reference = torch_model(input_ids=ids, pixel_values=pixels).logits_per_video
            exact = float64(input_ids=ids, pixel_values=pixels.double()).logits_per_video
            row = {
                "model": name,
                "case": f"{args.parity_videos} videos x {frames} frames, {args.parity_labels} labels",
                "torch float32 vs float64": float(f"{(reference.double() - exact).abs().max().item():.3g}"),
            }
            for variant in ("ORT float32", "ORT int8"):
                logits = bundle[variant](input_ids=ids, pixel_values=pixels).logits_per_video
                probs = (logits.softmax(-1) - reference.softmax(-1)).abs().max().item()
                row[variant] = {
                    "max abs logit diff": float(f"{(logits - reference).abs().max().item():.3g}"),
                    "max prob diff": float(f"{probs:.3g}"),
                    "top-1 agreement": float((logits.argmax(-1) == reference.argmax(-1)).float().mean()),
                }
            rows.append(row)
            print(
                f"  parity {name:10s} {row['case']:40s} float32 {row['ORT float32']['max abs logit diff']:.1e}  "
                f"int8 {row['ORT int8']['max abs logit diff']:.1e}  (torch fp32 vs fp64 "
                f"{row['torch float32 vs float64']:.1e})",
                flush=True,
            )
        del float64


@torch.inference_mode()
def section_speed(args, rows: list[dict], bundle: dict, spec_name: str) -> None:
    model = bundle["torch eager"]
    cases = [("video forward", frames, batch) for frames, batch in args.speed_cases]
    cases.append(("text encoder", None, args.text_labels))
    for kind, frames, batch in cases:
        if kind == "video forward":
            _, pixels = random_inputs(model, batch, frames, 1, seed=batch)
            fns = {v: (lambda m=bundle[v]: m.get_video_features(pixels, output_prompt_features=True)) for v in VARIANTS}
            case = f"{spec_name} video forward, {batch} video(s) x {frames} frames"
        else:
            ids, _ = random_inputs(model, 1, 1, batch, seed=1)
            fns = {v: (lambda m=bundle[v]: m.get_text_features(input_ids=ids)) for v in VARIANTS}
            case = f"{spec_name} text encoder, {batch} labels x {ids.shape[1]} tokens"
        cpu: dict[str, list[float]] = {}
        times = time_interleaved(fns, repeats=args.repeats, warmup=args.warmup, device="cpu", cpu_times=cpu)
        row = {"case": case, "runs": args.repeats, "times": times, "cpu_times": cpu}
        base, base_cpu = median(times["torch eager"]), median(cpu["torch eager"])
        for variant in VARIANTS:
            row[variant] = {
                "median_s": median(times[variant]),
                "median_cpu_s": median(cpu[variant]),
                "speed-up (wall)": base / median(times[variant]),
                "speed-up (CPU time)": base_cpu / median(cpu[variant]),
            }
        row["int8 vs ORT float32 (wall)"] = median(times["ORT float32"]) / median(times["ORT int8"])
        rows.append(row)
        print(
            f"  speed  {case:50s} "
            + "  ".join(f"{v} {row[v]['median_s'] * 1e3:7.0f} ms ({row[v]['speed-up (wall)']:.2f}x)" for v in VARIANTS),
            flush=True,
        )


@torch.inference_mode()
def section_agreement(args, rows: list[dict], bundle: dict) -> None:
    """The clips of `evaluate_zero_shot` (every combination, `clips_per_class` each, seed 12345 as the model card)."""
    from hf_xclip import XClipProcessor, default_model_path
    from hf_xclip.data.synthetic import SyntheticVideoDataset, all_specs, heldout_specs, train_specs
    from hf_xclip.embedded_model.training import candidate_specs, frames_to_pixel_values

    processor = XClipProcessor.from_pretrained(default_model_path())
    specs = all_specs()
    tokens = processor.tokenizer([spec.caption for spec in specs], padding=True, return_tensors="pt")
    same_shape = {spec.shape: torch.tensor([other.shape == spec.shape for other in specs]) for spec in specs}
    for split, split_specs in (("seen", train_specs()), ("held-out", heldout_specs())):
        data = SyntheticVideoDataset(
            specs=split_specs,
            num_videos=args.clips_per_class * len(split_specs),
            seed=12345,
            num_frames=processor.video_processor.num_frames,
            size=processor.video_processor.crop_size["height"],
        )
        truth = [split_specs[int(data.labels[i])] for i in range(len(data))]
        models = {variant: bundle[variant] for variant in VARIANTS}
        models[ALL_LINEAR] = every_linear_layer_int8(bundle)
        logits: dict[str, list[torch.Tensor]] = {v: [] for v in models}
        text = {v: m.get_text_features(**tokens).pooler_output for v, m in models.items()}
        for begin in range(0, len(data), 64):
            indices = range(begin, min(begin + 64, len(data)))
            pixels = frames_to_pixel_values(np.stack([data.frames(i) for i in indices]), processor.video_processor)
            for variant, model in models.items():
                video = model.get_video_features(pixels, output_prompt_features=True)
                logits[variant].append(model.get_logits(video.pooler_output, text[variant], video.prompt_features)[0])
        stacked = {v: torch.cat(chunks) for v, chunks in logits.items()}
        masks = torch.stack([same_shape[t.shape] for t in truth])
        row: dict[str, Any] = {"split": split, "clips": len(data), "combinations": len(split_specs)}
        reference = stacked["torch eager"]
        for variant, values in stacked.items():
            restricted = values.masked_fill(~masks, float("-inf"))
            row[variant] = {
                "accuracy (its shape)": _accuracy(restricted, truth, specs),
                "accuracy (among all 204)": _accuracy(values, truth, specs),
            }
            if variant != "torch eager":
                ref_restricted = reference.masked_fill(~masks, float("-inf"))
                row[variant]["top-1 agreement (all 204)"] = float(
                    (values.argmax(-1) == reference.argmax(-1)).float().mean()
                )
                row[variant]["top-1 agreement (its shape)"] = float(
                    (restricted.argmax(-1) == ref_restricted.argmax(-1)).float().mean()
                )
                row[variant]["max prob diff"] = float(
                    f"{(values.softmax(-1) - reference.softmax(-1)).abs().max().item():.3g}"
                )
        chance = float(np.mean([1 / len(candidate_specs(s)) for s in split_specs]))
        row["chance (its shape)"] = round(chance, 4)
        rows.append(row)
        print(
            f"  agreement {split:8s} {len(data)} clips: int8 top-1 agreement "
            f"{row['ORT int8']['top-1 agreement (all 204)']:.1%}, max prob diff {row['ORT int8']['max prob diff']:.3f}"
            f" (every linear layer in int8: {row[ALL_LINEAR]['top-1 agreement (all 204)']:.1%})",
            flush=True,
        )


ALL_LINEAR = "ORT int8, every linear layer"


def every_linear_layer_int8(bundle: dict):
    """The rejected recipe, for comparison: every linear layer of all three graphs in int8."""
    from hf_xclip.modeling_ort import GRAPHS, XClipOrtModel, quantize_graph, require_onnxruntime

    ort = require_onnxruntime()
    source = Path(bundle["ORT float32"].name_or_path)
    target = Path(tempfile.mkdtemp(prefix="xclip-int8-all-"))
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    sessions = {}
    for graph in GRAPHS:
        quantize_graph(source / f"{graph}.onnx", target / f"{graph}.onnx", scope=None)
        sessions[graph] = ort.InferenceSession(
            str(target / f"{graph}.onnx"), options, providers=["CPUExecutionProvider"]
        )
    reference = bundle["ORT float32"]
    return XClipOrtModel(sessions, reference.config, reference.manifest, str(target), quantization="int8")


def _accuracy(logits: torch.Tensor, truth: list, specs: list) -> float:
    return float(np.mean([specs[int(i)] == t for i, t in zip(logits.argmax(-1), truth)]))


# ---------------------------------------------------------------------------------------------------------- tables
def tables(results: dict[str, Any]) -> str:
    lines = []
    if results["parity"]:
        lines += [
            "| model | case | ORT float32 vs torch: max abs logit diff | torch float32 vs float64 | ORT int8 vs "
            "torch: max abs logit diff | int8: max prob diff | int8: top-1 agreement |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for row in results["parity"]:
            f32, i8 = row["ORT float32"], row["ORT int8"]
            lines.append(
                f"| {row['model']} | {row['case']} | {f32['max abs logit diff']:.1e} | "
                f"{row['torch float32 vs float64']:.1e} | {i8['max abs logit diff']:.2g} | "
                f"{i8['max prob diff']:.3g} | {i8['top-1 agreement']:.0%} |"
            )
    if results["speed"]:
        lines += [
            "",
            "| case | torch eager | ORT float32 | ORT int8 | ORT float32 vs torch (wall / CPU time) | ORT int8 "
            "vs torch (wall / CPU time) | int8 vs ORT float32 (wall) | runs |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for row in results["speed"]:
            cells = [f"{row[v]['median_s'] * 1e3:.0f} ms" for v in VARIANTS]
            ratios = [
                f"**{row[v]['speed-up (wall)']:.2f}x** / {row[v]['speed-up (CPU time)']:.2f}x"
                for v in ("ORT float32", "ORT int8")
            ]
            lines.append(
                f"| {row['case']} | {' | '.join(cells)} | {' | '.join(ratios)} | "
                f"{row['int8 vs ORT float32 (wall)']:.2f}x | {row['runs']} |"
            )
    if results["agreement"]:
        lines += [
            "",
            "| split | clips | accuracy torch / ORT float32 / ORT int8 (its shape) | accuracy (all 204) | "
            "int8 top-1 agreement (all 204 / its shape) | int8 max prob diff | float32 top-1 agreement | every "
            "linear layer int8: top-1 agreement (all 204 / its shape) |",
            "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: |",
        ]
        for row in results["agreement"]:
            shape = " / ".join(f"{row[v]['accuracy (its shape)']:.1%}" for v in VARIANTS)
            every = " / ".join(f"{row[v]['accuracy (among all 204)']:.1%}" for v in VARIANTS)
            i8 = row["ORT int8"]
            lines.append(
                f"| {row['split']} | {row['clips']} | {shape} | {every} | "
                f"{i8['top-1 agreement (all 204)']:.1%} / {i8['top-1 agreement (its shape)']:.1%} | "
                f"{i8['max prob diff']:.3f} | {row['ORT float32']['top-1 agreement (all 204)']:.1%} | "
                f"{row[ALL_LINEAR]['top-1 agreement (all 204)']:.1%} / "
                f"{row[ALL_LINEAR]['top-1 agreement (its shape)']:.1%} |"
            )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer runs and clips (about 4 minutes)")
    parser.add_argument("--smoke", action="store_true", help="tiny models, one clip per combination: checks the script")
    parser.add_argument("--sections", default="parity,speed,agreement", help="comma-separated subset")
    parser.add_argument("--threads", type=int, default=None, help="threads of torch and onnxruntime (default: torch's)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds per speed case")
    parser.add_argument(
        "--workdir",
        default=None,
        help="folder for checkpoints and exports (temporary by default); exports there are reused",
    )
    parser.add_argument("--json", default=None, help="output JSON (default bench/results/bench_onnx[_quick].json)")
    args = parser.parse_args(argv)
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(args.sections) - {"parity", "speed", "agreement"}
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}")
    if args.smoke:
        defaults = dict(
            repeats=2,
            warmup=1,
            parity_frames=[4],
            parity_videos=2,
            parity_labels=8,
            speed_cases=[(4, 1)],
            text_labels=8,
            clips_per_class=1,
        )
    elif args.quick:
        defaults = dict(
            repeats=5,
            warmup=1,
            parity_frames=[8],
            parity_videos=2,
            parity_labels=100,
            speed_cases=[(8, 1)],
            text_labels=100,
            clips_per_class=1,
        )
    else:
        defaults = dict(
            repeats=7,
            warmup=1,
            parity_frames=[8, 16],
            parity_videos=2,
            parity_labels=100,
            speed_cases=[(8, 1), (16, 1), (8, 4)],
            text_labels=100,
            clips_per_class=4,
        )
    for key, value in defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_transformers()
    logging.getLogger("hf_xclip").setLevel(logging.ERROR)  # "exporting without a processor" for the random B/32
    if args.threads:
        torch.set_num_threads(args.threads)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="xclip-bench-onnx-"))
    info = machine_info("cpu")
    print(
        f"# bench_onnx on {info['cpu_model']} ({info['cpu_count']} CPUs, {info['torch_threads']} threads for torch "
        f"and onnxruntime), torch {info['torch']}, load average {info.get('loadavg_start')}",
        flush=True,
    )
    started = time.perf_counter()
    from hf_xclip import XClipModel, default_model_path

    spec, big = b32(8, workdir, args.smoke)
    bundles = {
        "embedded": exported(XClipModel.from_pretrained(default_model_path()).eval(), workdir, "embedded-onnx"),
        spec.name: exported(big, workdir, f"{spec.name.replace('/', '')}-onnx"),
    }
    for name, bundle in bundles.items():
        took = "reused from --workdir" if bundle["export_s"] == "reused" else f"{bundle['export_s']} s"
        print(
            f"  exported {name}: {took} (float32 + int8), graphs {bundle['sizes_mib']} MiB, "
            f"export check {bundle['export_check']}",
            flush=True,
        )
    results: dict[str, Any] = {"parity": [], "speed": [], "agreement": []}
    if "parity" in args.sections:
        section_parity(args, results["parity"], bundles)
    if "speed" in args.sections:
        section_speed(args, results["speed"], bundles[spec.name], spec.name)
    if "agreement" in args.sections:
        section_agreement(args, results["agreement"], bundles["embedded"])
    info["loadavg_end"] = os.getloadavg()
    info["total_s"] = round(time.perf_counter() - started, 1)
    table = tables(results)
    print()
    print(table)
    name = "bench_onnx_smoke" if args.smoke else "bench_onnx_quick" if args.quick else "bench_onnx"
    path = Path(args.json) if args.json else RESULTS_DIR / f"{name}.json"
    exports = {
        k: {key: b[key] for key in ("export_s", "load_s", "sizes_mib", "export_check")} for k, b in bundles.items()
    }
    command = "python bench/bench_onnx.py " + " ".join(sys.argv[1:] if argv is None else argv)
    write_json(
        path, {"command": command.strip(), "machine": info, "exports": exports, **results, "table_markdown": table}
    )
    print(f"\nwrote {path} ({info['total_s']} s, load average at the end {info['loadavg_end']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
