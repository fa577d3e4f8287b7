"""Start-up time of the `hf-xclip` command and of `import hf_xclip`: this tree against a reference tree (e.g. the
main checkout before lazy imports), measured in the same run, interleaved, in fresh processes.

    python bench/bench_startup.py --reference /work/main --repeats 3

Each row is the median wall time of a fresh `hf-xclip ...` (the console script's code, or `python -c ...`)
with PYTHONPATH set to the tree, plus whether torch / transformers were imported (`-X importtime` of the same command).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMANDS = [
    "convert",
    "classify",
    "timeline",
    "demo",
    "finetune",
    "evaluate",
    "calibrate",
    "export",
    "labels",
    "index",
    "search",
]


# What the `hf-xclip` console script runs (its argv follows).
ENTRY = ["-c", "import sys; from hf_xclip.cli import main; sys.exit(main())"]


def cases() -> list[tuple[str, list[str]]]:
    """(row name, argv after `python`) for every measured command."""
    rows = [
        ("import hf_xclip", ["-c", "import hf_xclip"]),
        ("hf-xclip --help", [*ENTRY, "--help"]),
        ("hf-xclip classify (argument error)", [*ENTRY, "classify"]),
    ]
    rows += [(f"hf-xclip {name} --help", [*ENTRY, name, "--help"]) for name in COMMANDS]
    return rows


def run_once(tree: Path, argv: list[str]) -> float:
    """Wall seconds of one fresh process."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    start = time.perf_counter()
    # run in the tree: `python -c` puts the working directory first on sys.path
    subprocess.run([sys.executable, *argv], env=env, cwd=tree, capture_output=True, text=True, check=False)
    return time.perf_counter() - start


def heavy_imports(tree: Path, argv: list[str]) -> set[str]:
    """Which of torch / transformers one fresh process imports (`python -X importtime`)."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    command = [sys.executable, "-X", "importtime", *argv]
    done = subprocess.run(command, env=env, cwd=tree, capture_output=True, text=True, check=False)
    if done.returncode not in (0, 2):
        raise RuntimeError(f"{' '.join(argv)} failed in {tree}: {done.stderr[-500:]}")
    lines = [line for line in done.stderr.splitlines() if line.startswith("import time:")]
    names = {line.rsplit("|", 1)[-1].strip() for line in lines}
    return {name for name in ("torch", "transformers") if name in names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, required=True, help="the tree to compare with (e.g. /work/main)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"load average: {os.getloadavg()[0]:.2f}  python {sys.version.split()[0]}")
    print(f"{'command':<38} {'reference s':>11} {'this tree s':>11}  imports (ref -> this)")
    for name, argv in cases():
        times: dict[Path, list[float]] = {args.reference: [], REPO: []}
        heavy = {tree: heavy_imports(tree, argv) for tree in (args.reference, REPO)}
        for _ in range(args.repeats):
            for tree in (args.reference, REPO):  # interleaved: both see the same load
                times[tree].append(run_once(tree, argv))
        ref, this = (statistics.median(times[tree]) for tree in (args.reference, REPO))
        shown = " -> ".join(",".join(sorted(heavy[tree])) or "-" for tree in (args.reference, REPO))
        print(f"{name:<38} {ref:>11.2f} {this:>11.2f}  {shown}")


if __name__ == "__main__":
    main()
