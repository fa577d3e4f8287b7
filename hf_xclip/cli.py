"""`hf-xclip` command line: one sub-command per module in `hf_xclip.commands`."""

from __future__ import annotations

import argparse
import importlib
import sys

# Each entry is a module of hf_xclip.commands defining `add_parser(subparsers)` and `run(args) -> int`.
COMMANDS: list[str] = ["convert", "classify", "demo", "finetune", "evaluate"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-xclip", description="X-CLIP video-text models for Hugging Face.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"hf_xclip.commands.{name}")
        sub = module.add_parser(subparsers)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
