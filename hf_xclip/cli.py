"""`hf-xclip` command line: one sub-command per module in `hf_xclip.commands`, and what they share (exit codes,
the usage error, the model argument). Commands import the library and this module, never each other."""

from __future__ import annotations

import argparse
import importlib
import sys

# Each entry is a module of hf_xclip.commands defining `add_parser(subparsers)` and `run(args) -> int`.
COMMANDS: list[str] = [
    "convert", "classify", "demo", "finetune", "evaluate", "calibrate", "export", "index", "search",
]

# Exit status of every command: success, some items failed (the others were still done), bad input.
EXIT_OK, EXIT_FAILURES, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad command-line input (exit status `EXIT_USAGE`)."""


def model_or_default(model: str | None) -> str:
    """`--model`, or the embedded default model when it is not given.

    Raises:
        UsageError: no `--model` and the package was installed without its default model.
    """
    if model:
        return model
    from .defaults import default_model_path

    try:
        return default_model_path()
    except FileNotFoundError as err:
        raise UsageError(f"no --model given and {err}") from None


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
