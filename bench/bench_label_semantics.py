"""Label semantics on the synthetic multi-label set: base / novel mAP with and without language-model descriptions,
and after multi-label fine-tuning with and without the LLM label prompter. Everything runs through the command line
(`hf-xclip labels describe`, `evaluate --annotations --novel-labels`, `finetune --train-annotations`).

Data (`hf_xclip.data.synthetic`): multi-object clips (2-3 objects, each its own shape, colour and motion; labels = their
captions). Training clips hold base objects only (the combinations the embedded default model was trained on);
evaluation clips hold at least one base and one novel object (held-out colour-motion / colour-shape pairings), so
`novel_mAP` measures labels never trained on. Model: the embedded default model (its word-level tokenizer knows the
colours, shapes and motions).

Label texts compared:

* `plain`: the captions;
* `descriptions: tiny LM`: sentences written by `hf-xclip labels describe` with a tiny random Llama that reads and
  writes the default model's own vocabulary (no world knowledge: random words of that vocabulary);
* `descriptions: compositional (hand-written)`: what a knowledgeable language model would be expected to write about
  such a clip, spelled in the model's vocabulary ("a red circle", "a circle moving left", "a red object" is not
  spellable, so the parts are pairs of the caption's attributes). Not produced by a language model: it shows what
  descriptions with content do through the same mechanism.

Fine-tuning (multi-label BCE with the sigmoid head, on base labels only, same seed and schedule): `lora` against
`lora + llm-prompts` (the tiny Llama), `llm-prompts` alone, and `lora + llm-prompts` starting from "a video of" (the
default model's own training template) instead of CoOp's "a video of a". The zero-shot row with the template
"a video of a {}" is where the prompter starts (its soft tokens equal those words before training).

    python bench/bench_label_semantics.py            # 48 training / 48 evaluation clips, 8 epochs
    python bench/bench_label_semantics.py --quick    # 16 / 16 clips, 2 epochs (a smoke run)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def hf_xclip(*argv: object) -> dict:
    """Run `hf-xclip ARGV --json`-style commands in this interpreter's environment; the last stdout line as JSON."""
    cmd = [sys.executable, "-m", "hf_xclip.cli", *map(str, argv)]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    lines = [line for line in proc.stdout.strip().splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def make_data(root: Path, num_train: int, num_eval: int, size: int) -> dict[str, Path]:
    from hf_xclip.data.synthetic import (
        all_specs,
        heldout_specs,
        novel_labels,
        sample_scenes,
        train_specs,
        write_scene_videos,
    )

    train = write_scene_videos(
        root / "train", sample_scenes(num_train, seed=1, specs=train_specs()), seed=1, num_frames=8, size=size
    )
    evaluation = write_scene_videos(
        root / "eval",
        sample_scenes(num_eval, seed=2, require=[train_specs(), heldout_specs()]),
        seed=2,
        num_frames=8,
        size=size,
    )
    novel = root / "novel_labels.txt"
    novel.write_text("\n".join(novel_labels()) + "\n", encoding="utf-8")
    every = root / "all_labels.txt"
    every.write_text("\n".join(spec.caption for spec in all_specs()) + "\n", encoding="utf-8")
    return {"train": train, "eval": evaluation, "novel": novel, "all": every}


def make_tiny_lm(root: Path) -> Path:
    """A tiny random Llama reading and writing the default model's own word-level vocabulary."""
    import torch
    import transformers

    import hf_xclip

    path = root / "tiny-llama"
    tokenizer = transformers.AutoTokenizer.from_pretrained(hf_xclip.default_model_path())
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    transformers.AutoModelForCausalLM.from_config(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def compositional_descriptions(path: Path) -> Path:
    """Pairs of each caption's attributes: "a red circle", "a circle moving left", "a red thing moving left" is not
    spellable in the vocabulary, so "red moving left"."""
    from hf_xclip.data.synthetic import all_specs

    descriptions = {
        spec.caption: [f"a {spec.colour} {spec.shape}", f"a {spec.shape} {spec.motion}", f"{spec.colour} {spec.motion}"]
        for spec in all_specs()
    }
    path.write_text(json.dumps(descriptions, indent=1), encoding="utf-8")
    return path


def maps(report: dict) -> dict:
    return {key: report.get(key) for key in ("mAP", "base_mAP", "novel_mAP")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--train-clips", type=int)
    parser.add_argument("--eval-clips", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    train_clips = args.train_clips or (16 if args.quick else 48)
    eval_clips = args.eval_clips or (16 if args.quick else 48)
    epochs = args.epochs or (2 if args.quick else 8)
    root = args.workdir or Path(tempfile.mkdtemp(prefix="bench-semantics-"))
    start = time.perf_counter()
    load_start = os.getloadavg()
    data = make_data(root, train_clips, eval_clips, size=64)
    lm = make_tiny_lm(root)

    rows: dict[str, dict] = {}
    evaluate = [
        "evaluate",
        "--annotations",
        data["eval"],
        "--novel-labels",
        data["novel"],
        "--num-workers",
        "0",
        "--no-progress",
        "--json",
    ]
    rows["zero-shot: plain"] = maps(hf_xclip(*evaluate))
    # the text the prompter starts from (soft tokens = "a video of a", before any training)
    rows["zero-shot: template 'a video of a {}' (llm-prompts' starting text)"] = maps(
        hf_xclip(*evaluate, "--template", "a video of a {}")
    )
    lm_descriptions = root / "descriptions_tiny_lm.json"
    hf_xclip(
        "labels",
        "describe",
        "--generator",
        lm,
        "--labels-file",
        data["all"],
        "--output",
        lm_descriptions,
        "--max-new-tokens",
        "12",
    )
    rows["zero-shot: descriptions, tiny LM"] = maps(hf_xclip(*evaluate, "--label-descriptions", lm_descriptions))
    hand = compositional_descriptions(root / "descriptions_compositional.json")
    rows["zero-shot: descriptions, compositional (hand-written)"] = maps(
        hf_xclip(*evaluate, "--label-descriptions", hand)
    )

    common = [
        "finetune",
        "--train-annotations",
        data["train"],
        "--eval-annotations",
        data["eval"],
        "--epochs",
        epochs,
        "--batch-size",
        8,
        "--num-workers",
        0,
        "--seed",
        0,
        "--no-progress",
        "--json",
    ]
    runs = {
        "fine-tuned: lora": ["--method", "lora"],
        "fine-tuned: lora + llm-prompts": ["--method", "lora", "llm-prompts", "--language-model", lm],
        "fine-tuned: llm-prompts": ["--method", "llm-prompts", "--language-model", lm],
        "fine-tuned: lora + llm-prompts, --llm-init-text 'a video of'": [
            "--method",
            "lora",
            "llm-prompts",
            "--language-model",
            lm,
            "--llm-init-text",
            "a video of",
        ],
    }
    for name, extra in runs.items():
        out = root / f"adapter-{len(rows)}"
        summary = hf_xclip(*common, "--output-dir", out, *extra)
        report = hf_xclip(*evaluate, "--adapter", out)
        rows[name] = {**maps(report), "seconds": summary.get("seconds"), "final_loss": summary.get("final_loss")}

    print(
        f"\nSynthetic multi-label set: {train_clips} training clips (base objects), {eval_clips} evaluation clips "
        f"(base + novel objects); embedded default model; {epochs} epochs"
    )
    print(f"load average {load_start} -> {os.getloadavg()}; {time.perf_counter() - start:.0f} s; workdir {root}\n")
    print("| labels / training | mAP | base mAP | novel mAP |")
    print("| --- | --- | --- | --- |")
    for name, row in rows.items():
        values = [f"{row[k]:.4f}" if isinstance(row.get(k), float) else "-" for k in ("mAP", "base_mAP", "novel_mAP")]
        print(f"| {name} | {' | '.join(values)} |")
    (REPO / "bench" / "results").mkdir(parents=True, exist_ok=True)
    (REPO / "bench" / "results" / "bench_label_semantics.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
