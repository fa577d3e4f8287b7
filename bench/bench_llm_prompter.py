"""Cost of the language-model label prompter (`--method llm-prompts`): encoding the 400 Kinetics labels through it,
against plain label encoding and against a label bank, measured in one run; and the cost model of a 1B-parameter
language model, measured on slices of one.

X-CLIP: random weights of the released B/32 shape (text tower 512 wide, 12 layers), the real CLIP tokenizer from
`../shared/reference`. Language model: a tiny random Llama (64 wide, 2 layers, 4 heads) reading the labels with the
CLIP BPE vocabulary; prompter defaults (4 soft tokens from "a video of a", a 256-wide one-layer prompting transformer).

Rows (seconds for all labels, medians over rounds run in alternating order, each from an empty cache):

* `plain`: `LabelEncoder.encode_labels` without a prompter (the reference: ratio = row / plain);
* `plain, 'a video of a {}'`: the same with 4 more words per text, i.e. as many text tokens as the prompted texts;
* `prompter`: the same with the prompter attached (language model + prompting transformer + text tower with 4 more
  tokens);
* `prompter: language model only` / `prompter: prompting transformer only`: its two parts;
* `bank: load + check + rows`: `LabelBank.load`, the fingerprint check against the model (hashes the text side), and
  the rows of the labels; `bank: rows only`: the lookup of an already loaded, checked bank.

Memory: peak resident memory of a fresh process loading the model (+ prompter) and encoding the labels, above the
same process after loading (child processes; `MALLOC_MMAP_THRESHOLD_` so that freed memory leaves the RSS).

Cost model: a Llama-3.2-1B-shaped language model (2048 wide, FFN 8192, 32 heads, 8 KV heads) with 1 and 2 layers is
timed reading the labels (states at the 4 prompt tokens; process CPU time, steadier than wall time on a shared
machine); the per-layer time (2 layers minus 1) is extrapolated to 16 layers and set against the FLOPs counted by
`torch.utils.flop_counter` and this machine's matmul rate.

    python bench/bench_llm_prompter.py           # 400 labels, 3 rounds (a few minutes on 2 busy cores)
    python bench/bench_llm_prompter.py --quick   # 100 labels, 1 round, no 2-layer slice
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
import transformers  # noqa: E402
from common import (  # noqa: E402
    REFERENCE_DIR,
    RESULTS_DIR,
    SPECS,
    checkpoint_dir,
    count_flops,
    machine_info,
    matmul_peak,
    median,
    quiet_transformers,
    reset_peak_rss,
    rss_mib,
    run_child,
    time_interleaved,
)

# Llama-3.2-1B's shape (its config: 16 layers, hidden 2048, FFN 8192, 32 heads, 8 KV heads, vocab 128256, tied
# input/output embeddings, 1.24 B parameters).
ONE_B = dict(hidden_size=2048, intermediate_size=8192, num_attention_heads=32, num_key_value_heads=8)
ONE_B_LAYERS, ONE_B_VOCAB, ONE_B_PARAMS = 16, 128_256, 1.236e9
TINY_LM = dict(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2, num_hidden_layers=2)


def kinetics_labels(count: int) -> list[str]:
    from hf_xclip.labels import read_label_file

    path = REFERENCE_DIR / "labels" / "kinetics_400_labels.csv"
    if not path.is_file():
        sys.exit(f"{path} not found: this benchmark needs ../shared/reference")
    return read_label_file(path)[:count]


def clip_tokenizer():
    return transformers.CLIPTokenizer.from_pretrained(str(REFERENCE_DIR / "clip-tokenizer"), model_max_length=77)


def save_llama(out: Path, tokenizer, **sizes) -> Path:
    if not (out / "config.json").is_file():
        config = transformers.LlamaConfig(
            vocab_size=len(tokenizer),
            max_position_embeddings=128,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **sizes,
        )
        torch.manual_seed(0)
        transformers.AutoModelForCausalLM.from_config(config).save_pretrained(out)
        tokenizer.save_pretrained(out)
    return out


def load_xclip(path: Path):
    from hf_xclip import XClipModel

    return XClipModel.from_pretrained(path, attn_implementation="sdpa").eval()


def make_prompter(model, tokenizer, lm_dir: Path):
    from hf_xclip.language.prompter import LLMPrompterConfig, XClipLLMPrompter

    torch.manual_seed(0)
    return XClipLLMPrompter.for_model(model, tokenizer, LLMPrompterConfig(language_model=str(lm_dir))).eval()


# ---------------------------------------------------------------------------------------------------------- child


def child(payload: dict) -> dict:
    """Peak RSS above the loaded state while encoding the labels (one configuration)."""
    from hf_xclip.labels import LabelEncoder
    from hf_xclip.language.prompter import attach_label_prompter

    quiet_transformers()
    torch.set_num_threads(payload["threads"])
    tokenizer = clip_tokenizer()
    labels = kinetics_labels(payload["labels"])
    model = load_xclip(Path(payload["xclip"]))
    if payload["prompter"]:
        prompter = make_prompter(model, tokenizer, Path(payload["lm"]))
        attach_label_prompter(model, prompter)
        prompter.language_model()
    loaded, _ = rss_mib()
    reset_peak_rss()
    start = time.perf_counter()
    LabelEncoder(model, tokenizer).encode_labels(labels)
    seconds = time.perf_counter() - start
    _, peak = rss_mib()
    return {"loaded_mib": loaded, "peak_mib": peak, "extra_mib": peak - loaded, "seconds": seconds}


# ---------------------------------------------------------------------------------------------------------- main


def time_labels(xclip: Path, lm_dir: Path, labels: list[str], rounds: int, workdir: Path) -> dict[str, list[float]]:
    from hf_xclip.labels import LabelBank, LabelEncoder
    from hf_xclip.language.prompter import attach_label_prompter

    tokenizer = clip_tokenizer()
    plain_model, prompted_model = load_xclip(xclip), load_xclip(xclip)
    prompter = make_prompter(prompted_model, tokenizer, lm_dir)
    attach_label_prompter(prompted_model, prompter)
    bank_path = LabelEncoder(prompted_model, tokenizer).bank(labels).save(workdir / "kinetics.bank")
    loaded_bank = LabelBank.load(bank_path)
    checked = LabelEncoder(prompted_model, tokenizer)
    checked.check_bank(loaded_bank)

    def bank_full():
        bank = LabelBank.load(bank_path)
        encoder = LabelEncoder(prompted_model, tokenizer)
        return encoder.embeddings_with_bank(bank, labels)

    batch = prompter.config.lm_batch_size

    @torch.no_grad()
    def lm_only():
        return [prompter.language_model_states(labels[i : i + batch]) for i in range(0, len(labels), batch)]

    states = torch.cat(lm_only())

    @torch.no_grad()
    def mapper_only():
        return prompter.map_states(states)

    fns = {
        "plain": lambda: LabelEncoder(plain_model, tokenizer).encode_labels(labels),
        "plain, 'a video of a {}' (as many tokens as prompted)": lambda: LabelEncoder(
            plain_model, tokenizer
        ).encode_labels(labels, "a video of a {}"),
        "prompter": lambda: LabelEncoder(prompted_model, tokenizer).encode_labels(labels),
        "prompter: language model only": lm_only,
        "prompter: prompting transformer only": mapper_only,
        "bank: load + check + rows": bank_full,
        "bank: rows only": lambda: checked.embeddings_with_bank(loaded_bank, labels),
    }
    same = torch.equal(bank_full(), LabelEncoder(prompted_model, tokenizer).encode_labels(labels))
    cpu: dict[str, list[float]] = {}
    times = time_interleaved(fns, repeats=rounds, warmup=1, device="cpu", cpu_times=cpu)
    times.update({f"_cpu {name}": values for name, values in cpu.items()})
    times["_bank_equals_on_the_fly"] = [float(same)]
    times["_parameters"] = [
        float(sum(p.numel() for p in prompter.parameters())),
        float(sum(p.numel() for p in prompter.language_model()[0].parameters())),
    ]
    return times


def cost_model(labels: list[str], workdir: Path, layer_counts: list[int]) -> dict:
    """Seconds and FLOPs of 1B-shaped Llama slices reading the labels; extrapolation to 16 layers."""
    from hf_xclip.language.causal_lm import language_model_signature
    from hf_xclip.language.prompter import LLMPrompterConfig, XClipLLMPrompter

    tokenizer = clip_tokenizer()
    rows = {}
    for layers in layer_counts:
        lm_dir = save_llama(workdir / f"llama-1b-shape-{layers}l", tokenizer, num_hidden_layers=layers, **ONE_B)
        lm = transformers.AutoModelForCausalLM.from_pretrained(lm_dir).eval().requires_grad_(False)
        config = LLMPrompterConfig(language_model=str(lm_dir))
        prompter = XClipLLMPrompter(
            config,
            num_prompt_tokens=4,
            text_hidden_size=512,
            lm_hidden_size=ONE_B["hidden_size"],
            lm_signature=language_model_signature(lm.config),
            language_model=lm,
            lm_tokenizer=tokenizer,
        ).eval()
        batch = config.lm_batch_size

        @torch.no_grad()
        def run():
            return [prompter.language_model_states(labels[i : i + batch]) for i in range(0, len(labels), batch)]

        flops, _ = count_flops(run)
        cpu: dict[str, list[float]] = {}
        times = time_interleaved({"lm": run}, repeats=1, warmup=1, device="cpu", cpu_times=cpu)["lm"]
        rows[layers] = {"seconds": median(times), "cpu_seconds": median(cpu["lm"]), "flops": flops}
    token_counts = [len(ids) for ids in tokenizer(labels)["input_ids"]]
    return {"slices": rows, "tokens_per_label": sum(token_counts) / len(token_counts) + 4}


def print_report(report: dict) -> None:
    times = report["times"]
    plain = median(times["plain"])
    print(
        f"\nEncoding {report['labels']} Kinetics labels (X-CLIP B/32 text tower, random weights; tiny Llama "
        f"{report['lm_parameters'] / 1e6:.1f} M parameters; prompter {report['prompter_parameters'] / 1e6:.2f} M)"
    )
    print(f"load average at start {report['machine'].get('loadavg_start')}, torch threads {report['threads']}\n")
    plain_cpu = median(times["_cpu plain"])
    print("| row | wall s (median) | per label | / plain | CPU s (median) | / plain (CPU) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, values in times.items():
        if name.startswith("_"):
            continue
        seconds, cpu = median(values), median(times[f"_cpu {name}"])
        print(
            f"| {name} | {seconds:.3f} | {seconds / report['labels'] * 1e3:.2f} ms | {seconds / plain:.2f}x | "
            f"{cpu:.3f} | {cpu / plain_cpu:.2f}x |"
        )
    print(f"\nbank rows equal on-the-fly encoding: {bool(times['_bank_equals_on_the_fly'][0])}")
    memory = report["memory"]
    print("\n| peak memory while encoding | loaded (MiB) | extra while encoding (MiB) | seconds |")
    print("| --- | --- | --- | --- |")
    for name, row in memory.items():
        print(f"| {name} | {row['loaded_mib']:.0f} | {row['extra_mib']:.0f} | {row['seconds']:.2f} |")
    cost = report["cost_model"]
    slices = cost["slices"]
    layers = sorted(int(k) for k in slices)
    first = slices[layers[0]] if layers[0] in slices else slices[str(layers[0])]
    per_layer = first["cpu_seconds"] / layers[0]
    flops_per_layer = first["flops"] / layers[0]
    if len(layers) > 1:
        second = slices[layers[1]] if layers[1] in slices else slices[str(layers[1])]
        per_layer = (second["cpu_seconds"] - first["cpu_seconds"]) / (layers[1] - layers[0])
        flops_per_layer = (second["flops"] - first["flops"]) / (layers[1] - layers[0])
    total_seconds = per_layer * ONE_B_LAYERS
    total_flops = flops_per_layer * ONE_B_LAYERS
    peak = report["matmul_gflops"]
    print(
        f"\nCost model, Llama-3.2-1B shape ({ONE_B_LAYERS} layers x hidden {ONE_B['hidden_size']}), "
        f"{report['labels']} labels, {cost['tokens_per_label']:.1f} tokens per label (label + 4 prompt tokens):"
    )
    for count in layers:
        row = slices[count] if count in slices else slices[str(count)]
        print(
            f"  measured, {count} layer(s): {row['seconds']:.2f} s wall, {row['cpu_seconds']:.2f} CPU s, "
            f"{row['flops'] / 1e12:.3f} TFLOP"
        )
    print(
        f"  per layer: {per_layer:.2f} CPU s, {flops_per_layer / 1e9:.1f} GFLOP -> 16 layers: {total_seconds:.1f} CPU s "
        f"(one core), {total_flops / 1e12:.2f} TFLOP ({total_flops / report['labels'] / 1e9:.1f} GFLOP per label)"
    )
    print(
        f"  this machine's fp32 matmul rate: {peak['per_cpu_second']:.0f} GFLOP per CPU second -> FLOP-bound "
        f"estimate {total_flops / (peak['per_cpu_second'] * 1e9):.1f} CPU s"
    )
    print(
        f"  weights: {ONE_B_PARAMS * 4 / 2**30:.1f} GiB fp32, {ONE_B_PARAMS * 2 / 2**30:.1f} GiB bf16, "
        f"{ONE_B_PARAMS / 2**30:.1f} GiB int8 (+ activations of one batch of {64} labels: "
        f"{64 * cost['tokens_per_label'] * ONE_B['hidden_size'] * 4 * 12 / 2**20:.0f} MiB order)"
    )
    print(
        f"  an H200 at ~790 TFLOP/s bf16 would need {total_flops / 790e12 * 1e3:.1f} ms of matmul time: the "
        "language model runs once per label, then the bank holds the result"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 labels, 1 round, 1-layer slice only")
    parser.add_argument("--labels", type=int, help="number of Kinetics labels (default 400)")
    parser.add_argument("--rounds", type=int, help="timed rounds (default 3)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--workdir", type=Path, help="where the random checkpoints go (default: a temp folder)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    quiet_transformers()
    torch.set_num_threads(args.threads)
    count = args.labels or (100 if args.quick else 400)
    rounds = args.rounds or (1 if args.quick else 3)
    labels = kinetics_labels(count)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-llm-"))
    machine = machine_info("cpu")
    xclip = checkpoint_dir(SPECS["B/32"], 8, workdir)
    lm_dir = save_llama(workdir / "tiny-llama", clip_tokenizer(), **TINY_LM)
    start = time.perf_counter()
    times = time_labels(xclip, lm_dir, labels, rounds, workdir)
    payload = {"xclip": str(xclip), "lm": str(lm_dir), "labels": count, "threads": args.threads}
    memory = {
        name: run_child(Path(__file__), {**payload, "prompter": on})
        for name, on in (("plain", False), ("prompter", True))
    }
    cost = cost_model(labels, workdir, [1] if args.quick else [1, 2])
    report = {
        "labels": count,
        "threads": args.threads,
        "machine": machine,
        "times": times,
        "prompter_parameters": times["_parameters"][0],
        "lm_parameters": times["_parameters"][1],
        "memory": memory,
        "cost_model": cost,
        "matmul_gflops": matmul_peak("cpu", torch.float32, seconds=2.0),
        "seconds": time.perf_counter() - start,
        "loadavg_end": os.getloadavg(),
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "bench_llm_prompter.json").write_text(json.dumps(report, indent=2, default=str))
    print_report(report)
    print(f"\nload average at end {report['loadavg_end']}; {report['seconds']:.0f} s in all")


if __name__ == "__main__":
    main()
