"""The options several commands share, and reading them: a command's parser (`add_command_parser`), the labels
(`add_label_arguments`), the label side (`add_label_side_arguments`), the model (`add_model_arguments`), the
multi-label method, the video decoder (`add_decode_argument`); each reader turns bad input into a `UsageError` naming
the option, file or label. Re-exported by `hf_xclip.cli`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, cast

from ._static import static_value
from ._usage import UsageError


def add_command_parser(subparsers: Any, name: str, summary: str, description: str) -> argparse.ArgumentParser:
    """The parser of ``hf-xclip NAME``: `summary` in the list of commands, `description` atop its ``--help`` (kept
    as written: line breaks and indented option lists)."""
    return subparsers.add_parser(
        name, help=summary, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def add_multi_label_method_argument(parser: Any, help_text: str) -> None:
    """``--multi-label-method`` (default ``auto``) on a parser or argument group: the library's methods, read
    without importing torch."""
    parser.add_argument(
        "--multi-label-method",
        choices=static_value("hf_xclip.multilabel", "MULTI_LABEL_METHODS"),
        default="auto",
        help=help_text,
    )


def option_values(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """``{name: args.<name>}``: options passed on as the keyword arguments of the same names."""
    return {name: getattr(args, name) for name in names}


def check_at_least_one(args: argparse.Namespace, *names: str, show_value: bool = False) -> None:
    """Refuse the first of the options `names` that is given and below 1.

    Raises:
        UsageError: ``--name must be at least 1.`` (with `show_value`: ``--name must be at least 1, got 0``).
    """
    for name in names:
        value = getattr(args, name)
        if value is not None and value < 1:
            shown = f", got {value}" if show_value else "."
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1{shown}")


def print_summary(text: str, summary: dict[str, Any], as_json: bool) -> None:
    """A command's summary: `text` on stdout, then with ``--json`` `summary` as one JSON line (the last line)."""
    print(text)
    if as_json:
        print(json.dumps(summary))


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


def _naming(path: Path | None, err: Exception) -> str:
    """The error's message, led by the file's name when it does not say it (e.g. a file that is not UTF-8)."""
    if isinstance(err, UnicodeDecodeError):
        return (
            f"{path}: not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset {err.start}); re-save the file "
            "as UTF-8"
        )
    text = str(err)
    return text if path is None or str(path) in text else f"{path}: {text}"


def add_decode_argument(parser: argparse.ArgumentParser) -> None:
    """``--decode-backend``, shared by every command that decodes videos (see `hf_xclip.video_io`)."""
    parser.add_argument(
        "--decode-backend",
        choices=static_value("hf_xclip.video_io", "BACKENDS"),  # the video core's list, read without importing it
        help="video decoder: auto (default: PyAV; torchcodec, then decord, for codecs PyAV cannot decode), "
        "torchcodec (needs FFmpeg's libraries: pip install 'hf_xclip[torchcodec]' and apt-get install ffmpeg), "
        "pyav or decord",
    )


def apply_decode_backend(video_processor: Any, backend: str | None) -> Any:
    """Set ``--decode-backend`` on a video processor (or on the ``video_processor`` of a processor / pipeline);
    ``None`` keeps its own. Returns the previous value (to restore before saving the processor).

    Raises:
        UsageError: the backend cannot run here, naming what to install.
    """
    target = getattr(video_processor, "video_processor", video_processor)
    previous = target.decode_backend
    if backend is None:
        return previous
    from ..video_io import require_backend

    try:
        require_backend(backend)
    except ImportError as err:
        raise UsageError(str(err)) from None
    target.decode_backend = backend
    return previous


def read_descriptions_argument(path: Path | None) -> dict[str, list[str]] | None:
    """`--label-descriptions`, read and checked.

    Raises:
        UsageError: naming the file (and label) that is wrong.
    """
    if path is None:
        return None
    from ..labels import read_label_descriptions

    try:
        return read_label_descriptions(path)
    except (ValueError, FileNotFoundError) as err:
        raise UsageError(_naming(path, err)) from None


def read_bank_argument(path: Path | None) -> Any:
    """`--label-bank`, loaded (a `LabelBank`), or None.

    Raises:
        UsageError: the file is missing or not a label bank.
    """
    if path is None:
        return None
    from ..labels import LabelBank

    try:
        return LabelBank.load(path)
    except (ValueError, FileNotFoundError) as err:
        raise UsageError(_naming(path, err)) from None


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
    parser.add_argument(
        "--quantize",
        choices=("int8", "none"),
        help="ONNX exports (hf-xclip export): int8 or float32 graphs (default: the export's own)",
    )


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
    from ..labels import normalize_labels, read_label_file

    if labels is None and labels_file is None:
        raise UsageError("give the labels: --labels, --labels-file or --label-bank")
    try:
        if labels is not None:
            return normalize_labels(labels, "--labels")
        return read_label_file(cast(Path, labels_file))  # not None: both missing was refused above
    except (ValueError, FileNotFoundError) as err:
        raise UsageError(_naming(labels_file, err)) from None


def unknown_labels(tokenizer: Any, labels: list[str]) -> list[tuple[str, int, int]]:
    """``(label, unknown tokens, tokens)`` for every label whose tokens are at least half the tokenizer's unknown
    token: such labels all look alike to the model, and their scores say little."""
    unknown_id = getattr(tokenizer, "unk_token_id", None)
    if unknown_id is None:
        return []
    found = []
    for label in labels:
        ids = tokenizer(label, add_special_tokens=False)["input_ids"]
        count = sum(1 for token in ids if token == unknown_id)
        if ids and 2 * count >= len(ids):
            found.append((label, count, len(ids)))
    return found


def warn_unknown_labels(tokenizer: Any, labels: list[str], command: str) -> None:
    """Warn on stderr, naming each label that is mostly unknown tokens (see `unknown_labels`)."""
    for label, count, total in unknown_labels(tokenizer, labels):
        print(
            f"hf-xclip {command}: warning: label {label!r} is mostly unknown to the model's tokenizer ({count} of "
            f"{total} tokens): its score says little; use words the model was trained on",
            file=sys.stderr,
        )


def require_matplotlib(option: str = "--plot") -> None:
    """Raises `UsageError` when matplotlib (the ``plot`` extra) is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError(
            f"{option} needs matplotlib: pip install 'hf_xclip[plot]' (or pip install matplotlib)"
        ) from None
