"""`hf-xclip` command line: one sub-command per module in `hf_xclip.commands`, and what they share (exit codes,
the usage error, the model argument). Commands import the library and this module, never each other."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
import types
import typing
from pathlib import Path
from typing import Any

# Each entry is a module of hf_xclip.commands defining `add_parser(subparsers)` and `run(args) -> int`.
COMMANDS: list[str] = [
    "convert", "classify", "timeline", "demo", "finetune", "evaluate", "calibrate", "export", "labels", "index",
    "search",
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
    from .embedded_model.location import default_model_path

    try:
        return default_model_path()
    except FileNotFoundError as err:
        raise UsageError(f"no --model given and {err}") from None


def add_label_side_arguments(parser: argparse.ArgumentParser, *, bank: bool = True, adapter: bool = True) -> None:
    """The label-side options every command that scores labels shares: descriptions, a label bank, and where the
    language model of an adapter's LLM prompter lives."""
    group = parser.add_argument_group("label side")
    group.add_argument(
        "--label-descriptions",
        type=Path,
        metavar="FILE.json",
        help="JSON object label -> list of sentences (e.g. from `hf-xclip labels describe`), ensembled with each label",
    )
    if bank:
        group.add_argument(
            "--label-bank",
            type=Path,
            metavar="BANK",
            help="label embeddings from `hf-xclip labels encode` (same model and adapter): its labels are not re-encoded",
        )
    if adapter:
        group.add_argument(
            "--language-model",
            metavar="NAME_OR_PATH",
            help="for an adapter with an LLM prompter: where its language model is (default: the name it was trained with)",
        )


def read_descriptions_argument(path: Path | None) -> dict[str, list[str]] | None:
    """`--label-descriptions`, read and checked.

    Raises:
        UsageError: naming the file (and label) that is wrong.
    """
    if path is None:
        return None
    from .labels import read_label_descriptions

    try:
        return read_label_descriptions(path)
    except (ValueError, FileNotFoundError) as err:
        raise UsageError(str(err)) from None


def read_bank_argument(path: Path | None) -> Any:
    """`--label-bank`, loaded (a `LabelBank`), or None.

    Raises:
        UsageError: the file is missing or not a label bank.
    """
    if path is None:
        return None
    from .labels import LabelBank

    try:
        return LabelBank.load(path)
    except (ValueError, FileNotFoundError) as err:
        raise UsageError(str(err)) from None


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """One flag per field of the dataclass `cls`, with its type, choices (a ``Literal``), default and help (its
    ``metadata["help"]``, plus the default), so that the dataclass is the one declaration of a command's options.

    A field's metadata may set ``flag`` (e.g. ``"--lr"``; default ``--field-name``), ``group`` (the title of an
    argument group, made once) and ``cli=False`` (no flag). A bool field defaulting to False is a switch; one
    defaulting to True is turned off by its flag (name it ``--no-...``). Read the values back with
    [`dataclass_from_args`].
    """
    hints = typing.get_type_hints(cls)
    groups: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        meta = field.metadata
        if meta.get("cli", True) is False:
            continue
        target = parser
        if meta.get("group"):
            if meta["group"] not in groups:
                groups[meta["group"]] = parser.add_argument_group(meta["group"])
            target = groups[meta["group"]]
        flag = meta.get("flag") or "--" + field.name.replace("_", "-")
        kind, choices = _argument_type(hints[field.name])
        help_text = meta.get("help", "")
        if kind is bool:
            action = "store_false" if field.default is True else "store_true"
            target.add_argument(flag, dest=field.name, action=action, help=help_text)
            continue
        if field.default is not None:
            help_text = f"{help_text} (default {field.default})"
        target.add_argument(flag, dest=field.name, type=kind, choices=choices, default=field.default, help=help_text)


def dataclass_from_args(cls: type, args: argparse.Namespace, **overrides: Any) -> Any:
    """`cls` built from the flags [`add_dataclass_arguments`] added (and `overrides` for fields without a flag)."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    return cls(**{**values, **overrides})


def _argument_type(hint: Any) -> tuple[type, tuple | None]:
    """(type for argparse, choices) of a field's type: ``X | None`` is X; a ``Literal`` gives its values."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is typing.Literal:
        return type(args[0]), tuple(args)
    if args and typing.get_origin(hint) in (typing.Union, types.UnionType):
        return _argument_type(args[0]) if len(args) == 1 else (str, None)
    return hint, None


def add_label_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """``--labels`` / ``--labels-file`` (one of them) and ``--template`` (repeatable); read them with `read_labels`."""
    labels = parser.add_mutually_exclusive_group(required=required)
    labels.add_argument("--labels", help="comma-separated labels, e.g. 'surfing,juggling,cooking'")
    labels.add_argument(
        "--labels-file", type=Path, help="one label per line, or a CSV with a 'name' column (id,name files)"
    )
    parser.add_argument(
        "--template",
        action="append",
        dest="templates",
        metavar="TEMPLATE",
        help="hypothesis template with '{}' for the label (repeat to ensemble; default: the label bank's, else the "
        "model's own, '{}' for X-CLIP, 'a photo of a {}.' for ViFi-CLIP)",
    )


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--adapter``, ``--device``, ``--dtype`` and ``--quantize``, for `load_pipeline`."""
    parser.add_argument("--adapter", help="PEFT adapter folder or Hub id (from hf-xclip finetune)")
    parser.add_argument("--device", help="torch device, e.g. cpu, cuda, cuda:1 (default: first GPU if any)")
    parser.add_argument("--dtype", choices=("auto", "float32", "float16", "bfloat16"), default="auto")
    parser.add_argument("--quantize", choices=("int8", "none"),
                        help="ONNX exports (hf-xclip export): int8 or float32 graphs (default: the export's own)")


def read_label_arguments(args: argparse.Namespace) -> tuple[list[str] | None, Any, dict[str, list[str]] | None]:
    """``(labels, bank, descriptions)`` from `add_label_arguments` and `add_label_side_arguments`: the labels may be
    left out when a ``--label-bank`` is given (then None: every label of the bank).

    Raises:
        UsageError: no labels at all, or naming the bad label, file or bank.
    """
    bank = read_bank_argument(args.label_bank)
    given = args.labels is not None or args.labels_file is not None
    labels = read_labels(args.labels, args.labels_file) if bank is None or given else None
    return labels, bank, read_descriptions_argument(args.label_descriptions)


def read_labels(labels: str | None, labels_file: Path | None) -> list[str]:
    """Labels from ``--labels`` (comma-separated) or ``--labels-file`` (see `hf_xclip.labels.read_label_file`).

    Raises:
        UsageError: neither is given, or naming the bad label (or file and line).
    """
    from .labels import normalize_labels, read_label_file

    if labels is None and labels_file is None:
        raise UsageError("give the labels: --labels, --labels-file or --label-bank")
    try:
        if labels is not None:
            return normalize_labels(labels, "--labels")
        return read_label_file(labels_file)
    except (ValueError, FileNotFoundError) as err:
        raise UsageError(str(err)) from None


def require_matplotlib(option: str = "--plot") -> None:
    """Raises `UsageError` when matplotlib (the ``plot`` extra) is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError(
            f"{option} needs matplotlib: pip install 'hf_xclip[plot]' (or pip install matplotlib)"
        ) from None


def load_pipeline(
    model: str,
    device: str | None = None,
    dtype: str = "auto",
    quantize: str | None = None,
    adapter: str | None = None,
    language_model: str | None = None,
) -> Any:
    """`pipeline("zero-shot-video-classification")` for ``--model`` / ``--device`` / ``--dtype``, ``--quantize``
    (ONNX exports, see `hf_xclip.loading.load_model`) and ``--adapter`` (a PEFT adapter from `hf-xclip finetune`,
    applied in place to the base model; ``--language-model`` for an adapter with an LLM prompter).

    Raises:
        UsageError: the model (or adapter) cannot be loaded.
    """
    import torch
    from transformers import pipeline

    from .finetuning.adapters import load_model_with_adapter
    from .pipeline_zero_shot_video_classification import TASK

    torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype)
    model_kwargs = {"quantize": quantize} if quantize else {}
    try:
        if adapter is None:
            return pipeline(TASK, model=model, device=device, dtype=torch_dtype, model_kwargs=model_kwargs)
        if model_kwargs:
            raise UsageError("--quantize loads a model folder: it does not combine with --adapter")
        peft_model, processor, _ = load_model_with_adapter(model, adapter, language_model=language_model)
        # The base model carries the adapter's layers (and label prompter) in place: the pipeline scores through them.
        base = peft_model.get_base_model()
        if torch_dtype != "auto":
            base.to(torch_dtype)
        return pipeline(TASK, model=base, processor=processor, device=device)
    except (OSError, ValueError) as err:
        with_adapter = f" with adapter {adapter!r}" if adapter else ""
        raise UsageError(f"cannot load model {model!r}{with_adapter}: {err}") from None


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
