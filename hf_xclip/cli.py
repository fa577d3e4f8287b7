"""`hf-xclip` command line: one sub-command per module in `hf_xclip.commands`, and what they share (exit codes,
the usage error, the shared options, model loading). Commands import the library and this module
(``from .. import cli``), never each other.

This module holds the command list and `main`; what the commands share lives in the helper modules of
`hf_xclip.commands` and is re-exported here (`_usage`: exit codes and `UsageError`; `_static`: the library's
declarations read without importing it; `_options`: the shared options and their readers; `_loading`: loading a
model, its failures as one line)."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .commands._loading import (
    HUB_PROBE_SECONDS,
    OWN_MODEL_TYPES,
    check_model_source,
    explain_load_error,
    load_pipeline,
    load_with_adapter,
    loading,
    model_options,
    model_or_default,
)
from .commands._options import (
    add_command_parser,
    add_decode_argument,
    add_label_arguments,
    add_label_side_arguments,
    add_model_arguments,
    add_multi_label_method_argument,
    apply_decode_backend,
    check_at_least_one,
    option_values,
    print_summary,
    read_bank_argument,
    read_descriptions_argument,
    read_label_arguments,
    read_labels,
    require_matplotlib,
    unknown_labels,
    warn_unknown_labels,
)
from .commands._static import (
    add_dataclass_arguments,
    dataclass_from_args,
    static_dataclass,
    static_defaults,
    static_value,
)
from .commands._usage import EXIT_FAILURES, EXIT_OK, EXIT_USAGE, UsageError

# Each entry is a module of hf_xclip.commands defining `add_parser(subparsers)` and `run(args) -> int`.
COMMANDS: list[str] = [
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
    "app",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-xclip", description="X-CLIP video-text models for Hugging Face.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"hf_xclip.commands.{name}")
        sub = module.add_parser(subparsers)
        sub.set_defaults(_run=module.run)
    return parser


# Options naming a file a command writes, and options naming a folder it writes into (checked before any work).
OUTPUT_FILE_OPTIONS = {"json": "--json", "csv": "--csv", "plot": "--plot", "html": "--html"}
OUTPUT_OPTIONS = {"output": "--output", "output_dir": "--output-dir"}


def check_output_path(path: str | os.PathLike, option: str, is_file: bool = False) -> None:
    """An output path must be creatable: no regular file among its parents, not a folder when a file is written,
    not a file when a folder is, and its nearest existing folder writable.

    Raises:
        UsageError: naming the option, the path and what is in the way.
    """
    target = Path(path).expanduser()
    if is_file and target.is_dir():
        raise UsageError(f"{option} {os.fspath(path)}: is a folder; give a file name")
    if not is_file and option == "--output-dir" and target.exists() and not target.is_dir():
        raise UsageError(f"{option} {os.fspath(path)}: is a file; give a folder")
    for parent in target.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"{option} {os.fspath(path)}: {parent} is a file, not a folder; choose another path")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise UsageError(f"{option} {os.fspath(path)}: cannot write in {parent} (permission denied)")
            break


def check_output_arguments(args: argparse.Namespace) -> None:
    """`check_output_path` for every output option a command has (``-`` is stdout)."""
    for dest, option in (*OUTPUT_FILE_OPTIONS.items(), *OUTPUT_OPTIONS.items()):
        value = getattr(args, dest, None)
        if isinstance(value, (str, os.PathLike)) and os.fspath(value) != "-":
            check_output_path(value, option, is_file=dest in OUTPUT_FILE_OPTIONS)


@contextlib.contextmanager
def progress_bars(enabled: bool) -> Iterator[None]:
    """Hide the Hub's and transformers' progress bars (weight loading, downloads) under ``--no-progress``."""
    if enabled:
        yield
        return
    previous = os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS")
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"  # read when huggingface_hub / transformers are imported later
    hub = sys.modules.get("huggingface_hub.utils")
    tf_logging = sys.modules.get("transformers.utils.logging")
    hub_was_on = hub is not None and not hub.are_progress_bars_disabled()
    tf_was_on = tf_logging is not None and tf_logging.is_progress_bar_enabled()
    if hub_was_on and hub is not None:
        hub.disable_progress_bars()
    if tf_was_on and tf_logging is not None:
        tf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
        else:
            os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = previous
        if hub_was_on and hub is not None:
            hub.enable_progress_bars()
        if tf_was_on and tf_logging is not None:
            tf_logging.enable_progress_bar()


# Warnings a user can do nothing about (raised inside peft / transformers on every run with an adapter).
IGNORED_WARNINGS = (
    r"`is_gradient_checkpointing` is deprecated",  # transformers 5, when peft wraps or loads a model
)


class _JsonStdout:
    """A stdout for ``--json``: the JSON document a command prints (its last output, from a line starting with
    ``{`` or ``[``) goes to stdout, every other line (tables, summaries) to stderr as it comes."""

    def __init__(self, stdout: Any, stderr: Any) -> None:
        self.stdout, self.stderr = stdout, stderr
        self.partial = ""
        self.held: list[str] = []

    def write(self, text: str) -> int:
        self.partial += text
        *lines, self.partial = self.partial.split("\n")
        for line in lines:
            if self.held or line.lstrip().startswith(("{", "[")):
                self.held.append(line)
            else:
                self.stderr.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self.stderr.flush()

    def isatty(self) -> bool:
        return False

    def close_out(self) -> None:
        if self.partial:
            self.held.append(self.partial)
        text = "\n".join(self.held)
        candidates = [text, self.held[-1]] if self.held else []
        for candidate in candidates:
            try:
                json.loads(candidate)
            except ValueError:
                continue
            before = text[: len(text) - len(candidate)]
            if before.strip():
                self.stderr.write(before)
            self.stdout.write(candidate + "\n")
            break
        else:
            if text:
                self.stderr.write(text + "\n")
        self.stdout.flush()


@contextlib.contextmanager
def _json_alone_on_stdout(enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    stream = _JsonStdout(sys.stdout, sys.stderr)
    try:
        with contextlib.redirect_stdout(stream):
            yield
    finally:
        stream.close_out()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    name = " ".join(str(part) for part in (args.command, getattr(args, "labels_command", None)) if part)
    json_only = getattr(args, "json", None) is True  # `--json` as a flag: the JSON summary alone on stdout
    try:
        check_output_arguments(args)
        with (
            progress_bars(not getattr(args, "no_progress", False)),
            _json_alone_on_stdout(json_only),
            warnings.catch_warnings(),
        ):
            for message in IGNORED_WARNINGS:
                warnings.filterwarnings("ignore", message=message)
            return int(args._run(args) or 0)
    except UsageError as err:  # commands report their own; this catches what they let through
        print(f"hf-xclip {name}: error: {err}", file=sys.stderr)
        return EXIT_USAGE


__all__ = [
    "COMMANDS",
    "EXIT_FAILURES",
    "EXIT_OK",
    "EXIT_USAGE",
    "HUB_PROBE_SECONDS",
    "IGNORED_WARNINGS",
    "OUTPUT_FILE_OPTIONS",
    "OUTPUT_OPTIONS",
    "OWN_MODEL_TYPES",
    "UsageError",
    "add_command_parser",
    "add_dataclass_arguments",
    "add_decode_argument",
    "add_label_arguments",
    "add_label_side_arguments",
    "add_model_arguments",
    "add_multi_label_method_argument",
    "apply_decode_backend",
    "build_parser",
    "check_at_least_one",
    "check_model_source",
    "check_output_arguments",
    "check_output_path",
    "dataclass_from_args",
    "explain_load_error",
    "load_pipeline",
    "load_with_adapter",
    "loading",
    "main",
    "model_options",
    "model_or_default",
    "option_values",
    "print_summary",
    "progress_bars",
    "read_bank_argument",
    "read_descriptions_argument",
    "read_label_arguments",
    "read_labels",
    "require_matplotlib",
    "static_dataclass",
    "static_defaults",
    "static_value",
    "unknown_labels",
    "warn_unknown_labels",
]


if __name__ == "__main__":
    sys.exit(main())
