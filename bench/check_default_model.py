"""Check that the shipped default model is reproduced by its training script.

Retrains the first ``--steps`` steps (default 30; ``--steps 0`` = the whole run, which also re-measures the
accuracies) with the settings recorded in ``hf_xclip/default_model/training_log.json`` and compares the loss of
every step with the recorded curve. On the torch build that trained the model the curves are bit-identical
(one CPU thread, deterministic algorithms, seeded clips); another torch / CPU may differ by rounding, hence the
tolerance. Prints a table, writes ``bench/results/check_default_model.json``, exits 1 on a mismatch.

    python bench/check_default_model.py [--steps 30] [--tolerance 1e-4]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

import hf_xclip
from hf_xclip.embedded_model.training import LOG_FILE, DefaultModelTrainingConfig, evaluate_zero_shot, train

RESULTS = Path(__file__).resolve().parent / "results" / "check_default_model.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30, help="steps to retrain (0 = all)")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest allowed |loss difference|")
    args = parser.parse_args(argv)

    record = json.loads((Path(hf_xclip.default_model_path()) / LOG_FILE).read_text(encoding="utf-8"))
    config = DefaultModelTrainingConfig(**record["settings"])
    steps = args.steps or config.steps
    start = time.perf_counter()
    model, tokenizer, processor, log = train(config, max_steps=steps, verbose=False)
    seconds = time.perf_counter() - start
    recorded, rerun = record["losses"][:steps], log["losses"]
    diffs = [abs(a - b) for a, b in zip(recorded, rerun)]
    exact = sum(a == b for a, b in zip(recorded, rerun))
    print(f"{'step':>5}  {'recorded':>10}  {'retrained':>10}  {'|diff|':>9}")
    for i in sorted({0, 1, 2, steps // 2, steps - 1}):
        print(f"{i:5d}  {recorded[i]:10.6f}  {rerun[i]:10.6f}  {diffs[i]:9.2e}")
    ok = max(diffs) <= args.tolerance
    print(
        f"{steps} steps in {seconds:.0f} s; bit-identical losses: {exact}/{steps}; max |diff| {max(diffs):.2e} "
        f"(tolerance {args.tolerance:g}); recorded with torch {record['environment']['torch']}, now {torch.__version__}"
    )
    result = {
        "steps": steps,
        "seconds": seconds,
        "max_abs_diff": max(diffs),
        "bit_identical_steps": exact,
        "tolerance": args.tolerance,
        "ok": ok,
        "torch_recorded": record["environment"]["torch"],
        "torch_now": torch.__version__,
    }
    if steps == config.steps:
        metrics = evaluate_zero_shot(
            model, tokenizer, processor, seed=config.eval_seed, clips_per_class=config.eval_clips_per_class
        )
        result["metrics"], result["metrics_recorded"] = metrics, record["metrics"]
        for split in ("seen", "heldout"):
            print(
                f"{split}: same-shape accuracy {metrics[split]['accuracy_same_shape']:.3f} "
                f"(recorded {record['metrics'][split]['accuracy_same_shape']:.3f})"
            )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print("OK: the retrained loss curve matches the recorded one" if ok else "MISMATCH with the recorded loss curve")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
